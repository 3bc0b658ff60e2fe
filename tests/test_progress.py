"""Progress in logs (issue 19): a bar writes a line of its own at least every PROGRESS_LOG_EVERY_S when its stream
is not a terminal, and notebooks run by the Makefile (WAE_PROGRESS=text) print text bars instead of widgets."""

from __future__ import annotations

import io
import time

import tqdm.auto
import tqdm.autonotebook
from tqdm.std import tqdm as text_tqdm

from wae_lib import utils


def test_a_bar_in_a_log_writes_lines_as_it_goes():
    log = io.StringIO()
    bar = utils.progress(total=6, desc="demo", file=log, notebook=False, mininterval=0.05, maxinterval=0.05)
    for _ in range(6):
        time.sleep(0.06)
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) >= 4 and "\r" not in log.getvalue()  # one line per redraw, not one growing line
    assert lines[0].startswith("demo:") and "6/6" in lines[-1]
    assert utils.PROGRESS_LOG_EVERY_S <= 30


def test_notebooks_run_by_the_makefile_get_text_bars(monkeypatch):
    class Widget(text_tqdm):  # what tqdm.auto picks inside a Jupyter kernel
        pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Widget)
    monkeypatch.setattr(tqdm.autonotebook, "tqdm", Widget)
    monkeypatch.delenv("WAE_PROGRESS", raising=False)
    bar = utils.progress(total=1, file=io.StringIO())
    assert type(bar) is Widget
    bar.close()
    monkeypatch.setenv("WAE_PROGRESS", "text")
    bar = utils.progress(total=1, file=io.StringIO())
    assert type(bar) is text_tqdm
    bar.close()


def test_a_running_cell_writes_a_heartbeat_until_it_ends(monkeypatch):
    from devtools import cell_heartbeat as CH

    class Shell:  # IPython's events API, as the extension uses it
        def __init__(self):
            self.handlers = {}

        def register(self, event, fn):
            self.handlers[event] = fn

    shell = type("IP", (), {"events": Shell()})()
    monkeypatch.delenv("WAE_PROGRESS", raising=False)
    CH.load_ipython_extension(shell)
    assert shell.events.handlers == {}  # JupyterLab: quiet
    lines = []
    beat = CH.CellHeartbeat(0.05, write=lines.append)
    beat.pre_run_cell(type("Info", (), {"raw_cell": "# a comment\ntable = T.transfer_table(runs, outputs)\n"})())
    time.sleep(0.28)
    beat.post_run_cell()
    n = len(lines)
    time.sleep(0.12)
    assert n >= 3 and len(lines) == n  # lines while it ran, none after it ended
    assert lines[0].startswith("[wae_lib] notebook cell 1 (table = T.transfer_table(runs, outputs)) still running")
    monkeypatch.setenv("WAE_PROGRESS", "text")
    CH.load_ipython_extension(shell)
    assert set(shell.events.handlers) == {"pre_run_cell", "post_run_cell"}


def test_notebooks_run_by_papermill_print_heartbeats_to_the_console_only(tmp_path):
    """The repository's kernel spec loads the extension (the Makefile's papermill command, WAE_PROGRESS=text)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    nb = {"cells": [{"cell_type": "code", "id": "a", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": ["import time\n", "time.sleep(1.5)"]}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "in.ipynb").write_text(json.dumps(nb))
    env = {**os.environ, "WAE_PROGRESS": "text", "WAE_HEARTBEAT_S": "0.4"}
    proc = subprocess.run([sys.executable, "-m", "papermill", "--kernel", "python3", "--log-output",
                           str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb")], env=env, capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    beats = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "still running" in ln]
    assert 2 <= len(beats) <= 4 and beats[0].startswith("[wae_lib] notebook cell 1 (import time)")
    assert "still running" not in (tmp_path / "out.ipynb").read_text()  # not into the executed notebook
