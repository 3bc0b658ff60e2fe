"""The tables notebooks 03 and 04 write (long format: one row per model x image or pair, with context columns),
the C4 balance ranking, and where every table lives (TABLE_FILES, written atomically by :func:`write_table`).

The models' outputs come from wae_lib.eval.cache (:class:`~wae_lib.eval.cache.ModelOutputs`, computed, or
:class:`~wae_lib.eval.cache.CachedOutputs`, read); the measures from wae_lib.eval.metrics. Besides the paper's
measures (C1-C4), metrics the models were not trained on (issue 5): face identity (dlib face-recognition
ResNet, ``wae_lib.eval.identity``), CIELAB colour distance (``wae_lib.eval.color``), style and content retrieval shares
with their chance levels (``wae_lib.eval.retrieval``), and a reference row: the Reinhard et al. (2001) colour
transfer measured the same way (``data == "reference"``, never in a ranking or verdict).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..utils import atomic_write_text, spread
from . import identity as ID
from .cache import Outputs, all_pairs
from .color import color_distance, color_distance_matrix, color_signature, reinhard_transfer
from .images import EvalImages
from .metrics import (
    FACE_UPSCALE,
    EvalVGG,
    face_detected,
    mse_per_image,
    psnr_from_mse,
    relative_feature_distance,
    ssim_per_image,
)
from .retrieval import feature_distance_matrix, gram_distance_matrix, grams, nearest_is_own
from .runs import EvalContext, RunInfo
from .stats import rankdata

REFERENCE_DATA = "reference"  # ``data`` of reference rows (not a trained model): excluded from rankings and claims
REFERENCE_RUN = "reinhard2001"  # Reinhard et al. 2001 colour transfer (wae_lib.eval.color), the trivial floor


def is_model_row(df):
    """Boolean mask of a table's rows that come from trained models (not the reference rows)."""
    return df["data"] != REFERENCE_DATA


def face_flag(value: float) -> bool | float:
    """A face detector's answer as a table cell: True / False, or NaN where no detector ran (metrics.face_detected)."""
    return float("nan") if value != value else bool(value)


def run_columns(run: RunInfo) -> dict[str, Any]:
    """The columns that name a model in every table row."""
    return {"run": run.name, "data": run.data, "content_dim": run.content_dim, "seed": run.seed}


REFERENCE_COLUMNS = {"run": REFERENCE_RUN, "data": REFERENCE_DATA, "content_dim": 0, "seed": -1}


# --------------------------------------------------------------------------------------------------
# reconstructions (C1, C2): notebook 03
# --------------------------------------------------------------------------------------------------
@dataclass
class IdentityReference:
    """dlib embeddings of the content faces and what identity_match needs (wae_lib.eval.identity)."""

    embeddings: np.ndarray
    identities: np.ndarray | None
    columns: dict[str, Any]  # constant columns: model label, gallery, chance level, ceiling on the real photos

    @classmethod
    def build(cls, content: torch.Tensor, identities: np.ndarray | None = None, enabled: bool = True
              ) -> IdentityReference:
        n = len(content)
        emb = ID.embeddings_or_nan(content)[0] if enabled else np.full((n, ID.EMBEDDING_DIM), np.nan)
        people = len(np.unique(ID.gallery_labels(n, identities)))
        gallery = f"person ({people} people, mean embedding)" if identities is not None else f"content image ({n})"
        label = ID.identity_label() if enabled else "not computed (identity=False)"
        return cls(emb, identities, {"identity_model": label, "identity_gallery": gallery,
                                     "identity_match_chance": ID.gallery_chance(n, identities),
                                     "identity_match_originals": ID.identity_match_originals(emb, identities)})

    @property
    def enabled(self) -> bool:
        return bool(np.isfinite(self.embeddings).all()) and len(self.embeddings) > 0

    def metrics(self, outputs: torch.Tensor, own: np.ndarray) -> dict[str, np.ndarray]:
        """identity_distance (to the own content face), identity_match (nearest gallery entry is own),
        identity_face_found (dlib's detector fired on the output) for each output image."""
        n = len(outputs)
        if not self.enabled or n == 0:
            return {"identity_distance": np.full(n, np.nan), "identity_match": np.full(n, np.nan),
                    "identity_face_found": np.full(n, np.nan)}
        emb, found = ID.face_embeddings(outputs)
        return {"identity_distance": ID.identity_distance(emb, self.embeddings[own]),
                "identity_match": ID.identity_match(emb, own, self.embeddings, self.identities),
                "identity_face_found": found.astype(float)}


def reconstruction_table(runs: Sequence[RunInfo], outputs: Sequence[Outputs], sets: Sequence[EvalImages],
                         vgg: EvalVGG, ctx: EvalContext, detect_faces_in: Iterable[str] = ("style_eval",
                                                                                            "natural_eval"),
                         batch_size: int = 64, face_upscale: int = FACE_UPSCALE,
                         identities: np.ndarray | None = None, identity: bool = True) -> pd.DataFrame:
    """One row per (model, eval set, image): MSE, PSNR, SSIM, perceptual distance (C1, C2), and for the sets in
    ``detect_faces_in`` whether the face detector fires on the original and on the reconstruction (C2).

    ``content_eval`` rows also get the independent identity metric (wae_lib.eval.identity, dlib): identity_distance
    of the reconstruction to its original, identity_match (its nearest person among the held-out faces,
    ``identities`` aligned with the ``content_eval`` images, is its own; without identities: its own image),
    identity_face_found, and the constant columns identity_match_chance / identity_match_originals (the real
    photos' own score, the ceiling) / identity_gallery / identity_model. NaN with a label without dlib.
    """
    detect = set(detect_faces_in)
    rows = []
    for eval_set in sets:
        set_name, images = eval_set.set_name, eval_set.images
        if len(images) == 0:  # e.g. natural_eval when the data folder has no natural/ images
            warnings.warn(f"evaluation set {set_name!r} is empty: no reconstruction metrics for it", stacklevel=2)
            continue
        ref_feats = vgg(images, batch_size)
        face_orig = face_detected(images, face_upscale) if set_name in detect else None
        id_ref = IdentityReference.build(images, identities, identity) if set_name == "content_eval" else None
        for run, out in zip(runs, outputs):
            rec = out.reconstructions(eval_set)
            feats = vgg(rec, batch_size)
            mse = mse_per_image(rec, images)
            cols = {"mse": mse.numpy(), "psnr": psnr_from_mse(mse).numpy(),
                    "ssim": ssim_per_image(rec, images).numpy(),
                    "perceptual": relative_feature_distance(feats, ref_feats, vgg.perceptual_layers).numpy()}
            if id_ref is not None:
                cols.update(id_ref.metrics(rec, np.arange(len(images))))
            face_rec = face_detected(rec, face_upscale) if set_name in detect else None
            for i in range(len(images)):
                row = {**run_columns(run), "eval_set": set_name, "image": i,
                       **{k: float(v[i]) for k, v in cols.items()}}
                if face_orig is not None:
                    row.update(face_in_original=face_flag(face_orig[i]), face_in_reconstruction=face_flag(face_rec[i]))
                if id_ref is not None:
                    row.update(id_ref.columns)
                rows.append({**row, **ctx.columns()})
    return pd.DataFrame.from_records(rows)


# --------------------------------------------------------------------------------------------------
# transfers (C3, C4): notebook 04
# --------------------------------------------------------------------------------------------------
@dataclass
class TransferReference:
    """Everything about the content and style images that every model's transfers are compared with."""

    content_feats: dict[str, torch.Tensor]  # content layers of the faces
    style_grams: dict[str, torch.Tensor]  # Gram matrices of the styles
    style_colors: np.ndarray  # Lab colour signatures of the styles (wae_lib.eval.color)
    mean_face: torch.Tensor
    content_face_mse: torch.Tensor  # MSE of each face to the mean face
    identity: IdentityReference

    @classmethod
    def build(cls, content: torch.Tensor, styles: torch.Tensor, vgg: EvalVGG, mean_face: torch.Tensor,
              identities: np.ndarray | None, identity: bool, batch_size: int) -> TransferReference:
        cf = vgg(content, batch_size)
        face = mean_face.unsqueeze(0)
        return cls({n: cf[n] for n in vgg.content_layers}, grams(vgg(styles, batch_size), vgg.style_layers),
                   color_signature(styles), face, mse_per_image(content, face.expand_as(content)),
                   IdentityReference.build(content, identities, identity))


def distances_to_references(ref: TransferReference, vgg: EvalVGG, images: torch.Tensor, batch_size: int = 64
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(images x styles Gram distances, images x faces content distances), VGG features computed one chunk at
    a time so that memory grows with the batch, not with the number of pairs."""
    style_d, content_d = [np.zeros((0, len(ref.style_colors)))], [np.zeros((0, len(ref.content_face_mse)))]
    for i in range(0, len(images), batch_size):
        f = vgg(images[i:i + batch_size], batch_size)
        style_d.append(gram_distance_matrix(grams(f, vgg.style_layers), ref.style_grams, vgg.style_layers))
        content_d.append(feature_distance_matrix(f, ref.content_feats, vgg.content_layers))
    return np.concatenate(style_d), np.concatenate(content_d)


def transfer_metrics(ref: TransferReference, vgg: EvalVGG, out: torch.Tensor, rec: torch.Tensor,
                     ci: torch.Tensor, si: torch.Tensor, identity_pairs: np.ndarray | None = None,
                     batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per-pair metric columns of transfers ``out`` (pair k = content ci[k], style si[k]) and of ``rec``, the
    reconstructions of the content images (the no-transfer baseline). See :func:`transfer_table`."""
    ci_np, si_np = ci.numpy(), si.numpy()
    style_d, content_d = distances_to_references(ref, vgg, out, batch_size)
    rec_style_d, rec_content_d = distances_to_references(ref, vgg, rec, batch_size)
    out_col, rec_col = color_signature(out), color_signature(rec)
    color_d = color_distance_matrix(out_col, ref.style_colors)
    rows = np.arange(len(out))
    cols = {"style_distance": style_d[rows, si_np], "style_distance_recon": rec_style_d[ci_np, si_np],
            "content_distance": content_d[rows, ci_np], "content_distance_recon": rec_content_d[ci_np, ci_np],
            "mean_face_mse": mse_per_image(out, ref.mean_face.expand_as(out)).numpy(),
            "mean_face_mse_content": ref.content_face_mse.numpy()[ci_np],
            "color_distance": color_d[rows, si_np],
            "color_distance_recon": color_distance(rec_col[ci_np], ref.style_colors[si_np]),
            "style_retrieval_gram": nearest_is_own(style_d, si_np),
            "style_retrieval_color": nearest_is_own(color_d, si_np),
            "content_retrieval": nearest_is_own(content_d, ci_np)}
    measured = np.ones(len(out), bool) if identity_pairs is None else np.asarray(identity_pairs, bool)
    ident = {k: np.full(len(out), np.nan) for k in ("identity_distance", "identity_match", "identity_face_found")}
    if measured.any():
        for k, v in ref.identity.metrics(out[torch.from_numpy(measured)], ci_np[measured]).items():
            ident[k][measured] = v
    return {**cols, **ident}


def identity_pair_mask(n_content: int, n_styles: int, identity_styles: int | None) -> np.ndarray:
    """Which pairs of :func:`~wae_lib.eval.cache.all_pairs` get the identity metric (dlib: ~0.1 s per image on
    a CPU): every pair, or each content image with ``identity_styles`` styles spread evenly over the styles."""
    if not identity_styles or identity_styles >= n_styles:
        return np.ones(n_content * n_styles, bool)
    chosen = np.zeros(n_styles, bool)
    chosen[spread(n_styles, identity_styles)] = True
    return np.tile(chosen, n_content)


def transfer_table(runs: Sequence[RunInfo], outputs: Sequence[Outputs], content: EvalImages, styles: EvalImages,
                   vgg: EvalVGG, mean_face: torch.Tensor, ctx: EvalContext, batch_size: int = 64,
                   identities: np.ndarray | None = None, identity: bool = True, identity_styles: int | None = None,
                   reference: bool = True) -> pd.DataFrame:
    """One row per (model, content image, style image) (C3, C4):

    * ``style_distance``: Gram distance of the transfer to the style image; ``style_distance_recon``: the same
      for the model's reconstruction of the content image (the no-transfer baseline);
    * ``content_distance``: VGG feature distance (content layers) of the transfer to the content image;
      ``content_distance_recon``: the same for the reconstruction;
    * ``mean_face_mse``: pixel MSE of the transfer to the mean CelebA face; ``mean_face_mse_content``: of the
      content image itself.

    Independent of the training losses (issue 5):

    * ``color_distance``: sliced Wasserstein distance of the CIELAB pixel distributions of transfer and style
      image (wae_lib.eval.color; Lab units); ``color_distance_recon``: of the reconstruction;
    * ``style_retrieval_gram`` / ``style_retrieval_color``: 1 when the style nearest to the transfer (among
      all ``styles``, by Gram / colour distance) is its own, chance ``style_retrieval_chance`` = 1 / styles;
    * ``content_retrieval``: 1 when the held-out face nearest to the transfer by content distance is its own
      content image, chance ``content_retrieval_chance`` = 1 / faces;
    * ``identity_distance`` / ``identity_match`` / ``identity_face_found`` (dlib, see
      :func:`reconstruction_table`) for the pairs of :func:`identity_pair_mask` (others NaN).

    ``reference=True`` adds rows ``run = reinhard2001`` (``data = reference``, content_dim 0, seed -1): the
    Reinhard et al. (2001) colour transfer of every pair, measured the same way, as the trivial floor.
    """
    faces, style_images = content.images, styles.images
    ref = TransferReference.build(faces, style_images, vgg, mean_face, identities, identity, batch_size)
    nc, ns = len(faces), len(style_images)
    ci, si = all_pairs(nc, ns)
    id_pairs = identity_pair_mask(nc, ns, identity_styles)
    constant = {"style_retrieval_chance": 1 / ns, "content_retrieval_chance": 1 / nc, **ref.identity.columns,
                **ctx.columns()}
    methods = [(run_columns(run), lambda out=out: (out.transfers(content, styles), out.reconstructions(content)))
               for run, out in zip(runs, outputs)]
    if reference:  # the "reconstruction" of a colour transfer is the content image itself
        methods.append((REFERENCE_COLUMNS, lambda: (reinhard_transfer(faces[ci], style_images[si]), faces)))
    frames = []
    for names, make in methods:
        out, rec = make()
        cols = transfer_metrics(ref, vgg, out, rec, ci, si, id_pairs, batch_size)
        frames.append(pd.DataFrame({**{k: [v] * len(ci) for k, v in names.items()},
                                    "content_image": ci.numpy(), "style_image": si.numpy(), **cols,
                                    **{k: [v] * len(ci) for k, v in constant.items()}}))
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# C4: which model balances style and content best
# --------------------------------------------------------------------------------------------------
def balance_scores(style_distance: Sequence[float], content_distance: Sequence[float]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """C4 criterion on per-model mean distances: (score, tie_break), smaller is better.

    score = rank-normalised style distance + rank-normalised content distance (ranks scaled to [0, 1] over the
    models, 0 = smallest distance); tie_break = the sum of the min-max-normalised distances.
    """
    s, c = np.asarray(style_distance, float), np.asarray(content_distance, float)
    m = max(1, len(s) - 1)

    def minmax(v):
        span = v.max() - v.min()
        return (v - v.min()) / span if span > 0 else v * 0

    return (rankdata(s) - 1) / m + (rankdata(c) - 1) / m, minmax(s) + minmax(c)


def best_by_balance(style_distance: Sequence[float], content_distance: Sequence[float]) -> int:
    """Index of the model that balances style and content best (:func:`balance_scores`)."""
    score, tie = balance_scores(style_distance, content_distance)
    return int(np.lexsort((tie, score))[0])


def balance_ranking(transfers: pd.DataFrame) -> pd.DataFrame:
    """C4: per model (paper order kept), mean style and content distance of its transfers, their rank-normalised
    values, ``score`` (sum; smaller = better balance) and ``best`` (the model with the smallest score).
    Reference rows (Reinhard 2001) are left out: C4 ranks the trained models."""
    t = (transfers[is_model_row(transfers)].groupby("run", sort=False)
         .agg(data=("data", "first"), content_dim=("content_dim", "first"),
              style_distance=("style_distance", "mean"), content_distance=("content_distance", "mean"),
              n_pairs=("style_distance", "size"))
         .reset_index())
    m = max(1, len(t) - 1)
    t["style_rank"] = (rankdata(t["style_distance"]) - 1) / m
    t["content_rank"] = (rankdata(t["content_distance"]) - 1) / m
    t["score"], t["tie_break"] = balance_scores(t["style_distance"], t["content_distance"])
    t["best"] = np.arange(len(t)) == best_by_balance(t["style_distance"], t["content_distance"])
    return t


def best_model(ranking: pd.DataFrame, runs: Sequence[RunInfo], models: Sequence[nn.Module]
               ) -> tuple[RunInfo, nn.Module]:
    """The run and model marked ``best`` in a :func:`balance_ranking` table."""
    name = ranking.loc[ranking["best"], "run"].iloc[0]
    i = [r.name for r in runs].index(name)
    return runs[i], models[i]


# --------------------------------------------------------------------------------------------------
# the tables' files
# --------------------------------------------------------------------------------------------------
TABLE_FILES = {
    "reconstruction": "reconstruction_per_image.csv",  # 03
    "reconstruction_summary": "reconstruction_summary.csv",  # 03
    "transfer": "transfer_per_pair.csv",  # 04
    "transfer_summary": "transfer_summary.csv",  # 04
    "balance": "transfer_balance_ranking.csv",  # 04 (C4 criterion)
    "fid": "fid_kid.csv",  # 05
    "compare": "compare_per_pair.csv",  # 07: one row per method x (face, style) pair
    "compare_fid": "compare_fid_kid.csv",  # 07
    "compare_summary": "compare_summary.csv",  # 07: one row per method, with ratios to our model
}
TABLE_WRITERS = {"reconstruction": "03_reconstruction", "reconstruction_summary": "03_reconstruction",
                 "transfer": "04_transfer", "transfer_summary": "04_transfer", "balance": "04_transfer",
                 "fid": "05_fid", "compare": "07_compare", "compare_fid": "07_compare",
                 "compare_summary": "07_compare"}


def write_table(df: pd.DataFrame, tables_dir: str | Path, key: str) -> Path:
    """Write one of TABLE_FILES under ``tables_dir`` (created), atomically, and return its path."""
    path = Path(tables_dir) / TABLE_FILES[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, df.to_csv(index=False))
    return path


CHANCE_COLUMNS = {"style_retrieval_gram": "style_retrieval_chance", "style_retrieval_color": "style_retrieval_chance",
                  "content_retrieval": "content_retrieval_chance", "identity_match": "identity_match_chance"}


def chance_levels(table: pd.DataFrame) -> dict[str, float]:
    """Chance level of each retrieval / match column of a transfer or reconstruction table, e.g.
    ``{"style_retrieval_gram": 0.125, ...}`` (columns the table lacks are left out)."""
    return {m: float(table[c].dropna().iloc[0]) for m, c in CHANCE_COLUMNS.items()
            if m in table and c in table and table[c].notna().any()}
