"""A run folder's state on disk: the checkpoint, its config, the RNG states, the folder lock and the log.

The checkpoint (``checkpoint.pt``, written atomically, loadable with ``weights_only=True``) is the run's state
record: its config decides whether a run is reused, resumed or refused; on resume the log is cut back to its
step; a ``config.json`` that disagrees with it is refused. A lock (``.lock``, flock) keeps a second training
process out of a folder that one is using.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

import torch

from ..config import Config, VGGSource
from ..utils import UserError, atomic_torch_save, atomic_write_text, load_weights
from .vgg import source_matches

try:
    import fcntl
except ImportError:  # not POSIX: run folders are not locked
    fcntl = None

CHECKPOINT = "checkpoint.pt"
LOCK = ".lock"
RUNTIME_FIELDS = ("device", "compile", "log_every", "sample_every", "ckpt_every")  # do not change what is learnt
RESUMABLE_CHANGES = ("steps", *RUNTIME_FIELDS)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint cannot be read, or its run folder disagrees with it."""


class RunFolderBusy(UserError, RuntimeError):
    """Another training process holds the run folder's lock."""


# --------------------------------------------------------------------------------------------------
# the checkpoint and its config
# --------------------------------------------------------------------------------------------------
def load_checkpoint(path: Path) -> dict[str, Any]:
    return load_weights(path, CheckpointError, "checkpoint", "; delete it to retrain, or restore it from a backup")


def write_checkpoint(out: Path, state: dict[str, Any]) -> None:
    """Write ``out/checkpoint.pt`` atomically, after the log rows up to its step are on disk."""
    log = out / "log.jsonl"
    if log.is_file():
        with open(log, "rb+") as f:
            os.fsync(f.fileno())
    atomic_torch_save(state, out / CHECKPOINT)


def checkpoint_config(ckpt: dict[str, Any], source: str = "") -> Config:
    """The run's Config as its checkpoint recorded it, with the VGGSource its model was built with.

    Checkpoints written before VGGSource (and format-1 pretrained files) kept the request (e.g. ``auto``) in the
    config and the resolved name and label beside it: they are read into a VGGSource without a digest.
    """
    cfg = Config.from_dict(ckpt["config"], source)
    if isinstance(cfg.vgg_source, VGGSource):
        return cfg
    return cfg.replace(vgg_source=VGGSource(ckpt["vgg_source"], ckpt["vgg_source_label"], ""))


def check_config_json(run_dir: Path, ckpt: dict[str, Any]) -> None:
    """Refuse a run folder whose config.json disagrees with its checkpoint: evaluation labels figures from
    config.json while the weights follow the checkpoint, so an edited or mixed-up folder would be mislabelled.
    A folder without config.json (an export, a copied checkpoint) is described by its checkpoint alone."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    saved = Config.load(path).to_dict()
    recorded = Config.from_dict(ckpt["config"], str(run_dir / CHECKPOINT)).to_dict()
    diff = {k: (saved[k], recorded[k]) for k in recorded if saved[k] != recorded[k] and k not in RUNTIME_FIELDS}
    if diff:
        shown = ", ".join(f"{k}: config.json {a!r} vs checkpoint {b!r}" for k, (a, b) in sorted(diff.items()))
        raise CheckpointError(f"{run_dir}: config.json disagrees with {CHECKPOINT} on {sorted(diff)} ({shown}); "
                              f"restore config.json, or retrain the folder with --force")


def config_difference(saved: Config, requested: Config) -> dict[str, tuple[Any, Any]]:
    """Fields that differ, except those a resumed run may change (more steps, another device, logging). The VGG16
    source differs when the request (e.g. ``auto``) does not resolve to the source the run recorded."""
    a, b = saved.to_dict(), requested.to_dict()
    diff = {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in (*RESUMABLE_CHANGES, "vgg_source")}
    if not source_matches(saved.vgg_source, requested.vgg_source):
        diff["vgg_source"] = (a["vgg_source"], b["vgg_source"])
    return diff


# --------------------------------------------------------------------------------------------------
# random number generators
# --------------------------------------------------------------------------------------------------
def rng_state(gen: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "batches": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------------
# run folders: lock, log
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def run_lock(out: Path, enabled: bool = True):
    """Hold an exclusive lock on the run folder (``out/.lock``) while training, so that a second run on the same
    folder refuses instead of interleaving its log and checkpoints. flock: the kernel drops the lock when the
    process ends, even by kill -9, so a lock file left behind never blocks the next run."""
    if not enabled or fcntl is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunFolderBusy(f"run folder {out} is in use by another training run ({holder}; lock {path}): "
                                f"wait for it to finish, or use another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def truncate_log(path: Path, step: int) -> None:
    """Keep the log rows up to ``step`` (the checkpoint being resumed). Rows a killed run wrote after its last
    checkpoint would otherwise appear twice (steps 6, 7, 6, 7) once the resumed run logs those steps again; a
    line torn by the kill is dropped too."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("step", 0) <= step:
            keep.append(line + "\n")
    atomic_write_text(path, "".join(keep))
