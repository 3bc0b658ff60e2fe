"""Comparison baselines (issue 9) at our 64x64 resolution, on the same frozen VGG16 as our model.

Every method is an object with ``transfer(content, style, alpha=1.0)``: content N x 3 x 64 x 64 RGB in
[0, 1], style 1 image (applied to all) or N (pairwise); the output is N x 3 x 64 x 64 in [0, 1].

- ``reinhard``: Reinhard, Ashikhmin, Gooch & Shirley (2001), "Color transfer between images" - the floor
  (wae_lib.eval.color.reinhard_transfer; alpha blends with the content in RGB).
- ``gatys``: Gatys, Ecker & Bethge (2016), "Image style transfer using convolutional neural networks" -
  L-BFGS optimisation of the image, a fixed iteration budget (alpha scales the style weight).
- ``adain``: Huang & Belongie (2017), "Arbitrary style transfer in real-time with adaptive instance
  normalization" - VGG encoder to relu3_1, AdaIN, a trained decoder (alpha interpolates the features).
- ``wct``: Li, Fang, Yang, Wang, Lu & Yang (2017), "Universal style transfer via feature transforms" -
  whitening and colouring at relu3_1 -> relu2_1 -> relu1_1 (coarse to fine), one trained decoder per level
  (alpha interpolates the features at every level, as Li et al.).

Layers at 64 px: relu3_1 is 16x16, relu4_1 would be 8x8 (64 positions for 512 channels: a rank-64 Gram/
covariance estimate and 8x8 AdaIN statistics), and the HED stand-in is documented close to ImageNet VGG16
up to relu3 only (wae_lib.model.vgg). So every method stops at relu3_1, and the style layers are our model's (relu1_1..relu3_1,
config.STYLE_LAYERS_DEFAULT): the style distance the comparison reports is the one each method optimises.
Decoders are trained by wae_lib.baselines.train on our training set.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import STYLE_LAYERS_DEFAULT
from ..eval.color import reinhard_transfer
from ..model.losses import gram_matrix
from ..model.vgg import VGG16_LAYERS, VGG16Features
from ..utils import load_weights, non_finite

STYLE_LAYERS = STYLE_LAYERS_DEFAULT  # relu1_1, relu2_1, relu3_1: our model's Gram layers
ADAIN_LAYER = "relu3_1"  # Huang & Belongie use relu4_1 at 256-512 px; at 64 px it is 8x8 (see module doc)
WCT_LEVELS = ("relu3_1", "relu2_1", "relu1_1")  # Li et al.'s coarse-to-fine order, truncated at relu3_1
WCT_EPS = 1e-5  # covariance regulariser, relative to the mean channel variance (see regularised_covariance)
GATYS_CONTENT_LAYER = "relu3_1"  # their conv4_2 sits at 1/8 resolution; at 64 px relu3_1 (16x16) is the
#   closest, while relu2_1 (32x32) pins the image almost pixel by pixel and leaves little room for texture
GATYS_STEPS = 100  # L-BFGS iterations = VGG forward/backward passes (no line search: one evaluation each)
GATYS_STYLE_WEIGHT = 1e2  # on relative errors (gatys_loss); measured on faces x paintings, 100 it.:
#   10 -> Gram distance /100, 1e2 -> /300 (within 1.5x of 1e4's), content error half that of 1e4
ADAIN_EPS = 1e-5  # pytorch-AdaIN's calc_mean_std


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
# AdaIN (Huang & Belongie 2017)
# --------------------------------------------------------------------------------------------------
def mean_std(feat: torch.Tensor, eps: float = ADAIN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean and standard deviation (N x C x 1 x 1) over the spatial positions;
    the unbiased variance plus ``eps`` under the square root, as pytorch-AdaIN's calc_mean_std."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    return flat.mean(2).view(n, c, 1, 1), (flat.var(2) + eps).sqrt().view(n, c, 1, 1)


def adain(content_feat: torch.Tensor, style_feat: torch.Tensor, eps: float = ADAIN_EPS) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y) per channel (Huang & Belongie 2017, eq. 8).

    N x C x H x W features; ``style_feat`` may hold 1 image (broadcast to all) or N."""
    c_mean, c_std = mean_std(content_feat, eps)
    s_mean, s_std = mean_std(style_feat, eps)
    return (content_feat - c_mean) / c_std * s_std + s_mean


class AdaIN(nn.Module):
    """AdaIN style transfer: VGG16 to relu3_1 -> AdaIN -> decoder (Huang & Belongie 2017).

    ``alpha`` interpolates the decoder's input between the content features and the AdaIN target
    (their eq. 14): 0 gives the decoder's reconstruction of the content, 1 the full transfer.
    """

    method = "adain"

    def __init__(self, vgg: VGG16Features | None = None, vgg_source: str = "hed", width: float = 1.0):
        super().__init__()
        self.vgg = vgg if vgg is not None else VGG16Features(vgg_source, STYLE_LAYERS)
        self.width = width
        # a ModuleDict like WCT's, so checkpoints and training treat both alike
        self.decoders = nn.ModuleDict({ADAIN_LAYER: vgg_decoder(ADAIN_LAYER, width)})

    @property
    def vgg_source(self) -> str:
        return self.vgg.source.name

    def decode(self, feat: torch.Tensor) -> torch.Tensor:
        return self.decoders[ADAIN_LAYER](feat)

    @torch.no_grad()
    def transfer(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        check_pairs(content, style)
        fc, fs = encode(self.vgg, content, ADAIN_LAYER), encode(self.vgg, style, ADAIN_LAYER)
        return self.decode(torch.lerp(fc, adain(fc, fs), alpha)).clamp(0, 1)

    @torch.no_grad()
    def reconstruct(self, content: torch.Tensor) -> torch.Tensor:
        """The content path alone (what alpha = 0 gives): decoder(encoder(content))."""
        return self.decode(encode(self.vgg, content, ADAIN_LAYER)).clamp(0, 1)


# --------------------------------------------------------------------------------------------------
# WCT (Li et al. 2017)
# --------------------------------------------------------------------------------------------------
def regularised_covariance(feat: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean C x 1, covariance C x C + eps * s * I) of C x (H*W) features, in float64; s is the mean channel
    variance (trace / C), so ``eps`` does not depend on the VGG source's activation scale (the HED stand-in's
    follow Caffe's 0-255 input, torchvision's a normalised one). Li et al.'s code adds I to the covariance for the same reason: at 64 px a layer
    has as few positions as channels (relu3_1: 256 x 256) and dead ReLU channels, so the plain covariance is
    singular and its inverse square root undefined."""
    if feat.dim() != 2:
        raise ValueError(f"expected C x (H*W) features of one image, got shape {tuple(feat.shape)}")
    f = feat.double()
    mean = f.mean(1, keepdim=True)
    f = f - mean
    cov = f @ f.T / max(1, f.shape[1] - 1)
    scale = (cov.diagonal().mean() if cov.numel() else cov.new_tensor(0.0)).clamp_min(1e-12)
    return mean, cov + eps * scale * torch.eye(len(cov), dtype=cov.dtype, device=cov.device)


def _eig_power(cov: torch.Tensor, power: float, floor: float) -> torch.Tensor:
    """cov^power of a symmetric PSD matrix via torch.linalg.eigh in float64 (no SVD: SVD on CPU is the slow
    path other WCT ports report, and its gradients/outputs can go NaN on repeated singular values);
    eigenvalues clamped to ``floor`` > 0 so negative round-off never reaches a fractional power."""
    vals, vecs = torch.linalg.eigh(cov)
    return (vecs * vals.clamp_min(floor).pow(power)) @ vecs.T


def whiten(feat: torch.Tensor, eps: float = WCT_EPS) -> torch.Tensor:
    """Whitening transform of C x (H*W) features: E D^-1/2 E^T (f - mean), identity covariance on the span
    of the features (Li et al. 2017, eq. 2). Returns float64 (the caller colours it in float64)."""
    mean, cov = regularised_covariance(feat, eps)
    floor = eps * cov.diagonal().mean().item() + 1e-30
    return _eig_power(cov, -0.5, floor) @ (feat.double() - mean)


def color(whitened: torch.Tensor, style_feat: torch.Tensor, eps: float = WCT_EPS) -> torch.Tensor:
    """Colouring transform: E_s D_s^1/2 E_s^T whitened + mean_s, giving the style's covariance (plus the
    regulariser) and mean (Li et al. 2017, eq. 3). C x (H*W) in, float64 C x (H*W) out."""
    mean, cov = regularised_covariance(style_feat, eps)
    floor = eps * cov.diagonal().mean().item() + 1e-30
    return _eig_power(cov, 0.5, floor) @ whitened.double() + mean


def wct(content_feat: torch.Tensor, style_feat: torch.Tensor, alpha: float = 1.0,
        eps: float = WCT_EPS) -> torch.Tensor:
    """alpha * colour(whiten(content), style) + (1 - alpha) * content (Li et al. 2017, eq. 4).

    Per image on C x (H*W) features; N x C x H x W features are transformed image by image (a style batch of
    1 is used for every content image). The result has the content's dtype."""
    if content_feat.dim() == 4:
        if len(style_feat) not in (1, len(content_feat)):
            raise ValueError(f"wct: {len(content_feat)} content but {len(style_feat)} style feature maps")
        n, c, h, w = content_feat.shape
        out = [wct(content_feat[i].reshape(c, h * w), style_feat[i % len(style_feat)].reshape(c, -1), alpha, eps)
               for i in range(n)]
        return torch.stack(out).view(n, c, h, w)
    cs = color(whiten(content_feat, eps), style_feat, eps).to(content_feat.dtype)
    return torch.lerp(content_feat, cs, alpha)


class WCT(nn.Module):
    """Multi-level universal style transfer (Li et al. 2017): at relu3_1, then relu2_1, then relu1_1, the
    current image is encoded, its features whitened and coloured with the style's, and decoded by that
    level's decoder; the result feeds the next, finer level. The style is encoded once at all levels."""

    method = "wct"

    def __init__(self, vgg: VGG16Features | None = None, vgg_source: str = "hed", width: float = 1.0,
                 levels: Sequence[str] = WCT_LEVELS, eps: float = WCT_EPS):
        super().__init__()
        self.vgg = vgg if vgg is not None else VGG16Features(vgg_source, STYLE_LAYERS)
        self.width, self.levels, self.eps = width, tuple(levels), eps
        self.decoders = nn.ModuleDict({layer: vgg_decoder(layer, width) for layer in self.levels})

    @property
    def vgg_source(self) -> str:
        return self.vgg.source.name

    @torch.no_grad()
    def transfer(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        check_pairs(content, style)
        style_feats = self.vgg(style)
        x = content
        for layer in self.levels:
            fc = encode(self.vgg, x, layer)
            # clamped between levels: the next VGG pass expects images in [0, 1]
            x = self.decoders[layer](wct(fc, style_feats[layer], alpha, self.eps)).clamp(0, 1)
        return x

    @torch.no_grad()
    def reconstruct(self, content: torch.Tensor) -> torch.Tensor:
        """The content path alone (what alpha = 0 gives): every level's decoder(encoder(x)) in turn."""
        x = content
        for layer in self.levels:
            x = self.decoders[layer](encode(self.vgg, x, layer)).clamp(0, 1)
        return x


# --------------------------------------------------------------------------------------------------
# Gatys et al. (2016): optimisation of the image
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Reinhard et al. (2001): the floor
# --------------------------------------------------------------------------------------------------
class Reinhard(nn.Module):
    """wae_lib.eval.color.reinhard_transfer (Lab mean/std matching) behind the common interface; ``alpha`` blends
    the result with the content image in RGB (0: the content, 1: full colour transfer). Runs on the CPU
    (scikit-image's Lab conversion); the result is moved back to the content's device."""

    method = "reinhard"

    def transfer(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        check_pairs(content, style)
        out = reinhard_transfer(content.detach().cpu(), style.detach().cpu()).to(content.device, content.dtype)
        return torch.lerp(content, out, alpha)


# --------------------------------------------------------------------------------------------------
# registry and weights
# --------------------------------------------------------------------------------------------------
BASELINES: dict[str, str] = {
    "reinhard": "Reinhard (colour floor): Lab mean/std transfer - Reinhard, Ashikhmin, Gooch & Shirley 2001",
    "gatys": f"Gatys (L-BFGS, {GATYS_STEPS} it.): image optimisation - Gatys, Ecker & Bethge 2016",
    "adain": "AdaIN (relu3_1 + decoder): adaptive instance normalisation - Huang & Belongie 2017",
    "wct": "WCT (relu3_1, 2_1, 1_1 + decoders): whitening and colouring - Li et al. 2017",
}
_DECODER_METHODS = {"adain": AdaIN, "wct": WCT}


class BaselineWeightsError(ValueError):
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


def load_baseline_weights(model: AdaIN | WCT, path: str | Path) -> dict[str, Any]:
    """Load trained decoders into ``model``; refuses a checkpoint of another method or VGG16 source (its
    decoders invert other features). Returns the checkpoint's metadata (step, config, ...)."""
    ckpt = read_baseline_checkpoint(path)
    if ckpt["method"] != model.method or ckpt["vgg_source"] != model.vgg_source:
        raise BaselineWeightsError(
            f"{path} holds {ckpt['method']} decoders for VGG source {ckpt['vgg_source']!r}, not {model.method} on "
            f"{model.vgg_source!r}: use build_baseline({ckpt['method']!r}, vgg_source={ckpt['vgg_source']!r}) "
            f"or train matching decoders")
    width = ckpt["config"].get("width", 1.0)
    if width != model.width:
        raise BaselineWeightsError(f"{path} holds decoders of width {width}, this model's are {model.width}: "
                                   f"use build_baseline(..., weights=path), which reads the width")
    bad = non_finite(ckpt["decoders"])
    if bad:
        raise BaselineWeightsError(f"{path}: decoder weights {bad[:3]} hold NaN or inf; retrain them")
    try:
        model.decoders.load_state_dict(ckpt["decoders"])
    except RuntimeError as exc:  # torch lists every mismatched tensor over many lines: name the first
        first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc)[:200])
        raise BaselineWeightsError(f"{path}: its {ckpt['method']} decoders do not fit width {width} ({first[:200]})"
                                   ) from None
    if not ckpt.get("finished", True):
        steps = ckpt["config"].get("steps", "?")
        print(f"[wae_lib] warning: {path}: the {ckpt['method']} decoders are unfinished (step {ckpt['step']} of "
              f"{steps}); used as they are (resume their training to finish them)", file=sys.stderr)
    model.checkpoint_info = {k: v for k, v in ckpt.items() if k not in ("decoders", "optimizer", "rng")}
    return model.checkpoint_info


def build_baseline(name: str, vgg_source: str = "hed", weights: str | Path | None = None,
                   device: str | torch.device = "cpu", vgg: VGG16Features | None = None, **kwargs: Any) -> nn.Module:
    """The baseline ``name`` (a key of BASELINES) in eval mode on ``device``, ready for ``.transfer``.

    ``weights``: a decoder checkpoint (file or run folder) for adain/wct, or ``"shipped"`` for the decoders
    packaged in ``wae_lib/weights`` (wae_lib.baselines.shipped); its width is read from it. Without
    it the decoders are untrained (a warning says so: fine for timing, meaningless for quality). ``vgg``
    shares an already built VGG16Features (it must reach relu3_1); ``kwargs`` go to the class (e.g. Gatys'
    ``steps``).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {list(BASELINES)}")
    if name == "reinhard":
        return Reinhard().to(device).eval()
    vgg = vgg if vgg is not None else VGG16Features(vgg_source, STYLE_LAYERS)
    if name == "gatys":
        return Gatys(vgg, **kwargs).to(device).eval()
    if weights is None:
        warnings.warn(f"{name}: no decoder weights given, the decoders are UNTRAINED (outputs are meaningless; "
                      f"fine for timing). Train them with `python -m wae_lib baselines --method {name}`.",
                      UserWarning, stacklevel=2)
        model = _DECODER_METHODS[name](vgg, **kwargs)
    else:
        from .shipped import resolve_weights

        weights = resolve_weights(name, weights)
        ckpt = read_baseline_checkpoint(weights)
        model = _DECODER_METHODS[name](vgg, width=ckpt["config"].get("width", 1.0), **kwargs)
        load_baseline_weights(model, weights)
    return model.to(device).eval()


def gram_distance(vgg: VGG16Features, x: torch.Tensor, y: torch.Tensor,
                  layers: Sequence[str] = STYLE_LAYERS) -> torch.Tensor:
    """Per-image style distance: mean over ``layers`` of the MSE between Gram matrices (losses.gram_mse's
    measure, per image); ``y`` may hold 1 image."""
    with torch.no_grad():
        fx, fy = vgg(x), vgg(y)
        return torch.stack([F.mse_loss(gram_matrix(fx[n]), gram_matrix(fy[n]).expand(len(x), -1, -1),
                                       reduction="none").mean((1, 2)) for n in layers]).mean(0)
