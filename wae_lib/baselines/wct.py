"""WCT: Li, Fang, Yang, Wang, Lu & Yang (2017), "Universal style transfer via feature transforms" - whitening and
colouring at relu3_1 -> relu2_1 -> relu1_1 (coarse to fine), one trained decoder per level
(wae_lib.baselines.train); alpha interpolates the features at every level, as Li et al.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..model.vgg import VGG16Features
from .common import STYLE_LAYERS, WCT_LEVELS, check_pairs, encode, vgg_decoder

WCT_EPS = 1e-5  # covariance regulariser, relative to the mean channel variance (see regularised_covariance)


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
