"""devtools.headless: a notebook's code cells run in-process where Jupyter is missing (the lent GPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from commands import command

from devtools import headless as H

HEADLESS_CMD = command("headless", "devtools")


def notebook(path, *cells):
    """cells: (source, tags) pairs; a markdown cell in between, as the real notebooks have."""
    body = [{"cell_type": "markdown", "metadata": {}, "source": ["# title"]}]
    body += [{"cell_type": "code", "metadata": {"tags": list(tags)}, "source": [src], "outputs": [],
              "execution_count": None} for src, tags in cells]
    path.write_text(json.dumps({"cells": body, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_parameters_are_injected_after_their_cell_and_outputs_logged(tmp_path, monkeypatch):
    nb = notebook(tmp_path / "n.ipynb",
                  ('n = 1\nname = "a"\nflag = True\nbatches = "1, 64"', ["parameters"]),
                  ("from IPython.display import display, Image\ndisplay(Image(filename='x.png'))\n"
                   "print('n', n, name, flag, batches)\nresult = n * 2\nresult + 1", []))
    monkeypatch.setitem(sys.modules, "IPython", None)  # as on the device: no IPython, the stand-in displays
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    params = {k: H.parse_value(v) for k, v in (("n", "5"), ("flag", "False"), ("batches", "1, 64"))}
    ns = H.execute(nb, params, tmp_path / "log.txt")
    assert ns["result"] == 10 and ns["name"] == "a" and ns["flag"] is False and ns["batches"] == "1, 64"
    log = (tmp_path / "log.txt").read_text()
    assert "--- n.ipynb cell 3" in log and "[image x.png]" in log and "n 5 a False 1, 64" in log
    assert "=== n.ipynb: 2 code cells" in log and "\n11\n" in log  # the cell's last expression, shown


def test_a_failing_cell_is_named_and_a_notebook_without_parameters_refused(tmp_path, capsys):
    nb = notebook(tmp_path / "bad.ipynb", ("x = 1", ["parameters"]), ("print('before')\n1 / 0", []))
    with pytest.raises(H.NotebookError, match=r"bad.ipynb, cell 3: ZeroDivisionError"):
        H.execute(nb, log=tmp_path / "log.txt")
    assert "before" in (tmp_path / "log.txt").read_text()  # what it printed before failing is kept
    assert HEADLESS_CMD([str(nb)]) == 1 and "cell 3" in capsys.readouterr().err
    with pytest.raises(H.NotebookError, match="no cell tagged 'parameters'"):
        H.execute(notebook(tmp_path / "none.ipynb", ("x = 1", [])))
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(H.NotebookError, match="not a readable notebook"):
        H.execute(tmp_path / "broken.ipynb")


# --------------------------------------------------------------------------------------------------
# issue 35: an early exit fails, and every bad input or interrupt is one line (the command as a user runs it)
# --------------------------------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def headless(*args, **popen) -> subprocess.Popen:
    # SIGINT reset to its default in the child (test_interrupts.ctrl_c_as_in_a_terminal: xdist workers ignore it)
    return subprocess.Popen([sys.executable, "-m", "devtools", "headless", *map(str, args)], env=ENV, cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **popen)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


def after_cell(tmp_path) -> str:
    """A last cell that leaves a file: it must not run after an early exit or an interrupt."""
    return f"open({str(tmp_path / 'after')!r}, 'w').write('ran')"


@pytest.mark.parametrize("case", ["sys.exit(0)", "json list", "non-dict cell", "KeyboardInterrupt", "log folder"])
def test_an_early_exit_fails_and_bad_input_is_one_line(tmp_path, case):
    log = tmp_path / "log.txt"
    nb, rc, needle = tmp_path / "n.ipynb", 1, None
    if case == "sys.exit(0)":
        notebook(nb, ("x = 1", ["parameters"]), ("import sys\nsys.exit(0)", []), (after_cell(tmp_path), []))
        needle = "n.ipynb, cell 3: exited early (SystemExit: 0); the cells after it did not run"
    elif case == "json list":
        nb.write_text(json.dumps([{"cell_type": "code", "source": "x = 1"}]))
        needle = "not a notebook (expected a JSON object with a list of 'cells', found list)"
    elif case == "non-dict cell":
        notebook(nb, ("x = 1", ["parameters"]))
        body = json.loads(nb.read_text())
        body["cells"].append("print('a cell as a bare string')")
        nb.write_text(json.dumps(body))
        needle = "n.ipynb, cell 3: not a notebook cell"
    elif case == "KeyboardInterrupt":
        notebook(nb, ("x = 1", ["parameters"]), ("raise KeyboardInterrupt", []), (after_cell(tmp_path), []))
        rc, needle = 130, "n.ipynb, cell 3: interrupted; the cells after it did not run"
    else:
        notebook(nb, ("x = 1", ["parameters"]), (after_cell(tmp_path), []))
        log = tmp_path / "missing" / "log.txt"
        needle = f"--log {log}: cannot write the log (No such file or directory); no cell of n.ipynb ran"
    proc = headless(nb, "--log", log)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == rc and needle in one_line(err), (proc.returncode, err)
    assert not (tmp_path / "after").exists()


def test_ctrl_c_during_a_cell_is_exit_130_and_one_line(tmp_path):
    ready = tmp_path / "ready"
    nb = notebook(tmp_path / "slow.ipynb", ("x = 1", ["parameters"]),
                  (f"import time\nopen({str(ready)!r}, 'w').close()\ntime.sleep(60)", []), (after_cell(tmp_path), []))
    proc = headless(nb, "--log", tmp_path / "log.txt")
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, (proc.returncode, err)
    assert "slow.ipynb, cell 3: interrupted" in one_line(err)
    assert not (tmp_path / "after").exists() and "--- slow.ipynb cell 3" in (tmp_path / "log.txt").read_text()


def test_a_bad_parameter_is_one_line_before_any_cell_runs(tmp_path):
    """headless checks -p values as the notebook's check cell will (wae_lib.params.check_before_running)."""
    nb = notebook(tmp_path / "p.ipynb", ("n_styles = 8\nname = 'a'", ["parameters"]),
                  ("from wae_lib.params import Param, check_notebook_parameters\n"
                   f"check_notebook_parameters(globals(), {str(tmp_path / 'p.ipynb')!r}, {{'n_styles': Param(min=1)}})",
                   []), (after_cell(tmp_path), []))
    for value, expected in (("abc", "'abc' is invalid: expected an integer >= 1"),
                            ("True", "True is invalid: expected an integer >= 1"),
                            ("0", "0 is invalid: expected an integer >= 1")):
        proc = headless(nb, "-p", "n_styles", value, "--log", tmp_path / "log.txt")
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1 and f"p.ipynb: parameter n_styles = {expected}" in one_line(err), err
    assert not (tmp_path / "log.txt").exists() and not (tmp_path / "after").exists()  # not a cell ran
