"""The paper's Figures 5-7 and the transfer extras (each PNG with a JSON sidecar of its layout), and the training
and comparison plots. Every figure carries row labels and a caption naming profile, data and VGG source; the grids
they are drawn with are wae_lib.grids."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..grids import PAD, blank_cells, grid_geometry, grid_layout, save_grid
from ..utils import atomic_write_text


# --------------------------------------------------------------------------------------------------
# Figures 5-7 of the paper (SPEC §5) and the transfer extras: each PNG gets a JSON sidecar with its layout
# --------------------------------------------------------------------------------------------------
def save_figure(path: str | Path, rows: Sequence[torch.Tensor], row_labels: Sequence[str] | None = None,
                col_labels: Sequence[str] | None = None, caption: str = "") -> dict:
    """Save a labelled grid as PNG plus ``<path>.json`` (layout, labels, caption, pixel geometry) and return
    that layout: tests and reports read the sidecar instead of guessing the caption's line count."""
    path = Path(path)
    save_grid(path, rows, row_labels=row_labels, col_labels=col_labels, caption=caption)
    lay = grid_layout(rows, row_labels, col_labels, caption)
    geo = grid_geometry(lay["n_rows"], lay["n_cols"], lay["label_width"], lay["has_col_labels"],
                        len(lay["caption_lines"]), lay["cell"])
    meta = {"file": path.name, "n_rows": lay["n_rows"], "n_cols": lay["n_cols"], "label_width": lay["label_width"],
            "has_col_labels": lay["has_col_labels"], "caption_lines": len(lay["caption_lines"]),
            "row_labels": list(row_labels or []), "col_labels": list(col_labels or []), "caption": caption,
            "geometry": geo, "cell": lay["cell"], "pad": PAD}
    atomic_write_text(path.with_suffix(path.suffix + ".json"), json.dumps(meta, indent=2))  # after the PNG it describes
    return meta


def _on(model, x: torch.Tensor) -> torch.Tensor:
    return x.to(next(model.parameters()).device)


def style_images_figure(path: str | Path, styles: torch.Tensor, names: Sequence[str], caption: str) -> dict:
    """Fig. 5: the style images used, one row, each column named."""
    return save_figure(path, [styles], row_labels=["style"], col_labels=list(names), caption=caption)


@torch.no_grad()
def reconstruction_figure(path: str | Path, runs, models, originals: torch.Tensor, caption: str) -> dict:
    """Fig. 6 (left: content images, right: style images): row 1 the originals, then one row of
    reconstructions per model in the paper's order, labelled with training set and content size."""
    rows = [originals] + [model.reconstruct(_on(model, originals)).cpu() for model in models]
    return save_figure(path, rows, ["original"] + [r.label for r in runs], caption=caption)


@torch.no_grad()
def transfer_figure(path: str | Path, runs, models, content: torch.Tensor, styles: torch.Tensor, caption: str
                    ) -> dict:
    """Fig. 7: row 1 content, row 2 style, then one row per model: content i with the style of column i."""
    rows = [content, styles] + [model.transfer(_on(model, content), _on(model, styles)).cpu() for model in models]
    return save_figure(path, rows, ["content", "style"] + [r.label for r in runs], caption=caption)


@torch.no_grad()
def transfer_matrix_figure(path: str | Path, model, content: torch.Tensor, styles: torch.Tensor,
                           style_labels: Sequence[str], caption: str) -> dict:
    """Every content image (rows) with every style (columns); row 1 shows the styles, column 1 the contents."""
    rows = [torch.cat([blank_cells(), styles])]
    for i in range(len(content)):
        c = content[i:i + 1]
        rows.append(torch.cat([c, model.transfer(_on(model, c.expand(len(styles), -1, -1, -1)),
                                                 _on(model, styles)).cpu()]))
    return save_figure(path, rows, ["style"] + [f"content {i + 1}" for i in range(len(content))],
                       col_labels=["content"] + list(style_labels), caption=caption)


@torch.no_grad()
def strength_figure(path: str | Path, model, content: torch.Tensor, style: torch.Tensor,
                    strengths: Sequence[float], caption: str) -> dict:
    """Style strength: the style latent moved from the content image's own (0) to the style image's (1);
    one row per content image: content, outputs at each strength, the style image."""
    rows = []
    for i in range(len(content)):
        c = _on(model, content[i:i + 1])
        outs = [model.transfer(c, _on(model, style[:1]), strength=float(s)).cpu() for s in strengths]
        rows.append(torch.cat([content[i:i + 1], *outs, style[:1].cpu()]))
    return save_figure(path, rows, [f"content {i + 1}" for i in range(len(content))],
                       col_labels=["content"] + [f"s={s:g}" for s in strengths] + ["style"], caption=caption)


@torch.no_grad()
def interpolation_figure(path: str | Path, model, content: torch.Tensor, style_a: torch.Tensor,
                         style_b: torch.Tensor, alphas: Sequence[float], caption: str) -> dict:
    """Style interpolation: the style latent on the line from style A (0) to style B (1). Row 1 shows A above
    the alpha=0 column and B above alpha=1; then one row per content image."""
    n = len(alphas)
    top = [blank_cells(), style_a[:1].cpu(), blank_cells(n - 2), style_b[:1].cpu()] if n >= 2 else [blank_cells(n + 1)]
    out = model.interpolate_styles(_on(model, content), _on(model, style_a[:1]), _on(model, style_b[:1]), alphas)
    rows = [torch.cat(top)] + [torch.cat([content[i:i + 1], out[:, i].cpu()]) for i in range(len(content))]
    return save_figure(path, rows, ["styles A, B"] + [f"content {i + 1}" for i in range(len(content))],
                       col_labels=["content"] + [f"a={a:g}" for a in alphas], caption=caption)


# --------------------------------------------------------------------------------------------------
# training curves (notebook 02)
# --------------------------------------------------------------------------------------------------
def plot_training_log(log, title: str = ""):
    """One panel per loss term (raw, log scale) plus the weighted total; ``log`` is read_training_log()."""
    import matplotlib.pyplot as plt

    terms = [c for c in log.columns if c.startswith(("pixel", "feature/", "gram/")) or c in ("tv", "penalty", "loss")]
    cols = 4
    rows = -(-len(terms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        ax.plot(log["step"], log[term], lw=1)
        ax.set_yscale("log")
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        if "calibrated" in log and log["calibrated"].any():
            ax.axvline(log.loc[log["calibrated"].idxmax(), "step"], color="grey", ls=":", lw=1)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    fixed = "calibrated" in log and log["calibrated"].any()
    note = "dotted: loss weights calibrated; before it, pixel + penalty only" if fixed else "raw, unweighted terms"
    fig.suptitle(f"{title}\n({note})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_loss_shares(log, title: str = ""):
    """Stacked shares of the total loss per logged step: each weighted term, the penalty included (issue 8:
    "roughly equal" contributions should stay so during the run, not only at calibration)."""
    import matplotlib.pyplot as plt

    cols = [c for c in log.columns if c.startswith("share/")]
    if not cols:
        raise ValueError("this log has no share/* columns (written by wae_lib.train since issue 8); retrain to see them")
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.stackplot(log["step"], *[log[c] for c in cols], labels=[c.removeprefix("share/") for c in cols], alpha=0.85)
    ax.set_xlim(log["step"].min(), log["step"].max())
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("share of the total loss")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_calibration(calibration: dict, title: str = ""):
    """Bar charts of the raw term means at calibration and the weights that equalise their contributions."""
    import matplotlib.pyplot as plt

    names = list(calibration["weights"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3))
    a.bar(names, [calibration["raw_term_means"][n] for n in names])
    a.set_yscale("log")
    a.set_title("raw term means (calibration batches)", fontsize=9)
    b.bar(names, [calibration["weights"][n] for n in names])
    b.set_yscale("log")
    b.set_title(f"fixed weights (from step {calibration['step']})", fontsize=9)
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_by_content_size(summary, metrics: Sequence[str], title: str = "", eval_set: str | None = None):
    """Matplotlib figure: each metric against content size (log2 axis), one line per training set, with the
    bootstrap interval as error bars. ``summary`` has columns data, content_dim, <metric>, <metric>_ci_low/high
    (wae_lib.eval.stats.summarise)."""
    import matplotlib.pyplot as plt

    df = summary if eval_set is None else summary[summary["eval_set"] == eval_set]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for data, g in df.groupby("data", sort=False):
            g = g.sort_values("content_dim")
            err = [g[metric] - g[f"{metric}_ci_low"], g[f"{metric}_ci_high"] - g[metric]]
            ax.errorbar(g["content_dim"], g[metric], yerr=err, marker="o", capsize=3,
                        label={"celeba": "CelebA-only"}.get(data, data))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("content latent size")
        ax.set_title(metric, fontsize=9)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=8, wrap=True)
    fig.tight_layout()
    return fig


def plot_method_comparison(summary, chance: dict, batches: Sequence[int], title: str = ""):
    """Notebook 07: one bar per method for the retrieval / match shares (chance as a red line), the distances,
    and seconds per image (log scale) at each timed batch size; error bars: the table's 95% intervals over faces
    and styles. ``summary``: compare.summary_table."""
    import matplotlib.pyplot as plt

    shares = ["style_retrieval_gram", "style_retrieval_color", "content_retrieval", "identity_match"]
    distances = ["style_distance", "content_distance", "identity_distance", "kid"]
    labels = list(summary["method"])
    colors = [f"C{i}" for i in range(len(labels))]

    def bars(ax, metric):  # with the 95% interval over faces and styles where the table has one
        err = None
        if f"{metric}_ci_low" in summary:
            err = np.stack([summary[metric] - summary[f"{metric}_ci_low"],
                            summary[f"{metric}_ci_high"] - summary[metric]]).clip(min=0)
        ax.bar(labels, summary[metric], color=colors, yerr=err, capsize=3, ecolor="0.3")

    fig, axes = plt.subplots(2, 5, figsize=(17, 6.5))
    for ax, metric in zip(axes[0], shares + [None]):
        if metric is None:
            ax.axis("off")
            continue
        bars(ax, metric)
        if metric in chance:
            ax.axhline(chance[metric], color="red", ls=":", label="chance")
            ax.legend(fontsize=7)
        ax.set_title(metric.replace("_", " ") + " (higher: more)", fontsize=9)
        ax.set_ylim(0, 1.05)
    for ax, metric in zip(axes[1], distances):
        bars(ax, metric)
        ax.set_title(metric.replace("_", " ") + " (lower: closer)", fontsize=9)
    ax = axes[1][-1]
    width = 0.8 / max(1, len(batches))
    for k, b in enumerate(batches):
        ax.bar([i + k * width for i in range(len(labels))], summary[f"s_per_image_b{b}"], width=width,
               label=f"batch {b}")
    ax.set_xticks([i + width * (len(batches) - 1) / 2 for i in range(len(labels))], labels)
    ax.set_yscale("log")
    ax.set_title("seconds per image (log)", fontsize=9)
    ax.legend(fontsize=7)
    for ax in axes.flat:
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    if title:
        fig.suptitle(textwrap.fill(title, 160), fontsize=9)
    fig.tight_layout()
    return fig


FRONTIER_GROUPS = {  # a scorecard row's kind -> its marker colour in the frontier (issue 33 item 4); the paper's 10
    # models (a vector content code, 600 CPU steps of the reference/ours profiles) under each training
    "shipped": "tab:red", "ablation": "tab:blue", "baseline": "tab:green", "floor": "tab:grey",
    "paper-training": "tab:purple", "our-training": "tab:orange"}


FRONTIER_LABELS = {"paper-training": "the paper's 10 models, the paper's training (600 CPU steps; - mixed, -- celeba)",
                   "our-training": "the paper's 10 models, our training (600 CPU steps; - mixed, -- celeba)"}
SWEEP_GROUPS = ("paper-training", "our-training")  # rows <set>_c<content dim>: drawn as a line per set


def sweep_lines(ax, table, style, groups) -> None:
    """The paper's sweep as one line per training set through its content sizes (the paper's claim C3b: fewer
    content numbers, more style), labelled at its ends (c512 ... c32) instead of ten overlapping labels."""
    import re

    rows = {}
    for k, (run, group) in enumerate(zip(table["run"], groups)):
        m = re.fullmatch(r"(\w+?)_c(\d+)", str(run))
        if str(group) in SWEEP_GROUPS and m:
            rows.setdefault((str(group), m.group(1)), []).append((int(m.group(2)), float(style.iloc[k]),
                                                                    float(table["identity_match"].iloc[k])))
    for (group, data), points in rows.items():
        points.sort(reverse=True)
        _, xs, ys = zip(*points)
        ax.plot(xs, ys, "-" if data == "mixed" else "--", color=FRONTIER_GROUPS[group], lw=1, alpha=0.8, zorder=2)
        for (size, x, y), end in ((points[0], "start"), (points[-1], "end")):
            ax.annotate(f"{data} c{size}", (x, y), textcoords="offset points", fontsize=6,
                        xytext=(-4, -9) if end == "start" else (4, -9), ha="right" if end == "start" else "left",
                        color=FRONTIER_GROUPS[group])


LABEL_OFFSETS = [(dx, dy) for dy in (3, -9, 13, -19, 23, -29, 33, -39) for dx in (4, -4)]  # points from the dot


def place_labels(ax, labelled: Sequence[tuple[str, float, float]]) -> None:
    """Label each (text, x, y) beside its point at the first offset of LABEL_OFFSETS whose box overlaps no label
    placed before it (the ablation's points sit within 0.05 of each other; one fixed offset printed them on top of
    each other); a label moved off its point gets a thin line to it."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for text, x, y in labelled:
        for dx, dy in LABEL_OFFSETS:
            note = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                               ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top",
                               arrowprops=dict(arrowstyle="-", lw=0.4, color="grey") if abs(dy) > 13 else None)
            box = note.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed) or (dx, dy) == LABEL_OFFSETS[-1]:
                placed.append(box)
                break
            note.remove()


def scorecard_frontier(table, path: str | Path, caption: str = "", chance: dict | None = None) -> Path:
    """Style carried against person kept, one point per scorecard row (issue 33's style-identity frontier):
    x = the mean of Gram and Lab palette style retrieval, y = identity kept (dlib), each row labelled by its run.
    ``table``: rows of wae_lib.eval.scorecard (columns run, style_retrieval_gram, style_retrieval_color,
    identity_match; optional ``group``, a key of FRONTIER_GROUPS, and the 95% bounds ``style_carried_lo/hi`` and
    ``identity_match_lo/hi`` drawn as error bars); ``chance``: the scorecard's chance levels, dotted lines."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 5.6))
    style = (table["style_retrieval_gram"] + table["style_retrieval_color"]) / 2
    groups = table["group"] if "group" in table else ["ablation"] * len(table)
    labelled: list[tuple[str, float, float]] = []
    for k, (x, y, label, group) in enumerate(zip(style, table["identity_match"], table["run"], groups)):
        colour = FRONTIER_GROUPS.get(str(group), "tab:blue")
        row = table.iloc[k]
        xerr = yerr = None
        if "style_carried_lo" in table and np.isfinite(row.get("style_carried_lo", np.nan)):
            xerr = [[max(x - row["style_carried_lo"], 0)], [max(row["style_carried_hi"] - x, 0)]]
        if "identity_match_lo" in table and np.isfinite(row.get("identity_match_lo", np.nan)):
            yerr = [[max(y - row["identity_match_lo"], 0)], [max(row["identity_match_hi"] - y, 0)]]
        sweep = str(group) in SWEEP_GROUPS
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", ms=4 if sweep else 5, color=colour, ecolor=colour,
                    elinewidth=0.5 if sweep else 0.8, capsize=2, alpha=0.6 if sweep else 0.9, zorder=3)
        if not sweep:  # a sweep's ten points are labelled once per training set, below
            labelled.append((str(label), x, y))
    ax.set_xlim(-0.02, 1.05)
    ax.set_ylim(-0.02, 1.05)
    if caption:  # the final axes size before the labels are placed by their measured boxes
        fig.text(0.01, 0.005, "\n".join(textwrap.wrap(caption, 120)), fontsize=7, va="bottom")
        fig.subplots_adjust(bottom=0.2)
    place_labels(ax, labelled)
    sweep_lines(ax, table, style, groups)
    for group, colour in FRONTIER_GROUPS.items():
        if group in set(map(str, groups)):
            ax.plot([], [], "o", color=colour, label=FRONTIER_LABELS.get(group, group))
    if len(set(map(str, groups))) > 1:
        ax.legend(loc="lower left", fontsize=7, frameon=False)
    for key, draw in (("style_retrieval", ax.axvline), ("identity_match", ax.axhline)):
        if chance and key in chance:
            draw(chance[key], color="grey", ls=":", lw=1)
    ax.set_xlabel("style carried: mean of Gram and palette style retrieval (held-out paintings)")
    ax.set_ylabel("person kept: identity match (dlib, held-out people)")
    ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------------
# held-out faces x paintings through several models: the ablations' grids (issue 33 item 2)
# --------------------------------------------------------------------------------------------------
def held_out_grid(models: Sequence[tuple[str, torch.nn.Module]], faces: torch.Tensor, paintings: torch.Tensor,
                  painting_names: Sequence[str], path: str | Path, caption: str = "") -> dict:
    """One row of the held-out ``faces``, then for each (label, model) one row per painting: the painting, then its
    transfer onto every face. Saved with :func:`save_figure` (PNG and layout sidecar); returns the layout."""
    rows, labels = [torch.cat([blank_cells(1), faces])], ["faces"]
    for label, model in models:
        for painting, name in zip(paintings, painting_names):
            with torch.no_grad():
                out = model.transfer(_on(model, faces), _on(model, painting[None]))  # one style for every face
            rows.append(torch.cat([painting[None], out.cpu()]))
            labels.append(f"{label}: {name}"[:34])
    return save_figure(path, rows, row_labels=labels, caption=caption)
