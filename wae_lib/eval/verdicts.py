"""What the claims of wae_lib.eval.claims are made of: a tested claim part with the numbers behind its verdict
(:class:`ClaimPart`), the verdict rules (an interval on the claimed side of 0; equivalence within a margin), the
per-image panels of the notebooks' tables (unit = image; columns = models, seeds kept apart) and how the numbers
are printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import stats as S
from . import tables as T
from .stats import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED


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


def model_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of trained models (reference rows such as Reinhard 2001 never enter a verdict)."""
    return df[T.is_model_row(df)] if "data" in df else df


def sizes_of(df: pd.DataFrame, data: str) -> list[int]:
    """Content sizes trained for a training set, largest first (paper order)."""
    return sorted({int(c) for c in df.loc[df["data"] == data, "content_dim"]}, reverse=True)


def panel(df: pd.DataFrame, value: str | Sequence[str], unit: str | Sequence[str], datas: Sequence[str],
          sizes: Sequence[int]) -> S.Panel:
    """:func:`wae_lib.eval.stats.panel_from_table` with columns (set, size) for every set of ``datas`` x ``sizes``."""
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


def fmt_number(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}"


def fmt_ci(est: float, lo: float, hi: float) -> str:
    return f"{fmt_number(est)} [{fmt_number(lo)}, {fmt_number(hi)}]"
