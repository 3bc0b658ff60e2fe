"""The stages of a device session (devtools.device.run), run in the order of :data:`STAGES` (the open
issues' priorities): ``ship`` (our shipped model's training), ``baselines`` (the AdaIN and WCT decoders), ``sweep``
(the paper's 10 models at a GPU budget, evaluated there) and ``fullwidth`` (the paper's width once). Each gets its
share of the time left, measures its steps per second first, sizes its run to fit and stops at a deadline with
what it has; each writes its results folder (what it holds: the stage's docstring).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from wae_lib.config import profile_config

from .device_bundle import TRAIN_SET, log

# Each stage's share of the time left when it starts (the last stage gets the rest); its target (images it needs)
# and what it writes are in its function below.
STAGES: dict[str, float] = {"ship": 0.6, "baselines": 0.5, "sweep": 0.6, "sweep-ours": 0.6, "fullwidth": 1.0}
SHIP_IMAGES = 1_500_000  # issue 16: at least the 1.3 M images the paper-trained shipped model saw
# the shipped model's training (issue 33): the spatial profile's 16 x 16 x 8 content map, the mixed set
SHIP_PROFILE, SHIP_CONTENT_DIM = "spatial", 8
SHIP_CONTENT_MAP_SIDE = profile_config(SHIP_PROFILE).content_map
SWEEP_IMAGES = 102_400  # issue 17 item 2: at least 100k images per model of the paper's sweep (the CPU's: 9,600)
# the profile of each sweep stage (issue 34 item 2: the paper's 10 models under both trainings): the paper's training
# with the reference networks (channels x1/4), as the CPU report, and ours (the same networks, issue 16)
SWEEP_PROFILES = {"sweep": "reference", "sweep-ours": "ours"}
SWEEP_EVAL_SHARE = 0.55  # of the sweep stage's time kept for the evaluation cache and notebooks 03-05 after training
#   (on the H200 the cache of 10 models took ~40 s; notebook 04 is the slow one: it did not finish in 110 s on 2 CPU
#   cores for 2 dry models)
SWEEP_NOTEBOOKS = ("03_reconstruction", "04_transfer", "05_fid")
FULL_EVAL_SHARE = 0.3  # of the fullwidth stage's time kept for its scorecard and notebooks 03-04 (one model)
FULL_IMAGES = 1_000_000  # issue 17 item 3: one full-width model "at a GPU budget" (~2 min at 9,453 img/s measured)  # notebook 06 runs here, on the tables they write
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# every caption of the device sweep states its real schedule and machine (Config.scale_note fills the fields)
SWEEP_NOTE = ("{profile} profile (objective={{objective}}, style_injection={{style_injection}}, content_norm="
              "{{content_norm}}) on a GPU ({device}, device session): channels x{{width}} of Tables 1-2, style FC "
              "width {{style_hidden}}, {{steps}} steps of {{batch_size}} images per model (the paper: full width, many "
              "epochs)")
SHIP_NOTE = ("spatial profile (content {{content_label}}, objective={{objective}}, "
             "style_injection={{style_injection}}, content_norm={{content_norm}}) on a GPU ({device}, device session): "
             "channels x{{width}} of Tables 1-2, style FC width {{style_hidden}}, {{steps}} steps of {{batch_size}} "
             "images")
FULL_NOTE = ("the paper's networks at full width (Tables 1-2 as printed) on a GPU ({device}, device session): "
             "{{steps}} steps of {{batch_size}} images, one model")


DRY = dict(width=0.0625, style_hidden=16, style_dim_per_layer=8, log_every=1, data_init_images=16)


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
    """The study's model (profile SHIP_PROFILE, mixed, a 16 x 16 x SHIP_CONTENT_DIM content map: the candidate for the
    shipped ``pretrained``) for SHIP_IMAGES or the time it has; writes ship/model.pt (wae_lib.model.pretrained's fp16
    export) and the run's config, metadata, log, samples."""
    from wae_lib.model.pretrained import export_pretrained
    from wae_lib.model.run import load_model
    from wae_lib.train.distributed import DistInfo
    from wae_lib.train.run_folder import train
    from wae_lib.train.trainer import Trainer, TrainingInterrupted

    dry, batch = ctx["dry"], ctx["batch"]
    cfg = profile_config(SHIP_PROFILE, **{**dict(data=TRAIN_SET, content_dim=SHIP_CONTENT_DIM,
                                                 data_root=str(ctx["data_root"]), batch_size=batch,
                                                 device=ctx["device"], vgg_source="hed", log_every=50, sample_every=0,
                                                 lr_warmup=5 if dry else 200,
                                                 scaled_note=SHIP_NOTE.format(device=ctx["device_name"])),
                                          **(DRY if dry else {})})
    t0 = time.time()
    probe = Trainer(cfg.replace(steps=10**6), ctx["work"] / "ship_probe", DistInfo())
    rate = steps_per_second(probe, 1 if dry else 5, 2 if dry else 20)
    del probe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the probe's model and optimiser state, before the run builds its own
    left = seconds - (time.time() - t0) - (5 if dry else 30)  # export and the process's own start
    steps = max(2, min(math.ceil(SHIP_IMAGES / batch), int(rate * left * 0.9 * ctx["contention"])))
    log(f"ship: {rate:.2f} steps/s at batch {batch}; training {steps} steps ({steps * batch:,} images)")
    name = f"{SHIP_PROFILE}-mixed_c{SHIP_CONTENT_DIM}"
    run_dir = ctx["work"] / name
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
    export_pretrained(model, out / "model.pt", run=f"device-{name}", step=info["step"],
                      data_fingerprint=ctx["info"].get("fingerprint", ""),
                      finished=info["finished"], batch_size=batch, device=ctx["device_name"],
                      data_note=ctx["info"]["device_note"])
    copy_run_files(run_dir, out)
    return stage_line("ship", info["step"], batch, time.time() - t1, finished=info["finished"])


def baselines_stage(ctx: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The AdaIN and WCT decoders: a short learning-rate probe each (three rates, the lowest mean loss over the
    probe's second half wins), then training at the chosen rate for the rest of its share (WCT, three decoders,
    gets 60%); writes baselines/<method>/ (checkpoint without optimiser state, log, config, lr_probe.json)."""
    from wae_lib.baselines.train import TrainingInterrupted, probe_learning_rates, train_decoders
    from wae_lib.baselines.train_config import baseline_profile
    from wae_lib.data.training_sets import load_images, resolve_data_path

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


def sweep_stage(ctx: dict[str, Any], seconds: float, stage: str = "sweep") -> dict[str, Any]:
    """The paper's 10 models (the profile SWEEP_PROFILES[stage]) at a GPU budget: every model the same steps (SWEEP_IMAGES, or
    what the time share allows, measured on the largest model first), then their evaluation cache and notebooks
    03-05 on the device (devtools.headless: no Jupyter there; identity metrics off: no dlib there). Writes sweep/:
    the notebooks' tables and figures, their cell log, and each run's config, metadata and log (no weights: ten
    models do not fit what the device returns), for notebook 06 here (`make device-claims`). Writes <stage>/."""
    from wae_lib.train.distributed import DistInfo
    from wae_lib.train.run_folder import train
    from wae_lib.train.sweep import sweep_configs
    from wae_lib.train.trainer import Trainer, TrainingInterrupted

    dry, batch, t0 = ctx["dry"], ctx["sweep_batch"], time.time()
    profile = SWEEP_PROFILES[stage]
    base = profile_config(profile, **{**dict(data_root=str(ctx["data_root"]), batch_size=batch,
                                             device=ctx["device"], vgg_source="hed", log_every=5 if dry else 50,
                                             sample_every=0, lr_warmup=2 if dry else 100,
                                             scaled_note=SWEEP_NOTE.format(profile=profile, device=ctx["device_name"])),
                                      **(DRY if dry else {})})
    runs = sweep_configs(base)
    if dry:  # one model per set, two content sizes: every table and figure of 03-05, in seconds
        runs = [r for r in runs if r[0] in ("celeba_c512", "mixed_c256")]
    probe = Trainer(runs[0][1].replace(steps=10**6), ctx["work"] / f"{stage}_probe", DistInfo())
    rate = steps_per_second(probe, 1 if dry else 5, 2 if dry else 10)  # the largest model: the others are faster
    del probe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    train_time = (seconds - (time.time() - t0)) * (1 - SWEEP_EVAL_SHARE)
    steps = max(2, min(3 if dry else math.ceil(SWEEP_IMAGES / batch),
                       int(rate * train_time / len(runs) * 0.9 * ctx["contention"])))
    log(f"{stage}: {rate:.2f} steps/s at batch {batch} (content {runs[0][1].content_dim}); {len(runs)} models x {steps} "
        f"steps ({steps * batch:,} images each)")
    models_dir = ctx["work"] / f"{stage}_models"
    t1 = time.time()
    for name, cfg in runs:
        try:
            with deadline(max(train_time - (time.time() - t1), 1) + 10):
                train(cfg.replace(steps=steps, ckpt_every=steps, sample_every=steps), models_dir / name)
        except TrainingInterrupted as exc:
            log(f"{stage}: {name} stopped at the deadline ({exc})")
    t_train = time.time() - t1
    out = ctx["results"] / stage
    done = evaluate_there(ctx, models_dir, profile, out, SWEEP_NOTEBOOKS, until=t0 + seconds)
    return stage_line(stage, steps * len(runs), batch, t_train, profile=profile, models=len(runs), steps_per_model=steps,
                      eval_seconds=round(time.time() - t1 - t_train, 1), notebooks=done)


def evaluate_there(ctx: dict[str, Any], models_dir: Path, profile: str, out: Path, notebooks: tuple[str, ...],
                   until: float) -> list[str]:
    """The runs of ``models_dir``: their evaluation cache, then ``notebooks`` headless into out/reports/{tables,
    figures} with their cell log out/notebooks.log, and each run's config, metadata and log into out/runs/. At the
    time ``until`` (time.time()) the work in progress stops, so that what is done is still packed and returned;
    returns the notebooks that ran to the end."""
    from wae_lib.eval.cache import build_cache

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
    from wae_lib.eval.scorecard import HeldOut, score_model
    from wae_lib.model.run import load_model
    from wae_lib.train.distributed import DistInfo
    from wae_lib.train.run_folder import train
    from wae_lib.train.trainer import Trainer, TrainingInterrupted

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
    train_time = (seconds - (time.time() - t0)) * (1 - FULL_EVAL_SHARE)
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


STAGE_FUNCTIONS = {"ship": ship_stage, "baselines": baselines_stage, "sweep": sweep_stage,
                   "sweep-ours": functools.partial(sweep_stage, stage="sweep-ours"), "fullwidth": fullwidth_stage}


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
