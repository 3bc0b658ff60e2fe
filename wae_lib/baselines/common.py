"""What the baselines share: the VGG16 encoder up to a layer and the decoder mirroring it (trained for AdaIN and
WCT), the input check of ``transfer``, reading a decoder checkpoint, and the per-image Gram distance the comparison
reports (the methods and their common interface: wae_lib.baselines)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import STYLE_LAYERS_DEFAULT
from ..model.losses import gram_matrix
from ..model.pretrained import (
    WEIGHTS_DIR,  # the package's weights folder: one home, beside the shipped models
)
from ..model.vgg import VGG16_LAYERS, VGG16Features
from ..utils import UserError, load_weights

STYLE_LAYERS = STYLE_LAYERS_DEFAULT  # relu1_1, relu2_1, relu3_1: our model's Gram layers
WCT_LEVELS = ("relu3_1", "relu2_1", "relu1_1")  # the decoders' layers: Li et al.'s coarse-to-fine order, truncated at relu3_1


# --------------------------------------------------------------------------------------------------
# the shipped decoders' files (written by wae_lib.baselines.shipped)
# --------------------------------------------------------------------------------------------------
METHOD_NAMES = {"adain": "AdaIN (Huang & Belongie 2017)", "wct": "WCT (Li et al. 2017)"}


def shipped_baseline_file(method: str, weights_dir: Path | None = None) -> Path:
    """The shipped decoders of ``method``: ``<weights_dir>/baseline-<method>.pt`` (default: the package's)."""
    if method not in METHOD_NAMES:
        raise BaselineWeightsError(f"no shipped decoders for {method!r}; expected one of {sorted(METHOD_NAMES)}")
    return (weights_dir or WEIGHTS_DIR) / f"baseline-{method}.pt"


def resolve_weights(method: str, weights: str | Path) -> Path:
    """``"shipped"``: the packaged file of ``method`` (a clear error when the package has none); else the path."""
    if str(weights) != "shipped":
        return Path(weights)
    path = shipped_baseline_file(method)
    if not path.is_file():
        raise BaselineWeightsError(f"the package holds no shipped {method} decoders ({path}); train them with "
                                   f"`make baselines BASELINES=train` (or python -m wae_lib baselines) and give "
                                   f"their run folder")
    return path


# --------------------------------------------------------------------------------------------------
# shared pieces: encoder slices and the mirrored decoder
# --------------------------------------------------------------------------------------------------
def encode(vgg: VGG16Features, x: torch.Tensor, layer: str) -> torch.Tensor:
    """VGG16 activations at ``layer`` only, running ``vgg`` no further than that layer (WCT's relu1_1 level
    would otherwise pay for relu3_1)."""
    last = VGG16_LAYERS[layer]
    if last >= len(vgg.features):
        raise ValueError(f"this VGG16Features stops before {layer}; build it with layers including {layer!r}")
    return vgg.features[: last + 1]((x - vgg.mean) / vgg.std)


# Mirror of VGG16 from relu3_1 down to RGB, as Huang & Belongie's decoder (pytorch-AdaIN net.py) from the same
# depth and Li et al.'s per-level decoders: (conv in, conv out, nearest 2x upsample after it). Pooling is
# undone by upsampling + conv instead of a transposed conv, which avoids checkerboard artefacts.
_MIRROR = (("relu3_1", 256, 128, True), ("relu2_2", 128, 128, False), ("relu2_1", 128, 64, True),
           ("relu1_2", 64, 64, False), ("relu1_1", 64, 3, False))


class FeatureScale(nn.Module):
    """Multiplies the decoder's input by a constant, a buffer set once before training from the first batch
    (wae_lib.baselines.train: 1 / the features' standard deviation) and saved with the decoder.

    Not in Huang & Belongie or Li et al.: the HED stand-in works on Caffe's 0-255 scale (activation std 40-90
    at relu1_1..relu3_1 on faces), so an untrained decoder's output was far off [0, 1] and Adam's first
    steps went to rescaling weights: 30 steps left WCT's relu1_1 reconstruction at pixel MSE 42, 0.05 with
    this scale."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def vgg_decoder(layer: str, width: float = 1.0) -> nn.Sequential:
    """Decoder from VGG16 features at ``layer`` (relu1_1, relu2_1 or relu3_1) to an RGB image.

    A fixed input scale (FeatureScale), then reflection padding, 3x3 convs, ReLU after every conv but the last, nearest upsampling (Huang & Belongie
    2017). ``width`` scales the hidden channels (1.0 = theirs); the output is not squashed, as theirs, and
    ``transfer`` clamps it to [0, 1].
    """
    if layer not in WCT_LEVELS:
        raise ValueError(f"vgg_decoder: layer {layer!r} is not one of {WCT_LEVELS}")
    rows = _MIRROR[[m[0] for m in _MIRROR].index(layer):]
    mods: list[nn.Module] = [FeatureScale()]
    for i, (_, c_in, c_out, up) in enumerate(rows):
        c_in = c_in if i == 0 else max(1, round(c_in * width))  # the first conv takes VGG's channels
        c_out = max(1, round(c_out * width))
        last = i == len(rows) - 1
        mods += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, 3 if last else c_out, 3)]
        if not last:
            mods.append(nn.ReLU())
        if up:
            mods.append(nn.Upsample(scale_factor=2, mode="nearest"))
    return nn.Sequential(*mods)


def check_pairs(content: torch.Tensor, style: torch.Tensor) -> None:
    for name, t in (("content", content), ("style", style)):
        if t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(f"{name} must be N x 3 x H x W RGB in [0, 1], got shape {tuple(t.shape)}")
    if len(style) not in (1, len(content)):
        raise ValueError(f"{len(content)} content images but {len(style)} style images (expected 1 or as many)")


# --------------------------------------------------------------------------------------------------
# decoder checkpoints, and the comparison's style distance
# --------------------------------------------------------------------------------------------------
class BaselineWeightsError(UserError, ValueError):
    """A decoder checkpoint is missing, unreadable or belongs to another method or VGG16 source."""


def read_baseline_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise BaselineWeightsError(f"baseline weights {path} do not exist; train them with "
                                   f"`python -m wae_lib baselines --method adain|wct --out DIR`")
    ckpt = load_weights(path, BaselineWeightsError, "baseline weights")
    if not isinstance(ckpt, dict) or not {"method", "vgg_source", "decoders", "config"} <= set(ckpt):
        raise BaselineWeightsError(f"{path} is not a baseline decoder checkpoint (wae_lib.baselines.train)")
    return ckpt


def gram_distance(vgg: VGG16Features, x: torch.Tensor, y: torch.Tensor,
                  layers: Sequence[str] = STYLE_LAYERS) -> torch.Tensor:
    """Per-image style distance: mean over ``layers`` of the MSE between Gram matrices (losses.gram_mse's
    measure, per image); ``y`` may hold 1 image."""
    with torch.no_grad():
        fx, fy = vgg(x), vgg(y)
        return torch.stack([F.mse_loss(gram_matrix(fx[n]), gram_matrix(fy[n]).expand(len(x), -1, -1),
                                       reduction="none").mean((1, 2)) for n in layers]).mean(0)
