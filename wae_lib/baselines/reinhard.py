"""Reinhard: Reinhard, Ashikhmin, Gooch & Shirley (2001), "Color transfer between images" - the floor
(wae_lib.eval.color.reinhard_transfer, Lab mean/std matching; alpha blends with the content in RGB).
"""

from __future__ import annotations

import torch
from torch import nn

from ..eval.color import reinhard_transfer
from .common import check_pairs


class Reinhard(nn.Module):
    """wae_lib.eval.color.reinhard_transfer (Lab mean/std matching) behind the common interface; ``alpha`` blends
    the result with the content image in RGB (0: the content, 1: full colour transfer). Runs on the CPU
    (scikit-image's Lab conversion); the result is moved back to the content's device."""

    method = "reinhard"

    def transfer(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        check_pairs(content, style)
        out = reinhard_transfer(content.detach().cpu(), style.detach().cpu()).to(content.device, content.dtype)
        return torch.lerp(content, out, alpha)
