"""Labelled image grids (PIL): every figure carries row labels and a caption naming profile, data and VGG source."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

CELL = 64  # image side in the grid, px
PAD = 2  # gap between cells, px
LINE_H = 12  # caption line height of PIL's default bitmap font


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W in [0, 1] -> N x H x W x 3 uint8."""
    return (images.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def grid_geometry(n_rows: int, n_cols: int, label_width: int, has_col_labels: bool, caption_lines: int
                  ) -> dict[str, int]:
    """Pixel layout of a grid: where the cells start and the total size (tests check figures with it)."""
    top = LINE_H + PAD if has_col_labels else 0
    body_w, body_h = n_cols * (CELL + PAD) + PAD, n_rows * (CELL + PAD) + PAD
    return {"left": label_width, "top": top, "width": label_width + body_w,
            "height": top + body_h + caption_lines * LINE_H + (PAD * 2 if caption_lines else 0)}


def image_grid(rows: Sequence[torch.Tensor], row_labels: Sequence[str] | None = None,
               col_labels: Sequence[str] | None = None, caption: str = "", label_width: int | None = None,
               wrap: int | None = None) -> Image.Image:
    """Rows of N x 3 x 64 x 64 images in [0, 1] -> one labelled PIL image (white background)."""
    n_cols = max(r.shape[0] for r in rows)
    font = ImageFont.load_default()
    if label_width is None:
        label_width = 6 * max((len(s) for s in row_labels or []), default=0) + 8 if row_labels else 0
    width_chars = wrap or max(20, (label_width + n_cols * (CELL + PAD)) // 6)
    lines = [ln for part in caption.split("\n") for ln in textwrap.wrap(part, width_chars)] if caption else []
    geo = grid_geometry(len(rows), n_cols, label_width, bool(col_labels), len(lines))
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
    image_grid(rows, **kwargs).save(path)
    return path


def run_caption(cfg, vgg_label: str, extra: str = "") -> str:
    """The caption every figure of a run carries: profile, data, content size, VGG source, scaling."""
    parts = [f"profile={cfg.profile}", f"data={cfg.data}", f"content={cfg.content_dim}", f"VGG16: {vgg_label}"]
    if cfg.scaled_note:
        parts.append(cfg.scaled_note)
    if extra:
        parts.append(extra)
    return " | ".join(parts)


@torch.no_grad()
def training_sample_grid(model, images, path: str | Path, cfg, step: int, n: int = 8) -> Path:
    """Originals, reconstructions, and transfers with the style of the next image in the row."""
    device = next(model.parameters()).device
    x = images.batch(torch.arange(min(n, len(images)))).to(device).float()
    rec = model.reconstruct(x)
    swapped = model.transfer(x, x.roll(1, dims=0))
    return save_grid(path, [x, rec, swapped], row_labels=["input", "reconstruction", "style of left"],
                     caption=run_caption(cfg, model.vgg_source_label, f"step {step}"))
