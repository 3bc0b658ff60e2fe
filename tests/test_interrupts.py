"""Issue 35: Ctrl-C (or SIGTERM) while `python -m wae_lib train` starts, before its first step (reading the training
set, building the model, the data-dependent init: the first ~25 s of a real run), is exit status 130 and one line,
and leaves no run folder holding only ``.lock``; a run folder that was there before keeps what it held.

A subprocess holds the start at one point (an env-selected patch touches READY, then sleeps), the test signals it
there: the same handshake as test_faults.py's WAIT_AT_STEP_2.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_faults import (  # the training interrupt harness's environment and flags
    ENV,
    REPO,
    TRAIN_CMD,
    cli_args,
)
from test_train import smooth_images

HOLD = r"""
import os, sys, time
from pathlib import Path
from wae_lib.__main__ import main
from wae_lib.model import wae as W
from wae_lib.data import training_sets as TS
from wae_lib.train import trainer as T

def hold(original):
    def held(*args, **kwargs):
        Path(os.environ["READY"]).touch()
        time.sleep(120)
        return original(*args, **kwargs)
    return held

point = os.environ["HOLD_AT"]
if point == "fingerprint":  # reading the training set's digest, before the run folder is locked
    TS.data_fingerprint = hold(TS.data_fingerprint)
elif point == "load_images":  # the folder exists and is locked, nothing is written yet
    T.load_images = hold(T.load_images)
else:  # the model's data-dependent init
    W.WAEStyle.data_init = hold(W.WAEStyle.data_init)
sys.exit(main(["train", *sys.argv[1:]]))
"""


@pytest.fixture
def npy(tmp_path) -> Path:
    path = tmp_path / "synthetic.npy"
    np.save(path, smooth_images(24))
    return path


def ctrl_c_as_in_a_terminal() -> None:
    """SIGINT back to its default in the child: pytest-xdist's workers ignore SIGINT, a child inherits that, and a
    Python started with SIGINT ignored installs no KeyboardInterrupt handler (a user's shell does not ignore it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupted_start(tmp_path: Path, point: str, args: list[str], sig: int = signal.SIGINT):
    ready = tmp_path / f"ready-{point}"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, *args], env={**ENV, "READY": str(ready), "HOLD_AT": point},
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        for _ in range(1200):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), proc.communicate()[1][-3000:]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # after "[wae_lib] VGG16 source: ..."
    assert "Traceback" not in err and len(errors) == 1 and err.strip().endswith(errors[0]), err[-3000:]
    assert errors[0].startswith("error: interrupted before the first training step"), errors[0]
    return errors[0]


@pytest.mark.parametrize("point, sig", [("fingerprint", signal.SIGINT), ("load_images", signal.SIGINT),
                                        ("data_init", signal.SIGINT), ("load_images", signal.SIGTERM)])
def test_ctrl_c_before_the_first_step_is_130_one_line_and_leaves_no_lock_only_folder(npy, tmp_path, point, sig):
    run = tmp_path / "models" / "run"  # its parent is new too: removed again as well
    line = interrupted_start(tmp_path, point, cli_args(run, npy, "--steps", 2), sig)
    assert "nothing was written" in line, line
    assert not (tmp_path / "models").exists(), sorted(p.name for p in (tmp_path / "models").rglob("*"))


def test_an_existing_run_folder_interrupted_while_resuming_keeps_what_it_held(npy, tmp_path):
    run = tmp_path / "run"
    assert TRAIN_CMD(cli_args(run, npy, "--steps", 2)) == 0

    def contents() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*")) if p.is_file()}

    before = contents()
    line = interrupted_start(tmp_path, "load_images", cli_args(run, npy, "--steps", 4))  # more steps: resumed
    assert f"{run} holds what it held before: run the same command to continue" in line, line
    after = contents()
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}


def test_an_empty_folder_given_as_out_is_left_empty(npy, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    interrupted_start(tmp_path, "data_init", cli_args(run, npy, "--steps", 2))
    assert run.is_dir() and not any(run.iterdir())
