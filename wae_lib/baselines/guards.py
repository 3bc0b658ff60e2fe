"""What shipping and continuing decoders must not destroy (issue 35): the shipped decoders, which a new run replaces
only when asked and only when it is at least as good, and a run folder's own files, which ``--continue-from`` must
not overwrite with another run's.

The shipped figures a replacement is held to (:func:`shipped_figures`) are the steps trained and the best held-out
validation loss: the loss the convergence rule of ``baselines.train`` watches (``best_val_loss`` in a run's
log.jsonl), and the one figure of it that the file's record, its checkpoint and the card all state. They come from
the file's ``shipped`` record, else the card's line of that method (a file without a record, or a checkout whose
file is missing, still has its card), else the file's own checkpoint.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model.checkpoint import CHECKPOINT
from .common import BaselineWeightsError, read_baseline_checkpoint


@dataclass(frozen=True)
class Figures:
    """What a set of decoders is held to: steps trained and best held-out validation loss (None: not known)."""

    steps: int | None
    loss: float | None
    source: str  # where the figures were read, said in the refusal

    def __str__(self) -> str:
        steps = "? steps" if self.steps is None else f"{self.steps:,} steps"
        if self.loss is None or math.isnan(self.loss):
            return f"{steps}, no held-out validation loss"
        return f"{steps}, best held-out validation loss {self.loss:.4g}"


def best_loss(history: list[Any]) -> float:
    """The lowest validation loss of ``[(step, loss), ...]``; nan without validations."""
    return min((float(v) for _, v in history), default=float("nan"))


def card_figures(method: str, card: Path, title: str) -> Figures | None:
    """The figures of ``method``'s line in ``baselines.card.md`` (written by shipped.card_line; title: its first
    cell); None when the card or the line is not there."""
    if not card.is_file():
        return None
    for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(f"| {title} |"):
            steps = re.search(r"\| ([\d,]+) steps of", line)
            loss = re.search(r"\| (\S+) at step", line)
            try:
                value = float(loss.group(1)) if loss else None
            except ValueError:
                value = None
            return Figures(int(steps.group(1).replace(",", "")) if steps else None, value, f"{card.name}, {method} line")
    return None


def shipped_figures(method: str, path: Path, card: Path, title: str) -> Figures | None:
    """What the decoders shipped as ``path`` are held to (see the module's docstring); None when nothing of
    ``method`` is shipped (no file, no card line)."""
    ckpt = None
    if path.is_file():
        try:
            ckpt = read_baseline_checkpoint(path)
        except BaselineWeightsError:
            ckpt = None  # unreadable: the card may still say what it was
    record = (ckpt or {}).get("shipped")
    if isinstance(record, dict) and "steps" in record and "best_val_loss" in record:
        loss = record["best_val_loss"]
        return Figures(int(record["steps"]), None if loss is None else float(loss), f"{path.name}'s record")
    from_card = card_figures(method, card, title)
    if from_card is not None:
        return from_card
    if ckpt is not None:
        return Figures(int(ckpt.get("step", 0)), best_loss(ckpt.get("val_history") or []), f"{path.name}'s checkpoint")
    return Figures(None, None, f"{path.name} (unreadable, no card line)") if path.is_file() else None


def check_replacement(method: str, target: Path, run: Path, new: Figures, old: Figures | None, replace: bool) -> str:
    """Refuse (one line, both figures) to replace shipped decoders unless ``replace``, and even then decoders that
    trained fewer steps or score a higher best held-out loss. Returns a note for stderr ('' when nothing is
    replaced)."""
    if old is None:
        return ""
    if not replace:
        raise BaselineWeightsError(f"{target.parent} already ships {method} decoders ({old}; from {old.source}); give "
                                   f"--replace to replace them with {run} ({new}), or --weights-dir another folder")
    worse = []
    if old.steps is not None and (new.steps or 0) < old.steps:
        worse.append("trained fewer steps")
    if old.loss is not None and not math.isnan(old.loss) and not (new.loss is not None and new.loss <= old.loss):
        worse.append("has no held-out validation loss (train it with --val-every)" if new.loss is None
                     or math.isnan(new.loss) else "scores a higher best held-out validation loss (lower is better)")
    if worse:
        raise BaselineWeightsError(f"refusing to replace {target} ({old}; from {old.source}) with {run} ({new}): it "
                                   f"{' and '.join(worse)}")
    if old.steps is None:
        return f"[wae_lib] {target}: what it held is not recorded; replaced as asked (--replace)"
    return f"[wae_lib] {target}: replaced ({old}; from {old.source}) with {run} ({new})"


# --------------------------------------------------------------------------------------------------
# --continue-from: a run folder's own files
# --------------------------------------------------------------------------------------------------
RUN_FILES = ("config.json", "metadata.json", "lr_probe.json", "log.jsonl")  # what a run writes before a checkpoint
NOT_COMPARED = ("lr",)  # a probe sets it after --continue-from is checked


def _recorded_config(path: Path) -> dict[str, Any] | None:
    """The config a run file records (config.json: itself; metadata.json: its "config"; lr_probe.json: its
    method only); None when it is unreadable or records none."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if path.name == "metadata.json":
        data = data.get("config")
    elif path.name == "lr_probe.json":
        data = {"method": data.get("method")}
    return data if isinstance(data, dict) and "method" in data else None


def foreign_files(run_dir: Path, config: dict[str, Any], resumable: tuple[str, ...]) -> list[str]:
    """The files of ``run_dir`` (no checkpoint in it) that are not an earlier start of this same run: anything but
    the run's own files, a file recording another method or config (fields beyond ``resumable``), and a log
    without the config.json its run writes first. Dot files (a run lock, an atomic write's leftover) are not
    counted: nothing reads or overwrites them."""
    foreign = []
    names = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    for name in names:
        if name not in RUN_FILES:
            foreign.append(name)
        elif name == "log.jsonl":
            if "config.json" not in names:
                foreign.append(name)
        else:
            saved = _recorded_config(run_dir / name)
            if saved is None or any(saved.get(k, v) != v for k, v in config.items()
                                    if k not in resumable and k not in NOT_COMPARED and k in saved):
                foreign.append(name)
    if "log.jsonl" in names and "config.json" in foreign:
        foreign.append("log.jsonl")
    return sorted(set(foreign))


def check_continue_folder(run_dir: Path, config: dict[str, Any], resumable: tuple[str, ...]) -> None:
    """``--continue-from`` seeds an empty folder, or leaves one holding this run's checkpoint (it resumes); a
    folder holding anything else is refused in one line instead of its log being overwritten or its lr probe
    reused."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise BaselineWeightsError(f"--out {run_dir} is a file, not a run folder")
    if (run_dir / CHECKPOINT).is_file():
        return  # a run of its own: train_decoders resumes it, or refuses another config in one line
    foreign = foreign_files(run_dir, config, resumable)
    if foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise BaselineWeightsError(f"--out {run_dir} holds {shown}, not files of this {config.get('method')} run, and "
                                   f"no {CHECKPOINT}: --continue-from starts an empty folder or resumes its own run; "
                                   f"give another --out")
