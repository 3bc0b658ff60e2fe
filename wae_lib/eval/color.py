"""Colour: a style measure the models were not trained on, and the trivial colour-transfer floor (issue 5).

The models are trained and judged on VGG16 Gram matrices; a transfer can lower that distance without looking
like the style. Colour statistics in a perceptual colour space are an independent check:

* :func:`color_signature` / :func:`color_distance_matrix`: the sliced Wasserstein-2 distance between the
  CIELAB pixel distributions of two images (Rabin, Peyre, Delon & Bernot 2011, "Wasserstein barycenter and its
  application to texture mixing"): the pixels are projected on fixed directions of Lab space and the sorted
  projections compared. Bin-free (no histogram bin choice) and in Lab units, where a euclidean distance of
  about 2.3 is a just-noticeable difference (CIE76 Delta E).
* :func:`reinhard_transfer`: Reinhard, Ashikhmin, Gooch & Shirley (2001), "Color transfer between images":
  each Lab channel of the content image is shifted and scaled to the style image's mean and standard
  deviation. Any style-transfer model should beat this floor on Gram-based style measures; on colour alone
  it is hard to beat, which the reference row in the tables makes visible. (Reinhard et al. use the l-alpha-
  beta space of Ruderman et al.; CIELAB is the common modern stand-in.)
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

N_DIRECTIONS = 32  # projections of Lab space: the 3 axes + random unit vectors (seeded, the same for every image)
N_QUANTILES = 32  # points of each projected distribution compared (mid-quantiles)


def rgb_to_lab(images: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W RGB in [0, 1] -> N x H x W x 3 CIELAB (D65; L in [0, 100], a and b about [-110, 110])."""
    from skimage.color import rgb2lab

    arr = images.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy().astype(np.float64)
    return rgb2lab(arr, channel_axis=-1)


def lab_to_rgb(lab: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 CIELAB -> N x 3 x H x W RGB in [0, 1] (out-of-gamut colours clipped)."""
    from skimage.color import lab2rgb

    with warnings.catch_warnings():  # "Color data out of range": expected after shifting statistics; clipped
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(lab, channel_axis=-1)
    return torch.from_numpy(np.clip(rgb, 0, 1)).permute(0, 3, 1, 2).float().contiguous()


def reinhard_transfer(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Reinhard et al. (2001) colour transfer: content image i with the Lab channel means and standard
    deviations of style image i (``style`` may hold one image for all). N x 3 x H x W in [0, 1] -> same."""
    if len(style) not in (1, len(content)):
        raise ValueError(f"reinhard_transfer: {len(content)} content images but {len(style)} style images "
                         f"(expected 1 or as many)")
    c, s = rgb_to_lab(content), rgb_to_lab(style)
    c_mean, c_std = c.mean((1, 2), keepdims=True), c.std((1, 2), keepdims=True)
    s_mean, s_std = s.mean((1, 2), keepdims=True), s.std((1, 2), keepdims=True)
    return lab_to_rgb((c - c_mean) / np.maximum(c_std, eps) * s_std + s_mean)


def projection_directions(n: int = N_DIRECTIONS, seed: int = 0) -> np.ndarray:
    """n unit vectors of Lab space: the L, a, b axes first (so the per-channel distributions are compared
    exactly), then seeded random directions (joint colour structure)."""
    rng = np.random.default_rng(seed)
    extra = rng.normal(size=(max(0, n - 3), 3))
    dirs = np.concatenate([np.eye(3), extra / np.linalg.norm(extra, axis=1, keepdims=True)])
    return dirs[:n]


def color_signature(images: torch.Tensor, n_directions: int = N_DIRECTIONS, n_quantiles: int = N_QUANTILES,
                    seed: int = 0, chunk: int = 64) -> np.ndarray:
    """N x (n_directions * n_quantiles): the mid-quantiles of each image's Lab pixels projected on the
    directions. The euclidean distance of two signatures / sqrt(n_directions * n_quantiles) is their sliced
    Wasserstein-2 distance (:func:`color_distance_matrix`). Computed ``chunk`` images at a time (the
    projections of one 64 px image are 4096 x n_directions numbers)."""
    dirs = projection_directions(n_directions, seed).T
    q = (np.arange(n_quantiles) + 0.5) / n_quantiles
    out = [np.zeros((0, n_directions * n_quantiles))]
    for i in range(0, len(images), chunk):
        lab = rgb_to_lab(images[i:i + chunk])
        proj = lab.reshape(len(lab), -1, 3) @ dirs  # images x pixels x directions
        out.append(np.quantile(proj, q, axis=1).transpose(1, 2, 0).reshape(len(lab), -1))
    return np.concatenate(out)


def color_distance_matrix(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Sliced Wasserstein-2 distance (Lab units) between every row of ``sig_a`` and every row of ``sig_b``."""
    a, b = np.asarray(sig_a, float), np.asarray(sig_b, float)
    sq = (a ** 2).sum(1)[:, None] - 2 * a @ b.T + (b ** 2).sum(1)[None]
    return np.sqrt(np.maximum(sq, 0) / a.shape[1])


def color_distance(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Row-wise sliced Wasserstein-2 distance of two signature arrays of equal length."""
    a, b = np.asarray(sig_a, float), np.asarray(sig_b, float)
    return np.sqrt(((a - b) ** 2).mean(1))


def preserve_color(output: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer (Gatys, Ecker, Bethge, Hertzmann & Shechtman 2017, "Controlling perceptual
    factors in neural style transfer", section 5.1): the lightness L of ``output`` with the chromaticity a, b
    of ``content`` in CIELAB, so a stylised image keeps the content image's colours. (Gatys et al. use YIQ and
    also match the style's luminance statistics before the transfer; here it is a post-hoc swap of channels.)
    N x 3 x H x W RGB in [0, 1], the same size -> the same; out-of-gamut colours are clipped."""
    if output.shape != content.shape:
        raise ValueError(f"preserve_color: output {tuple(output.shape)} and content {tuple(content.shape)} differ")
    out, ref = rgb_to_lab(output), rgb_to_lab(content)
    out[..., 1:] = ref[..., 1:]
    return lab_to_rgb(out).to(output.device)
