"""``python -m wae_lib clean-notebook NB.ipynb ...``: an executed notebook made fit to be read anywhere.

The reference runs' executed notebooks are committed so that they render on the code host (issue 32). What a
kernel leaves in them does not render there, or not from an untrusted file in JupyterLab either:

* widget state (``metadata.widgets``) and widget outputs: a progress widget shows as ``transfers: 0%| 0/288``
  forever and the explorer's controls as one line of ``VBox(children=(HBox(...``. Progress widgets are dropped
  (under make, ``WAE_PROGRESS=text`` prints the bars as text, whose last line reads 100%); any other widget is
  replaced by a line saying where it lives (the figure the notebook drew stays);
* nothing else is changed: figures stay inline, so a notebook's size is its figures' (:data:`MAX_BYTES` is the
  size a reader's browser renders without pause; a larger one is reported, not cut).

The Makefile runs it on every notebook it executes, before the file is renamed into place.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..utils import UserError, atomic_write_text

HELP = "strip widget state and progress widgets from executed notebooks (make runs it on each one)"
DESCRIPTION = __doc__.split("\n\n", 1)[1]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
MAX_BYTES = 3 * 2**20
# a tqdm widget's text form: "desc:  45%|####      | 9/20 [..]" (or the bare bar)
_PROGRESS_TEXT = re.compile(r"\d+%\|")
LIVE_NOTE = "[interactive controls here: run this notebook in JupyterLab (make lab) to use them]\n"


def clean_outputs(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``outputs`` without widget views: progress widgets dropped, any other widget replaced by LIVE_NOTE."""
    kept = []
    for out in outputs:
        data = out.get("data") or {}
        if WIDGET_MIME not in data:
            kept.append(out)
            continue
        text = "".join(data.get("text/plain", ""))
        if not _PROGRESS_TEXT.search(text):
            kept.append({"name": "stdout", "output_type": "stream", "text": [LIVE_NOTE]})
    return kept


def clean_notebook(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook ``nb`` (nbformat 4 JSON) without widget state or widget outputs, in place and returned."""
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a notebook: expected a JSON object with a list of cells")
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            cell["outputs"] = clean_outputs(cell.get("outputs", []))
    return nb


def clean_file(path: str | Path) -> int:
    """Clean the notebook at ``path`` atomically; returns its size in bytes."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        text = json.dumps(clean_notebook(nb), indent=1, ensure_ascii=False) + "\n"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise UserError(f"{path}: cannot clean it as an executed notebook ({exc})") from None
    atomic_write_text(path, text)
    return len(text.encode())


def add_arguments(parser) -> None:
    parser.add_argument("notebooks", nargs="+", metavar="NB.ipynb", help="executed notebooks, rewritten in place")


def run(args) -> int:
    for path in args.notebooks:
        size = clean_file(path)
        if size > MAX_BYTES:
            print(f"note: {path} is {size / 2**20:.1f} MiB after cleaning (over {MAX_BYTES / 2**20:.0f} MiB: its "
                  f"figures; fewer images per figure make it lighter)")
    return 0
