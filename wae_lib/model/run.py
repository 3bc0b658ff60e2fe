"""A run folder read back: its trained model (or one shipped in the package, by name), the frozen VGG16 its
checkpoint holds, and its training log (as a table; what the training cost, in images and seconds).

    from wae_lib import load_model
    model = load_model("models/quick-sample/mixed_c128")   # eval mode; "pretrained", "pretrained-paper": shipped

The model is rebuilt from the checkpoint alone: its config (with the VGGSource recorded at training) and all its
weights, the frozen VGG16's included, so nothing is resolved or downloaded again.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from ..config import SHIPPED_MODELS, Config
from ..utils import non_finite
from .checkpoint import CHECKPOINT, CheckpointError, check_config_json, checkpoint_config, load_checkpoint
from .pretrained import load_shipped
from .vgg import VGG16Features
from .wae import WAEStyle


def vgg_from_checkpoint(ckpt: dict[str, Any], cfg: Config) -> VGG16Features:
    """The frozen VGG16 a checkpoint holds: its weights, and the VGGSource ``cfg`` (checkpoint_config) recorded."""
    prefix = "vgg.features."
    state = {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    return VGG16Features(cfg.vgg_source, cfg.style_layers, state_dict=state)


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> WAEStyle:
    """The trained WAEStyle of a run folder, in eval mode, with ``checkpoint_info`` (step, finished).

    A shipped name (``"pretrained"``: ours, ``"pretrained-paper"``: the paper's training) loads that model from
    the package (wae_lib/weights, see wae_lib.model.pretrained), whatever folders the working directory holds.
    """
    if str(run_dir) in SHIPPED_MODELS:
        return load_shipped(str(run_dir), device=device)
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no {CHECKPOINT}; train it with `python -m wae_lib train --out {run_dir}`")
    ckpt = load_checkpoint(path)
    check_config_json(Path(run_dir), ckpt)
    bad = non_finite(ckpt["model"]) if isinstance(ckpt.get("model"), dict) else []
    if bad:
        raise CheckpointError(f"{path}: weights {bad[:3]} hold NaN or inf (the run diverged?); resume from an earlier "
                              f"checkpoint or retrain")
    cfg = checkpoint_config(ckpt, str(path))
    model = WAEStyle(cfg, vgg=vgg_from_checkpoint(ckpt, cfg), verbose=False)
    model.load_state_dict(ckpt["model"])
    model.checkpoint_info = {"step": ckpt["step"], "finished": ckpt["finished"]}
    return model.to(device).eval()


def read_training_log(run_dir: str | Path):
    """log.jsonl of a run as a pandas DataFrame (one row per logged step; weighted terms as weighted/<term>)."""
    import pandas as pd

    rows = []
    for line in (Path(run_dir) / "log.jsonl").read_text().splitlines():
        with contextlib.suppress(ValueError):  # a last line torn by a hard kill (resuming cuts it away)
            rows.append(json.loads(line))
    if not rows:
        raise ValueError(f"{run_dir}/log.jsonl holds no rows yet")
    return pd.json_normalize(rows, sep="/")


def training_cost(log_path: str | Path, batch_size: int) -> tuple[float, float]:
    """(images seen, seconds) of a training run from its log.jsonl: each row's ``images_per_s`` times the
    images since the previous row. (nan, nan) when there is no log (e.g. the shipped model without its run)."""
    path = Path(log_path)
    path = path / "log.jsonl" if path.is_dir() else path
    if not path.is_file():
        return float("nan"), float("nan")
    prev, seconds = 0, 0.0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "step" in row and row.get("images_per_s"):
            seconds += (row["step"] - prev) * batch_size / row["images_per_s"]
            prev = row["step"]
    return float(prev * batch_size), seconds
