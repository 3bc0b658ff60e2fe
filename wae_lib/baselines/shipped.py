"""The AdaIN and WCT decoders shipped inside the package (issue 17): export a trained run, find the file, the card.

    python -m wae_lib ship-baselines models/converge-adain models/converge-wct --figure reports/baselines/curves.png
    python -m wae_lib ship-baselines RUN --weights-dir /tmp/weights     # anywhere else (tests, a trial)
    B.build_baseline("adain", weights="shipped")      # what notebook 07 and `make compare` use by default

Each method's decoders are one file ``wae_lib/weights/baseline-<method>.pt`` (:func:`shipped_baseline_file`, the one
home of that layout): the run's checkpoint without its optimiser and generator state, plus a ``shipped`` record of
what they cost and where they stand (steps, images seen, training seconds, learning rate and its probe, the last
training losses and the held-out validation curve, converged or not), so notebook 07's table and the card say it
without the run folder. ``baselines.card.md`` beside them has a line per method, written from those records.

Shipping replaces nothing unless asked (``--replace``), and even then never with decoders that trained fewer steps
or score a higher best held-out validation loss than the shipped ones (wae_lib.baselines.guards); every run, the
figure and the files it would replace are checked before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from ..model.checkpoint import CHECKPOINT
from ..utils import atomic_torch_save, atomic_write_text, git_commit
from . import common
from .build import build_baseline
from .common import METHOD_NAMES, BaselineWeightsError, read_baseline_checkpoint, shipped_baseline_file
from .guards import Figures, best_loss, check_continue_folder, check_replacement, shipped_figures
from .train import FINAL_ROWS, LR_PROBE, final_loss, read_log

CARD_NAME = "baselines.card.md"
CURVE_POINTS = 400  # training-loss points kept in the shipped record (the full log stays in the run folder)


def hardware(meta: dict[str, Any], device: str) -> str:
    """Where the run trained, from its metadata.json (wae_lib.utils.run_metadata)."""
    if device != "cpu" and meta.get("cuda"):
        return meta["cuda"]
    return f"{meta.get('host_cpus', '?')} CPU cores ({meta.get('torch_threads', '?')} torch threads)"


def reconstruction_psnr(run_dir: Path, ckpt: dict[str, Any]) -> float:
    """Mean PSNR (dB) of the decoders' reconstruction of the run's validation images (decoder(encoder(x)), what
    alpha 0 gives): how well they invert the VGG16, which AdaIN's loss (no pixel term) does not ask for directly.
    nan when the run had no validation images."""
    from ..eval.metrics import psnr_per_image
    from .train_config import BaselineTrainConfig
    from .train_losses import load_validation_images

    names = {f.name for f in dataclasses.fields(BaselineTrainConfig)}
    cfg = BaselineTrainConfig(**{k: v for k, v in ckpt["config"].items() if k in names})
    if not cfg.val_every:
        return float("nan")
    x = load_validation_images(cfg)
    model = build_baseline(ckpt["method"], weights=run_dir)
    with torch.no_grad():
        return float(psnr_per_image(model.reconstruct(x), x).mean())


def val_history(ckpt: dict[str, Any], val_rows: list[dict[str, Any]]) -> list[Any]:
    """The run's held-out validation losses [(step, loss), ...]: its checkpoint's, else its log's rows."""
    return ckpt.get("val_history") or [(r["step"], r["val_loss"]) for r in val_rows]


def read_json(path: Path) -> Any:
    """A run's JSON file (metadata, lr probe), or None when absent; a damaged one is one line naming it."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BaselineWeightsError(f"{path} is not valid JSON ({exc}); restore it or retrain the run") from None


def training_record(run_dir: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """What the decoders cost and where they stand, from the run's checkpoint, log and lr probe."""
    from ..model.run import training_cost

    train, val = read_log(run_dir)
    cfg = ckpt["config"]
    seconds = training_cost(run_dir, cfg["batch_size"])[1]
    every = max(1, math.ceil(len(train) / CURVE_POINTS))
    history = val_history(ckpt, val)
    best = min(history, key=lambda r: r[1]) if history else None
    meta = read_json(run_dir / "metadata.json") or {}
    return {
        "run": run_dir.name, "steps": ckpt["step"], "batch_size": cfg["batch_size"],
        "images": ckpt["step"] * cfg["batch_size"], "training_seconds": round(seconds, 1), "lr": cfg["lr"],
        "lr_probe": read_json(run_dir / LR_PROBE),
        "final_loss": final_loss(train),
        "val_history": [[int(s), float(v)] for s, v in history],
        "best_val_loss": best[1] if best else float("nan"), "best_val_step": best[0] if best else None,
        "reconstruction_psnr": reconstruction_psnr(run_dir, ckpt),
        "converged": bool(ckpt.get("converged")), "patience": cfg.get("patience", 0),
        "min_improvement": cfg.get("min_improvement"), "val_sets": cfg.get("val_sets"),
        "curve": [[r["step"], r["loss"]] for r in train[::every]],
        "data": cfg["data"], "n_images": meta.get("n_images"), "hardware": hardware(meta, cfg.get("device", "cpu")),
        "git_commit": git_commit(),
    }


def finished_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The run's checkpoint; an unfinished one is refused (its figures are not final)."""
    ckpt = read_baseline_checkpoint(run_dir)
    if not ckpt.get("finished"):
        raise BaselineWeightsError(f"{run_dir}: the {ckpt['method']} decoders are unfinished (step {ckpt['step']}); "
                                   f"resume their training to the end before shipping them")
    return ckpt


def export_baseline(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """The finished run's decoders as the shipped file of its method (or ``out``), atomically. It replaces what is
    there: :func:`ship` (the command) checks first."""
    run_dir = Path(run_dir)
    ckpt = finished_checkpoint(run_dir)
    out = Path(out) if out else shipped_baseline_file(ckpt["method"])
    atomic_torch_save(shipped_payload(run_dir, ckpt), out)
    return out


def shipped_payload(run_dir: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """What the shipped file of a finished run holds."""
    # Unconverged decoders keep what resuming needs (Adam, the batch RNG, the log, the lr probe; ~3x the weights'
    # size): a checkout's untracked run folders do not outlive it, so the shipped file is how a CPU run that takes
    # longer than one sitting carries on (restore_run). Converged ones ship the decoders alone.
    converged = bool(ckpt.get("converged"))
    payload = dict(ckpt) if not converged else {k: v for k, v in ckpt.items() if k not in ("optimizer", "rng")}
    payload["shipped"] = training_record(run_dir, ckpt)
    if not converged:
        probe, log = run_dir / LR_PROBE, run_dir / "log.jsonl"
        payload["resume"] = {"log": log.read_text() if log.is_file() else "",
                             "lr_probe": probe.read_text() if probe.is_file() else ""}
    return payload


def ship(runs: list[str | Path], weights_dir: Path | None = None, replace: bool = False, figure: str = "") -> list[str]:
    """``ship-baselines``: each finished run's decoders as its method's file in ``weights_dir`` (default the
    package's), the card, and the curves ``figure``. Everything is checked (finished, one run per method, what it
    would replace: guards.check_replacement, an existing figure) and every file prepared before the first write.
    Returns the lines to print."""
    weights_dir = Path(weights_dir) if weights_dir else common.WEIGHTS_DIR  # read now: tests point it elsewhere
    if figure and Path(figure).exists() and not replace:
        raise BaselineWeightsError(f"--figure {figure} exists; give --replace to replace it, or another path")
    ready: dict[str, tuple[Path, dict[str, Any]]] = {}
    notes = []
    for run in map(Path, runs):
        ckpt = finished_checkpoint(run)
        method = ckpt["method"]
        if method in ready:
            raise BaselineWeightsError(f"{ready[method][0]} and {run} both hold {method} decoders; ship one per method")
        target = shipped_baseline_file(method, weights_dir)
        new = Figures(int(ckpt["step"]), best_loss(val_history(ckpt, read_log(run)[1])), str(run))
        old = shipped_figures(method, target, weights_dir / CARD_NAME, METHOD_NAMES[method])
        notes.append(check_replacement(method, target, run, new, old, replace))
        ready[method] = (run, ckpt)
    payloads = {m: shipped_payload(run, ckpt) for m, (run, ckpt) in ready.items()}  # before the first write
    weights_dir.mkdir(parents=True, exist_ok=True)
    lines = [n for n in notes if n]
    for method, payload in payloads.items():
        path = shipped_baseline_file(method, weights_dir)
        atomic_torch_save(payload, path)
        lines.append(f"shipped {ready[method][0]} -> {path} ({path.stat().st_size / 2**20:.1f} MB)")
    lines.append(f"card: {write_card(weights_dir)}")
    if figure:  # like the card: every method shipped, not only the ones just exported
        lines.append(f"curves: {plot_curves(shipped_files(weights_dir), figure)}")
    return lines


def restore_run(shipped: str | Path, run_dir: str | Path, method: str, config: dict[str, Any] | None = None) -> bool:
    """Seed an empty run folder from shipped unconverged decoders of ``method`` (their checkpoint with Adam and the
    batch RNG, log.jsonl and lr_probe.json), so that training carries on where the shipped run stopped, exactly as
    a resumed run. ``shipped``: a file, or "shipped" for the package's. True when the folder was seeded; a folder
    that holds a checkpoint, a missing file and converged decoders are left alone (one line says which). A folder
    holding anything but an earlier start of this run (``config``: its BaselineTrainConfig.to_dict()) is refused
    (guards.check_continue_folder)."""
    from .train_config import RESUMABLE_CHANGES

    run_dir = Path(run_dir)
    path = shipped_baseline_file(method) if str(shipped) == "shipped" else Path(shipped)
    check_continue_folder(run_dir, config or {"method": method}, RESUMABLE_CHANGES)
    if (run_dir / CHECKPOINT).is_file():
        return False  # its own checkpoint is newer than anything shipped
    if not path.is_file():
        print(f"[wae_lib] {run_dir}: no shipped {method} decoders at {path} to continue from; training from scratch",
              file=sys.stderr)
        return False
    ckpt = read_baseline_checkpoint(path)
    if ckpt["method"] != method:
        raise BaselineWeightsError(f"{path} holds {ckpt['method']} decoders, not {method}")
    if "resume" not in ckpt:
        print(f"[wae_lib] {path}: the shipped {method} decoders converged (step {ckpt['step']}) and carry no "
              f"training state; training {run_dir} from scratch", file=sys.stderr)
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in ckpt.items() if k not in ("shipped", "resume")}
    atomic_write_text(run_dir / "log.jsonl", ckpt["resume"]["log"])
    if ckpt["resume"]["lr_probe"]:
        atomic_write_text(run_dir / LR_PROBE, ckpt["resume"]["lr_probe"])
    atomic_torch_save(state, run_dir / CHECKPOINT)  # last: a folder with a checkpoint is a complete one
    print(f"[wae_lib] {run_dir}: continuing the shipped {method} decoders ({path}, step {ckpt['step']})",
          file=sys.stderr)
    return True


def card_line(method: str, record: dict[str, Any], vgg_label: str, size: int) -> str:
    state = (f"converged: no {record['min_improvement']:.1%} gain in {record['patience']} validations"
             if record["converged"] else "stopped at its step budget, NOT converged")
    hours = record["training_seconds"] / 3600
    probe = record.get("lr_probe")
    lr = (f"lr {record['lr']:g} (probe of {', '.join(probe['loss'])} x {probe['probe_steps']} steps)" if probe
          else f"lr {record['lr']:g}")
    return (f"| {METHOD_NAMES[method]} | `{record['data']}` set ({record['n_images']} images) | {record['steps']:,} "
            f"steps of {record['batch_size']} ({record['images']:,} images), {hours:.1f} h on {record['hardware']} | "
            f"{lr} | {record['final_loss']:.4g} | {record['best_val_loss']:.4g} at step {record['best_val_step']} "
            f"({state}) | {record.get('reconstruction_psnr', math.nan):.1f} dB | {vgg_label} | {size / 2**20:.1f} MB |")


def shipped_files(weights_dir: Path | None = None) -> dict[str, Path]:
    """method -> its shipped decoder file, for the methods whose file is present (in METHOD_NAMES order)."""
    paths = {m: shipped_baseline_file(m, weights_dir) for m in METHOD_NAMES}
    return {m: p for m, p in paths.items() if p.is_file()}


def write_card(weights_dir: Path | None = None) -> Path:
    """``baselines.card.md`` from the shipped files present: one table line per method. A method whose file is
    absent (a partial checkout) keeps the line the card had: shipping one method never drops the other's."""
    weights_dir = weights_dir or common.WEIGHTS_DIR
    card = weights_dir / CARD_NAME
    old = card.read_text(encoding="utf-8", errors="replace").splitlines() if card.is_file() else []
    files, lines = shipped_files(weights_dir), []
    for method, title in METHOD_NAMES.items():
        ckpt = read_baseline_checkpoint(files[method]) if method in files else {}
        if "shipped" in ckpt:
            lines.append(card_line(method, ckpt["shipped"], ckpt.get("vgg_source_label", ckpt["vgg_source"]),
                                   files[method].stat().st_size))
        else:  # no file, or one without its record: the card's line stays
            lines += [line for line in old if line.startswith(f"| {title} |")][:1]
    text = CARD_TEXT.format(rows="\n".join(lines), final_rows=FINAL_ROWS)
    atomic_write_text(card, text)
    return card


CARD_TEXT = """# Card: the shipped AdaIN and WCT decoders (`build_baseline(name, weights="shipped")`)

The comparison baselines of notebook 07 (issue 17), trained on our model's training set with their authors' losses
(`wae_lib.baselines.train`: AdaIN, Huang & Belongie 2017, eq. 11-13; WCT, Li et al. 2017, eq. 1, three decoders),
at 64x64, against the same VGG16 as our model. Written by `python -m wae_lib ship-baselines`; each file keeps its
training record (`ckpt["shipped"]`: curve, validation history, cost). "Final loss": the mean training loss of the
last {final_rows} logged steps; "validation": the same loss on fixed held-out images (content_eval + natural_eval, none in
any training set), the measure of convergence (training stops when it has not improved for `patience` validations);
"reconstruction": the mean PSNR of decoder(encoder(x)) on those images (alpha 0: how well the decoders invert the
VGG16; AdaIN's loss has no pixel term, WCT's has).
A file that has NOT converged also holds its training state (Adam, the batch order, the log and the lr probe), and
`make ship-baselines` carries on from it, in any checkout, until it converges.

| method | data | schedule | learning rate | final loss | best validation loss | reconstruction | VGG16 | file |
|---|---|---|---|---|---|---|---|---|
{rows}

Licences: the decoders learned from CelebA, the Anime Face Dataset and ImageNet crops (non-commercial research
use; `../shared/data-large/SOURCES.md` of the study); the same terms carry over to the weights.
"""


def plot_curves(files: dict[str, Path], out: str | Path) -> Path:
    """Training loss (thin) and held-out validation loss (points) against images seen, one panel per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(files), figsize=(5.5 * len(files), 3.8), squeeze=False)
    for ax, (method, path) in zip(axes[0], files.items()):
        rec = read_baseline_checkpoint(path)["shipped"]
        b = rec["batch_size"]
        steps, losses = zip(*rec["curve"]) if rec["curve"] else ((), ())
        ax.plot([s * b for s in steps], losses, lw=0.6, alpha=0.6, label="training loss (logged steps)")
        if rec["val_history"]:
            vs, vv = zip(*rec["val_history"])
            ax.plot([s * b for s in vs], vv, "o-", ms=3, label="held-out validation loss")
        ax.set_yscale("log")
        ax.set_xlabel("images seen")
        ax.set_title(f"{METHOD_NAMES[method]}: {'converged' if rec['converged'] else 'not converged'} at "
                     f"{rec['steps']:,} steps", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
