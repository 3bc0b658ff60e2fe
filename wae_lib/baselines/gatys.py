"""Gatys: Gatys, Ecker & Bethge (2016), "Image style transfer using convolutional neural networks" - L-BFGS
optimisation of the image for a fixed iteration budget (alpha scales the style weight).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..model.losses import gram_matrix
from ..model.vgg import VGG16Features
from .common import STYLE_LAYERS, check_pairs

GATYS_CONTENT_LAYER = "relu3_1"  # their conv4_2 sits at 1/8 resolution; at 64 px relu3_1 (16x16) is the
#   closest, while relu2_1 (32x32) pins the image almost pixel by pixel and leaves little room for texture
GATYS_STEPS = 100  # L-BFGS iterations = VGG forward/backward passes (no line search: one evaluation each)
GATYS_STYLE_WEIGHT = 1e2  # on relative errors (gatys_loss); measured on faces x paintings, 100 it.:
#   10 -> Gram distance /100, 1e2 -> /300 (within 1.5x of 1e4's), content error half that of 1e4


def _relative_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image squared error divided by the target's mean square: scale-free across layers and VGG sources."""
    dims = tuple(range(1, x.dim()))
    return ((x - target) ** 2).mean(dims) / (target**2).mean(dims).clamp_min(1e-12)


def gatys_loss(feats: dict[str, torch.Tensor], content_target: torch.Tensor, style_grams: dict[str, torch.Tensor],
               content_layer: str, style_layers: Sequence[str], style_weight: float) -> torch.Tensor:
    """Gatys et al. (2016) eq. 7 summed over images: content error at ``content_layer`` + ``style_weight`` x
    the mean over ``style_layers`` of the Gram errors. Each error is relative to its target's magnitude
    instead of their 1/(4 N^2 M^2) factors, so one weight serves every layer and VGG source."""
    content = _relative_mse(feats[content_layer], content_target)
    style = torch.stack([_relative_mse(gram_matrix(feats[n]), style_grams[n]) for n in style_layers]).mean(0)
    return (content + style_weight * style).sum()


def gatys_transfer(vgg: VGG16Features, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0,
                   steps: int = GATYS_STEPS, content_layer: str = GATYS_CONTENT_LAYER,
                   style_layers: Sequence[str] = STYLE_LAYERS, style_weight: float = GATYS_STYLE_WEIGHT,
                   init: str = "content") -> torch.Tensor:
    """Gatys, Ecker & Bethge (2016): the image minimising content + style losses, by L-BFGS (their choice)
    for ``steps`` iterations (a fixed budget: torch.optim.LBFGS max_iter; without line search each costs one
    VGG forward/backward; it stops earlier only when the loss stops changing, e.g. alpha = 0).

    ``alpha`` scales the style weight (their alpha/beta ratio): 0 keeps the content image exactly (with
    ``init="content"`` the gradient is zero), 1 is the stated ``style_weight``, 2 twice as much style.
    ``init``: "content" (converges within a small budget; common in later work) or "noise" (their white
    noise). The batch is optimised jointly: the summed objective is separable per image, so the optimum is
    the same as one image at a time. Pixels are clamped to [0, 1] before every evaluation.
    """
    check_pairs(content, style)
    missing = [n for n in (content_layer, *style_layers) if n not in vgg.layers]
    if missing:
        raise ValueError(f"gatys_transfer: the VGG16Features lacks layer(s) {missing}; it has {vgg.layers}")
    if init not in ("content", "noise"):
        raise ValueError(f"gatys_transfer: init={init!r}, expected 'content' or 'noise'")
    with torch.no_grad():
        content_target = vgg(content)[content_layer]
        style_feats = vgg(style)
        style_grams = {n: gram_matrix(style_feats[n]).expand(len(content), -1, -1) for n in style_layers}
    # contiguous: a permuted or channels-last input would give a gradient L-BFGS cannot flatten with view()
    x0 = content.detach().clone(memory_format=torch.contiguous_format) if init == "content" else \
        torch.rand(content.shape, dtype=content.dtype, device=content.device)
    x = x0.requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=steps, history_size=50)

    def closure() -> torch.Tensor:
        with torch.no_grad():
            x.clamp_(0, 1)
        opt.zero_grad()
        loss = gatys_loss(vgg(x), content_target, style_grams, content_layer, style_layers, alpha * style_weight)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return x.detach().clamp(0, 1)


class Gatys(nn.Module):
    """gatys_transfer behind the common ``transfer`` interface, with its VGG16 and step budget."""

    method = "gatys"

    def __init__(self, vgg: VGG16Features | None = None, vgg_source: str = "hed", steps: int = GATYS_STEPS,
                 style_weight: float = GATYS_STYLE_WEIGHT, content_layer: str = GATYS_CONTENT_LAYER,
                 style_layers: Sequence[str] = STYLE_LAYERS, init: str = "content"):
        super().__init__()
        self.vgg = vgg if vgg is not None else VGG16Features(vgg_source, STYLE_LAYERS)
        self.steps, self.style_weight, self.init = steps, style_weight, init
        self.content_layer, self.style_layers = content_layer, tuple(style_layers)

    def transfer(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        return gatys_transfer(self.vgg, content, style, alpha, self.steps, self.content_layer, self.style_layers,
                              self.style_weight, self.init)
