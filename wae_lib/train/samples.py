"""The training sample grid a run writes every ``sample_every`` steps (samples/step_*.png): originals,
reconstructions and transfers with the style of the next image in the row.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..grids import run_caption, save_grid


@torch.no_grad()
def training_sample_grid(model, images, path: str | Path, cfg, step: int, n: int = 8) -> Path:
    """Originals, reconstructions, and transfers with the style of the next image in the row."""
    x = images.batch(torch.arange(min(n, len(images))))  # already float [0, 1] on the training device
    rec = model.reconstruct(x)
    swapped = model.transfer(x, x.roll(1, dims=0))
    return save_grid(path, [x, rec, swapped], row_labels=["input", "reconstruction", "style of left"],
                     caption=run_caption(cfg, model.vgg_source.label, f"step {step}"))
