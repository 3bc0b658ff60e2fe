"""What a run of notebook 06 writes for people to read: ``claims.md`` (the verdicts of wae_lib.eval.claims with their
numbers, per-model summaries and FID/KID), ``index.md`` of a reports folder (claims, comparison, every figure,
table and executed notebook) and ``reports/local.md`` (the reports folders on this machine)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..config import SMALL_PROFILES, run_name
from ..eval import stats as S
from ..eval import tables as T
from ..eval.claims import (
    CLAIM_STATEMENTS,
    RECON_METRICS,
    claims_frame,
    context_of,
    evaluate_claims,
    models_of,
    read_table,
)
from ..eval.identity import SAME_PERSON_THRESHOLD
from ..eval.metrics import FACE_UPSCALE
from ..eval.runs import EvalContext
from ..eval.verdicts import ClaimPart, combined_verdict, fmt_ci, fmt_number, model_rows
from ..utils import atomic_open, atomic_write_text
from .compare import markdown_summary


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A plain markdown table (no extra dependency)."""
    def cell(v):
        if isinstance(v, float):
            return fmt_number(v, digits)
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
    cpu_scale = [p for p in ("reference", "ours") if p in ctx.profile.split(" / ")]
    if not why and cpu_scale:
        trained = " (trained our way: swapped pairs, issue 16)" if "ours" in cpu_scale else ""
        return (f"> **{cpu_scale[0].capitalize()} profile: a CPU-scale run**{trained} (channels x1/4 of Tables 1-2, "
                "minutes per model on 2 CPU cores; see each figure's caption for the schedule). The verdicts describe "
                "this scale; the paper trained full-width networks on GPUs.")
    if not why:
        return ""
    return (f"> **This run is too small to judge the paper** ({'; '.join(why)}). Its sweep is the proof that the "
            f"pipeline trains end to end; the verdicts below describe this budget, not the paper's method. What the "
            f"method does is in the shipped models' comparison (notebook 07) and in "
            f"`reports/{HEADLINE_REPORTS}/`.")


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
        t[h] = [fmt_ci(e, lo, hi) for e, lo, hi in zip(s[c], s[f"{c}_ci_low"], s[f"{c}_ci_high"])]
    return t


def _identity_note(df: pd.DataFrame) -> str:
    model = _first(df, "identity_model")
    if model is None:
        return ""
    return (f"Identity: {model}; gallery: {_first(df, 'identity_gallery')}; identity match chance "
            f"{fmt_number(_first(df, 'identity_match_chance'))}, the real photos' own score (ceiling) "
            f"{fmt_number(_first(df, 'identity_match_originals'))}; distance < {SAME_PERSON_THRESHOLD} is dlib's \"same person\".")


def _model_summary(recon: pd.DataFrame, transfer: pd.DataFrame, n_boot: int, seed: int) -> str:
    order = list(dict.fromkeys(recon["run"]))
    out = []
    for set_name, g in recon.groupby("eval_set", sort=False):
        ident = [(c, h) for c, h in RECON_IDENTITY if c in g and g[c].notna().any()]
        t = _summary_table(g, [(m, m) for m in RECON_METRICS] + ident, order, n_boot, seed)
        if "face_in_reconstruction" in g and g["face_in_original"].notna().any():
            free = g[~g["face_in_original"].astype(bool)]
            t["face rate (face-free originals)"] = [
                fmt_number(free.loc[free["run"] == r, "face_in_reconstruction"].astype(float).mean()) for r in order]
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
        chances = ", ".join(f"{name} {fmt_number(_first(transfer, col))}" for col, name in (
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
            "FID [95% CI]": [fmt_ci(*v) for v in zip(g["fid"], g["fid_ci_low"], g["fid_ci_high"])],
            "KID [95% CI]": [fmt_ci(*v) for v in zip(g["kid"], g["kid_ci_low"], g["kid_ci_high"])],
            "n real": g["n_real"], "n generated": g["n_fake"]})
        scale = ("" if not g["feature_extractor"].astype(str).str.contains("standin").any() else
                 " The VGG16 stand-in's features are mean-pooled relu4_2 activations, unnormalised and far larger "
                 "than Inception's pool features; FID grows with their square and KID's cubic kernel with their "
                 "sixth power, so values of 1e3 to 1e7 are what this scale gives: compare rows here with each "
                 "other, never with published (Inception) numbers. KID is unbiased, so on a small sample it can come out negative; the `(real halves)` row's "
                 "KID is the spread two halves of the same real images already show, and a model's KID within that "
                 "spread of it is indistinguishable from real at this n.")
        out.append(f"**Feature extractor: {label}**{scale}\n\n" + markdown_table(t))
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
        "statistic": [p.statistic for p in parts], "estimate [95% CI]": [fmt_ci(p.estimate, p.ci_low, p.ci_high)
                                                                         for p in parts],
        "n": [f"{p.n} ({p.unit})" for p in parts], "seeds": [p.seeds for p in parts],
        "verdict": [f"**{p.verdict}**" for p in parts]})), ""]
    for claim in ("C1", "C2", "C3", "C4"):
        mine = [p for p in parts if p.claim == claim]
        lines += [f"## {claim}: {combined_verdict([p.verdict for p in mine])}", "", f"The paper says: \"{CLAIM_STATEMENTS[claim]}\" (the verdict above is ours)",
                  ""]
        for p in mine:
            lines += [f"- **{p.part}** ({p.scope}): {p.statement}. {p.statistic} = {fmt_ci(p.estimate, p.ci_low, p.ci_high)}"
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
              "style image (Rabin et al. 2011; Lab units, ~2.3 = just noticeable), `wae_lib.eval.color`.",
              "- style retrieval (Gram / colour): share of transfers whose nearest style image, by Gram / colour "
              "distance, is their own style; content retrieval: share whose nearest held-out face by content "
              "distance is their own content image (`wae_lib.eval.retrieval`).",
              "- identity distance / match: dlib face-recognition ResNet embeddings (King 2009; face_recognition): "
              "euclidean distance to the content face, and the share whose nearest gallery person (mean "
              "embedding, leave-one-out for the own person) is their own (`wae_lib.eval.identity`).",
              f"- `{T.REFERENCE_RUN}`: Reinhard et al. (2001) colour transfer (Lab channel means and standard "
              "deviations of the style), measured the same way; a reference, never in a verdict.",
              "- Verdict rules: see the module docstring of `wae_lib.eval.claims`."]
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
    import json

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


SHOWCASE_FIGURE = "compare_overview.png"  # notebook 07's overview of every method on the same pairs
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
