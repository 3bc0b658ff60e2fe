"""The paper's claims C1-C4 (SPEC.md §5) as numbers with verdicts: ``reports/claims.md``, ``claims.csv``, index.

Input: the per-image / per-pair CSVs that notebooks 03 (reconstructions) and 04 (transfers) write, and 05's
FID/KID table for context. Output: one row per claim part with its statistic, bootstrap interval, sample size,
number of seeds and verdict (``supported`` / ``not supported`` / ``inconclusive``), and a markdown report.

How the verdicts are decided (our reading: the paper judges Figures 6-7 by eye):

* A *model* is a training set x content size; runs of one model with several seeds are replicates
  (``seed`` column, :func:`wae_lib.eval.runs.discover_runs`). Point estimates average over seeds; the bootstrap
  resamples each model's seeds, then the images (:class:`wae_lib.eval.stats.Panel`); with one seed per model it
  resamples images only. Every verdict states how many seeds it rests on: with one seed, training noise is
  not in the interval, so a verdict describes these trained runs.
* Direction claims ("more content latents, more accurate", "mixed data helps", ...): the statistic is a mean
  over images (the unit resampled by the bootstrap; pairs and model rows of one image move together). The
  claim is *supported* when the 95% interval lies on the claimed side of 0, *not supported* when it lies on
  the other side, otherwise *inconclusive*.
* "No visible effect" (C1): an equivalence test. The relative difference between training sets must lie
  within +-``equivalence_margin`` (default 10% of the mean error): supported when the whole interval is
  inside, not supported when it is wholly outside, otherwise inconclusive.
* C4 (best model), judged against chance (:func:`wae_lib.eval.stats.c4_verdict`): the model with the smallest sum
  of rank-normalised style and content distances (:func:`wae_lib.eval.tables.balance_scores`) wins a resample;
  chance = candidate models (mixed c256, c128 present in the sweep) / models. *Supported* when the point
  winner is a candidate and candidates win >= max(``c4_floor``, chance + ``c4_margin``) of the resamples
  (defaults 0.7, 0.3); *not supported* when candidates win <= 5% and one other model passes that same bar;
  otherwise *inconclusive*. With identical simulated models the rule says inconclusive in ~90% of sweeps
  (tests/test_stats.py).
* Reference rows (``data == "reference"``: the Reinhard 2001 colour transfer) are shown in the per-model
  numbers but never enter a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import TRAINING_SETS, run_name, training_set_label
from . import stats as S
from . import tables as T
from .metrics import FACE_UPSCALE
from .runs import EvalContext, paper_order_key
from .stats import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED
from .verdicts import (
    ClaimPart,
    fmt_ci,
    fmt_number,
    mean_rank_correlation,
    model_rows,
    panel,
    relative_difference,
    sizes_of,
    verdict_direction,
    verdict_equivalence,
)

PAPER_BEST = {("mixed", 256), ("mixed", 128)}  # SPEC §5 C4
RECON_METRICS = {"mse": -1, "psnr": +1, "ssim": +1, "perceptual": -1}  # sign of "better" as content size grows
PRIMARY_RECON_METRIC = "mse"
CLAIM_STATEMENTS = {
    "C1": "Content reconstruction is not visibly affected by the training set; more content latents give more "
          "accurate reconstructions.",
    "C2": "For style images diverse training data helps a lot; CelebA-only models put face-like structures into "
          "reconstructions of images without faces, most of all with few content latents.",
    "C3": "Every model transfers style features; fewer content latents give a stronger style influence; "
          "CelebA-only models are pulled toward the average CelebA face.",
    "C4": "The best transfers are around the mixed-data models with content size 256 and 128.",
}
__all__ = ["SUPPORTED", "NOT_SUPPORTED", "INCONCLUSIVE", "ClaimPart", "evaluate_claims"]


# --------------------------------------------------------------------------------------------------
# helpers of the claims below (the verdict rules and panels: wae_lib.eval.verdicts)
# --------------------------------------------------------------------------------------------------
def _by_size(sizes: Sequence[int], means: np.ndarray, k: int) -> str:
    """``c32: CelebA-only 0.01 vs mixed 0.02, ...``: per content size, the means of the two training sets'
    models (``means``: the celeba columns, then the mixed ones, ``k`` each)."""
    celeba, mixed = training_set_label("celeba"), training_set_label("mixed")
    return ", ".join(f"c{s}: {celeba} {fmt_number(x)} vs {mixed} {fmt_number(y)}" for s, x, y in zip(sizes, means[:k], means[k:]))


def _inconclusive(claim, part, statement, scope, reason, unit="image") -> ClaimPart:
    return ClaimPart(claim, part, statement, scope, "-", float("nan"), float("nan"), float("nan"), 0, unit,
                     INCONCLUSIVE, reason)


# --------------------------------------------------------------------------------------------------
# C1: content reconstruction
# --------------------------------------------------------------------------------------------------
def claim_c1(recon: pd.DataFrame, n_boot: int = 1000, seed: int = 0, margin: float = 0.10) -> list[ClaimPart]:
    """C1a (per training set): Spearman correlation of content size with the reconstruction error of each held-out
    face, averaged over faces (claimed: negative for MSE). C1b: relative difference of the error between training
    sets at equal content size (claimed: within +-margin)."""
    df = model_rows(recon)
    df = df[df["eval_set"] == "content_eval"]
    parts = []
    for data in TRAINING_SETS:
        sizes = sizes_of(df, data)
        label = training_set_label(data)
        statement = "more content latents give more accurate content reconstructions"
        if len(sizes) < 2:
            parts.append(_inconclusive("C1", "C1a", statement, label, f"fewer than 2 content sizes for {data}"))
            continue
        p = panel(df, list(RECON_METRICS), "image", [data], sizes)
        details = []
        for metric, sign in RECON_METRICS.items():
            est, lo, hi = mean_rank_correlation(p, metric, sizes, n_boot, seed)
            details.append(f"{metric}: rho {fmt_ci(est, lo, hi)} (claimed sign {'+' if sign > 0 else '-'})")
            if metric == PRIMARY_RECON_METRIC:
                primary = (est, lo, hi)
        means = ", ".join(f"c{s}: {fmt_number(v)}" for s, v in zip(sizes, p.matrix(PRIMARY_RECON_METRIC).mean(0)))
        parts.append(ClaimPart(
            "C1", "C1a", statement, label,
            f"mean over held-out faces of Spearman rho(content size, {PRIMARY_RECON_METRIC})", *primary, p.n_units,
            "held-out face", verdict_direction(primary[1], primary[2], RECON_METRICS[PRIMARY_RECON_METRIC]),
            "95% bootstrap interval of mean rho below 0 (error falls as content size grows)",
            f"sizes {sizes}; mean {PRIMARY_RECON_METRIC} {means}; " + "; ".join(details), p.seeds_note()))
    common = sorted(set(sizes_of(df, "celeba")) & set(sizes_of(df, "mixed")), reverse=True)
    statement = "the training set has no visible effect on content reconstruction"
    if not common:
        parts.append(_inconclusive("C1", "C1b", statement, "both sets", "no content size trained on both sets"))
        return parts
    k = len(common)
    p = panel(df, PRIMARY_RECON_METRIC, "image", ("celeba", "mixed"), common)
    est, lo, hi = S.bootstrap_panel(p, relative_difference(slice(0, k), slice(k, None), PRIMARY_RECON_METRIC),
                                    n_boot, seed=seed)
    m = p.matrix(PRIMARY_RECON_METRIC).mean(0)
    per_size = _by_size(common, m, k)
    parts.append(ClaimPart(
        "C1", "C1b", statement, f"sizes {common}",
        f"relative difference of mean {PRIMARY_RECON_METRIC} (mixed - CelebA-only) / mean", est, lo, hi, p.n_units,
        "held-out face", verdict_equivalence(lo, hi, margin),
        f"equivalence: 95% interval within +-{margin:.0%}", f"mean {PRIMARY_RECON_METRIC} {per_size}",
        p.seeds_note()))
    return parts


# --------------------------------------------------------------------------------------------------
# C2: style images and face hallucination
# --------------------------------------------------------------------------------------------------
def claim_c2(recon: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[ClaimPart]:
    """C2a: style-image reconstruction error, CelebA-only minus mixed, relative (claimed > 0). C2b: face
    hallucination rate on face-free style and natural images, CelebA-only minus mixed (claimed > 0). C2c: within
    CelebA-only, the rate at the smallest content size minus at the largest (claimed > 0)."""
    recon = model_rows(recon)
    parts = []
    common = sorted(set(sizes_of(recon, "celeba")) & set(sizes_of(recon, "mixed")), reverse=True)
    k = len(common)
    style = recon[recon["eval_set"] == "style_eval"]
    statement = "diverse (mixed) training data reconstructs style images better"
    gain = relative_difference(slice(k, None), slice(0, k), PRIMARY_RECON_METRIC)  # (CelebA-only - mixed) / mean
    if not common or style.empty:
        parts.append(_inconclusive("C2", "C2a", statement, "style_eval", "no style images or no common size"))
    else:
        p = panel(style, PRIMARY_RECON_METRIC, "image", ("celeba", "mixed"), common)
        est, lo, hi = S.bootstrap_panel(p, gain, n_boot, seed=seed)
        nat = recon[recon["eval_set"] == "natural_eval"]
        nat_txt = ""
        if not nat.empty:
            pn = panel(nat, PRIMARY_RECON_METRIC, "image", ("celeba", "mixed"), common)
            nat_txt = f"; natural_eval ({pn.n_units} images): {fmt_ci(*S.bootstrap_panel(pn, gain, n_boot, seed=seed))}"
        m = p.matrix(PRIMARY_RECON_METRIC).mean(0)
        parts.append(ClaimPart(
            "C2", "C2a", statement, f"style_eval, sizes {common}",
            f"relative difference of mean {PRIMARY_RECON_METRIC} (CelebA-only - mixed) / mean", est, lo, hi,
            p.n_units, "style image", verdict_direction(lo, hi, +1), "95% bootstrap interval above 0",
            "mean MSE " + _by_size(common, m, k) + nat_txt, p.seeds_note()))
    faces = recon.dropna(subset=["face_in_original"]) if "face_in_original" in recon else recon.iloc[:0]
    free = faces[~faces["face_in_original"].astype(bool)].assign(
        unit=lambda d: d["eval_set"] + ":" + d["image"].astype(str),
        face=lambda d: d["face_in_reconstruction"].astype(float))
    n_with_face = faces.drop_duplicates(["eval_set", "image"])["face_in_original"].astype(bool).sum()
    statement = "CelebA-only models hallucinate faces in face-free images more than mixed-data models"
    if free.empty or not common:
        parts.append(_inconclusive("C2", "C2b", statement, "style_eval + natural_eval",
                                   "no face-free images or no common size"))
    else:
        p = panel(free, "face", "unit", ("celeba", "mixed"), common)
        est, lo, hi = S.bootstrap_panel(p, lambda m: float((m["face"][:, :k] - m["face"][:, k:]).mean()), n_boot,
                                        seed=seed)
        m = p.matrix("face").mean(0)
        rates = ", ".join(f"{training_set_label(d)} c{s}: {fmt_number(v)}" for d, ms in (("celeba", m[:k]), ("mixed", m[k:]))
                          for s, v in zip(common, ms))
        parts.append(ClaimPart(
            "C2", "C2b", statement, f"face-free style_eval + natural_eval images, sizes {common}",
            "face detection rate on reconstructions, CelebA-only - mixed", est, lo, hi, p.n_units, "face-free image",
            verdict_direction(lo, hi, +1), "95% bootstrap interval above 0",
            f"OpenCV Haar detector (wae_lib.data PrepConfig, images upscaled x{FACE_UPSCALE}); {n_with_face} "
            f"originals with a detected face left out; rates {rates}", p.seeds_note()))
    statement = "face hallucination is strongest with few content latents (CelebA-only)"
    sizes = sizes_of(free, "celeba") if not free.empty else []
    if len(sizes) < 2:
        parts.append(_inconclusive("C2", "C2c", statement, "CelebA-only", "fewer than 2 content sizes or no "
                                                                          "face-free images"))
    else:
        p = panel(free, "face", "unit", ["celeba"], sizes)
        est, lo, hi = S.bootstrap_panel(p, lambda m: float((m["face"][:, -1] - m["face"][:, 0]).mean()), n_boot,
                                        seed=seed)
        parts.append(ClaimPart(
            "C2", "C2c", statement, f"CelebA-only, c{sizes[-1]} vs c{sizes[0]}",
            f"face detection rate at content {sizes[-1]} - at {sizes[0]}", est, lo, hi, p.n_units, "face-free image",
            verdict_direction(lo, hi, +1), "95% bootstrap interval above 0",
            "rates " + ", ".join(f"c{s}: {fmt_number(v)}" for s, v in zip(sizes, p.matrix("face").mean(0))),
            p.seeds_note()))
    return parts


# --------------------------------------------------------------------------------------------------
# C3: transfers
# --------------------------------------------------------------------------------------------------
def models_of(df: pd.DataFrame) -> list[tuple[str, int]]:
    """The (training set, content size) models of a table, in paper order."""
    keys = {(str(d), int(c)) for d, c in zip(df["data"], df["content_dim"])}
    return sorted(keys, key=lambda k: paper_order_key(*k))


def claim_c3(transfer: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[ClaimPart]:
    """C3a: every model moves its output toward the style (relative drop of the Gram distance to the style image
    from the model's reconstruction to its transfer > 0, for every model). C3b (per training set): Spearman
    correlation of content size with the style distance, averaged over content images (claimed > 0: fewer
    latents, closer to the style). C3c: the transfers of CelebA-only models are closer to the mean CelebA face
    than those of mixed models at equal size (relative difference of pixel MSE, claimed > 0)."""
    parts = []
    df = model_rows(transfer).assign(style_gain=lambda d: 1 - d["style_distance"] / d["style_distance_recon"])
    per_model = []
    for key in models_of(df):
        p = S.panel_from_table(df, "style_gain", "content_image", [key])
        est, lo, hi = S.bootstrap_panel(p, lambda m: S.nanmean(m["style_gain"][:, 0]), n_boot, seed=seed)
        per_model.append((run_name(*key), est, lo, hi, p.n_units, p.seeds_note()))
    verdicts = [verdict_direction(lo, hi, +1) for _, _, lo, hi, _, _ in per_model]
    verdict = (NOT_SUPPORTED if NOT_SUPPORTED in verdicts else SUPPORTED if all(v == SUPPORTED for v in verdicts)
               else INCONCLUSIVE)
    weakest = min(per_model, key=lambda r: r[1])
    parts.append(ClaimPart(
        "C3", "C3a", "every model transfers style features", f"all {len(per_model)} models",
        "relative drop of the Gram distance to the style image, reconstruction -> transfer (weakest model shown)",
        weakest[1], weakest[2], weakest[3], weakest[4], "content image (mean over styles)", verdict,
        "every model's 95% bootstrap interval above 0",
        "; ".join(f"{r}: {fmt_ci(e, lo, hi)}" for r, e, lo, hi, _, _ in per_model), weakest[5],
        {"transferring": [r for r, _, lo, _, _, _ in per_model if lo > 0]}))
    for data in TRAINING_SETS:
        sizes = sizes_of(df, data)
        label = training_set_label(data)
        statement = "fewer content latents give a stronger style influence"
        if len(sizes) < 2:
            parts.append(_inconclusive("C3", "C3b", statement, label, f"fewer than 2 content sizes for {data}",
                                       "content image"))
            continue
        p = panel(df, ["style_distance", "content_distance"], "content_image", [data], sizes)
        est, lo, hi = mean_rank_correlation(p, "style_distance", sizes, n_boot, seed)
        ce, clo, chi = mean_rank_correlation(p, "content_distance", sizes, n_boot, seed)
        # "a stronger style influence" presumes one: when C3a finds models that do not move toward the style at
        # all, ranking their style distances ranks noise (the quick run: rho 0.5 [0.5, 0.5] read "supported")
        gated = verdict == NOT_SUPPORTED
        parts.append(ClaimPart(
            "C3", "C3b", statement, label, "mean over content images of Spearman rho(content size, style distance)",
            est, lo, hi, p.n_units, "content image (mean over styles)",
            INCONCLUSIVE if gated else verdict_direction(lo, hi, +1),
            "95% bootstrap interval of mean rho above 0 (style distance grows with content size)",
            "mean style distance " + ", ".join(f"c{s}: {fmt_number(v)}" for s, v in zip(sizes,
                                                                                 p.matrix("style_distance").mean(0)))
            + f"; content distance rho {fmt_ci(ce, clo, chi)} (expected below 0): "
            + ", ".join(f"c{s}: {fmt_number(v)}" for s, v in zip(sizes, p.matrix("content_distance").mean(0)))
            + ("; inconclusive because C3a is not supported: some models do not transfer style, so there is no "
               "style influence to rank" if gated else ""),
            p.seeds_note()))
    common = sorted(set(sizes_of(df, "celeba")) & set(sizes_of(df, "mixed")), reverse=True)
    statement = "CelebA-only models are pulled toward the average CelebA face"
    if not common:
        parts.append(_inconclusive("C3", "C3c", statement, "both sets", "no content size trained on both sets",
                                   "content image"))
        return parts
    k = len(common)
    p = panel(df, "mean_face_mse", "content_image", ("celeba", "mixed"), common)
    est, lo, hi = S.bootstrap_panel(p, relative_difference(slice(0, k), slice(k, None), "mean_face_mse"), n_boot,
                                    seed=seed)
    ref = df.drop_duplicates("content_image")["mean_face_mse_content"].mean()
    m = p.matrix("mean_face_mse").mean(0)
    parts.append(ClaimPart(
        "C3", "C3c", statement, f"sizes {common}",
        "relative difference of pixel MSE to the mean CelebA face, (mixed - CelebA-only) / mean", est, lo, hi,
        p.n_units, "content image (mean over styles)", verdict_direction(lo, hi, +1),
        "95% bootstrap interval above 0",
        "mean MSE to the mean face " + _by_size(common, m, k) + f"; the content images themselves: {fmt_number(ref)}",
        p.seeds_note()))
    return parts


# --------------------------------------------------------------------------------------------------
# C4: the best balance of style and content, against chance
# --------------------------------------------------------------------------------------------------
def claim_c4(transfer: pd.DataFrame, n_boot: int = 1000, seed: int = 0, margin: float = S.C4_MARGIN,
             floor: float = S.C4_FLOOR, transferring: Sequence[str] | None = None) -> list[ClaimPart]:
    """C4: which model balances style and content best (:func:`wae_lib.eval.tables.balance_scores` on its mean
    distances over images and seeds), and how often the paper's choice (mixed, content 256 or 128) wins over
    bootstrap resamples (seeds, then content images), judged against chance (:func:`wae_lib.eval.stats.c4_verdict`).
    ``transferring``: the models C3a found moving toward the style; when it is given and empty, "the best
    transfers" would rank models that make none, and the verdict is inconclusive (the quick run's 6 models all
    moved away from the style and C4 read "supported", issue 19)."""
    df = model_rows(transfer)
    keys = models_of(df)
    names = [run_name(*k) for k in keys]
    is_candidate = np.array([k in PAPER_BEST for k in keys])
    statement = "the best transfers come from the mixed-data models with content size 256 or 128"
    p = S.panel_from_table(df, ["style_distance", "content_distance"], "content_image", keys)
    best, wins = S.win_counts(p, lambda m: T.best_by_balance(m["style_distance"], m["content_distance"]), n_boot,
                              seed)
    share = float(wins[is_candidate].sum() / n_boot) if n_boot else float("nan")
    chance = S.c4_chance(is_candidate)
    mean_s, mean_c = p.matrix("style_distance").mean(0), p.matrix("content_distance").mean(0)
    score, _ = T.balance_scores(mean_s, mean_c)
    table = "; ".join(f"{r}: style {fmt_number(s)}, content {fmt_number(c)}, score {fmt_number(sc)}, wins {int(w)}/{n_boot}"
                      for r, s, c, sc, w in zip(names, mean_s, mean_c, score, wins))
    candidates = [run_name(*k) for k in keys if k in PAPER_BEST]
    if not is_candidate.any():
        verdict = INCONCLUSIVE
        criterion = "the sweep has no mixed-data model with content size 256 or 128: the claim cannot be tested"
    elif transferring is not None and not transferring:
        verdict = INCONCLUSIVE
        criterion = ("no model moves its output toward the style (C3a: no model's interval above 0), so there "
                     "are no transfers to rank")
    else:
        verdict, criterion = S.c4_verdict(wins, is_candidate, best, margin, floor)
    return [ClaimPart(
        "C4", "C4", statement, f"{len(keys)} models", f"share of bootstrap resamples won by "
        f"{' / '.join(candidates) or 'mixed c256/c128'} (chance {is_candidate.sum()}/{len(keys)} = "
        f"{fmt_number(chance)}; point winner: {names[best]})", share, float("nan"), float("nan"), p.n_units,
        "content image (mean over styles)", verdict, criterion,
        "criterion: smallest rank-normalised style distance + rank-normalised content distance; " + table,
        p.seeds_note(), {"winner": names[best], "chance": chance, "wins": dict(zip(names, wins.tolist()))})]


# --------------------------------------------------------------------------------------------------
# building the report
# --------------------------------------------------------------------------------------------------
def read_table(tables_dir: str | Path, key: str, required: bool = True) -> pd.DataFrame | None:
    """One of the notebooks' tables; the error names the file and the notebook that writes it."""
    path = Path(tables_dir) / T.TABLE_FILES[key]
    if not path.is_file():
        if not required:
            return None
        raise FileNotFoundError(f"parameter tables_dir = {str(tables_dir)!r}: {path.name} is missing; run notebook "
                                f"{T.TABLE_WRITERS[key]}.ipynb with the same tables_dir first")
    return pd.read_csv(path)


def context_of(*tables: pd.DataFrame | None) -> EvalContext:
    """The profile / data / VGG context recorded in the tables' columns (all tables must agree)."""
    values = {}
    for col in ("profile", "data_source", "vgg_source", "scaled_note"):
        found = sorted({str(v) for t in tables if t is not None and col in t for v in t[col].fillna("").unique()})
        values[col] = " / ".join(found) if found else "unknown"
    note = "" if values["scaled_note"] == "unknown" else values["scaled_note"]
    return EvalContext(values["profile"], values["data_source"], values["vgg_source"], note)


def evaluate_claims(recon: pd.DataFrame, transfer: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                    equivalence_margin: float = 0.10, c4_margin: float = S.C4_MARGIN,
                    c4_floor: float = S.C4_FLOOR) -> list[ClaimPart]:
    """Every claim part of C1-C4 from the notebooks' per-image and per-pair tables."""
    c3 = claim_c3(transfer, n_boot, seed)
    return (claim_c1(recon, n_boot, seed, equivalence_margin) + claim_c2(recon, n_boot, seed) + c3
            + claim_c4(transfer, n_boot, seed, c4_margin, c4_floor, transferring=c3[0].extra["transferring"]))


def claims_frame(parts: Sequence[ClaimPart], ctx: EvalContext) -> pd.DataFrame:
    """claims.csv: one row per claim part, with the context columns."""
    rows = []
    for p in parts:
        d = asdict(p)
        d.pop("extra")
        rows.append({**d, **ctx.columns()})
    return pd.DataFrame.from_records(rows)
