"""The paper's claims C1-C4 (SPEC.md §5) as numbers with verdicts: ``reports/claims.md``, ``claims.csv``, index.

Input: the per-image / per-pair CSVs that notebooks 03 (reconstructions) and 04 (transfers) write, and 05's
FID/KID table for context. Output: one row per claim part with its statistic, bootstrap interval, sample size,
number of seeds and verdict (``supported`` / ``not supported`` / ``inconclusive``), and a markdown report.

How the verdicts are decided (our reading: the paper judges Figures 6-7 by eye):

* A *model* is a training set x content size; runs of one model with several seeds are replicates
  (``seed`` column, :func:`wae_lib.runs.discover_runs`). Point estimates average over seeds; the bootstrap
  resamples each model's seeds, then the images (:class:`wae_lib.stats.Panel`); with one seed per model it
  resamples images only. Every verdict states how many seeds it rests on: with one seed, training noise is
  not in the interval, so a verdict describes these trained runs.
* Direction claims ("more content latents, more accurate", "mixed data helps", ...): the statistic is a mean
  over images (the unit resampled by the bootstrap; pairs and model rows of one image move together). The
  claim is *supported* when the 95% interval lies on the claimed side of 0, *not supported* when it lies on
  the other side, otherwise *inconclusive*.
* "No visible effect" (C1): an equivalence test. The relative difference between training sets must lie
  within +-``equivalence_margin`` (default 10% of the mean error): supported when the whole interval is
  inside, not supported when it is wholly outside, otherwise inconclusive.
* C4 (best model), judged against chance (:func:`wae_lib.stats.c4_verdict`): the model with the smallest sum
  of rank-normalised style and content distances (:func:`wae_lib.tables.balance_scores`) wins a resample;
  chance = candidate models (mixed c256, c128 present in the sweep) / models. *Supported* when the point
  winner is a candidate and candidates win >= max(``c4_floor``, chance + ``c4_margin``) of the resamples
  (defaults 0.7, 0.3); *not supported* when candidates win <= 5% and one other model passes that same bar;
  otherwise *inconclusive*. With identical simulated models the rule says inconclusive in ~90% of sweeps
  (tests/test_stats.py).
* Reference rows (``data == "reference"``: the Reinhard 2001 colour transfer) are shown in the per-model
  numbers but never enter a verdict.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats as S
from . import tables as T
from .compare import markdown_summary
from .config import TRAINING_SETS, run_name, training_set_label
from .identity import SAME_PERSON_THRESHOLD
from .metrics import FACE_UPSCALE
from .runs import EvalContext, paper_order_key
from .stats import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED
from .utils import atomic_open, atomic_write_text

PAPER_BEST = {("mixed", 256), ("mixed", 128)}  # SPEC §5 C4
RECON_METRICS = {"mse": -1, "psnr": +1, "ssim": +1, "perceptual": -1}  # sign of "better" as content size grows
PRIMARY_RECON_METRIC = "mse"
SMALL_PROFILES = ("quick", "smoke")  # budgets that test the pipeline, not the paper
CLAIM_STATEMENTS = {
    "C1": "Content reconstruction is not visibly affected by the training set; more content latents give more "
          "accurate reconstructions.",
    "C2": "For style images diverse training data helps a lot; CelebA-only models put face-like structures into "
          "reconstructions of images without faces, most of all with few content latents.",
    "C3": "Every model transfers style features; fewer content latents give a stronger style influence; "
          "CelebA-only models are pulled toward the average CelebA face.",
    "C4": "The best transfers are around the mixed-data models with content size 256 and 128.",
}
__all__ = ["SUPPORTED", "NOT_SUPPORTED", "INCONCLUSIVE", "ClaimPart", "evaluate_claims", "build_claims",
           "write_index"]


@dataclass
class ClaimPart:
    """One tested part of a claim, with the numbers behind its verdict."""

    claim: str
    part: str
    statement: str
    scope: str
    statistic: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    unit: str
    verdict: str
    criterion: str
    detail: str = ""
    seeds: str = "1"  # seeds per model the statistic rests on (Panel.seeds_note)
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# verdict rules
# --------------------------------------------------------------------------------------------------
def verdict_direction(ci_low: float, ci_high: float, expected_sign: int) -> str:
    """Supported when the interval lies wholly on the expected side of 0, not supported when wholly on the
    other side, otherwise (or when undefined) inconclusive."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return INCONCLUSIVE
    lo, hi = (ci_low, ci_high) if expected_sign > 0 else (-ci_high, -ci_low)
    if lo > 0:
        return SUPPORTED
    if hi < 0:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def verdict_equivalence(ci_low: float, ci_high: float, margin: float) -> str:
    """Equivalence within +-margin: supported when the interval is inside, not supported when wholly outside."""
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return INCONCLUSIVE
    if -margin < ci_low and ci_high < margin:
        return SUPPORTED
    if ci_low >= margin or ci_high <= -margin:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def combined_verdict(verdicts: Sequence[str]) -> str:
    """One word per claim: the common verdict of its parts, or ``mixed verdicts`` (not the training set of that name)."""
    unique = list(dict.fromkeys(verdicts))
    return unique[0] if len(unique) == 1 else "mixed verdicts"


# --------------------------------------------------------------------------------------------------
# per-image panels (unit = image; columns = models, seeds kept apart)
# --------------------------------------------------------------------------------------------------
def model_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of trained models (reference rows such as Reinhard 2001 never enter a verdict)."""
    return df[T.is_model_row(df)] if "data" in df else df


def sizes_of(df: pd.DataFrame, data: str) -> list[int]:
    """Content sizes trained for a training set, largest first (paper order)."""
    return sorted({int(c) for c in df.loc[df["data"] == data, "content_dim"]}, reverse=True)


def panel(df: pd.DataFrame, value: str | Sequence[str], unit: str | Sequence[str], datas: Sequence[str],
          sizes: Sequence[int]) -> S.Panel:
    """:func:`wae_lib.stats.panel_from_table` with columns (set, size) for every set of ``datas`` x ``sizes``."""
    return S.panel_from_table(df, value, unit, [(d, int(s)) for d in datas for s in sizes])


def mean_rank_correlation(p: S.Panel, value: str, sizes: Sequence[int], n_boot: int, seed: int
                          ) -> tuple[float, float, float]:
    """Mean over units of the Spearman correlation between content size and the unit's values (columns of
    ``p`` = sizes), bootstrapped over seeds and units (units whose values are constant give NaN, left out)."""
    return S.bootstrap_panel(p, lambda m: S.nanmean(S.rowwise_spearman(sizes, m[value])), n_boot, seed=seed)


def relative_difference(first: slice, second: slice, value: str):
    """Statistic: (mean of the ``second`` columns - mean of the ``first``) / mean of both, over units."""
    def stat(m):
        a, b = m[value][:, first], m[value][:, second]
        return float((b - a).mean() / np.concatenate([a, b]).mean())

    return stat


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}"


def _by_size(sizes: Sequence[int], means: np.ndarray, k: int) -> str:
    """``c32: CelebA-only 0.01 vs mixed 0.02, ...``: per content size, the means of the two training sets'
    models (``means``: the celeba columns, then the mixed ones, ``k`` each)."""
    celeba, mixed = training_set_label("celeba"), training_set_label("mixed")
    return ", ".join(f"c{s}: {celeba} {_fmt(x)} vs {mixed} {_fmt(y)}" for s, x, y in zip(sizes, means[:k], means[k:]))


def _ci(est: float, lo: float, hi: float) -> str:
    return f"{_fmt(est)} [{_fmt(lo)}, {_fmt(hi)}]"


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
            details.append(f"{metric}: rho {_ci(est, lo, hi)} (claimed sign {'+' if sign > 0 else '-'})")
            if metric == PRIMARY_RECON_METRIC:
                primary = (est, lo, hi)
        means = ", ".join(f"c{s}: {_fmt(v)}" for s, v in zip(sizes, p.matrix(PRIMARY_RECON_METRIC).mean(0)))
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
            nat_txt = f"; natural_eval ({pn.n_units} images): {_ci(*S.bootstrap_panel(pn, gain, n_boot, seed=seed))}"
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
        rates = ", ".join(f"{training_set_label(d)} c{s}: {_fmt(v)}" for d, ms in (("celeba", m[:k]), ("mixed", m[k:]))
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
            "rates " + ", ".join(f"c{s}: {_fmt(v)}" for s, v in zip(sizes, p.matrix("face").mean(0))),
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
        "; ".join(f"{r}: {_ci(e, lo, hi)}" for r, e, lo, hi, _, _ in per_model), weakest[5]))
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
        parts.append(ClaimPart(
            "C3", "C3b", statement, label, "mean over content images of Spearman rho(content size, style distance)",
            est, lo, hi, p.n_units, "content image (mean over styles)", verdict_direction(lo, hi, +1),
            "95% bootstrap interval of mean rho above 0 (style distance grows with content size)",
            "mean style distance " + ", ".join(f"c{s}: {_fmt(v)}" for s, v in zip(sizes,
                                                                                 p.matrix("style_distance").mean(0)))
            + f"; content distance rho {_ci(ce, clo, chi)} (expected below 0): "
            + ", ".join(f"c{s}: {_fmt(v)}" for s, v in zip(sizes, p.matrix("content_distance").mean(0))),
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
        "mean MSE to the mean face " + _by_size(common, m, k) + f"; the content images themselves: {_fmt(ref)}",
        p.seeds_note()))
    return parts


# --------------------------------------------------------------------------------------------------
# C4: the best balance of style and content, against chance
# --------------------------------------------------------------------------------------------------
def claim_c4(transfer: pd.DataFrame, n_boot: int = 1000, seed: int = 0, margin: float = S.C4_MARGIN,
             floor: float = S.C4_FLOOR) -> list[ClaimPart]:
    """C4: which model balances style and content best (:func:`wae_lib.tables.balance_scores` on its mean
    distances over images and seeds), and how often the paper's choice (mixed, content 256 or 128) wins over
    bootstrap resamples (seeds, then content images), judged against chance (:func:`wae_lib.stats.c4_verdict`)."""
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
    table = "; ".join(f"{r}: style {_fmt(s)}, content {_fmt(c)}, score {_fmt(sc)}, wins {int(w)}/{n_boot}"
                      for r, s, c, sc, w in zip(names, mean_s, mean_c, score, wins))
    candidates = [run_name(*k) for k in keys if k in PAPER_BEST]
    if not is_candidate.any():
        verdict = INCONCLUSIVE
        criterion = "the sweep has no mixed-data model with content size 256 or 128: the claim cannot be tested"
    else:
        verdict, criterion = S.c4_verdict(wins, is_candidate, best, margin, floor)
    return [ClaimPart(
        "C4", "C4", statement, f"{len(keys)} models", f"share of bootstrap resamples won by "
        f"{' / '.join(candidates) or 'mixed c256/c128'} (chance {is_candidate.sum()}/{len(keys)} = "
        f"{_fmt(chance)}; point winner: {names[best]})", share, float("nan"), float("nan"), p.n_units,
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
    return (claim_c1(recon, n_boot, seed, equivalence_margin) + claim_c2(recon, n_boot, seed)
            + claim_c3(transfer, n_boot, seed) + claim_c4(transfer, n_boot, seed, c4_margin, c4_floor))


def claims_frame(parts: Sequence[ClaimPart], ctx: EvalContext) -> pd.DataFrame:
    """claims.csv: one row per claim part, with the context columns."""
    rows = []
    for p in parts:
        d = asdict(p)
        d.pop("extra")
        rows.append({**d, **ctx.columns()})
    return pd.DataFrame.from_records(rows)


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A plain markdown table (no extra dependency)."""
    def cell(v):
        if isinstance(v, float):
            return _fmt(v, digits)
        return str(v).replace("|", "/").replace("\n", " ")

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def budget_warning(ctx: EvalContext) -> str:
    """The claims page's first line when the run cannot speak for the paper (quick/smoke profile, or the
    embedded sample set instead of the paper's data); empty otherwise."""
    small = [p for p in SMALL_PROFILES if p in ctx.profile.split(" / ")]
    why = [f"profile {', '.join(small)}: scaled-down models trained for minutes"] if small else []
    if "embedded sample set" in ctx.data_source:
        why.append("data: the embedded sample set, not the paper's images")
    if not why and "reference" in ctx.profile.split(" / "):
        return ("> **Reference profile: a CPU-scale run** (channels x1/4 of Tables 1-2, minutes per model on 2 CPU "
                "cores; see each figure's caption for the schedule). The verdicts describe this scale; the paper "
                "trained full-width networks on GPUs.")
    if not why:
        return ""
    return (f"> **This run is too small to judge the paper** ({'; '.join(why)}). The verdicts below describe "
            f"this budget, not the paper's method.")


# columns of the per-model summary: (column, header); absent columns are skipped (older tables)
RECON_IDENTITY = [("identity_distance", "identity distance"), ("identity_match", "identity match")]
TRANSFER_VGG = [("style_distance", "style distance"), ("style_distance_recon", "style d. (reconstruction)"),
                ("content_distance", "content distance"), ("content_distance_recon", "content d. (reconstruction)"),
                ("mean_face_mse", "MSE to mean face")]
TRANSFER_INDEPENDENT = [("color_distance", "colour distance (Lab SW2)"),
                        ("color_distance_recon", "colour d. (reconstruction)"),
                        ("style_retrieval_gram", "style retrieval, Gram"),
                        ("style_retrieval_color", "style retrieval, colour"),
                        ("content_retrieval", "content retrieval"),
                        ("identity_distance", "identity distance"), ("identity_match", "identity match")]


def _first(df: pd.DataFrame, col: str):
    return df[col].dropna().iloc[0] if col in df and df[col].notna().any() else None


def _summary_table(per_unit: pd.DataFrame, columns: Sequence[tuple[str, str]], order: Sequence[str], n_boot: int,
                   seed: int) -> pd.DataFrame:
    """run, n and "mean [95% CI]" of each present column, one row per run in ``order``."""
    cols = [(c, h) for c, h in columns if c in per_unit]
    s = S.summarise(per_unit, ["run"], [c for c, _ in cols], n_boot, seed).set_index("run").reindex(order)
    t = pd.DataFrame({"run": order, "n": s["n"].to_numpy()})
    for c, h in cols:
        t[h] = [_ci(e, lo, hi) for e, lo, hi in zip(s[c], s[f"{c}_ci_low"], s[f"{c}_ci_high"])]
    return t


def _identity_note(df: pd.DataFrame) -> str:
    model = _first(df, "identity_model")
    if model is None:
        return ""
    return (f"Identity: {model}; gallery: {_first(df, 'identity_gallery')}; identity match chance "
            f"{_fmt(_first(df, 'identity_match_chance'))}, the real photos' own score (ceiling) "
            f"{_fmt(_first(df, 'identity_match_originals'))}; distance < {SAME_PERSON_THRESHOLD} is dlib's \"same person\".")


def _model_summary(recon: pd.DataFrame, transfer: pd.DataFrame, n_boot: int, seed: int) -> str:
    order = list(dict.fromkeys(recon["run"]))
    out = []
    for set_name, g in recon.groupby("eval_set", sort=False):
        ident = [(c, h) for c, h in RECON_IDENTITY if c in g and g[c].notna().any()]
        t = _summary_table(g, [(m, m) for m in RECON_METRICS] + ident, order, n_boot, seed)
        if "face_in_reconstruction" in g and g["face_in_original"].notna().any():
            free = g[~g["face_in_original"].astype(bool)]
            t["face rate (face-free originals)"] = [
                _fmt(free.loc[free["run"] == r, "face_in_reconstruction"].astype(float).mean()) for r in order]
        note = _identity_note(g) if ident else ""
        out.append(f"**Reconstructions of `{set_name}`** (mean [95% bootstrap interval] over images)"
                   + (f". {note}" if note else "") + "\n\n" + markdown_table(t))
    order = list(dict.fromkeys(transfer["run"]))
    present = [c for c, _ in TRANSFER_VGG + TRANSFER_INDEPENDENT if c in transfer]
    per_image = transfer.groupby(["run", "content_image"], sort=False)[present].mean().reset_index()
    n_styles = transfer["style_image"].nunique()
    head = f"each content image averaged over {n_styles} styles; n = content images"
    if (~T.is_model_row(transfer)).any():
        head += f"; `{T.REFERENCE_RUN}`: Reinhard et al. (2001) colour transfer, the trivial floor, not a model"
    out.append(f"**Transfers, VGG16 measures** (the network the models are trained against; {head})\n\n"
               + markdown_table(_summary_table(per_image, TRANSFER_VGG, order, n_boot, seed)))
    if any(c in transfer for c, _ in TRANSFER_INDEPENDENT):
        chances = ", ".join(f"{name} {_fmt(_first(transfer, col))}" for col, name in (
            ("style_retrieval_chance", "style retrieval"), ("content_retrieval_chance", "content retrieval"),
            ("identity_match_chance", "identity match")) if _first(transfer, col) is not None)
        out.append(f"**Transfers, independent measures** (not used in training; retrieval = share of transfers "
                   f"whose nearest style / content face is their own; chance: {chances}). "
                   f"{_identity_note(transfer)}\n\n"
                   + markdown_table(_summary_table(per_image, TRANSFER_INDEPENDENT, order, n_boot, seed)))
    return "\n\n".join(out)


def _fid_section(fid: pd.DataFrame | None) -> str:
    if fid is None:
        return "FID/KID: not computed (run notebook 05_fid.ipynb)."
    out = []
    for label, g in fid.groupby("feature_extractor_label", sort=False):
        t = pd.DataFrame({
            "run": g["run"], "generated": g["generated"], "reference": g["reference_set"],
            "FID [95% CI]": [_ci(*v) for v in zip(g["fid"], g["fid_ci_low"], g["fid_ci_high"])],
            "KID [95% CI]": [_ci(*v) for v in zip(g["kid"], g["kid_ci_low"], g["kid_ci_high"])],
            "n real": g["n_real"], "n generated": g["n_fake"]})
        out.append(f"**Feature extractor: {label}**\n\n" + markdown_table(t))
    return ("Distribution distances (not a claim of the paper; context for the figures). Small samples bias FID "
            "upwards: compare rows of equal n, and against the `(real halves)` noise floor.\n\n" + "\n\n".join(out))


def _seeds_line(recon: pd.DataFrame) -> str:
    if "seed" not in recon:
        return "one seed per model"
    rows = model_rows(recon)
    counts = rows.groupby(["data", "content_dim"])["seed"].nunique()
    if counts.max() <= 1:
        return "one seed per model (training noise is not in the intervals)"
    return "seeds per model: " + ", ".join(f"{run_name(d, c)}: {counts[(d, c)]}" for d, c in models_of(rows))


def claims_markdown(parts: Sequence[ClaimPart], ctx: EvalContext, recon: pd.DataFrame, transfer: pd.DataFrame,
                    fid: pd.DataFrame | None, n_boot: int, seed: int) -> str:
    """The text of reports/claims.md."""
    n_faces = recon.loc[recon["eval_set"] == "content_eval", "image"].nunique()
    counts = ", ".join(f"{s}: {recon.loc[recon['eval_set'] == s, 'image'].nunique()}" for s in recon["eval_set"].unique())
    warning = budget_warning(ctx)
    lines = [warning, ""] if warning else []
    lines += [
        "# The paper's claims as numbers (SPEC.md §5, C1-C4)", "",
        f"**{ctx.caption()}**", "",
        f"Models: {', '.join(dict.fromkeys(model_rows(recon)['run']))} ({_seeds_line(recon)}). Images per "
        f"evaluation set: {counts}; transfers: {transfer['content_image'].nunique()} content x "
        f"{transfer['style_image'].nunique()} style images per model. Bootstrap: {n_boot} resamples (seeds, then "
        f"images; seed {seed}), 95% percentile intervals.", "",
    ]
    if n_faces < 30:
        lines += [f"> Small samples ({n_faces} held-out faces): expect wide intervals; an interval that includes "
                  f"0 is reported as *inconclusive*.", ""]
    lines += ["## Verdicts", "", markdown_table(pd.DataFrame({
        "part": [p.part for p in parts], "scope": [p.scope for p in parts], "tested": [p.statement for p in parts],
        "statistic": [p.statistic for p in parts], "estimate [95% CI]": [_ci(p.estimate, p.ci_low, p.ci_high)
                                                                         for p in parts],
        "n": [f"{p.n} ({p.unit})" for p in parts], "seeds": [p.seeds for p in parts],
        "verdict": [f"**{p.verdict}**" for p in parts]})), ""]
    for claim in ("C1", "C2", "C3", "C4"):
        mine = [p for p in parts if p.claim == claim]
        lines += [f"## {claim}: {combined_verdict([p.verdict for p in mine])}", "", f"Paper: {CLAIM_STATEMENTS[claim]}",
                  ""]
        for p in mine:
            lines += [f"- **{p.part}** ({p.scope}): {p.statement}. {p.statistic} = {_ci(p.estimate, p.ci_low, p.ci_high)}"
                      f", n = {p.n} ({p.unit}), seeds per model: {p.seeds}. Rule: {p.criterion}. **{p.verdict}**.",
                      f"  - {p.detail}" if p.detail else ""]
        lines.append("")
    lines += ["## Per-model numbers", "", _model_summary(recon, transfer, n_boot, seed), "",
              "## FID and KID", "", _fid_section(fid), "",
              "## Definitions", "",
              "- MSE / PSNR / SSIM: pixel metrics in [0, 1] (SSIM: Gaussian window 11, torchmetrics).",
              "- perceptual / content distance: relative squared error of VGG16 activations ||F(a) - F(b)||^2 / "
              "||F(b)||^2, averaged over layers (perceptual: style layers + relu4_2; content: relu4_2).",
              "- style distance: relative squared error of normalised Gram matrices at the model's style layers.",
              "- face rate: share of face-free originals (detector silent on the original) whose reconstruction "
              f"makes the OpenCV Haar detector of wae_lib.data fire (64 px upscaled x{FACE_UPSCALE}).",
              "- colour distance: sliced Wasserstein-2 distance of the CIELAB pixel distributions of transfer and "
              "style image (Rabin et al. 2011; Lab units, ~2.3 = just noticeable), `wae_lib.color`.",
              "- style retrieval (Gram / colour): share of transfers whose nearest style image, by Gram / colour "
              "distance, is their own style; content retrieval: share whose nearest held-out face by content "
              "distance is their own content image (`wae_lib.retrieval`).",
              "- identity distance / match: dlib face-recognition ResNet embeddings (King 2009; face_recognition): "
              "euclidean distance to the content face, and the share whose nearest gallery person (mean "
              "embedding, leave-one-out for the own person) is their own (`wae_lib.identity`).",
              f"- `{T.REFERENCE_RUN}`: Reinhard et al. (2001) colour transfer (Lab channel means and standard "
              "deviations of the style), measured the same way; a reference, never in a verdict.",
              "- Verdict rules: see the module docstring of `wae_lib.claims`."]
    return "\n".join(lines) + "\n"


def build_claims(tables_dir: str | Path = "reports/tables", reports_dir: str | Path = "reports", n_boot: int = 1000,
                 seed: int = 0, equivalence_margin: float = 0.10, c4_margin: float = S.C4_MARGIN,
                 c4_floor: float = S.C4_FLOOR) -> pd.DataFrame:
    """Read the notebooks' tables, decide every claim part, write ``tables_dir/claims.csv`` and
    ``reports_dir/claims.md``; returns the claims table."""
    recon = read_table(tables_dir, "reconstruction")
    transfer = read_table(tables_dir, "transfer")
    fid = read_table(tables_dir, "fid", required=False)
    ctx = context_of(recon, transfer)
    parts = evaluate_claims(recon, transfer, n_boot, seed, equivalence_margin, c4_margin, c4_floor)
    table = claims_frame(parts, ctx)
    Path(tables_dir).mkdir(parents=True, exist_ok=True)
    with atomic_open(Path(tables_dir) / "claims.csv", "w", newline="") as f:  # readers see old or new, never half
        table.to_csv(f, index=False)
    Path(reports_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(reports_dir) / "claims.md", claims_markdown(parts, ctx, recon, transfer, fid, n_boot, seed))
    return table


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def write_index(reports_dir: str | Path = "reports", figures_dir: str | Path | None = None,
                tables_dir: str | Path | None = None, notebooks_dir: str | Path | None = None,
                claims: pd.DataFrame | None = None) -> Path:
    """``reports_dir/index.md``: one line per claim with its verdict, then links to claims.md, every figure
    (with its caption from the JSON sidecar), every table and every executed notebook found."""
    import json

    reports = Path(reports_dir)
    figures = Path(figures_dir) if figures_dir else reports / "figures"
    tables = Path(tables_dir) if tables_dir else reports / "tables"
    notebooks = Path(notebooks_dir) if notebooks_dir else reports / "notebooks"
    if claims is None and (tables / "claims.csv").is_file():
        claims = pd.read_csv(tables / "claims.csv")
    lines = ["# Reports: Nakada & Asoh (JSAI 2019), style transfer with a WAE", ""]
    if claims is not None and len(claims):
        ctx = context_of(claims)
        warning = budget_warning(ctx)
        lines += ([warning, ""] if warning else []) + [f"**{ctx.caption()}**", "", "## Claims (SPEC.md §5)", ""]
        for claim in ("C1", "C2", "C3", "C4"):
            mine = claims[claims["claim"] == claim]
            parts = ", ".join(f"{r.part} ({r.scope}): {r.verdict}" for r in mine.itertuples())
            lines.append(f"- **{claim}: {combined_verdict(list(mine['verdict']))}** ({parts}). "
                         f"{CLAIM_STATEMENTS[claim]}")
        lines += ["", f"Numbers, intervals and rules: [claims.md]({_rel(reports / 'claims.md', reports)})", ""]
    else:
        lines += ["Claims: not built yet (run notebook 06_claims.ipynb).", ""]
    compare_csv = tables / T.TABLE_FILES["compare_summary"]
    if compare_csv.is_file():
        lines += ["## Comparison with other methods (notebook 07)", "",
                  "Same held-out pairs for every method; chance and definitions in the notebook.", "",
                  markdown_summary(pd.read_csv(compare_csv)), ""]
    lines += ["## Figures", ""]
    for png in sorted(figures.glob("*.png")):
        meta = png.with_suffix(".png.json")
        caption = json.loads(meta.read_text()).get("caption", "") if meta.is_file() else ""
        lines.append(f"- [{png.name}]({_rel(png, reports)})" + (f": {caption}" if caption else ""))
    lines += ["", "## Tables", ""]
    lines += [f"- [{p.name}]({_rel(p, reports)})" for p in sorted(tables.glob("*.csv"))]
    lines += ["", "## Executed notebooks", ""]
    # the Makefile executes a notebook into NAME.tmp.ipynb and renames it when it ran to the end (notebook 06 is
    # still running as NAME.tmp.ipynb here)
    found = sorted({notebooks / p.name.replace(".tmp.ipynb", ".ipynb")
                    for p in notebooks.glob("*.ipynb")}) if notebooks.is_dir() else []
    lines += [f"- [{p.name}]({_rel(p, reports)})" for p in found] or [f"- none found in {notebooks}"]
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / "index.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


HEADLINE_REPORTS = "reference-shared-data-large"  # the committed headline results (README's figure and numbers)


def write_local_index(root: str | Path = "reports", headline: str = HEADLINE_REPORTS) -> Path:
    """``root/local.md`` (git-ignored): one line per reports folder on this machine (``<profile>-<data tag>``, each
    with its own index.md), the headline first. The committed ``root/index.md`` links it and is never rewritten,
    so a newcomer's run leaves the tree clean."""
    root = Path(root)
    folders = sorted((p for p in root.iterdir() if (p / "index.md").is_file()),
                     key=lambda p: (p.name != headline, p.name)) if root.is_dir() else []
    lines = ["# Reports on this machine", "", "One folder per profile and data set (`make reproduce PROFILE=... "
             "DATA_DIR=...` writes `reports/<profile>-<data tag>/`); written by `make claims`, not committed.", ""]
    for p in folders:
        first = next((ln for ln in (p / "index.md").read_text().splitlines() if ln.startswith("**")), "")
        tag = " (headline results, committed)" if p.name == headline else ""
        lines.append(f"- [{p.name}]({p.name}/index.md){tag}: {first.strip('*')}")
    if not folders:
        lines.append("- none yet: run `make reproduce`")
    path = root / "local.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
