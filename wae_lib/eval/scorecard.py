"""A held-out scorecard of one model: does it reconstruct people it never saw, and do its transfers carry the
style while keeping the content and the person? (issue 8's targets, one row per model)

Protocol (fixed so that rows are comparable across runs and budgets):
- reconstruction PSNR / SSIM on every held-out face (content_eval: people in no training set when the data
  has identities);
- transfers of ``n_content`` held-out faces (spread over the held-out identities) x every style image;
- style retrieval: the transfer's nearest style image is its own style, by Gram distance at the model's style
  layers (the loss the model trained on: circular) and by a Lab colour-histogram distance (independent);
- content retrieval: the nearest of the ``n_content`` faces by VGG relu4_2 features is its own content;
- identity: the nearest held-out identity (mean dlib embedding per person) is its own person, and the
  embedding distance to the content face (dlib's same-person threshold is 0.6);
each with its chance level. The Reinhard et al. (2001) colour transfer is scored the same way as the floor a
learned method has to beat on style without losing the person.
The command that scores without shipping: ``python -m wae_lib scorecard`` (wae_lib.commands.scorecard).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.layout import load_eval_identities
from .cache import all_pairs, reconstruct_images, transfer_pairs
from .color import color_distance_matrix, color_signature, reinhard_transfer
from .identity import embeddings_or_nan, gallery_chance, identity_distance, identity_match
from .images import held_out_faces_at, load_set
from .metrics import EvalVGG, psnr_per_image, ssim_per_image
from .retrieval import feature_distance_matrix, gram_distance_matrix, grams, nearest_is_own
from .stats import crossed_mean_ci

SCORE_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")


@dataclass
class HeldOut:
    """Held-out faces (identities when known), style images, and everything about them that stays fixed."""

    faces: torch.Tensor  # every held-out face, N x 3 x 64 x 64
    identities: np.ndarray | None  # per face (None: unknown, each face is its own entry)
    content_index: np.ndarray  # the faces used as transfer content
    styles: torch.Tensor
    vgg: EvalVGG
    content_feats: dict
    style_grams: dict
    style_colors: np.ndarray
    face_emb: np.ndarray  # dlib embeddings of every held-out face (NaN without dlib)

    @classmethod
    def load(cls, data_root: str | Path, n_content: int = 48, vgg_source: str = "hed", size: int = 64) -> HeldOut:
        """``size`` > 64: the same faces cropped again at that size from their source files (a fully convolutional
        model's scorecard above its training size; the style images stay 64 px, as the model takes them)."""
        faces = load_set(data_root, "content_eval") if size == 64 else held_out_faces_at(data_root, size)
        styles = load_set(data_root, "style_eval")
        identities = load_eval_identities(data_root)
        content_index = spread_over_identities(identities if identities is not None else np.arange(len(faces)),
                                               n_content)
        vgg = EvalVGG(vgg_source, SCORE_STYLE_LAYERS)
        return cls(faces, identities, content_index, styles, vgg, vgg(faces[content_index]),
                   grams(vgg(styles), SCORE_STYLE_LAYERS), color_signature(styles), embeddings_or_nan(faces)[0])

    @property
    def content(self) -> torch.Tensor:
        return self.faces[self.content_index]


def spread_over_identities(identities: np.ndarray, n: int) -> np.ndarray:
    """``n`` face indices taken round-robin over identities (first photos first): every person is used."""
    by_id: dict[int, list[int]] = {}
    for i, p in enumerate(np.asarray(identities).tolist()):
        by_id.setdefault(int(p), []).append(i)
    order, queues = [], list(by_id.values())
    while len(order) < min(n, len(identities)):
        for q in queues:
            if q and len(order) < n:
                order.append(q.pop(0))
    return np.asarray(sorted(order))


def score_transfers(transfers: torch.Tensor, evalset: HeldOut, ci: np.ndarray, si: np.ndarray) -> dict:
    """Retrieval and identity scores of transfers of content ``content_index[ci[k]]`` with style ``si[k]``."""
    feats = evalset.vgg(transfers)
    gram = gram_distance_matrix(grams(feats, SCORE_STYLE_LAYERS), evalset.style_grams, SCORE_STYLE_LAYERS)
    color = color_distance_matrix(color_signature(transfers), evalset.style_colors)
    content = feature_distance_matrix(feats, evalset.content_feats, evalset.vgg.content_layers)
    rows = np.arange(len(si))
    face = evalset.content_index[ci]
    emb, found = embeddings_or_nan(transfers)
    kept = identity_match(emb, face, evalset.face_emb, evalset.identities)
    by_gram, by_color = nearest_is_own(gram, si).astype(float), nearest_is_own(color, si).astype(float)
    return {
        "style_retrieval_gram": float(by_gram.mean()),
        "style_retrieval_color": float(by_color.mean()),
        "content_retrieval": float(nearest_is_own(content, ci).mean()),
        "identity_match": float(np.nanmean(kept)),
        **intervals({"identity_match": kept, "style_carried": (by_gram + by_color) / 2}, ci, si),
        "identity_distance": float(np.nanmean(identity_distance(emb, evalset.face_emb[face]))),
        "style_gram_distance": float(gram[rows, si].mean()),
        "style_color_distance": float(color[rows, si].mean()),
        "face_found": float(found.mean()),
    }


def intervals(per_pair: dict[str, np.ndarray], ci: np.ndarray, si: np.ndarray, n_boot: int = 1000) -> dict:
    """95% intervals of per-pair scores by the crossed bootstrap over faces and paintings (wae_lib.eval.stats:
    both are samples, so both are resampled), as ``<name>_lo`` / ``<name>_hi``; ``style_carried`` (the mean of
    Gram and palette retrieval, the frontier's x) gets its point value too. Pairs must be a full faces x styles
    grid (``all_pairs``); otherwise the bounds are NaN."""
    out: dict[str, float] = {}
    n_c, n_s = int(ci.max()) + 1 if len(ci) else 0, int(si.max()) + 1 if len(si) else 0
    for name, values in per_pair.items():
        grid = np.full((n_c, n_s), np.nan)
        grid[ci, si] = values
        point, lo, hi = crossed_mean_ci(grid, n_boot) if n_c * n_s == len(ci) else (np.nan, np.nan, np.nan)
        if name == "style_carried":
            out[name] = point
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    return out


def chance_levels(evalset: HeldOut) -> dict:
    return {"style_retrieval": 1 / len(evalset.styles), "content_retrieval": 1 / len(evalset.content_index),
            "identity_match": gallery_chance(len(evalset.faces), evalset.identities)}


def pairs(evalset: HeldOut) -> tuple[np.ndarray, np.ndarray]:
    ci, si = all_pairs(len(evalset.content_index), len(evalset.styles))
    return ci.numpy(), si.numpy()


def score_model(model, evalset: HeldOut) -> dict:
    """Reconstruction PSNR / SSIM on every held-out face, then the transfer scores."""
    recon = reconstruct_images(model, evalset.faces)
    ci, si = pairs(evalset)
    transfers = transfer_pairs(model, evalset.content, evalset.styles, torch.as_tensor(ci), torch.as_tensor(si))
    emb, _ = embeddings_or_nan(recon)
    own = np.arange(len(evalset.faces))
    return {"psnr": float(psnr_per_image(recon, evalset.faces).mean()),
            "ssim": float(ssim_per_image(recon, evalset.faces).mean()),
            "recon_identity_match": float(np.nanmean(identity_match(emb, own, evalset.face_emb, evalset.identities))),
            **score_transfers(transfers, evalset, ci, si)}


FLOOR_RUN = "Reinhard colour transfer (floor)"  # the run name of the floor row of every scorecard table


def score_reinhard(evalset: HeldOut) -> dict:
    """The floor: Reinhard et al. (2001) colour transfer, scored like a model (no reconstruction)."""
    ci, si = pairs(evalset)
    transfers = reinhard_transfer(evalset.content[ci], evalset.styles[si])
    return {"run": FLOOR_RUN, "psnr": float("nan"), "ssim": float("nan"),
            "recon_identity_match": float("nan"), **score_transfers(transfers, evalset, ci, si)}


def score_method(method, evalset: HeldOut, batch_size: int = 64) -> dict:
    """A baseline (anything with ``transfer(content, style)``: AdaIN, WCT, Gatys) scored like a model; it has no
    reconstruction, so PSNR / SSIM / reconstruction identity are NaN."""
    ci, si = pairs(evalset)
    with torch.no_grad():  # Gatys turns gradients on for its own optimisation
        out = [method.transfer(evalset.content[ci[k:k + batch_size]], evalset.styles[si[k:k + batch_size]])
               for k in range(0, len(ci), batch_size)]
    transfers = torch.cat(out).clamp(0, 1).detach()
    return {"psnr": float("nan"), "ssim": float("nan"), "recon_identity_match": float("nan"),
            **score_transfers(transfers, evalset, ci, si)}


def markdown(table, evalset: HeldOut) -> str:
    chance = chance_levels(evalset)
    people = len(set(evalset.identities.tolist())) if evalset.identities is not None else len(evalset.faces)
    head = (f"Held-out scorecard: {len(evalset.faces)} held-out faces of {people} people (none in any training "
            f"set) for reconstruction; transfers of {len(evalset.content_index)} of them x {len(evalset.styles)} "
            f"styles. Chance: style retrieval {chance['style_retrieval']:.3f}, content retrieval "
            f"{chance['content_retrieval']:.3f}, identity match {chance['identity_match']:.3f}. VGG16 for the Gram "
            f"and content distances: {evalset.vgg.label}; identity: dlib face-recognition ResNet.\n\n")
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return head + "\n".join(lines) + "\n"

