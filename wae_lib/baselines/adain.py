"""AdaIN: Huang & Belongie (2017), "Arbitrary style transfer in real-time with adaptive instance normalization" -
VGG encoder to relu3_1 (their relu4_1 is 8x8 at 64 px: wae_lib.baselines), adaptive instance normalisation, a
trained decoder (wae_lib.baselines.train); alpha interpolates the features.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.vgg import VGG16Features
from .common import STYLE_LAYERS, check_pairs, encode, vgg_decoder

ADAIN_LAYER = "relu3_1"  # Huang & Belongie use relu4_1 at 256-512 px; at 64 px it is 8x8 (see wae_lib.baselines)


ADAIN_EPS = 1e-5  # pytorch-AdaIN's calc_mean_std


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
