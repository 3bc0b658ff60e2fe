"""The pages a reader opens first: ``index.md`` of a reports folder (the run's context once, the claims' verdicts,
the comparison's headline table, every figure under the notebook that drew it, the tables and the executed
notebooks) and ``reports/local.md`` (the reports folders on this machine). Notebook 06 writes the first, the
Makefile the second."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..eval import tables as T
from ..eval.claims import CLAIM_STATEMENTS, context_of
from ..eval.verdicts import combined_verdict
from ..utils import atomic_write_text
from .compare import markdown_summary
from .markdown import HEADLINE_REPORTS, budget_warning

SHOWCASE_FIGURE = "compare_overview.png"  # notebook 07's overview of every method on the same pairs


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


# What to look at in each figure, one line (the index page's caption; the figure's own caption carries its
# context); grouped under the notebook that draws it. A figure not listed here gets its own caption's last part.
FIGURE_GUIDE: dict[str, tuple[str, str]] = {  # file name (or prefix) -> (notebook, what to look at)
    "prep_kept_celeba": ("01_preprocess", "face crops kept from the photos: centred, upright, one face each"),
    "prep_kept_anime": ("01_preprocess", "anime faces kept"),
    "prep_kept_imagenet": ("01_preprocess", "photo crops kept for the mixed set: objects and scenes, no faces"),
    "prep_kept_styles": ("01_preprocess", "the style artworks as the models see them (64 px)"),
    "prep_rejected": ("01_preprocess", "what preprocessing threw away, and why"),
    "prep_face_boxes": ("01_preprocess", "the detector's face box and the crop taken around it"),
    "prep_eval_sets": ("01_preprocess", "the held-out sets: no person or artwork of these is in any training set"),
    "prep_mixed_shares": ("01_preprocess", "the mixed set's sources against the paper's shares"),
    "training_curves": ("02_train", "every model's loss: flat at the end means the budget was spent, not wasted"),
    "train_terms_": ("02_train", "one model's loss terms: which term dominates the objective"),
    "train_shares_": ("02_train", "the share of each term in the loss over training"),
    "fig5_styles": ("03_reconstruction", "Fig. 5: the style images of the experiments"),
    "fig6_content": ("03_reconstruction", "Fig. 6 left: held-out faces (row 1) and each model's reconstruction; "
                                          "does the person survive?"),
    "fig6_style": ("03_reconstruction", "Fig. 6 right: the style images reconstructed; do CelebA-only models put "
                                        "faces into them?"),
    "fig7_transfer": ("04_transfer", "Fig. 7: a face (row 1) in a style (row 2) by every model: style taken, "
                                     "person kept?"),
    "transfer_grid_best_model": ("04_transfer", "the best model (C4 pick): every face in every style"),
    "style_strength_best_model": ("04_transfer", "the style latent's weight from 0 (reconstruction) to past 1"),
    "style_interpolation_best_model": ("04_transfer", "one face between two styles: the style latent is smooth"),
    "compare_overview": ("07_compare", "one face in one style per column, every method: ours against the baselines"),
    "compare_grid_": ("07_compare", "one method's content x style grid"),
    "compare_measures": ("07_compare", "style retrieval against identity kept, speed: with 95% intervals"),
    "explore_frame": ("00_explore", "the explorer's first frame: content, styles, transfer and both latents"),
}
NOTEBOOK_TITLES = {"00_explore": "00 · Explore", "01_preprocess": "01 · Preprocessing", "02_train": "02 · Training",
                   "03_reconstruction": "03 · Reconstructions (Fig. 5-6)", "04_transfer": "04 · Transfers (Fig. 7)",
                   "05_fid": "05 · FID/KID", "06_claims": "06 · Claims", "07_compare": "07 · Comparison"}


def _guide(name: str) -> tuple[str, str]:
    stem = Path(name).stem
    for key, value in FIGURE_GUIDE.items():
        if stem == key or (key.endswith("_") and stem.startswith(key)):
            return value
    return "", ""


def _caption_parts(png: Path) -> list[str]:
    meta = png.with_suffix(".png.json")
    caption = json.loads(meta.read_text()).get("caption", "") if meta.is_file() else ""
    return [p.strip() for p in caption.split(" | ") if p.strip()]


def write_index(reports_dir: str | Path = "reports", figures_dir: str | Path | None = None,
                tables_dir: str | Path | None = None, notebooks_dir: str | Path | None = None,
                claims: pd.DataFrame | None = None) -> Path:
    """``reports_dir/index.md``, a page to read: the run's context once at the top, the claims with their verdicts,
    the comparison's headline table, then every figure embedded under the notebook that drew it with one line of
    what to look at (the parts of its caption that every other figure repeats are the context above, said once),
    the tables and every executed notebook found."""
    reports = Path(reports_dir)
    figures = Path(figures_dir) if figures_dir else reports / "figures"
    tables = Path(tables_dir) if tables_dir else reports / "tables"
    notebooks = Path(notebooks_dir) if notebooks_dir else reports / "notebooks"
    if claims is None and (tables / "claims.csv").is_file():
        claims = pd.read_csv(tables / "claims.csv")
    pngs = sorted(figures.glob("*.png"))
    captions = {p: _caption_parts(p) for p in pngs}
    # the run's context: the caption parts that most of the run's own (non-comparison) figures share
    own = [c for p, c in captions.items() if c and _guide(p.name)[0] != "07_compare"]
    shared = [part for part in (own[0] if own else []) if sum(part in c for c in own) >= max(2, len(own) // 2)]
    ctx = context_of(claims) if claims is not None and len(claims) else None
    title = f"{ctx.profile} profile" if ctx is not None else reports.name
    lines = [f"# Reports of the {title} run: Nakada & Asoh (JSAI 2019), style transfer with a WAE", ""]
    if ctx is not None:
        warning = budget_warning(ctx)
        lines += ([warning, ""] if warning else []) + [f"**This run:** {ctx.caption()}", ""]
    elif shared:
        lines += [f"**This run:** {' | '.join(shared)}", ""]
    found = sorted({notebooks / p.name.replace(".tmp.ipynb", ".ipynb")
                    for p in notebooks.glob("*.ipynb")}) if notebooks.is_dir() else []
    if found:  # the Makefile executes into NAME.tmp.ipynb and renames at the end (06 is running as .tmp here)
        lines += ["Executed notebooks (code, outputs, figures inline): "
                  + ", ".join(f"[{p.stem}]({_rel(p, reports)})" for p in found), ""]
    overview = figures / SHOWCASE_FIGURE
    if overview.is_file():  # what a newcomer should see first: the method working, whatever this run's budget
        lines += ["## What the shipped models do (notebook 07)", "",
                  f"![every method on the same held-out pairs]({_rel(overview, reports)})", "",
                  "Each column: a held-out face and a style image, then each method's transfer (ours: the models "
                  "shipped with the package, not this run's sweep, unless notebook 07 was given another).", ""]
    if claims is not None and len(claims):
        lines += ["## Claims (SPEC.md §5)", ""]
        for claim in ("C1", "C2", "C3", "C4"):
            mine = claims[claims["claim"] == claim]
            parts = ", ".join(f"{r.part} ({r.scope}): {r.verdict}" for r in mine.itertuples())
            lines.append(f"- **{claim}: {combined_verdict(list(mine['verdict']))}** ({parts}). "
                         f"The paper: \"{CLAIM_STATEMENTS[claim]}\"")
        lines += ["", f"Numbers, intervals and rules: [claims.md]({_rel(reports / 'claims.md', reports)})", ""]
    else:
        lines += ["Claims: not built yet (run notebook 06_claims.ipynb).", ""]
    compare_csv = tables / T.TABLE_FILES["compare_summary"]
    if compare_csv.is_file():
        summary = pd.read_csv(compare_csv)
        per_pair_csv = tables / T.TABLE_FILES["compare"]  # (not committed: a fresh clone's index omits the count)
        pairs = ""
        if per_pair_csv.is_file():
            pp = pd.read_csv(per_pair_csv, usecols=["content_image", "style_image"])
            pairs = f" ({pp['content_image'].nunique()} held-out faces x {pp['style_image'].nunique()} styles)"
        lines += ["## Comparison with other methods (notebook 07)", "",
                  f"Same held-out pairs for every method{pairs}; every measure, interval and ratio: "
                  f"[{compare_csv.name}]({_rel(compare_csv, reports)}).", "", markdown_summary(summary), ""]
    by_notebook: dict[str, list[Path]] = {}
    for png in pngs:
        by_notebook.setdefault(_guide(png.name)[0] or "other", []).append(png)
    if pngs:
        lines += ["## Figures", ""]
    for nb in sorted(by_notebook):
        lines += [f"### {NOTEBOOK_TITLES.get(nb, nb)}", ""]
        for png in by_notebook[nb]:
            if png == overview:
                continue
            what = _guide(png.name)[1]
            own_parts = [p for p in captions[png] if p not in shared and not p.startswith(("profile=", "data: ",
                                                                                           "VGG16: "))]
            # a comparison figure names its method first ("AdaIN (15750 steps): content x style")
            detail = own_parts[0] if own_parts and (not what or nb == "07_compare") else ""
            line = "; ".join(x for x in (what, detail) if x) or png.stem.replace("_", " ")
            lines += [f"![{png.stem}]({_rel(png, reports)})", "", f"*{line}*", ""]
    lines += ["## Tables", ""]
    lines += [f"- [{p.name}]({_rel(p, reports)})" for p in sorted(tables.glob("*.csv"))
              if not p.name.endswith(("_per_image.csv", "_per_pair.csv"))]  # those are regenerated, not committed
    lines += ["", "Per-image and per-pair tables (`*_per_image.csv`, `*_per_pair.csv`) are written by the notebooks "
              "and not committed."]
    reports.mkdir(parents=True, exist_ok=True)
    path = reports / "index.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


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
