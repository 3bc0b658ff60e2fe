"""The texture critic (issue 33 item 2, ``Config.w_texture``): a patch co-occurrence discriminator after the
Swapping Autoencoder (Park et al., NeurIPS 2020, §3.2 and `taesungp/swapping-autoencoder-pytorch`,
``models/networks/patch_discriminator.py``). It sees one patch and a few reference patches and says whether the
patch comes from the same image as the references. Shown a patch of a swapped output beside patches of the painting
whose style latent made it, it asks the decoder for the painting's local texture (strokes, grain), which the Gram
terms average away over the whole image.

Ours is the same idea at this study's scale: patches of a quarter of the 64 px image's side (SwAE: 1/8 to 1/4 of
256 px, rescaled), a small conv encoder shared by the patch and its references, the references averaged, and an MLP
on the pair; the non-saturating GAN loss of ``model.losses`` (the latent critic's), without SwAE's R1 penalty. Not
part of the model: the trainer owns it, and no shipped file holds it.
"""

from __future__ import annotations

import torch
from torch import nn


def random_patches(images: torch.Tensor, count: int, size: int, generator: torch.Generator, first: int = 0,
                   total: int = 0) -> torch.Tensor:
    """``count`` random ``size`` x ``size`` crops of each image: N x count x C x size x size. Positions are drawn on
    the host from ``generator`` for the ``total`` images of the global batch (0: these N) and rows ``first`` to
    ``first + N`` kept: every process of a DDP run draws the same numbers and one process draws what they do, so
    the shared generator stays in step (as the trainer's next_batch), and a resumed run draws the same ones."""
    n, c, h, w = images.shape
    if size > min(h, w):
        raise ValueError(f"texture patch of {size} px is larger than the {h} x {w} images")
    total = total or n
    top = torch.randint(0, h - size + 1, (total, count), generator=generator)[first:first + n].tolist()
    left = torch.randint(0, w - size + 1, (total, count), generator=generator)[first:first + n].tolist()
    crops = [images[i, :, t:t + size, s:s + size] for i in range(n) for t, s in zip(top[i], left[i])]
    return torch.stack(crops).view(n, count, c, size, size)


class PatchCritic(nn.Module):
    """logit(patch shares the references' texture): N x 3 x P x P patches, N x R x 3 x P x P references -> N."""

    def __init__(self, width: int = 32):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(  # P -> P/8, then pooled: one texture vector per patch
            nn.Conv2d(3, width, 3, 1, 1), act,
            nn.Conv2d(width, width * 2, 4, 2, 1), act,
            nn.Conv2d(width * 2, width * 4, 4, 2, 1), act,
            nn.Conv2d(width * 4, width * 8, 4, 2, 1), act,
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(width * 16, width * 8), act, nn.Linear(width * 8, 1))

    def forward(self, patch: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        n, r = refs.shape[:2]
        f = self.encoder(patch * 2 - 1)
        g = self.encoder(refs.flatten(0, 1) * 2 - 1).view(n, r, -1).mean(1)
        return self.head(torch.cat([f, g], 1)).squeeze(1)


def texture_patches(fake: torch.Tensor, painting: torch.Tensor, size: int, refs: int, generator: torch.Generator,
                    first: int = 0, total: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One patch of each swapped output (``fake``), one of each painting it was given (the real patch), and
    ``refs`` reference patches of that painting: the three inputs of a critic step (``first``, ``total``: this
    process's rows of the global batch, as in :func:`random_patches`)."""
    fake_patch = random_patches(fake, 1, size, generator, first, total)[:, 0]
    real = random_patches(painting, refs + 1, size, generator, first, total)
    return fake_patch, real[:, 0], real[:, 1:]
