"""Issue 35: a bad notebook parameter is the parameter's own line, checked before papermill starts a kernel
(wae_lib.params.check_before_running; ``python -m devtools papermill``, the Makefile's notebook runner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def make_compare_command(tmp_path: Path, params: str) -> str:
    """The shell line `make compare PARAMS=...` runs for notebook 07 (make -n: printed, not run), its outputs
    under tmp_path."""
    made = subprocess.run(["make", "-n", "compare", f"REPORTS_DIR={tmp_path}", f"PARAMS={params}",
                           f"PY={sys.executable}"], cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [line for line in made.stdout.splitlines() if "notebooks/07_compare.ipynb" in line and params in line]
    assert len(lines) == 1, made.stdout + made.stderr
    return lines[0]


@pytest.mark.parametrize("params, line", [
    ("-p n_styles abc", "parameter n_styles = 'abc' is invalid: expected an integer >= 2"),
    ("-p n_styles True", "parameter n_styles = True is invalid: expected an integer >= 2"),
    ("-p n_stlyes 4", "unknown parameter(s) ['n_stlyes'] (misspelled?); this notebook's parameters are ['alpha', "),
])
def test_make_compare_with_a_bad_parameter_prints_only_its_line(tmp_path, params, line):
    proc = subprocess.run(["bash", "-c", make_compare_command(tmp_path, params)], cwd=REPO, env=ENV, text=True,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    said = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode != 0 and len(said) == 1, proc.stdout + proc.stderr
    assert said[0].startswith(f"error: notebooks/07_compare.ipynb: {line}"), said[0]
    assert not (tmp_path / "notebooks" / "07_compare.tmp.ipynb").exists()  # no kernel started, nothing written


def notebook(path: Path, *sources: str) -> Path:
    """The first source is the parameters cell."""
    cells = [{"cell_type": "code", "metadata": {"tags": ["parameters"] if i == 0 else []}, "source": [src],
              "outputs": [], "execution_count": None} for i, src in enumerate(sources)]
    path.write_text(json.dumps({"cells": cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                                            "display_name": "Python 3"}},
                                "nbformat": 4, "nbformat_minor": 5}))
    return path


def checked_notebook(tmp_path: Path) -> Path:
    nb = tmp_path / "nb.ipynb"
    return notebook(nb, "n_styles = 8\nprofile = 'auto'\nratio = 1",
                    "import wae_lib.config\nfrom wae_lib.params import Param, check_notebook_parameters\n"
                    f"check_notebook_parameters(globals(), {str(nb)!r}, {{\n"
                    "    'n_styles': Param(min=1), 'profile': Param(choices=('auto', *wae_lib.config.PROFILES)),\n"
                    "    'ratio': float})")


@pytest.mark.parametrize("params, needle", [
    ({"n_styles": "abc"}, "parameter n_styles = 'abc' is invalid: expected an integer >= 1"),
    ({"n_styles": True}, "parameter n_styles = True is invalid: expected an integer >= 1"),
    ({"n_styles": 0}, "parameter n_styles = 0 is invalid: expected an integer >= 1"),
    ({"profile": "papr"}, "parameter profile = 'papr' is invalid: expected one of ['auto', "),
    ({"n_stlyes": 4}, "unknown parameter(s) ['n_stlyes'] (misspelled?)"),
])
def test_check_before_running_refuses_what_the_notebooks_check_refuses(tmp_path, monkeypatch, params, needle):
    from wae_lib.params import ParameterError, check_before_running

    monkeypatch.setenv("WAE_STRICT_PARAMS", "1")
    nb = checked_notebook(tmp_path)
    with pytest.raises(ParameterError) as err:
        check_before_running(nb, params)
    assert str(err.value).startswith(f"{nb}: {needle}"), str(err.value)


def test_check_before_running_accepts_what_the_notebooks_check_accepts(tmp_path, monkeypatch):
    from wae_lib.params import check_before_running

    monkeypatch.setenv("WAE_STRICT_PARAMS", "1")
    nb = checked_notebook(tmp_path)
    check_before_running(nb, {"n_styles": "4", "ratio": 0.5, "profile": "quick", "run": "x"})  # run: notebook 02's
    monkeypatch.delenv("WAE_STRICT_PARAMS")
    check_before_running(nb, {"n_stlyes": 4})  # outside make an unknown name is the notebook's warning
    unchecked = notebook(tmp_path / "free.ipynb", "n = 1", "print(n)")
    check_before_running(unchecked, {"n": "abc", "other": 1})  # no check cell: nothing refused here either


def test_a_cell_failing_under_the_runner_is_one_line_naming_the_cell(tmp_path):
    # In [3]: as the executed notebook numbers it, after the injected parameters (In [2])
    nb = notebook(tmp_path / "fails.ipynb", "n = 1", "raise ValueError('boom\\nsecond line')", "print('after')")
    proc = subprocess.run([sys.executable, "-m", "devtools", "papermill", "--kernel", "python3", "--cwd", str(tmp_path),
                           "--log-output", str(nb), str(tmp_path / "out.ipynb"), "-p", "n", "2"], cwd=REPO, env=ENV,
                          text=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after papermill's cell progress lines
    assert last == (f"error: {nb}, cell In [3]: ValueError: boom (its traceback is in the executed notebook "
                    f"{tmp_path / 'out.ipynb'})"), last
