"""An executed notebook made fit to be read anywhere (the command: ``python -m wae_lib clean-notebook NB.ipynb ...``,
wae_lib.commands.clean_notebook).

The reference runs' executed notebooks are committed so that they render on the code host (issue 32). What a
kernel leaves in them does not render there, or not from an untrusted file in JupyterLab either:

* widget state (``metadata.widgets``) and widget outputs: a progress widget shows as ``transfers: 0%| 0/288``
  forever and the explorer's controls as one line of ``VBox(children=(HBox(...``. Progress widgets are dropped
  (under make, ``WAE_PROGRESS=text`` prints the bars as text, whose last line reads 100%); any other widget is
  replaced by a line saying where it lives (the figure the notebook drew stays);
* a text progress bar keeps its last line (under make it prints one every 30 s, ``transfers: 38%|...``);
* figures stay inline, but a PNG over :data:`JPEG_OVER` bytes (a grid of photographs, ~1 MB each in notebook 07)
  is stored as a JPEG of quality :data:`JPEG_QUALITY` when that is smaller: the code host refuses to render a
  notebook of several MB, and a reader's browser pauses on one (:data:`MAX_BYTES`; a larger one is reported,
  not cut). Nothing else is changed.

The Makefile runs it on every notebook it executes, before the file is renamed into place.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

from ..utils import UserError, atomic_write_text

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
MAX_BYTES = 3 * 2**20
JPEG_OVER = 200_000  # base64 characters of one PNG; plots stay PNG (sharp lines), photo grids are far larger
JPEG_QUALITY = 88  # no visible blocking on the face grids at the notebooks' 100 dpi
# a tqdm widget's text form: "desc:  45%|####      | 9/20 [..]" (or the bare bar)
_PROGRESS_TEXT = re.compile(r"\d+%\|")
_PROGRESS_LINE = re.compile(r"^(?P<desc>[^|\n]*?):?\s*\d+%\|")  # a text bar's line; its description names the bar
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
    return last_progress_lines(kept)


def last_progress_lines(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``outputs`` with each text progress bar's last line only: under make a bar prints a line every 30 s
    (wae_lib.utils.progress), which a reader of the saved notebook needs only the end of (``transfers: 100%|...``)."""
    seen: set[str] = set()
    kept = []
    for out in reversed(outputs):
        if out.get("output_type") == "stream":
            lines = "".join(out.get("text", "")).splitlines(keepends=True)
            mine = []
            for line in reversed(lines):
                m = _PROGRESS_LINE.match(line)
                if m and m["desc"] in seen:
                    continue
                if m:
                    seen.add(m["desc"])
                mine.append(line)
            if not mine:
                continue
            out = dict(out, text=mine[::-1])
        kept.append(out)
    return kept[::-1]


def lighter_image(data: dict[str, Any]) -> None:
    """Replace a large ``image/png`` in an output's ``data`` with an ``image/jpeg`` when that is smaller."""
    png = data.get("image/png")
    png = "".join(png) if isinstance(png, list) else png
    if not isinstance(png, str) or len(png) <= JPEG_OVER:
        return
    from PIL import Image  # only here: the command's other work needs no imaging library

    try:
        image = Image.open(io.BytesIO(base64.b64decode(png)))
        image.load()
    except Exception:  # not a decodable PNG: leave it as the kernel wrote it
        return
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    jpeg = base64.b64encode(buf.getvalue()).decode("ascii")
    if len(jpeg) < len(png):
        del data["image/png"]
        data["image/jpeg"] = jpeg


def clean_notebook(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook ``nb`` (nbformat 4 JSON) without widget state or widget outputs and with large PNG figures as
    JPEG, in place and returned."""
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a notebook: expected a JSON object with a list of cells")
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            cell["outputs"] = clean_outputs(cell.get("outputs", []))
            for out in cell["outputs"]:
                if isinstance(out.get("data"), dict):
                    lighter_image(out["data"])
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
