"""The paper's claims C1-C4 (SPEC.md §5) as numbers with verdicts: ``reports/claims.md``, ``claims.csv``, index.

Input: the per-image / per-pair CSVs that notebooks 03 (reconstructions) and 04 (transfers) write, and 05's
FID/KID table for context. Output: one row per claim part with its statistic, bootstrap interval, sample size
and verdict (``supported`` / ``not supported`` / ``inconclusive``), and a markdown report.

How the verdicts are decided (our reading: the paper judges Figures 6-7 by eye):

* Direction claims ("more content latents, more accurate", "mixed data helps", ...): the statistic is a mean
  over images (the unit resampled by the bootstrap; pairs and model rows of one image move together). The
  claim is *supported* when the 95% interval lies on the claimed side of 0, *not supported* when it lies on
  the other side, otherwise *inconclusive*.
* "No visible effect" (C1): an equivalence test. The relative difference between training sets must lie
  within +-``equivalence_margin`` (default 10% of the mean error): supported when the whole interval is
  inside, not supported when it is wholly outside, otherwise inconclusive.
* C4 (best model): the model with the smallest sum of rank-normalised style and content distances
  (:func:`wae_lib.evaluate.balance_scores`); the bootstrap over content images gives how often the paper's
  models (mixed data, content 256 or 128) win. Supported when the point winner is one of them and they win in
  at least ``c4_support_share`` of the resamples; not supported when they win in at most 1 - that share.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import evaluate as E

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
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
# per-image matrices (unit = image; columns = content sizes)
# --------------------------------------------------------------------------------------------------
def aligned_matrices(df: pd.DataFrame, value: str, unit: str | Sequence[str], sizes: Sequence[int],
                     datas: Sequence[str] = ("celeba", "mixed")) -> list[np.ndarray]:
    """One matrix per training set in ``datas``: rows = units (images) present for every (set, size), columns =
    ``sizes``; entries are the mean of ``value`` over the unit's rows (e.g. over styles for a content image).
    Rows of the matrices refer to the same units, so differences between sets are paired."""
    units = [unit] if isinstance(unit, str) else list(unit)
    sub = df[df["data"].isin(list(datas))]
    table = sub.groupby(units + ["data", "content_dim"])[value].mean().unstack(["data", "content_dim"])
    cols = [(d, int(s)) for d in datas for s in sizes]
    table = table.reindex(columns=pd.MultiIndex.from_tuples(cols, names=["data", "content_dim"])).dropna()
    return [table.loc[:, [(d, int(s)) for s in sizes]].to_numpy(dtype=float) for d in datas]


def unit_matrix(df: pd.DataFrame, data: str, value: str, unit: str | Sequence[str], sizes: Sequence[int]
                ) -> np.ndarray:
    """:func:`aligned_matrices` for one training set."""
    return aligned_matrices(df, value, unit, sizes, (data,))[0]


def sizes_of(df: pd.DataFrame, data: str) -> list[int]:
    """Content sizes trained for a training set, largest first (paper order)."""
    return sorted({int(c) for c in df.loc[df["data"] == data, "content_dim"]}, reverse=True)


def mean_rank_correlation(matrix: np.ndarray, sizes: Sequence[int], n_boot: int, seed: int
                          ) -> tuple[float, float, float]:
    """Mean over units of the Spearman correlation between content size and the unit's values, bootstrapped
    over units (units whose values are constant across sizes give NaN and are left out of the mean)."""
    rho = np.array([E.spearman(sizes, row) for row in matrix])

    def stat(idx):
        r = rho[idx]
        r = r[np.isfinite(r)]
        return float(r.mean()) if len(r) else float("nan")

    return E.bootstrap_ci(len(rho), stat, n_boot, seed=seed)


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}"


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
    df = recon[recon["eval_set"] == "content_eval"]
    parts = []
    for data in E.TRAINING_SETS:
        sizes = sizes_of(df, data)
        label = E.PAPER_LABELS.get(data, data)
        statement = "more content latents give more accurate content reconstructions"
        if len(sizes) < 2:
            parts.append(_inconclusive("C1", "C1a", statement, label, f"fewer than 2 content sizes for {data}"))
            continue
        details = []
        for metric, sign in RECON_METRICS.items():
            est, lo, hi = mean_rank_correlation(unit_matrix(df, data, metric, "image", sizes), sizes, n_boot, seed)
            details.append(f"{metric}: rho {_ci(est, lo, hi)} (claimed sign {'+' if sign > 0 else '-'})")
            if metric == PRIMARY_RECON_METRIC:
                primary = (est, lo, hi)
        m = unit_matrix(df, data, PRIMARY_RECON_METRIC, "image", sizes)
        means = ", ".join(f"c{s}: {_fmt(v)}" for s, v in zip(sizes, m.mean(0)))
        parts.append(ClaimPart(
            "C1", "C1a", statement, label,
            f"mean over held-out faces of Spearman rho(content size, {PRIMARY_RECON_METRIC})", *primary, len(m),
            "held-out face", verdict_direction(primary[1], primary[2], RECON_METRICS[PRIMARY_RECON_METRIC]),
            "95% bootstrap interval of mean rho below 0 (error falls as content size grows)",
            f"sizes {sizes}; mean {PRIMARY_RECON_METRIC} {means}; " + "; ".join(details)))
    common = sorted(set(sizes_of(df, "celeba")) & set(sizes_of(df, "mixed")), reverse=True)
    statement = "the training set has no visible effect on content reconstruction"
    if not common:
        parts.append(_inconclusive("C1", "C1b", statement, "both sets", "no content size trained on both sets"))
        return parts
    a, b = aligned_matrices(df, PRIMARY_RECON_METRIC, "image", common)
    n = len(a)

    def rel_diff(idx):
        return float((b[idx] - a[idx]).mean() / np.concatenate([a[idx], b[idx]]).mean())

    est, lo, hi = E.bootstrap_ci(n, rel_diff, n_boot, seed=seed)
    per_size = ", ".join(f"c{s}: CelebA-only {_fmt(x)} vs mixed {_fmt(y)}" for s, x, y in zip(common, a.mean(0),
                                                                                             b.mean(0)))
    parts.append(ClaimPart(
        "C1", "C1b", statement, f"sizes {common}",
        f"relative difference of mean {PRIMARY_RECON_METRIC} (mixed - CelebA-only) / mean", est, lo, hi, n,
        "held-out face", verdict_equivalence(lo, hi, margin),
        f"equivalence: 95% interval within +-{margin:.0%}", f"mean {PRIMARY_RECON_METRIC} {per_size}"))
    return parts


# --------------------------------------------------------------------------------------------------
# C2: style images and face hallucination
# --------------------------------------------------------------------------------------------------
def claim_c2(recon: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[ClaimPart]:
    """C2a: style-image reconstruction error, CelebA-only minus mixed, relative (claimed > 0). C2b: face
    hallucination rate on face-free style and natural images, CelebA-only minus mixed (claimed > 0). C2c: within
    CelebA-only, the rate at the smallest content size minus at the largest (claimed > 0)."""
    parts = []
    common = sorted(set(sizes_of(recon, "celeba")) & set(sizes_of(recon, "mixed")), reverse=True)
    style = recon[recon["eval_set"] == "style_eval"]
    statement = "diverse (mixed) training data reconstructs style images better"
    if not common or style.empty:
        parts.append(_inconclusive("C2", "C2a", statement, "style_eval", "no style images or no common size"))
    else:
        a, b = aligned_matrices(style, PRIMARY_RECON_METRIC, "image", common)

        def rel_gain(idx):
            return float((a[idx] - b[idx]).mean() / np.concatenate([a[idx], b[idx]]).mean())

        est, lo, hi = E.bootstrap_ci(len(a), rel_gain, n_boot, seed=seed)
        nat = recon[recon["eval_set"] == "natural_eval"]
        nat_txt = ""
        if not nat.empty:
            na, nb = aligned_matrices(nat, PRIMARY_RECON_METRIC, "image", common)
            ne, nlo, nhi = E.bootstrap_ci(len(na), lambda i: float((na[i] - nb[i]).mean() / np.concatenate(
                [na[i], nb[i]]).mean()), n_boot, seed=seed)
            nat_txt = f"; natural_eval ({len(na)} images): {_ci(ne, nlo, nhi)}"
        parts.append(ClaimPart(
            "C2", "C2a", statement, f"style_eval, sizes {common}",
            f"relative difference of mean {PRIMARY_RECON_METRIC} (CelebA-only - mixed) / mean", est, lo, hi, len(a),
            "style image", verdict_direction(lo, hi, +1), "95% bootstrap interval above 0",
            "mean MSE " + ", ".join(f"c{s}: CelebA-only {_fmt(x)} vs mixed {_fmt(y)}"
                                    for s, x, y in zip(common, a.mean(0), b.mean(0))) + nat_txt))
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
        a, b = aligned_matrices(free, "face", "unit", common)
        est, lo, hi = E.bootstrap_ci(len(a), lambda i: float((a[i] - b[i]).mean()), n_boot, seed=seed)
        rates = ", ".join(f"{E.PAPER_LABELS[d]} c{s}: {_fmt(v)}" for d, m in (("celeba", a), ("mixed", b))
                          for s, v in zip(common, m.mean(0)))
        parts.append(ClaimPart(
            "C2", "C2b", statement, f"face-free style_eval + natural_eval images, sizes {common}",
            "face detection rate on reconstructions, CelebA-only - mixed", est, lo, hi, len(a), "face-free image",
            verdict_direction(lo, hi, +1), "95% bootstrap interval above 0",
            f"OpenCV Haar detector (wae_lib.data PrepConfig, images upscaled x{E.FACE_UPSCALE}); {n_with_face} "
            f"originals with a detected face left out; rates {rates}"))
    statement = "face hallucination is strongest with few content latents (CelebA-only)"
    sizes = sizes_of(free, "celeba") if not free.empty else []
    if len(sizes) < 2:
        parts.append(_inconclusive("C2", "C2c", statement, "CelebA-only", "fewer than 2 content sizes or no "
                                                                          "face-free images"))
    else:
        m = unit_matrix(free, "celeba", "face", "unit", sizes)
        est, lo, hi = E.bootstrap_ci(len(m), lambda i: float((m[i, -1] - m[i, 0]).mean()), n_boot, seed=seed)
        parts.append(ClaimPart(
            "C2", "C2c", statement, f"CelebA-only, c{sizes[-1]} vs c{sizes[0]}",
            f"face detection rate at content {sizes[-1]} - at {sizes[0]}", est, lo, hi, len(m), "face-free image",
            verdict_direction(lo, hi, +1), "95% bootstrap interval above 0",
            "rates " + ", ".join(f"c{s}: {_fmt(v)}" for s, v in zip(sizes, m.mean(0)))))
    return parts


# --------------------------------------------------------------------------------------------------
# C3: transfers
# --------------------------------------------------------------------------------------------------
def claim_c3(transfer: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[ClaimPart]:
    """C3a: every model moves its output toward the style (relative drop of the Gram distance to the style image
    from the model's reconstruction to its transfer > 0, for every model). C3b (per training set): Spearman
    correlation of content size with the style distance, averaged over content images (claimed > 0: fewer
    latents, closer to the style). C3c: the transfers of CelebA-only models are closer to the mean CelebA face
    than those of mixed models at equal size (relative difference of pixel MSE, claimed > 0)."""
    parts = []
    df = transfer.assign(style_gain=lambda d: 1 - d["style_distance"] / d["style_distance_recon"])
    per_model = []
    for run, g in df.groupby("run", sort=False):
        v = g.groupby("content_image")["style_gain"].mean().to_numpy()
        per_model.append((run, *E.bootstrap_mean_ci(v, n_boot, seed=seed), len(v)))
    verdicts = [verdict_direction(lo, hi, +1) for _, _, lo, hi, _ in per_model]
    verdict = (NOT_SUPPORTED if NOT_SUPPORTED in verdicts else SUPPORTED if all(v == SUPPORTED for v in verdicts)
               else INCONCLUSIVE)
    weakest = min(per_model, key=lambda r: r[1])
    parts.append(ClaimPart(
        "C3", "C3a", "every model transfers style features", f"all {len(per_model)} models",
        "relative drop of the Gram distance to the style image, reconstruction -> transfer (weakest model shown)",
        weakest[1], weakest[2], weakest[3], weakest[4], "content image (mean over styles)", verdict,
        "every model's 95% bootstrap interval above 0",
        "; ".join(f"{r}: {_ci(e, lo, hi)}" for r, e, lo, hi, _ in per_model)))
    for data in E.TRAINING_SETS:
        sizes = sizes_of(df, data)
        label = E.PAPER_LABELS.get(data, data)
        statement = "fewer content latents give a stronger style influence"
        if len(sizes) < 2:
            parts.append(_inconclusive("C3", "C3b", statement, label, f"fewer than 2 content sizes for {data}",
                                       "content image"))
            continue
        m = unit_matrix(df, data, "style_distance", "content_image", sizes)
        est, lo, hi = mean_rank_correlation(m, sizes, n_boot, seed)
        mc = unit_matrix(df, data, "content_distance", "content_image", sizes)
        ce, clo, chi = mean_rank_correlation(mc, sizes, n_boot, seed)
        parts.append(ClaimPart(
            "C3", "C3b", statement, label, "mean over content images of Spearman rho(content size, style distance)",
            est, lo, hi, len(m), "content image (mean over styles)", verdict_direction(lo, hi, +1),
            "95% bootstrap interval of mean rho above 0 (style distance grows with content size)",
            "mean style distance " + ", ".join(f"c{s}: {_fmt(v)}" for s, v in zip(sizes, m.mean(0)))
            + f"; content distance rho {_ci(ce, clo, chi)} (expected below 0): "
            + ", ".join(f"c{s}: {_fmt(v)}" for s, v in zip(sizes, mc.mean(0)))))
    common = sorted(set(sizes_of(df, "celeba")) & set(sizes_of(df, "mixed")), reverse=True)
    statement = "CelebA-only models are pulled toward the average CelebA face"
    if not common:
        parts.append(_inconclusive("C3", "C3c", statement, "both sets", "no content size trained on both sets",
                                   "content image"))
        return parts
    a, b = aligned_matrices(df, "mean_face_mse", "content_image", common)

    def rel(idx):
        return float((b[idx] - a[idx]).mean() / np.concatenate([a[idx], b[idx]]).mean())

    est, lo, hi = E.bootstrap_ci(len(a), rel, n_boot, seed=seed)
    ref = df.drop_duplicates("content_image")["mean_face_mse_content"].mean()
    parts.append(ClaimPart(
        "C3", "C3c", statement, f"sizes {common}",
        "relative difference of pixel MSE to the mean CelebA face, (mixed - CelebA-only) / mean", est, lo, hi,
        len(a), "content image (mean over styles)", verdict_direction(lo, hi, +1), "95% bootstrap interval above 0",
        "mean MSE to the mean face " + ", ".join(f"c{s}: CelebA-only {_fmt(x)} vs mixed {_fmt(y)}"
                                                  for s, x, y in zip(common, a.mean(0), b.mean(0)))
        + f"; the content images themselves: {_fmt(ref)}"))
    return parts


# --------------------------------------------------------------------------------------------------
# C4: the best balance of style and content
# --------------------------------------------------------------------------------------------------
def claim_c4(transfer: pd.DataFrame, n_boot: int = 1000, seed: int = 0, support_share: float = 0.8
             ) -> list[ClaimPart]:
    """C4: which model balances style and content best (:func:`wae_lib.evaluate.balance_scores`), and how often
    the paper's choice (mixed, content 256 or 128) wins over bootstrap resamples of the content images."""
    ranking = E.balance_ranking(transfer)
    runs = list(ranking["run"])
    keys = [(d, int(c)) for d, c in zip(ranking["data"], ranking["content_dim"])]
    in_paper = np.array([k in PAPER_BEST for k in keys])
    statement = "the best transfers come from the mixed-data models with content size 256 or 128"
    style = transfer.pivot_table(index="content_image", columns="run", values="style_distance")[runs].to_numpy()
    content = transfer.pivot_table(index="content_image", columns="run", values="content_distance")[runs].to_numpy()
    best = int(np.flatnonzero(ranking["best"])[0])
    rng = np.random.default_rng(seed)
    wins = np.zeros(len(runs))
    for _ in range(n_boot):
        idx = rng.integers(0, len(style), len(style))
        wins[E.best_by_balance(style[idx].mean(0), content[idx].mean(0))] += 1
    share = float(wins[in_paper].sum() / n_boot) if n_boot else float("nan")
    table = "; ".join(f"{r}: style {_fmt(s)}, content {_fmt(c)}, score {_fmt(sc)}, wins {int(w)}/{n_boot}"
                      for r, s, c, sc, w in zip(runs, ranking["style_distance"], ranking["content_distance"],
                                                ranking["score"], wins))
    if not in_paper.any():
        verdict = INCONCLUSIVE
        criterion = "the sweep has no mixed-data model with content size 256 or 128: the claim cannot be tested"
    else:
        criterion = (f"point winner is mixed c256/c128 and they win in >= {support_share:.0%} of bootstrap "
                     f"resamples (not supported: <= {1 - support_share:.0%})")
        if in_paper[best] and share >= support_share:
            verdict = SUPPORTED
        elif not in_paper[best] and share <= 1 - support_share:
            verdict = NOT_SUPPORTED
        else:
            verdict = INCONCLUSIVE
    return [ClaimPart(
        "C4", "C4", statement, f"{len(runs)} models", f"share of bootstrap resamples won by mixed c256/c128 "
        f"(point winner: {runs[best]})", share, float("nan"), float("nan"), len(style),
        "content image (mean over styles)", verdict, criterion,
        "criterion: smallest rank-normalised style distance + rank-normalised content distance; " + table,
        {"winner": runs[best]})]


# --------------------------------------------------------------------------------------------------
# building the report
# --------------------------------------------------------------------------------------------------
def read_table(tables_dir: str | Path, key: str, required: bool = True) -> pd.DataFrame | None:
    """One of the notebooks' tables; the error names the file and the notebook that writes it."""
    path = Path(tables_dir) / E.TABLE_FILES[key]
    if not path.is_file():
        if not required:
            return None
        raise FileNotFoundError(f"parameter tables_dir = {str(tables_dir)!r}: {path.name} is missing; run notebook "
                                f"{E.TABLE_WRITERS[key]}.ipynb with the same tables_dir first")
    return pd.read_csv(path)


def context_of(*tables: pd.DataFrame | None) -> E.EvalContext:
    """The profile / data / VGG context recorded in the tables' columns (all tables must agree)."""
    values = {}
    for col in ("profile", "data_source", "vgg_source", "scaled_note"):
        found = sorted({str(v) for t in tables if t is not None and col in t for v in t[col].fillna("").unique()})
        values[col] = " / ".join(found) if found else "unknown"
    note = "" if values["scaled_note"] == "unknown" else values["scaled_note"]
    return E.EvalContext(values["profile"], values["data_source"], values["vgg_source"], note)


def evaluate_claims(recon: pd.DataFrame, transfer: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                    equivalence_margin: float = 0.10, c4_support_share: float = 0.8) -> list[ClaimPart]:
    """Every claim part of C1-C4 from the notebooks' per-image and per-pair tables."""
    return (claim_c1(recon, n_boot, seed, equivalence_margin) + claim_c2(recon, n_boot, seed)
            + claim_c3(transfer, n_boot, seed) + claim_c4(transfer, n_boot, seed, c4_support_share))


def claims_frame(parts: Sequence[ClaimPart], ctx: E.EvalContext) -> pd.DataFrame:
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


def _model_summary(recon: pd.DataFrame, transfer: pd.DataFrame, n_boot: int, seed: int) -> str:
    order = list(dict.fromkeys(recon["run"]))
    out = []
    for set_name, g in recon.groupby("eval_set", sort=False):
        s = E.summarise(g, ["run"], list(RECON_METRICS), n_boot, seed).set_index("run").reindex(order).reset_index()
        cols = ["run", "n"] + [f"{m}" for m in RECON_METRICS]
        t = s[cols].copy()
        for m in RECON_METRICS:
            t[m] = [_ci(e, lo, hi) for e, lo, hi in zip(s[m], s[f"{m}_ci_low"], s[f"{m}_ci_high"])]
        if "face_in_reconstruction" in g and g["face_in_original"].notna().any():
            free = g[~g["face_in_original"].astype(bool)]
            t["face rate (face-free originals)"] = [
                _fmt(free.loc[free["run"] == r, "face_in_reconstruction"].astype(float).mean()) for r in order]
        out.append(f"**Reconstructions of `{set_name}`** (mean [95% bootstrap interval] over images)\n\n"
                   + markdown_table(t))
    cols = ["style_distance", "style_distance_recon", "content_distance", "content_distance_recon", "mean_face_mse"]
    per_image = transfer.groupby(["run", "content_image"], sort=False)[cols].mean().reset_index()
    s = E.summarise(per_image, ["run"], cols, n_boot, seed)
    t = s[["run", "n"]].copy()
    for m in cols:
        t[m] = [_ci(e, lo, hi) for e, lo, hi in zip(s[m], s[f"{m}_ci_low"], s[f"{m}_ci_high"])]
    n_styles = transfer["style_image"].nunique()
    out.append(f"**Transfers** (each content image averaged over {n_styles} styles; n = content images)\n\n"
               + markdown_table(t))
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


def claims_markdown(parts: Sequence[ClaimPart], ctx: E.EvalContext, recon: pd.DataFrame, transfer: pd.DataFrame,
                    fid: pd.DataFrame | None, n_boot: int, seed: int) -> str:
    """The text of reports/claims.md."""
    n_faces = recon.loc[recon["eval_set"] == "content_eval", "image"].nunique()
    counts = ", ".join(f"{s}: {recon.loc[recon['eval_set'] == s, 'image'].nunique()}" for s in recon["eval_set"].unique())
    lines = [
        "# The paper's claims as numbers (SPEC.md §5, C1-C4)", "",
        f"**{ctx.caption()}**", "",
        f"Models: {', '.join(dict.fromkeys(recon['run']))}. Images per evaluation set: {counts}; transfers: "
        f"{transfer['content_image'].nunique()} content x {transfer['style_image'].nunique()} style images per "
        f"model. Bootstrap: {n_boot} resamples of images (seed {seed}), 95% percentile intervals.", "",
    ]
    if ctx.profile == "smoke":
        lines += ["> **smoke profile: models trained for a few steps. These numbers test the pipeline; they say "
                  "nothing about the paper.**", ""]
    if n_faces < 30:
        lines += [f"> Small samples ({n_faces} held-out faces): expect wide intervals; an interval that includes "
                  f"0 is reported as *inconclusive*.", ""]
    lines += ["## Verdicts", "", markdown_table(pd.DataFrame({
        "part": [p.part for p in parts], "scope": [p.scope for p in parts], "tested": [p.statement for p in parts],
        "statistic": [p.statistic for p in parts], "estimate [95% CI]": [_ci(p.estimate, p.ci_low, p.ci_high)
                                                                         for p in parts],
        "n": [f"{p.n} ({p.unit})" for p in parts], "verdict": [f"**{p.verdict}**" for p in parts]})), ""]
    for claim in ("C1", "C2", "C3", "C4"):
        mine = [p for p in parts if p.claim == claim]
        lines += [f"## {claim}: {combined_verdict([p.verdict for p in mine])}", "", f"Paper: {CLAIM_STATEMENTS[claim]}",
                  ""]
        for p in mine:
            lines += [f"- **{p.part}** ({p.scope}): {p.statement}. {p.statistic} = {_ci(p.estimate, p.ci_low, p.ci_high)}"
                      f", n = {p.n} ({p.unit}). Rule: {p.criterion}. **{p.verdict}**.",
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
              f"makes the OpenCV Haar detector of wae_lib.data fire (64 px upscaled x{E.FACE_UPSCALE}).",
              "- Verdict rules: see the module docstring of `wae_lib.claims`."]
    return "\n".join(lines) + "\n"


def build_claims(tables_dir: str | Path = "reports/tables", reports_dir: str | Path = "reports", n_boot: int = 1000,
                 seed: int = 0, equivalence_margin: float = 0.10, c4_support_share: float = 0.8) -> pd.DataFrame:
    """Read the notebooks' tables, decide every claim part, write ``tables_dir/claims.csv`` and
    ``reports_dir/claims.md``; returns the claims table."""
    recon = read_table(tables_dir, "reconstruction")
    transfer = read_table(tables_dir, "transfer")
    fid = read_table(tables_dir, "fid", required=False)
    ctx = context_of(recon, transfer)
    parts = evaluate_claims(recon, transfer, n_boot, seed, equivalence_margin, c4_support_share)
    table = claims_frame(parts, ctx)
    Path(tables_dir).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(tables_dir) / "claims.csv", index=False)
    Path(reports_dir).mkdir(parents=True, exist_ok=True)
    (Path(reports_dir) / "claims.md").write_text(claims_markdown(parts, ctx, recon, transfer, fid, n_boot, seed))
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
        lines += [f"**{ctx.caption()}**", "", "## Claims (SPEC.md §5)", ""]
        for claim in ("C1", "C2", "C3", "C4"):
            mine = claims[claims["claim"] == claim]
            parts = ", ".join(f"{r.part} ({r.scope}): {r.verdict}" for r in mine.itertuples())
            lines.append(f"- **{claim}: {combined_verdict(list(mine['verdict']))}** ({parts}). "
                         f"{CLAIM_STATEMENTS[claim]}")
        lines += ["", f"Numbers, intervals and rules: [claims.md]({_rel(reports / 'claims.md', reports)})", ""]
    else:
        lines += ["Claims: not built yet (run notebook 06_claims.ipynb).", ""]
    lines += ["## Figures", ""]
    for png in sorted(figures.glob("*.png")):
        meta = png.with_suffix(".png.json")
        caption = json.loads(meta.read_text()).get("caption", "") if meta.is_file() else ""
        lines.append(f"- [{png.name}]({_rel(png, reports)})" + (f": {caption}" if caption else ""))
    lines += ["", "## Tables", ""]
    lines += [f"- [{p.name}]({_rel(p, reports)})" for p in sorted(tables.glob("*.csv"))]
    lines += ["", "## Executed notebooks", ""]
    found = sorted(notebooks.glob("*.ipynb")) if notebooks.is_dir() else []
    lines += [f"- [{p.name}]({_rel(p, reports)})" for p in found] or [f"- none found in {notebooks}"]
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / "index.md"
    path.write_text("\n".join(lines) + "\n")
    return path
