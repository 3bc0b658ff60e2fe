"""The paper's training and ours side by side (issue 16, item 3): the claims C1-C4 and Fig. 7 of two reports folders.

    python -m wae_lib.both_trainings reports/reference-shared-data-large reports/ours-shared-data-large \
        --labels "paper's training" "ours" --out reports/both-trainings-shared-data-large

Each folder is what ``make reproduce`` (or notebooks 03-06) wrote for one profile on the same data:
``tables/claims.csv`` and ``figures/fig7_transfer.png``. Writes ``claims.md`` (one row per claim part: the
statistic, its 95% interval and the verdict under each training, and whether the verdict changed),
``claims_both.csv`` and ``fig7_both.png`` (the two Fig. 7 grids next to each other, each titled). Nothing is
recomputed: a later stage reads what the earlier ones recorded.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from .claims import CLAIM_STATEMENTS, fmt_ci
from .utils import atomic_write_text

KEYS = ["claim", "part", "scope"]  # a claim part is the same test in both folders when these agree
CONTEXT = ["profile", "data_source", "vgg_source"]


def read_claims(folder: str | Path) -> pd.DataFrame:
    path = Path(folder) / "tables" / "claims.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run notebook 06 (make claims) for that profile first")
    return pd.read_csv(path)


def side_by_side(tables: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """One row per claim part found in every table: statement, then ``<label>: estimate [CI]`` and ``<label>:
    verdict`` per training, and ``verdict changed``. Refuses tables on different data (the comparison would
    mix the data with the training)."""
    sources = {str(t["data_source"].iloc[0]) for t in tables}
    if len(sources) != 1:
        raise ValueError(f"the claims come from different data {sorted(sources)}: compare trainings on the same data")
    merged = None
    for t, label in zip(tables, labels):
        cols = t.assign(**{f"{label}: estimate [95% CI]": [fmt_ci(*v) for v in zip(t["estimate"], t["ci_low"],
                                                                                 t["ci_high"])],
                           f"{label}: verdict": t["verdict"]})
        keep = KEYS + (["statement", "statistic"] if merged is None else []) + [
            f"{label}: estimate [95% CI]", f"{label}: verdict"]
        cols = cols[keep]
        merged = cols if merged is None else merged.merge(cols, on=KEYS, how="inner")
    verdicts = merged[[f"{label}: verdict" for label in labels]]
    return merged.assign(**{"verdict changed": verdicts.nunique(axis=1) > 1})


def markdown(table: pd.DataFrame, tables: Sequence[pd.DataFrame], labels: Sequence[str], folders: Sequence[str]) -> str:
    lines = ["# The paper's claims under both trainings", ""]
    for label, t, folder in zip(labels, tables, folders):
        ctx = ", ".join(f"{c}={t[c].iloc[0]}" for c in CONTEXT if c in t)
        note = str(t["scaled_note"].iloc[0]) if "scaled_note" in t and pd.notna(t["scaled_note"].iloc[0]) else ""
        lines.append(f"- **{label}**: [{folder}]({folder}/claims.md) ({ctx}){'; ' + note if note else ''}")
    changed = int(table["verdict changed"].sum())
    lines += ["", f"{changed} of {len(table)} claim parts change verdict between the trainings.", ""]
    for claim in ("C1", "C2", "C3", "C4"):
        rows = table[table["claim"] == claim]
        if not len(rows):
            continue
        lines += [f"## {claim}", "", f"The paper says: \"{CLAIM_STATEMENTS[claim]}\"", ""]
        cols = ["part", "scope"] + [c for label in labels for c in (f"{label}: estimate [95% CI]",
                                                                   f"{label}: verdict")] + ["verdict changed"]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for _, r in rows.iterrows():
            lines.append("| " + " | ".join(str(r[c]) if c != "verdict changed" else ("**yes**" if r[c] else "no")
                                           for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def figures_side_by_side(paths: Sequence[Path], labels: Sequence[str], gap: int = 24, title_h: int = 28) -> Image.Image:
    """The figures next to each other on white, each under its label."""
    images = [Image.open(p).convert("RGB") for p in paths]
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, title_h + max(im.height for im in images)), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, label in zip(images, labels):
        draw.text((x + 4, 8), label, fill="black")
        canvas.paste(im, (x, title_h))
        x += im.width + gap
    return canvas


def build(folders: Sequence[str | Path], labels: Sequence[str], out: str | Path) -> Path:
    if len(folders) != len(labels) or len(folders) < 2:
        raise ValueError(f"give two or more reports folders and one label each (got {len(folders)} and {len(labels)})")
    tables = [read_claims(f) for f in folders]
    table = side_by_side(tables, labels)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rel = [str(Path(os.path.relpath(Path(f), out))) for f in folders]
    atomic_write_text(out / "claims.md", markdown(table, tables, labels, rel) + "\n")
    atomic_write_text(out / "claims_both.csv", table.to_csv(index=False))
    figs = [Path(f) / "figures" / "fig7_transfer.png" for f in folders]
    if all(p.is_file() for p in figs):
        figures_side_by_side(figs, labels).save(out / "fig7_both.png")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wae_lib.both_trainings", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="reports folders, one per training, on the same data")
    ap.add_argument("--labels", nargs="+", required=True, help="one label per folder")
    ap.add_argument("--out", required=True, help="folder for claims.md, claims_both.csv and fig7_both.png")
    a = ap.parse_args(argv)
    try:
        out = build(a.folders, a.labels, a.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}/claims.md, claims_both.csv" + (", fig7_both.png" if (out / "fig7_both.png").is_file() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
