"""Retrieval checks of transfers (issue 5): is a transfer nearer to its own style / content than to the others?

A mean distance says little on its own (what is a "good" Gram distance?). Retrieval turns it into a share
with a known chance level: among all style images, is the transfer's nearest one the style it was given
(chance: 1 / number of styles)? Among all held-out faces, is its nearest one its own content image (chance:
1 / number of faces)? The distances are the tables' own (relative squared error, reference = the candidate),
so a retrieval share and a mean distance always describe the same measurement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from ..model.losses import gram_matrix


def relative_distance_matrix(a: torch.Tensor, b: torch.Tensor, chunk: int = 128) -> np.ndarray:
    """||a_i - b_j||^2 / ||b_j||^2 for every row i of ``a`` (m x d) and row j of ``b`` (k x d), in float64.

    Expanded as |a|^2 - 2 a.b + |b|^2 so that memory is O(chunk * d), not O(m * k * d); float64 keeps the
    cancellation harmless at the distances that matter (relative errors of 1e-3 and up).
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()
    nb = b.pow(2).sum(1)
    out = []
    for i in range(0, len(a), chunk):
        x = a[i:i + chunk]
        sq = x.pow(2).sum(1)[:, None] - 2 * x @ b.T + nb[None]
        out.append((sq.clamp_min(0) / nb.clamp_min(1e-20)[None]).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(b)))


def grams(feats: Mapping[str, torch.Tensor], layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """Normalised Gram matrices (wae_lib.model.losses.gram_matrix) of each layer, flattened: N x C^2."""
    return {n: gram_matrix(feats[n].float()).flatten(1) for n in layers}


def gram_distance_matrix(grams_a: Mapping[str, torch.Tensor], grams_b: Mapping[str, torch.Tensor],
                         layers: Iterable[str]) -> np.ndarray:
    """m x k style distances: the mean over layers of ||G_a - G_b||^2 / ||G_b||^2 (wae_lib.eval.metrics.gram_distance
    for every pair)."""
    layers = list(layers)
    return sum(relative_distance_matrix(grams_a[n], grams_b[n]) for n in layers) / len(layers)


def feature_distance_matrix(feats_a: Mapping[str, torch.Tensor], feats_b: Mapping[str, torch.Tensor],
                            layers: Iterable[str]) -> np.ndarray:
    """m x k content distances: the mean over layers of ||F_a - F_b||^2 / ||F_b||^2
    (wae_lib.eval.metrics.relative_feature_distance for every pair)."""
    layers = list(layers)
    return sum(relative_distance_matrix(feats_a[n], feats_b[n]) for n in layers) / len(layers)


def nearest_is_own(distances: np.ndarray, own: np.ndarray) -> np.ndarray:
    """1.0 where row i's smallest distance is at column ``own[i]`` (strictly: a tie is not a hit), else 0.0;
    NaN where the row has a NaN."""
    d = np.asarray(distances, float)
    own = np.asarray(own, dtype=np.int64)
    rows = np.arange(len(d))
    d_own = d[rows, own]
    others = d.copy()
    others[rows, own] = np.inf
    hit = (d_own < others.min(axis=1)).astype(float) if d.shape[1] > 1 else np.full(len(d), np.nan)
    hit[np.isnan(d).any(axis=1)] = np.nan
    return hit
