"""A line on the console every PROGRESS_LOG_EVERY_S while a notebook cell runs, for notebooks the Makefile executes.

A long cell with no progress bar of its own (notebook 04's transfer table ran 30 minutes without a line, issue 19)
looks hung. The repository's kernel spec (jupyter/kernels/python3/kernel.json) loads this IPython extension; it
acts only under ``WAE_PROGRESS=text``, which the Makefile's papermill sets, so cells in JupyterLab stay quiet.
The line goes to the kernel process's original stderr (ipykernel's ``sys.stderr.fileno()``: the copy it keeps of
fd 2), which papermill's console inherits, not into the executed notebook. ``WAE_HEARTBEAT_S`` sets another interval (the tests use a short one).
"""

from __future__ import annotations

import os
import sys
import threading
import time

from wae_lib.utils import PROGRESS_LOG_EVERY_S


class CellHeartbeat:
    """Starts a timer thread when a cell starts and stops it when the cell ends; the thread writes
    ``[wae_lib] notebook cell N (first line...) still running: T s`` every ``every`` seconds."""

    def __init__(self, every: float, write=None):
        self.every, self.write = every, write or console_writer()
        self.count, self._stop, self._thread = 0, threading.Event(), None

    def pre_run_cell(self, info=None) -> None:
        self.post_run_cell()
        self.count += 1
        first = next((ln.strip() for ln in (getattr(info, "raw_cell", "") or "").splitlines()
                      if ln.strip() and not ln.lstrip().startswith("#")), "")
        label = f"notebook cell {self.count}" + (f" ({first[:60]}{'...' if len(first) > 60 else ''})" if first else "")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(label, self._stop, time.monotonic()), daemon=True)
        self._thread.start()

    def post_run_cell(self, result=None) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _beat(self, label: str, stop: threading.Event, t0: float) -> None:
        while not stop.wait(self.every):
            self.write(f"[wae_lib] {label} still running: {time.monotonic() - t0:.0f} s\n")


def console_writer():
    """Write straight to the process's original stderr: inside ipykernel, fd 2 is a pipe into the notebook's
    outputs (which papermill echoes too: every line would show twice), and ``sys.stderr.fileno()`` is the copy
    of the original it keeps."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return lambda text: print(text, end="", file=sys.__stderr__, flush=True)
    return lambda text: os.write(fd, text.encode())


def load_ipython_extension(ip) -> None:
    if os.environ.get("WAE_PROGRESS") != "text":
        return
    beat = CellHeartbeat(float(os.environ.get("WAE_HEARTBEAT_S", PROGRESS_LOG_EVERY_S)))
    ip.events.register("pre_run_cell", beat.pre_run_cell)
    ip.events.register("post_run_cell", beat.post_run_cell)
