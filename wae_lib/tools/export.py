"""Pick the best model of a sweep on held-out people and ship it as the package's pretrained model.

    python -m wae_lib export models/reference-shared-data-large --data-root data/processed/shared-data-large

Every run folder (or only ``--run``) is scored with :mod:`wae_lib.eval.scorecard` (held-out faces x style images);
the best by the balance of style retrieval (colour and Gram) and identity kept is exported to
``wae_lib/weights/pretrained.pt`` (fp16, without the frozen VGG16; ``--out`` for another shipped name) with its
card ``pretrained.card.md`` and scorecard ``pretrained.scorecard.csv`` beside it. Scoring costs about a minute per model on 2 CPU cores (dlib embeddings).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from ..config import EvaluationError, training_set_label
from ..data.layout import load_set_info
from ..eval import scorecard
from ..eval.runs import check_trained_on
from ..model.pretrained import (
    PRETRAINED_FILE,
    export_pretrained,
    load_pretrained,
    scorecard_file,
    write_model_card,
)
from ..model.run import load_model
from ..utils import set_seed


def balance_score(row) -> float:
    """What a transfer should do, in one number: carry the style (mean of colour and Gram retrieval) and keep the
    person (identity match); the geometric mean punishes a model that gives up one for the other."""
    style = (row["style_retrieval_color"] + row["style_retrieval_gram"]) / 2
    return float((style * row["identity_match"]) ** 0.5)


def card_note(origin: str, chosen_by: str, by_hand: str, n_runs: int) -> str:
    """How the exported model was chosen, for the model card."""
    if origin:
        how = origin
    elif chosen_by:
        how = chosen_by
    elif by_hand:
        how = f"Chosen by hand (`--run {by_hand}`)."
    else:
        how = f"Chosen as the best of {n_runs} models by `balance` = sqrt(style retrieval x identity match)."
    return how + " The Reinhard colour transfer is the floor a learned method has to beat."


def earlier_rows(specs: list[str]) -> pd.DataFrame:
    """The model rows of earlier scorecards, for the card's comparison: each spec ``CSV=LABEL`` (a
    ``*.scorecard.csv`` this command wrote, scored on the same held-out sets) gives its model rows, the floor
    left out, named ``LABEL`` (or ``LABEL: <run>`` when it holds several). One clear line on a bad spec."""
    frames = []
    for spec in specs:
        path, sep, label = spec.partition("=")
        if not sep or not label:
            raise ValueError(f"--compare {spec!r}: expected CSV=LABEL (a scorecard file and the row's name)")
        try:
            rows = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--compare {spec!r}: cannot read {path} ({exc})") from None
        rows = rows[rows["run"] != scorecard.FLOOR_RUN].copy()
        rows["run"] = [label] if len(rows) == 1 else [f"{label}: {r}" for r in rows["run"]]
        frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def score_runs(run_dirs: list[Path], evalset: scorecard.HeldOut) -> pd.DataFrame:
    rows = [scorecard.score_reinhard(evalset)]
    for run in run_dirs:
        print(f"[wae_lib] scoring {run.name} on held-out people", file=sys.stderr)
        rows.append({"run": run.name, **scorecard.score_model(load_model(run), evalset)})
    table = pd.DataFrame(rows)
    table["balance"] = [balance_score(r) for _, r in table.iterrows()]
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wae_lib export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models_dir", type=Path, help="a sweep's folder of run folders, or one exported model file (.pt: "
                                                 "e.g. a lent GPU's ship/model.pt, whose run folder stayed there)")
    ap.add_argument("--data-root", required=True, type=Path, help="its prepared data (held-out sets)")
    ap.add_argument("--out", type=Path, default=PRETRAINED_FILE, help="the pretrained file to write")
    ap.add_argument("--run", help="export this run folder name instead of the best by balance")
    ap.add_argument("--summary", type=Path, help="pick the best run from this transfer_summary.csv (notebook 04's "
                                                  "held-out table) instead of scoring every run: much faster")
    ap.add_argument("--hardware", default="2 CPU cores", help="where it trained, for the model card")
    ap.add_argument("--origin", default="", help="how the exported run came about, for the model card (e.g. "
                                                 "which sweep model it was resumed from)")
    ap.add_argument("--compare", nargs="*", default=[], metavar="CSV=LABEL",
                    help="also show these earlier scorecards' model rows in the card's table (e.g. the model this "
                         "one replaces); the same held-out sets, scored before")
    args = ap.parse_args(argv)
    try:
        earlier = earlier_rows(args.compare)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    set_seed(0)
    if args.models_dir.suffix == ".pt":
        return ship_exported(args, earlier)
    chosen_by = ""
    if args.summary and not args.run:
        summary = pd.read_csv(args.summary)
        summary = summary[summary["run"].apply(lambda r: (args.models_dir / str(r) / "checkpoint.pt").is_file())]
        summary["balance"] = [balance_score(r) for _, r in summary.iterrows()]
        args.run = summary.loc[summary["balance"].idxmax(), "run"]
        chosen_by = (f"Chosen as the best of {len(summary)} models by `balance` = sqrt(style retrieval x identity "
                     f"match) in {args.summary.name} (notebook 04, held-out faces x 8 styles); "
                     f"balance there: {summary['balance'].max():.3f}.")
    runs = sorted(p for p in args.models_dir.iterdir() if (p / "checkpoint.pt").is_file()
                  and (args.run is None or p.name == args.run))
    if not runs:
        print(f"error: {args.models_dir} holds no run folder{' ' + args.run if args.run else 's'} with a "
              f"checkpoint.pt", file=sys.stderr)
        return 2
    try:
        check_trained_on(runs, args.data_root)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    evalset = scorecard.HeldOut.load(args.data_root)
    table = score_runs(runs, evalset)
    models = table[table["run"].isin([r.name for r in runs])]
    best = args.run or models.loc[models["balance"].idxmax(), "run"]
    model = load_model(args.models_dir / best)
    meta = json.loads((args.models_dir / best / "metadata.json").read_text())
    info = load_set_info(args.data_root)
    path = export_pretrained(model, args.out, run=best, step=model.checkpoint_info["step"], data_source=info["source"],
                             git_commit=meta.get("git_commit"), metrics=table[table["run"] == best].iloc[0].to_dict())
    table.to_csv(scorecard_file(args.out), index=False)
    card_table = scorecard.markdown(pd.concat([table, earlier], ignore_index=True) if len(earlier) else table, evalset)
    people = len(set(evalset.identities.tolist())) if evalset.identities is not None else len(evalset.faces)
    write_model_card(
        model, args.out, card_table, run=best,
        data_label=training_set_label(model.config.data),
        data_source=info["source"], n_images=meta.get("n_images", "?"),
        data_note="mixed: CelebA + AnimeFace + ImageNet crops in the paper's proportions" if model.config.data ==
        "mixed" else "CelebA face crops", hardware=args.hardware, git_commit=meta.get("git_commit", "?"),
        size_mb=path.stat().st_size / 2**20, n_faces=len(evalset.faces), n_people=people,
        n_styles=len(evalset.styles),
        metrics_note=card_note(args.origin, chosen_by, best if args.run else "", len(runs)))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"exported {best} -> {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0


def ship_exported(args: argparse.Namespace, earlier: pd.DataFrame) -> int:
    """``export FILE.pt``: score an exported model (wae_lib.model.pretrained's file, with its provenance) on the
    held-out sets and ship it under ``--out`` with its scorecard and card, as ``main`` does for a run folder."""
    if args.run or args.summary:
        print(f"error: --run and --summary pick a run folder of a sweep; {args.models_dir} is one exported model",
              file=sys.stderr)
        return 2
    model = load_pretrained(args.models_dir)
    prov = dict(model.provenance)
    name = str(prov.get("run", args.models_dir.stem))
    info = load_set_info(args.data_root)
    # the held-out people must be out of the training set: the data root it trained on (its sets/info.json
    # fingerprint, recorded by the device's ship stage) must be this one
    trained_on = str(prov.get("data_fingerprint", ""))
    if trained_on and trained_on != info.get("fingerprint"):
        print(f"error: {args.models_dir} trained on data with fingerprint {trained_on[:12]}..., --data-root "
              f"{args.data_root} is {str(info.get('fingerprint'))[:12]}...: its held-out people may be in that "
              f"training set; score it on the data root it trained on", file=sys.stderr)
        return 2
    if not trained_on:
        print(f"[wae_lib] note: {args.models_dir} records no data fingerprint: that it trained on {args.data_root}'s "
              f"split is not checked", file=sys.stderr)
    evalset = scorecard.HeldOut.load(args.data_root)
    print(f"[wae_lib] scoring {name} on held-out people", file=sys.stderr)
    table = pd.DataFrame([scorecard.score_reinhard(evalset), {"run": name, **scorecard.score_model(model, evalset)}])
    table["balance"] = [balance_score(r) for _, r in table.iterrows()]
    path = export_pretrained(model, args.out, **{**prov, "metrics": table[table["run"] == name].iloc[0].to_dict()})
    table.to_csv(scorecard_file(args.out), index=False)
    card_table = scorecard.markdown(pd.concat([table, earlier], ignore_index=True) if len(earlier) else table, evalset)
    people = len(set(evalset.identities.tolist())) if evalset.identities is not None else len(evalset.faces)
    cfg = model.config
    write_model_card(
        model, args.out, card_table, run=name, data_label=training_set_label(cfg.data), data_source=info["source"],
        n_images=info["sets"].get(cfg.data, {}).get("count", "?"),
        data_note=prov.get("data_note") or "mixed: CelebA + AnimeFace + ImageNet crops in the paper's proportions",
        hardware=args.hardware, git_commit=prov.get("git_commit", "?"), size_mb=path.stat().st_size / 2**20,
        n_faces=len(evalset.faces), n_people=people, n_styles=len(evalset.styles),
        metrics_note=card_note(args.origin, "", name, 1))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"exported {name} -> {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
