"""Labelled image grids (PIL): rows of 64 x 64 images with row and column labels and a caption, the drawing every
figure uses (the training samples, the paper's figures in wae_lib.report.figures, the transfer command's grid).
Every figure of a run carries :func:`run_caption` (profile, data, content size, VGG source, scaling).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from .utils import atomic_open, to_uint8_hwc

CELL = 64  # image side in the grid, px
PAD = 2  # gap between cells, px
LINE_H = 12  # caption line height of PIL's default bitmap font


def grid_geometry(n_rows: int, n_cols: int, label_width: int, has_col_labels: bool, caption_lines: int,
                  cell: int = CELL) -> dict[str, int]:
    """Pixel layout of a grid: where the cells start and the total size (tests check figures with it)."""
    top = LINE_H + PAD if has_col_labels else 0
    body_w, body_h = n_cols * (cell + PAD) + PAD, n_rows * (cell + PAD) + PAD
    return {"left": label_width, "top": top, "width": label_width + body_w,
            "height": top + body_h + caption_lines * LINE_H + (PAD * 2 if caption_lines else 0)}


def grid_layout(rows: Sequence[torch.Tensor], row_labels: Sequence[str] | None = None,
                col_labels: Sequence[str] | None = None, caption: str = "", label_width: int | None = None,
                wrap: int | None = None) -> dict:
    """What :func:`image_grid` will draw: cell counts, label column width and wrapped caption lines."""
    n_cols = max(r.shape[0] for r in rows)
    cell = rows[0].shape[-1]
    if label_width is None:
        label_width = 6 * max((len(s) for s in row_labels or []), default=0) + 8 if row_labels else 0
    width_chars = wrap or max(20, (label_width + n_cols * (cell + PAD)) // 6)
    lines = [ln for part in caption.split("\n") for ln in textwrap.wrap(part, width_chars)] if caption else []
    return {"n_rows": len(rows), "n_cols": n_cols, "label_width": label_width, "has_col_labels": bool(col_labels),
            "caption_lines": lines, "cell": cell}


def image_grid(rows: Sequence[torch.Tensor], row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, caption: str = "", label_width: int | None = None,
               wrap: int | None = None) -> Image.Image:
    """Rows of N x 3 x S x S images in [0, 1] (S: 64, or what a fully convolutional model wrote) -> one labelled PIL
    image (white background)."""
    font = ImageFont.load_default()
    lay = grid_layout(rows, row_labels, col_labels, caption, label_width, wrap)
    lines, CELL = lay["caption_lines"], lay["cell"]  # noqa: N806 - the module's cell side, this grid's value
    geo = grid_geometry(len(rows), lay["n_cols"], lay["label_width"], bool(col_labels), len(lines), CELL)
    canvas = Image.new("RGB", (geo["width"], geo["height"]), "white")
    draw = ImageDraw.Draw(canvas)
    for j, label in enumerate(col_labels or []):
        draw.text((geo["left"] + PAD + j * (CELL + PAD), 1), label[: CELL // 6], fill="black", font=font)
    for i, row in enumerate(rows):
        y = geo["top"] + PAD + i * (CELL + PAD)
        if row_labels:
            draw.text((2, y + CELL // 2 - 6), row_labels[i], fill="black", font=font)
        for j, img in enumerate(to_uint8_hwc(row)):
            canvas.paste(Image.fromarray(img), (geo["left"] + PAD + j * (CELL + PAD), y))
    y0 = geo["top"] + len(rows) * (CELL + PAD) + PAD * 2
    for k, line in enumerate(lines):
        draw.text((2, y0 + k * LINE_H), line, fill="black", font=font)
    return canvas


def save_grid(path: str | Path, rows: Sequence[torch.Tensor], **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:  # a figure is replaced whole, never left half-written
        image_grid(rows, **kwargs).save(f, format="PNG")
    return path


def run_caption(cfg, vgg_label: str, extra: str = "") -> str:
    """The caption every figure of a run carries: profile, data, content size, VGG source, scaling."""
    parts = [f"profile={cfg.profile}", f"data={cfg.data}", f"content={cfg.content_label}", f"VGG16: {vgg_label}"]
    if cfg.scale_note:
        parts.append(cfg.scale_note)
    if extra:
        parts.append(extra)
    return " | ".join(parts)


def blank_cells(n: int = 1) -> torch.Tensor:
    """White cells, to keep a grid rectangular (e.g. the corner of a content x style matrix)."""
    return torch.ones(n, 3, CELL, CELL)
