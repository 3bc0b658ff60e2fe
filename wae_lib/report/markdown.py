"""What a run of notebook 06 writes for people to read: ``claims.md`` (the verdicts of wae_lib.eval.claims with their
numbers, per-model summaries and FID/KID). The index pages that link it: :mod:`wae_lib.report.index_page`."""

from __future__ import annotations

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

HEADLINE_REPORTS = "reference-shared-data-large"  # the committed headline results (README's figure and numbers)


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
