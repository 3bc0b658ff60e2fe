"""Held-out quality of trained runs at a fixed budget: the before/after table of training changes (issue 8).

    python benchmarks/bench_quality.py RUN_DIR [RUN_DIR ...] --data-root data/processed/shared-data-large \
        --out reports/ablations/training_ablation

For every run folder: reconstruction PSNR / SSIM on held-out faces (people in no training set), and for
transfers of held-out faces x style images: style retrieval (is the transfer's nearest style image, by Gram
distance and by a Lab colour-histogram distance the model never trained on, its own style?), content
retrieval (nearest held-out face by VGG relu4_2 features is its own content image?), face identity kept (nearest
held-out identity by dlib embedding is its own person?), and the training throughput from the run's log.
The trivial floor (Reinhard et al. 2001 colour transfer) is scored the same way as a reference row.
Prints one table and writes it as CSV and Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wae_lib.data.layout import load_eval_identities
from wae_lib.eval import scorecard
from wae_lib.eval.cache import reconstruct_images
from wae_lib.eval.images import load_set
from wae_lib.grids import save_grid
from wae_lib.model.run import load_model, training_cost
from wae_lib.utils import set_seed


def throughput(run_dir: Path) -> float:
    """Median logged training images/s of a run (the log's own timing)."""
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    return float(np.median([r["images_per_s"] for r in rows[1:]] or [np.nan]))


def change_of(run_dir: Path) -> str:
    """What the run's ablation row changes (benchmarks/ablate_style.py records it in the run's config.extra)."""
    extra = json.loads((run_dir / "config.json").read_text()).get("extra", {})
    return str(extra.get("change", ""))


def figure(args, faces, style, models, vgg_label: str) -> None:
    """8 held-out faces, then per run its reconstructions and its transfers with one style."""
    grid, labels = [faces], ["held-out"]
    for k, (run, model) in enumerate(models):
        name = args.labels[k] if k < len(args.labels) else run.name
        grid += [reconstruct_images(model, faces), model.transfer(faces, style)]
        labels += [f"{name} recon", f"{name} style {args.style}"]
    save_grid(args.figure, grid + [style.expand(len(faces), -1, -1, -1)], row_labels=labels + [f"style {args.style}"],
              label_width=170, caption=f"Held-out people (in no training set): reconstructions and transfers per run, "
                                       f"VGG16: {vgg_label}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders written by wae_lib.train")
    ap.add_argument("--data-root", required=True, help="prepared data (sets/content_eval.npy, style_eval.npy)")
    ap.add_argument("--n-content", type=int, default=48, help="held-out faces used as transfer content")
    ap.add_argument("--out", type=Path, help="write OUT.csv and OUT.md")
    ap.add_argument("--figure", type=Path, help="also write a PNG: 8 held-out faces, then per run its reconstructions "
                                                "and transfers with one style (style_eval image --style)")
    ap.add_argument("--style", type=int, default=0, help="style_eval index of the figure's transfers")
    ap.add_argument("--labels", nargs="*", default=(), help="row labels of the runs in the figure (default: names)")
    ap.add_argument("--figure-only", action="store_true", help="write the figure, score nothing (seconds)")
    args = ap.parse_args(argv)
    set_seed(0)
    torch.set_grad_enabled(False)
    if args.figure_only:
        if not args.figure:
            ap.error("--figure-only needs --figure")
        faces_all, styles = load_set(args.data_root, "content_eval"), load_set(args.data_root, "style_eval")
        ids = load_eval_identities(args.data_root)
        faces = faces_all[scorecard.spread_over_identities(ids if ids is not None else np.arange(len(faces_all)), 8)]
        models = [(run, load_model(run)) for run in args.runs]
        figure(args, faces, styles[args.style:args.style + 1], models, models[0][1].vgg_source.label)
        return 0
    evalset = scorecard.HeldOut.load(args.data_root, n_content=args.n_content)
    rows = [scorecard.score_reinhard(evalset)]
    faces = evalset.faces[scorecard.spread_over_identities(
        evalset.identities if evalset.identities is not None else np.arange(len(evalset.faces)), 8)]
    style = evalset.styles[args.style:args.style + 1]
    models = []
    for run in args.runs:
        model = load_model(run)
        models.append((run, model))
        row = scorecard.score_model(model, evalset)
        images, seconds = training_cost(run, model.config.batch_size)
        rows.append({"run": run.name, "change": change_of(run), **row, "train_images_per_s": throughput(run),
                     "train_minutes": seconds / 60, "steps": int(model.checkpoint_info["step"])})
        print(f"{run.name}: " + ", ".join(f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float)),
              file=sys.stderr)
    if args.figure:
        figure(args, faces, style, models, evalset.vgg.label)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out.with_suffix(".csv"), index=False)
        args.out.with_suffix(".md").write_text(scorecard.markdown(table, evalset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
