"""wae_lib.tools.headless: a notebook's code cells run in-process where Jupyter is missing (the lent GPU)."""

from __future__ import annotations

import json
import sys

import pytest

from wae_lib.tools import headless as H


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
    assert H.main([str(nb)]) == 2 and "cell 3" in capsys.readouterr().err
    with pytest.raises(H.NotebookError, match="no cell tagged 'parameters'"):
        H.execute(notebook(tmp_path / "none.ipynb", ("x = 1", [])))
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(H.NotebookError, match="not a readable notebook"):
        H.execute(tmp_path / "broken.ipynb")
