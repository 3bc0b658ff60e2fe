"""The interactive explorer (notebooks/00_explore.ipynb): one transfer and both latents on screen.

The notebook holds the widgets; this module computes what they show, so the same view is tested without a
browser and rendered headlessly under papermill.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..data.decode import Rejected, model_input
from ..eval import images as E

SIZE = 64  # the models' input and output side


def image_from_bytes(data: bytes, name: str = "upload") -> torch.Tensor:
    """An uploaded file's bytes -> 3 x 64 x 64 in [0, 1]: wae_lib.data.decode.model_input, the CLI's decoder (16-bit,
    float and alpha images, EXIF orientation, the pixel cap)."""
    try:
        crop = model_input(bytes(data), SIZE)
    except Rejected as exc:
        raise ValueError(f"{name}: cannot be read: {exc.reason.replace('_', ' ')}"
                         f"{f' ({exc.detail})' if exc.detail else ''}") from None
    return torch.from_numpy(crop).permute(2, 0, 1).float() / 255


@dataclass
class View:
    """Everything one explorer frame shows."""

    content: torch.Tensor  # 3 x 64 x 64
    style_a: torch.Tensor
    style_b: torch.Tensor
    output: torch.Tensor
    z_content: np.ndarray  # the content latent (mean) of the content image: a vector, or C x H x W for a map model
    z_style: np.ndarray  # the style latent decoded: own -> mix(A, B) by strength
    z_style_a: np.ndarray
    z_style_b: np.ndarray
    z_style_own: np.ndarray
    strength: float
    mix: float


@torch.no_grad()
def transfer_view(model, content: torch.Tensor, style_a: torch.Tensor, style_b: torch.Tensor,
                  strength: float = 1.0, mix: float = 0.0) -> View:
    """Decode ``content`` with the style latent lerp(own, lerp(A, B, mix), strength).

    ``mix`` 0 is style A alone, 1 style B alone; ``strength`` 0 is the content image's own style latent, 1 the
    mixed style's (the CLI's --alpha and --style-mix).
    """
    dev = next(model.parameters()).device
    batch = torch.stack([content, style_a, style_b]).to(dev)
    z_c = model.encode_content(batch[:1])[0]
    z_own, z_a, z_b = model.encode_style(batch)[0].split(1)
    z_s = model.at_strength(z_own, model.mix_styles(torch.cat([z_a, z_b]), (1 - float(mix), float(mix))), strength)
    out = model.decode(z_c, z_s).float().clamp(0, 1)[0].cpu()
    as_np = lambda z: z[0].float().cpu().numpy()  # noqa: E731
    return View(content, style_a, style_b, out, as_np(z_c), as_np(z_s), as_np(z_a), as_np(z_b), as_np(z_own),
                float(strength), float(mix))


def _show(ax, image: torch.Tensor, title: str) -> None:
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def plot_view(view: View, caption: str = "") -> plt.Figure:
    """Top: content, style A, style B, the transfer. Bottom: the content latent, and the style latents."""
    fig = plt.figure(figsize=(11, 5.5))
    grid = fig.add_gridspec(2, 4, height_ratios=[1.2, 1])
    for k, (img, title) in enumerate([(view.content, "content"), (view.style_a, "style A"),
                                      (view.style_b, "style B"),
                                      (view.output, f"transfer (strength {view.strength:.2f}, mix {view.mix:.2f})")]):
        _show(fig.add_subplot(grid[0, k]), img, title)
    ax = fig.add_subplot(grid[1, :2])
    if view.z_content.ndim == 3:  # a spatial content map (Config.content_map): its channels side by side
        c, h, w = view.z_content.shape
        tiles = np.concatenate([np.pad(ch, ((0, 0), (0, 1)), constant_values=np.nan) for ch in view.z_content], 1)
        lim = float(np.nanpercentile(np.abs(tiles), 99)) or 1.0  # a few extreme positions would wash out the rest
        ax.imshow(tiles, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.axis("off")
        ax.set_title(f"content latent: a {h} x {w} map of {c} channels (each channel a tile; red +, blue -)",
                     fontsize=9)
    else:
        ax.bar(np.arange(len(view.z_content)), view.z_content, width=1.0, color="tab:blue")
        ax.set_title(f"content latent ({len(view.z_content)} dims)", fontsize=9)
    ax = fig.add_subplot(grid[1, 2:])
    idx = np.arange(len(view.z_style))
    for z, label, style in ((view.z_style_own, "content's own", ":"), (view.z_style_a, "style A", "--"),
                            (view.z_style_b, "style B", "-."), (view.z_style, "decoded", "-")):
        ax.plot(idx, z, style, lw=1, label=label)
    ax.set_title(f"style latent ({len(view.z_style)} dims)", fontsize=9)
    ax.legend(fontsize=7, ncol=4, loc="upper right")
    if caption:
        fig.suptitle(caption, fontsize=8)
    fig.tight_layout()
    return fig


def image_choices(data_root: str | Path, name: str, limit: int) -> tuple[torch.Tensor, list[str]]:
    """Up to ``limit`` images of a prepared set and their labels (style images by artwork name)."""
    if name == "style_eval":
        return E.figure_styles(data_root, limit)
    images = E.figure_images(data_root, name, limit)
    return images, [f"{name} {i}" for i in range(len(images))]


def figure_png(fig: plt.Figure, dpi: int = 100) -> bytes:
    """PNG bytes of a figure, closed afterwards: the live frame is an ipywidgets.Image (an Output widget showing
    a matplotlib figure hangs papermill's headless run at exit)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
