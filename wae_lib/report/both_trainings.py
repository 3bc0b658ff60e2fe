"""The paper's training and ours side by side (issue 16, item 3): the claims C1-C4 and Fig. 7 of two reports folders.

    python -m wae_lib both-trainings reports/reference-shared-data-large reports/ours-shared-data-large \
        --labels "paper's training" "ours" --out reports/both-trainings-shared-data-large

Each folder is what ``make reproduce`` (or notebooks 03-06) wrote for one profile on the same data:
``tables/claims.csv`` and ``figures/fig7_transfer.png``. Writes ``claims.md`` (one row per claim part: the
statistic, its 95% interval and the verdict under each training, and whether the verdict changed),
``claims_both.csv``, ``fig7_both.png`` (the two Fig. 7 grids next to each other, each titled) and, from the
per-model summaries of notebooks 03-04, ``per_model_both.csv`` / ``.png`` (each model's held-out PSNR, style and
content retrieval and identity under each training, the Reinhard floor beside). Nothing is
recomputed: a later stage reads what the earlier ones recorded.

Every input is read and checked (one label per folder, each table's columns) before the first write, the output
folder is never one of the inputs (it would replace that report's own claims.md), and files already in it are
replaced only with ``--replace``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from ..eval.claims import CLAIM_STATEMENTS
from ..eval.verdicts import fmt_ci
from ..utils import UserError, atomic_write_bytes, atomic_write_text

KEYS = ["claim", "part", "scope"]  # a claim part is the same test in both folders when these agree
CONTEXT = ["profile", "data_source", "vgg_source"]
OUTPUTS = ("claims.md", "claims_both.csv", "fig7_both.png", "per_model_both.csv", "per_model_both.png")
# the columns each table must have (the notebooks that write them: 06 claims, 04 transfer, 03 reconstruction)
NEEDED = {"claims.csv": KEYS + ["statement", "statistic", "estimate", "ci_low", "ci_high", "verdict", "data_source"],

          "transfer_summary.csv": ["run", "data"], "reconstruction_summary.csv": ["run", "eval_set", "psnr"]}

class ReportError(UserError, ValueError):
    """A reports folder or an argument that cannot be compared: one line from the command line."""

def read_table(path: Path) -> pd.DataFrame:
    """One of the tables of :data:`NEEDED`, with its columns and at least one row, or one line naming it."""
    try:
        table = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        raise ReportError(f"{path} is not a readable CSV table ({str(exc).splitlines()[0] if str(exc) else exc})"
                         ) from None
    missing = [c for c in NEEDED[path.name] if c not in table.columns]
    if missing:
        raise ReportError(f"{path} lacks the column(s) {', '.join(missing)} (it has {', '.join(map(str, table.columns))})")
    if not len(table):
        raise ReportError(f"{path} holds no rows")
    return table


def read_claims(folder: str | Path) -> pd.DataFrame:
    path = Path(folder) / "tables" / "claims.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run notebook 06 (make claims) for that profile first")
    return read_table(path)


def side_by_side(tables: Sequence[pd.DataFrame], labels: Sequence[str]) -> pd.DataFrame:
    """One row per claim part found in every table: statement, then ``<label>: estimate [CI]`` and ``<label>:
    verdict`` per training, and ``verdict changed``. Refuses tables on different data (the comparison would
    mix the data with the training)."""
    sources = {str(t["data_source"].iloc[0]) for t in tables}
    if len(sources) != 1:
        raise ReportError(f"the claims come from different data {sorted(sources)}: compare trainings on the same data")
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


# per model, on the held-out faces: what notebooks 03-04 recorded (tables/*_summary.csv), column -> header
PER_MODEL = {"psnr": "PSNR (dB)", "style_retrieval_gram": "style retr. Gram", "style_retrieval_color":
             "style retr. Lab", "content_retrieval": "content retr.", "identity_match": "identity kept"}


def per_model(folders: Sequence[str | Path], labels: Sequence[str]) -> pd.DataFrame:
    """One row per model and training: held-out reconstruction PSNR (content_eval) and the transfer measures of
    notebook 04 (the Reinhard reference row once, from the first folder). Missing columns are skipped."""
    rows = []
    for i, (folder, label) in enumerate(zip(folders, labels)):
        tables = Path(folder) / "tables"
        transfer = read_table(tables / "transfer_summary.csv")
        recon = read_table(tables / "reconstruction_summary.csv")
        psnr = recon[recon["eval_set"] == "content_eval"].set_index("run")["psnr"]
        for _, r in transfer.iterrows():
            reference = r["data"] == "reference"
            if reference and i > 0:
                continue
            row = {"run": r["run"], "training": "(no training)" if reference else label,
                   "psnr": psnr.get(r["run"], float("nan"))}
            row.update({c: r[c] for c in PER_MODEL if c in r and c != "psnr"})
            rows.append(row)
    return pd.DataFrame(rows)


def per_model_markdown(table: pd.DataFrame) -> str:
    cols = [c for c in PER_MODEL if c in table]
    lines = ["| model | training | " + " | ".join(PER_MODEL[c] for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for _, r in table.sort_values(["run", "training"], key=lambda s: s.map(str)).iterrows():
        cells = ["-" if pd.isna(r[c]) else f"{r[c]:.3g}" for c in cols]
        lines.append(f"| {r['run']} | {r['training']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_per_model(table: pd.DataFrame, labels: Sequence[str], out: Path | io.BytesIO) -> Path | io.BytesIO:
    """One panel per measure: the models in the paper's order on x, one line per training, the floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in PER_MODEL if c in table]
    runs = list(dict.fromkeys(table.loc[table["training"] != "(no training)", "run"]))
    fig, axes = plt.subplots(1, len(cols), figsize=(3.4 * len(cols), 3.4), squeeze=False)
    for ax, c in zip(axes[0], cols):
        for label, marker in zip(labels, "os^v"):
            t = table[table["training"] == label].set_index("run").reindex(runs)
            ax.plot(range(len(runs)), t[c], marker=marker, label=label)
        floor = table.loc[table["training"] == "(no training)", c]
        if len(floor) and pd.notna(floor.iloc[0]):
            ax.axhline(floor.iloc[0], ls="--", c="grey", lw=1, label="Reinhard (floor)")
        ax.set_xticks(range(len(runs)), runs, rotation=70, fontsize=7)
        ax.set_title(PER_MODEL[c], fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("held-out faces and styles, per model: the two trainings", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100, format="png")
    plt.close(fig)
    return out


def figures_side_by_side(paths: Sequence[Path], labels: Sequence[str], gap: int = 24, title_h: int = 28) -> Image.Image:
    """The figures next to each other on white, each under its label."""
    images = []
    for p in paths:
        try:
            images.append(Image.open(p).convert("RGB"))
        except OSError as exc:  # not an image, truncated
            raise ReportError(f"{p} is not a readable image ({exc})") from None
    width = sum(im.width for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, title_h + max(im.height for im in images)), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, label in zip(images, labels):
        draw.text((x + 4, 8), label, fill="black")
        canvas.paste(im, (x, title_h))
        x += im.width + gap
    return canvas


def check_output(folders: Sequence[str | Path], labels: Sequence[str], out: Path, replace: bool) -> None:
    """One label per folder, each its own; ``out`` none of the inputs; its files replaced only when asked."""
    if len(folders) != len(labels) or len(folders) < 2:
        raise ReportError(f"give two or more reports folders and one label each (got {len(folders)} and {len(labels)})")
    twice = next((label for label in labels if list(labels).count(label) > 1), None)
    if twice is not None:
        raise ReportError(f"--labels: {twice!r} is given twice; give each folder its own label")
    inputs = [f for f in folders if Path(f).resolve() == out.resolve()]
    if inputs:
        raise ReportError(f"--out {out} is the input folder {inputs[0]} (its own claims.md would be replaced); "
                         f"write the comparison into a folder of its own")
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file, not a folder")
    existing = [name for name in OUTPUTS if (out / name).exists()]
    if existing and not replace:
        raise ReportError(f"--out {out} already holds {', '.join(existing)}; give --replace to replace them, or "
                         f"another --out")


def build(folders: Sequence[str | Path], labels: Sequence[str], out: str | Path, replace: bool = False) -> Path:
    out = Path(out)
    check_output(folders, labels, out, replace)
    tables = [read_claims(f) for f in folders]
    table = side_by_side(tables, labels)
    rel = [str(Path(os.path.relpath(Path(f), out))) for f in folders]
    text = markdown(table, tables, labels, rel)
    files: dict[str, str | bytes] = {}  # everything is made before the first write
    if all((Path(f) / "tables" / "transfer_summary.csv").is_file() for f in folders):
        models = per_model(folders, labels)
        files["per_model_both.csv"] = models.to_csv(index=False)
        files["per_model_both.png"] = plot_per_model(models, labels, io.BytesIO()).getvalue()
        text += ("\n## Per model (notebooks 03-04's held-out tables)\n\n![per model](per_model_both.png)\n\n"
                 + per_model_markdown(models) + "\n")
    figs = [Path(f) / "figures" / "fig7_transfer.png" for f in folders]
    if all(p.is_file() for p in figs):
        buf = io.BytesIO()
        figures_side_by_side(figs, labels).save(buf, format="PNG")
        files["fig7_both.png"] = buf.getvalue()
    files.update({"claims.md": text + "\n", "claims_both.csv": table.to_csv(index=False)})
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (atomic_write_text if isinstance(data, str) else atomic_write_bytes)(out / name, data)
    return out
