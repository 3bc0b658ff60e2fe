"""Training into a run folder, from a notebook or the shell: :func:`train` (one run folder: reused when finished,
resumed when not, else started, optionally from another run's weights) and :func:`train_sweep` (every model of a
profile). The command line is wae_lib.commands.train:

    python -m wae_lib train --out models/celeba_c128 --data celeba --content-dim 128 --profile quick
    python -m wae_lib train sweep --profile quick --models-dir models      # every model of a profile
    torchrun --nproc_per_node 2 -m wae_lib train --out RUN ...              # DDP (NCCL on GPU, gloo on CPU)

The loop is wae_lib.train.trainer (Trainer); the sweep's configs are wae_lib.train.sweep. The training data's path
and content digest are resolved once here and handed to the Trainer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import torch.distributed as dist

from ..config import Config, ConfigError
from ..data.training_sets import TrainingData, resolve_training_data, same_data
from ..model.checkpoint import (
    CHECKPOINT,
    LOCK,
    CheckpointError,
    checkpoint_config,
    config_difference,
    load_checkpoint,
    run_lock,
    truncate_log,
)
from ..model.run import vgg_from_checkpoint
from ..model.wae import WAEStyle
from ..utils import (
    atomic_write_text,
    fsync_dir,
    remove_durably,
    remove_stale_temporaries,
    run_metadata,
    set_seed,
    stage_done,
)
from .distributed import DistInfo, init_distributed
from .sweep import sweep_configs
from .trainer import Trainer, TrainingInterrupted

try:
    import fcntl
except ImportError:  # Windows: run_lock holds no lock there either
    fcntl = None


def load_initial_weights(model: WAEStyle, source: str) -> dict[str, list[str]]:
    """``Config.init_from``: copy into ``model`` every trainable weight and buffer of ``source`` (a run folder or a
    shipped model name) that it has under the same name and shape; the others keep their fresh initialisation.
    Refuses a source of another VGG16 (its style encoder reads other Gram matrices) or of other shapes (another
    width or latent size). Returns {"copied": [...], "fresh": [...]}."""
    from ..model.pretrained import PretrainedError
    from ..model.run import load_model

    try:
        src_model = load_model(source)
    except (FileNotFoundError, CheckpointError, PretrainedError) as exc:
        raise ConfigError(f"config field 'init_from' = {source!r}: {exc}") from None
    if src_model.vgg_source.name != model.vgg_source.name:
        raise ConfigError(f"config field 'init_from' = {source!r} was trained against VGG16 "
                          f"'{src_model.vgg_source.name}', this run uses '{model.vgg_source.name}'")
    src, own = src_model.state_dict(), model.state_dict()
    names = [k for k in own if not k.startswith("vgg.")]
    other = [k for k in names if k in src and src[k].shape != own[k].shape]
    if other:
        raise ConfigError(f"config field 'init_from' = {source!r}: {other[:3]} have other shapes there "
                          f"({tuple(src[other[0]].shape)} vs {tuple(own[other[0]].shape)}): another width or latent size")
    copied = [k for k in names if k in src]
    if not copied:
        raise ConfigError(f"config field 'init_from' = {source!r} shares no weights with this model")
    model.load_state_dict({**own, **{k: src[k].to(own[k].dtype) for k in copied}})
    return {"copied": copied, "fresh": [k for k in names if k not in src]}


def train(cfg: Config, out: str | Path, force: bool = False, info: DistInfo | None = None) -> Path:
    """Train (or resume, or reuse) the run in folder ``out``; returns the folder.

    A folder whose checkpoint is finished with the same config and the same training data (content digest) is
    reused unless ``force``; an unfinished checkpoint is resumed exactly (model, optimiser, step, RNG states,
    calibration). ``info``: the process group, when the caller (train_sweep) set it up already. The folder is locked for the whole run (RunFolderBusy if another run holds it). A start that
    fails or is interrupted (Ctrl-C: TrainingInterrupted) before it wrote anything into the folder removes the lock
    file and the folders it created, so no folder holding only ``.lock`` is left (issue 35).
    """
    out = Path(out)
    created = new_paths(out)  # what this start may create, and remove again if it stops before writing
    try:
        cfg.validate()  # types and ranges, before anything is written
        info = info or init_distributed(cfg.device)
        created = created if info.main else []
        data = resolve_training_data(cfg)  # once per run; a bad data setting fails before anything is written
        with run_lock(out, enabled=info.main):
            return _train_locked(cfg, out, info, data, force)
    except BaseException as exc:
        untouched = remove_untouched(created)
        if isinstance(exc, KeyboardInterrupt):  # before the loop's own handler (data init: the first ~25 s)
            left = ("nothing was written" if not out.exists() else
                    f"{out} holds what it held before: run the same command to continue"
                    if untouched or out not in created else
                    f"{out} holds the run's first files: run the same command to continue")
            raise TrainingInterrupted(f"interrupted before the first training step; {left}") from None
        raise


def new_paths(out: Path) -> list[Path]:
    """What locking ``out`` creates, innermost first: its lock file, ``out`` and its missing parents."""
    created = [] if (out / LOCK).exists() else [out / LOCK]
    folder = out
    while not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    return created


def remove_untouched(created: list[Path]) -> bool:
    """After a start that stopped before writing anything: remove the lock file and then the folders of
    ``created`` (new_paths) while they hold nothing else. Returns whether all of them are gone; a folder holding
    any other file (a run's config, checkpoint, log) is kept as it is."""
    for path in created:
        try:
            if path.name == LOCK:
                if not path.exists():  # stopped before the lock
                    continue
                if set(os.listdir(path.parent)) != {LOCK}:
                    return False
                with open(path, "a") as f:
                    if fcntl is not None:  # taken by another start since ours let go: it is that run's now
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    path.unlink()
            elif path.exists():
                path.rmdir()  # only while empty
        except OSError:
            return False
    return True


def _train_locked(cfg: Config, out: Path, info: DistInfo, data: TrainingData, force: bool) -> Path:
    if info.main and out.is_dir():
        remove_stale_temporaries(out)  # of a run killed while writing (the lock says none is running now)
    ckpt_path = out / CHECKPOINT
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.is_file() and not force else None
    if ckpt is not None and not same_data(ckpt.get("data_fingerprint"), data.path, data.digest):
        if info.main:
            print(f"[wae_lib] {out}: the content of the training data {data.path} changed since this run was "
                  f"trained; retraining from scratch (use another --out to keep the old run)", file=sys.stderr)
        ckpt = None
    if ckpt is not None:
        saved = checkpoint_config(ckpt, str(ckpt_path))
        diff = config_difference(saved, cfg)
        if diff:
            raise ConfigError(f"{out} already holds a run with a different config {diff} (saved, requested); "
                              f"use another --out, or --force to retrain from scratch")
        if ckpt["finished"] and ckpt["step"] >= cfg.steps:
            if info.main:
                print(f"[wae_lib] {out}: finished run found (step {ckpt['step']}), reused; --force retrains",
                      file=sys.stderr)
            return out
    set_seed(cfg.seed)
    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt is None:  # a fresh start: the old run's state record goes first, then what derives from it
            for stale in (CHECKPOINT, "log.jsonl", "calibration.json"):
                remove_durably(out / stale)
        else:
            truncate_log(out / "log.jsonl", ckpt["step"])
            if not ckpt["loss_state"].get("calibrated"):
                remove_durably(out / "calibration.json")  # written after the checkpoint: redone on the way
            print(f"[wae_lib] {out}: resuming from step {ckpt['step']} of {cfg.steps}", file=sys.stderr)
    if info.world > 1:
        dist.barrier()
    init = None
    if ckpt is None:  # the model resolves the VGG16 source; a resumed run keeps its checkpoint's VGG16
        trainer = Trainer(cfg, out, info, data=data)
        if cfg.init_from:  # a fresh run only: a resumed one continues from its own checkpoint
            init = load_initial_weights(trainer.model, cfg.init_from)
            if info.main:
                print(f"[wae_lib] {out}: started from {cfg.init_from} ({len(init['copied'])} tensors copied, "
                      f"{len(init['fresh'])} fresh: {', '.join(sorted({k.split('.')[0] for k in init['fresh']})) or 'none'})",
                      file=sys.stderr)
    else:
        cfg = cfg.replace(vgg_source=saved.vgg_source)
        trainer = Trainer(cfg, out, info, data=data, vgg=vgg_from_checkpoint(ckpt, saved))
        trainer.resume(ckpt)
        if ckpt["config"] != cfg.to_dict():  # e.g. more steps: the checkpoint says so before config.json does
            trainer.save()
    cfg = trainer.cfg
    if info.main:
        cfg.save(out / "config.json")
        meta = run_metadata(cfg, dataclasses.asdict(cfg.vgg_source))
        meta.update(data_path=str(trainer.data_path), data_fingerprint=data.digest, n_images=len(trainer.images),
                    world_size=info.world, resumed_from_step=trainer.step)
        if init is not None:
            meta["init_from"] = {"source": cfg.init_from, "fresh": init["fresh"], "copied": len(init["copied"])}
        elif cfg.init_from and (out / "metadata.json").is_file():  # resumed: what the fresh start recorded
            meta["init_from"] = json.loads((out / "metadata.json").read_text()).get("init_from")
        atomic_write_text(out / "metadata.json", json.dumps(meta, indent=2, default=str))
        fsync_dir(out)
    trainer.run()
    return out


def steps_for_epochs(epochs: float, n_images: int, batch_size: int) -> int:
    """Optimiser steps that show the model ``epochs`` passes over ``n_images``."""
    return max(1, math.ceil(epochs * n_images / batch_size))


def train_sweep(base: Config, models_dir: str | Path = "models", seeds: tuple[int, ...] = (),
                force: bool = False) -> list[Path]:
    """Train every model of ``base.profile``'s sweep (and each seed) into ``models_dir``; finished runs are reused."""
    t0 = time.perf_counter()
    info = init_distributed(base.device)
    runs = [train(cfg, Path(models_dir) / name, force=force, info=info) for name, cfg in sweep_configs(base, seeds)]
    if info.main:
        stage_done(f"sweep {base.profile}", f"{len(runs)} runs in {models_dir}", t0)
    return runs
