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
