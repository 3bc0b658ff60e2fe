"""The style-identity frontier (issue 33 item 4) of every scorecard row the study has, one figure and one table (the
command: ``python -m wae_lib frontier T.csv[=GROUP] ... --out F.png``, wae_lib.commands.frontier).

The tables are ``python -m wae_lib scorecard`` outputs and the ablations' ``export`` scorecards. Rows are only put
side by side when they were scored on the same held-out pairs: every table carries the Reinhard floor row
(wae_lib.eval.scorecard.FLOOR_RUN), which depends on nothing but those pairs, so tables whose floor rows differ are
refused (other held-out sets, another size, another n_content). Each row's kind (the figure's colours) follows from its run
name: a shipped model's name, a baseline's (adain, wct, gatys ...), else ``GROUP`` of ``T.csv=GROUP`` (default
ablation).
"""

from __future__ import annotations

from pathlib import Path

FLOOR_KEYS = ("style_retrieval_gram", "style_retrieval_color", "content_retrieval", "identity_match")


def kind(run: str, default: str) -> str:
    """shipped | baseline | ``default``: the frontier's colour of a scorecard row, from its run name."""
    from ..baselines.build import BASELINES
    from ..config import SHIPPED_MODELS

    first = str(run).split()[0].lower()
    return "shipped" if run in SHIPPED_MODELS else "baseline" if first in BASELINES else default


def frontier_table(specs: list[str]):
    """One table of every row of ``specs`` (``path[=group]``) with one floor row, after checking that every table
    was scored on the same held-out pairs."""
    import numpy as np
    import pandas as pd

    from ..eval.scorecard import FLOOR_RUN
    from ..utils import UserError

    parts, floor = [], None
    for spec in specs:
        path, _, group = spec.partition("=")
        if not Path(path).is_file():
            raise UserError(f"{path}: no such scorecard table")
        table = pd.read_csv(path)
        missing = [c for c in ("run", *FLOOR_KEYS) if c not in table]
        if missing:
            raise UserError(f"{path}: not a scorecard table (no column {', '.join(missing)})")
        is_floor = table["run"] == FLOOR_RUN
        if not is_floor.any():
            raise UserError(f"{path}: no {FLOOR_RUN!r} row, so nothing shows which held-out pairs it was scored on")
        this = table.loc[is_floor, list(FLOOR_KEYS)].iloc[0].to_numpy(float)
        if floor is None:
            floor = table.loc[is_floor].assign(group="floor")
        elif not np.allclose(this, floor[list(FLOOR_KEYS)].iloc[0].to_numpy(float), atol=1e-6, equal_nan=True):
            raise UserError(f"{path}: its floor row differs from {specs[0].partition('=')[0]}'s: scored on other "
                            f"held-out pairs (sets, --size or --n-content), so its rows are not comparable")
        rows = table.loc[~is_floor].copy()
        rows["group"] = [kind(run, group or "ablation") for run in rows["run"]]
        parts.append(rows)
    out = pd.concat([floor, *parts], ignore_index=True)
    out["style_carried"] = (out["style_retrieval_gram"] + out["style_retrieval_color"]) / 2
    return out
