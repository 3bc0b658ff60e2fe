"""Executed notebooks that read anywhere (issue 32): ``clean-notebook`` strips widget state and progress widgets,
keeps figures and text; the committed reference runs' executed notebooks are clean, complete and small."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from wae_lib.__main__ import main
from wae_lib.report.executed import LIVE_NOTE, MAX_BYTES, WIDGET_MIME, clean_notebook

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_RUNS = ("reference-shared-data-large",)  # the headline run (HEADLINE_REPORTS)


def widget(text: str) -> dict:
    return {"output_type": "display_data", "metadata": {},
            "data": {WIDGET_MIME: {"model_id": "abc", "version_major": 2}, "text/plain": [text]}}


def executed() -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"widgets": {"state": {"abc": {}}}}, "cells": [
        {"cell_type": "code", "source": ["bar"], "metadata": {}, "outputs": [
            widget("transfers:   0%|          | 0/288 [00:00<?, ?it/s]"),
            {"output_type": "stream", "name": "stderr", "text": ["transfers:   0%|    | 0/288\n"]},
            {"output_type": "stream", "name": "stderr", "text": ["transfers:  50%|##  | 144/288\n", "a line\n"]},
            {"output_type": "stream", "name": "stderr", "text": ["transfers: 100%|####| 288/288\n"]}]},
        {"cell_type": "code", "source": ["ui"], "metadata": {}, "outputs": [
            widget("VBox(children=(HBox(children=(Dropdown(..."),
            {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR", "text/plain": ["<Figure>"]}}]},
        {"cell_type": "markdown", "source": ["# text"], "metadata": {}}]}


def test_clean_notebook_drops_progress_widgets_and_names_the_live_controls():
    nb = clean_notebook(executed())
    assert "widgets" not in nb["metadata"]
    first, second = nb["cells"][0]["outputs"], nb["cells"][1]["outputs"]
    # the text bar's last line stays, and what else was printed
    assert [o["text"] for o in first] == [["a line\n"], ["transfers: 100%|####| 288/288\n"]]
    assert second[0]["text"] == [LIVE_NOTE] and "image/png" in second[1]["data"]  # the figure stays
    assert WIDGET_MIME not in json.dumps(nb)


def test_clean_notebook_command_rewrites_in_place_and_refuses_a_non_notebook(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(executed()))
    assert main(["clean-notebook", str(path)]) == 0
    assert WIDGET_MIME not in path.read_text()
    bad = tmp_path / "list.ipynb"
    bad.write_text("[1, 2]")
    assert main(["clean-notebook", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "not a notebook" in err[0]
    assert bad.read_text() == "[1, 2]"  # nothing written


def committed_notebooks() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "reports/*/notebooks/*.ipynb"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the committed notebooks cannot be listed")
    return [ROOT / line for line in out.splitlines() if line.strip()]


def test_committed_executed_notebooks_are_complete_clean_and_small():
    found = committed_notebooks()
    for run in COMMITTED_RUNS:
        names = {p.stem for p in found if p.parent.parent.name == run}
        sources = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert names == sources, f"reports/{run}/notebooks/ lacks {sorted(sources - names)}"
    for path in found:
        text = path.read_text(encoding="utf-8")
        assert len(text.encode()) <= MAX_BYTES, f"{path}: {len(text.encode()) / 2**20:.1f} MiB"
        assert WIDGET_MIME not in text and '"widgets"' not in text, f"{path}: widget state left in"
        nb = json.loads(text)
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{path}: not every cell ran"
        errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{path}: {errors[0]['ename']}"
        bars = [line for c in code for o in c["outputs"] for line in "".join(o.get("text", "")).splitlines()
                if "%|" in line]
        assert all("100%|" in line for line in bars), f"{path}: a progress bar saved before its end: {bars}"


def test_source_notebooks_are_committed_without_outputs():
    """notebooks/ holds the sources (style rule 4): an output saved into one (JupyterLab's autosave during a by-hand
    Run All once left a FileNotFoundError traceback in 00_explore) shows every reader a stale result."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        code = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
        saved = [k for k, c in enumerate(code) if c.get("outputs") or c.get("execution_count") is not None]
        assert not saved, f"{path.name}: code cells {saved} hold saved outputs (clear them before committing)"
