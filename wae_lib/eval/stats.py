"""Statistics of the evaluation tables and the claim verdicts: bootstrap intervals, ranks, group summaries, a
bootstrap over seeds and images, and C4's test against chance.

* :func:`bootstrap_ci` / :func:`bootstrap_mean_ci` / :func:`summarise`: percentile bootstrap intervals over
  independent units (an image), as every summary table of notebooks 03-05 reports them; :func:`rankdata`,
  :func:`spearman`: average ranks and rank correlation.
* :class:`Panel`: per-image values of several models (one column per training set x content size) with each
  model's seeds kept apart. A bootstrap draw resamples each model's seeds (training runs are the outer unit:
  a second seed is a new model, not more images), then the images (the same images for every model, so
  comparisons stay paired). With one seed per model a draw resamples images only, exactly as
  :func:`bootstrap_ci` does with the same ``seed`` (same random stream, same numbers).
* :func:`c4_verdict`: "the best model is one of the paper's candidates" judged against the chance that a
  candidate wins when every model is equally good (candidates / models).

* :func:`crossed_mean_ci`: the mean of a crossed table (every content face x every style image, as notebook 07's
  pairs) with the pigeonhole bootstrap, which resamples rows and columns independently: both the faces and the
  styles are samples, so an interval over pairs alone would treat 48 pairs of 8 faces x 6 styles as 48 units.

References: Owen (2007), "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2) (crossed random effects: resample
rows and columns independently; the interval is conservative rather than too narrow); Davison & Hinkley (1997), *Bootstrap Methods and their Application*, §3.8 (hierarchical data:
resample the outer stage); Hall & Miller (2009), "Using the bootstrap to quantify the authority of an
empirical ranking", Ann. Statist. 37 (the bootstrap share of wins as the evidence for "model X is best").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"

# C4 rule (our reading; the paper names its best models by eye). chance = candidates / models.
C4_MARGIN = 0.3  # supported: candidates win in >= max(C4_FLOOR, chance + C4_MARGIN) of the resamples ...
C4_FLOOR = 0.7  # ... and the point winner is a candidate (0.7: identical models rarely reach it)
C4_REFUTE = 0.05  # not supported: candidates win in <= this share (the 95% bootstrap set of winners holds no
#   candidate) AND one non-candidate model passes the same bar as "supported" would ask of the candidates


# --------------------------------------------------------------------------------------------------
# bootstrap intervals over independent units, ranks
# --------------------------------------------------------------------------------------------------
def percentile_interval(draws: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` interval of bootstrap draws (NaN, NaN when there are none)."""
    v = np.asarray(draws, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))


def bootstrap_ci(n_units: int, statistic: Callable[[np.ndarray], float], n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """(point, low, high): percentile bootstrap of ``statistic(indices)`` over ``n_units`` resampled units.

    ``statistic`` receives an index array (the identity for the point estimate, a resample with replacement
    otherwise) so that paired and grouped data are resampled by their unit (an image), never by row.
    Resamples where the statistic is NaN are dropped; all-NaN gives NaN bounds.
    """
    point = float(statistic(np.arange(n_units)))
    if n_units < 2 or n_boot < 1:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)]
    return (point, *percentile_interval(draws, level))


def bootstrap_mean_ci(values: Sequence[float], n_boot: int = 1000, level: float = 0.95, seed: int = 0
                      ) -> tuple[float, float, float]:
    """Mean of ``values`` with its percentile bootstrap interval."""
    v = np.asarray(values, dtype=float)
    return bootstrap_ci(len(v), lambda i: float(np.mean(v[i])) if len(v) else float("nan"), n_boot, level, seed)


def crossed_mean_ci(values: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                    ) -> tuple[float, float, float]:
    """(mean, low, high) of a rows x columns table (e.g. faces x styles) by the pigeonhole bootstrap (Owen 2007):
    each draw resamples the rows and, independently, the columns with replacement and averages the cells they
    select (a cell drawn as row twice and column twice counts four times). NaN cells are left out of every mean;
    fewer than 2 rows or 2 columns give NaN bounds (no spread to resample). The same ``seed`` and shape give
    the same draws, so the intervals of several methods on the same pairs come from the same resamples."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"crossed_mean_ci expects a rows x columns table, got shape {v.shape}")
    ok = np.isfinite(v)
    filled = np.where(ok, v, 0.0)
    point = float(filled.sum() / ok.sum()) if ok.any() else float("nan")
    n_rows, n_cols = v.shape
    if n_rows < 2 or n_cols < 2 or n_boot < 1:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        w_rows = np.bincount(rng.integers(0, n_rows, n_rows), minlength=n_rows).astype(float)
        w_cols = np.bincount(rng.integers(0, n_cols, n_cols), minlength=n_cols).astype(float)
        den = w_rows @ ok @ w_cols
        draws.append(w_rows @ filled @ w_cols / den if den > 0 else float("nan"))
    return (point, *percentile_interval(draws, level))


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN when either side is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def summarise(df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], n_boot: int = 1000, seed: int = 0
              ) -> pd.DataFrame:
    """Per group of ``by``: mean, bootstrap interval and n of each metric (rows are independent units)."""
    records = []
    for key, g in df.groupby(list(by), sort=False):
        rec = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        rec["n"] = len(g)
        for m in metrics:
            mean, lo, hi = bootstrap_mean_ci(g[m].to_numpy(dtype=float), n_boot, seed=seed)
            rec.update({m: mean, f"{m}_ci_low": lo, f"{m}_ci_high": hi})
        records.append(rec)
    return pd.DataFrame.from_records(records)


# --------------------------------------------------------------------------------------------------
# a panel: units (images) x models, seeds kept apart
# --------------------------------------------------------------------------------------------------
@dataclass
class Draw:
    """One bootstrap resample: seed indices per model column (None: all seeds) and unit indices."""

    seeds: list[np.ndarray | None]
    units: np.ndarray


@dataclass
class Panel:
    """``values[name][j]``: n_seeds_j x n_units array of model column ``columns[j]``; rows of every array refer
    to the same units (``units``), seeds to that column's ``seeds[j]``."""

    columns: list[tuple]
    seeds: list[list[int]]
    units: list
    values: dict[str, list[np.ndarray]]

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def several_seeds(self) -> bool:
        return any(len(s) > 1 for s in self.seeds)

    def seeds_note(self) -> str:
        """How many seeds the statistics rest on, for tables: ``1`` or e.g. ``3`` or ``1-3 (per model)``."""
        counts = sorted({len(s) for s in self.seeds})
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]} (per model)"

    def draw(self, rng: np.random.Generator) -> Draw:
        """Seeds first (each model's own, with replacement; only where a model has several), then units."""
        seeds = [rng.integers(0, len(s), len(s)) if len(s) > 1 else None for s in self.seeds]
        return Draw(seeds, rng.integers(0, self.n_units, self.n_units))

    def matrix(self, name: str, draw: Draw | None = None) -> np.ndarray:
        """n_units x n_columns: each column's mean over its (resampled) seeds, rows (resampled) units."""
        cols = []
        for j, arr in enumerate(self.values[name]):
            rows = arr if draw is None or draw.seeds[j] is None else arr[draw.seeds[j]]
            cols.append(rows.mean(0))
        m = np.stack(cols, axis=1) if cols else np.zeros((self.n_units, 0))
        return m if draw is None else m[draw.units]

    def matrices(self, draw: Draw | None = None) -> dict[str, np.ndarray]:
        return {name: self.matrix(name, draw) for name in self.values}


def panel_from_table(df: pd.DataFrame, values: str | Sequence[str], unit: str | Sequence[str],
                     columns: Sequence[tuple[str, int]]) -> Panel:
    """A :class:`Panel` of the long table ``df`` (one row per model run x unit x ..., columns data,
    content_dim, seed (0 when absent), ``unit`` and ``values``). Rows of a unit within one run are averaged
    (e.g. a content image over styles). Units are kept when every (column, seed) has a finite value for them."""
    names = [values] if isinstance(values, str) else list(values)
    units = [unit] if isinstance(unit, str) else list(unit)
    df = df if "seed" in df else df.assign(seed=0)
    pieces, seeds = [], []
    for data, size in columns:
        sub = df[(df["data"] == data) & (df["content_dim"].astype(int) == int(size))]
        table = sub.groupby(["seed"] + units)[names].mean().unstack("seed")  # units x (value, seed)
        pieces.append(table)
        seeds.append(sorted({int(s) for s in sub["seed"]}))
    common = None
    for t in pieces:
        ok = t.index[np.isfinite(t.to_numpy(dtype=float)).all(axis=1)]
        common = ok if common is None else common.intersection(ok)
    common = list(common.sort_values()) if common is not None else []
    vals = {n: [t.loc[common, n].to_numpy(dtype=float).T for t in pieces] for n in names}
    return Panel([tuple(c) for c in columns], seeds, common, vals)


def bootstrap_panel(panel: Panel, statistic: Callable[[dict[str, np.ndarray]], float], n_boot: int = 1000,
                    level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(point, low, high): percentile bootstrap of ``statistic(matrices)`` over :meth:`Panel.draw` resamples.
    ``statistic`` gets ``{value name: units x columns}``; NaN draws are dropped (as in :func:`bootstrap_ci`)."""
    point = float(statistic(panel.matrices()))
    if panel.n_units < 2 or n_boot < 1:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = [statistic(panel.matrices(panel.draw(rng))) for _ in range(n_boot)]
    return (point, *percentile_interval(draws, level))


def rowwise_spearman(x: Sequence[float], matrix: np.ndarray) -> np.ndarray:
    """Spearman correlation of ``x`` with each row of ``matrix`` (average ranks for ties); NaN for a
    constant row (the same as :func:`spearman`, vectorised for the bootstrap)."""
    from scipy.stats import rankdata as scipy_rankdata

    m = np.asarray(matrix, float)
    rx = scipy_rankdata(np.asarray(x, float))
    ry = scipy_rankdata(m, axis=1)
    rx, ry = rx - rx.mean(), ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx ** 2).sum() * (ry ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ry @ rx) / den
    rho[den == 0] = np.nan
    return rho


def nanmean(v: np.ndarray) -> float:
    """Mean of the finite entries, NaN when there is none (no warning)."""
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


# --------------------------------------------------------------------------------------------------
# C4: is the best model one of the paper's candidates?
# --------------------------------------------------------------------------------------------------
def win_counts(panel: Panel, winner: Callable[[dict[str, np.ndarray]], int], n_boot: int, seed: int = 0
               ) -> tuple[int, np.ndarray]:
    """(point winner, how many of ``n_boot`` resamples each model column wins); ``winner`` gets each value's
    per-column means ``{name: n_columns}`` of a resample and returns a column index."""
    def means(draw):
        return {name: m.mean(0) for name, m in panel.matrices(draw).items()}

    point = winner(means(None))
    wins = np.zeros(len(panel.columns), dtype=int)
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        wins[winner(means(panel.draw(rng)))] += 1
    return point, wins


def c4_chance(is_candidate: Sequence[bool]) -> float:
    """Chance that a candidate wins when all models are equally good: candidates / models."""
    c = np.asarray(is_candidate, bool)
    return float(c.mean()) if len(c) else float("nan")


def c4_bar(chance: float, margin: float = C4_MARGIN, floor: float = C4_FLOOR) -> float:
    """Share of resamples a group of models must win to count as "the best": clearly above its chance."""
    return max(floor, chance + margin)


def c4_verdict(wins: np.ndarray, is_candidate: Sequence[bool], point_winner: int, margin: float = C4_MARGIN,
               floor: float = C4_FLOOR, refute: float = C4_REFUTE) -> tuple[str, str]:
    """(verdict, rule as text) for "the best model is one of the candidates", from bootstrap win counts.

    * supported: the point winner is a candidate and the candidates win in >= max(floor, chance + margin)
      of the resamples;
    * not supported: the candidates win in <= ``refute`` of the resamples *and* one non-candidate model wins
      in >= max(floor, 1/models + margin) of them (a specific other model is best, by the bar the candidates
      would have to pass);
    * otherwise inconclusive, in particular whenever the models are too alike to rank: with identical models
      the winner moves from resample to resample and neither bar is reached (tests/test_stats.py).
    """
    c = np.asarray(is_candidate, bool)
    n = max(1, int(wins.sum()))
    chance = c4_chance(c)
    share = float(wins[c].sum() / n)
    bar, other_bar = c4_bar(chance, margin, floor), c4_bar(1 / len(c), margin, floor)
    best_other = float(wins[~c].max() / n) if (~c).any() else 0.0
    rule = (f"chance = {c.sum()}/{len(c)} = {chance:.2f}; supported: point winner is a candidate and candidates "
            f"win >= {bar:.2f} of resamples; not supported: candidates win <= {refute:.2f} and one other model "
            f"wins >= {other_bar:.2f}")
    if c[point_winner] and share >= bar:
        return SUPPORTED, rule
    if share <= refute and best_other >= other_bar:
        return NOT_SUPPORTED, rule
    return INCONCLUSIVE, rule
