"""A model by name (:func:`resolve_model`: the one reading of a model name that ``load_model``, the ``transfer``
command and the explorer share), a run folder read back (its trained model, the frozen VGG16 its checkpoint holds),
and its training log (as a table; what the training cost, in images and seconds).

    from wae_lib import load_model
    model = load_model("models/quick-sample/mixed_c128")   # eval mode; "pretrained", "pretrained-paper": shipped
    model = load_model("models/quick-sample/mixed_c128/checkpoint.pt")   # the same run; an exported .pt file too

The model is rebuilt from the checkpoint alone: its config (with the VGGSource recorded at training) and all its
weights, the frozen VGG16's included, so nothing is resolved or downloaded again.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import SHIPPED_MODELS, Config
from ..utils import non_finite
from .checkpoint import CHECKPOINT, CheckpointError, check_config_json, checkpoint_config, load_checkpoint
from .pretrained import load_pretrained, shipped_file
from .vgg import VGG16Features
from .wae import WAEStyle


def vgg_from_checkpoint(ckpt: dict[str, Any], cfg: Config) -> VGG16Features:
    """The frozen VGG16 a checkpoint holds: its weights, and the VGGSource ``cfg`` (checkpoint_config) recorded."""
    prefix = "vgg.features."
    state = {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    return VGG16Features(cfg.vgg_source, cfg.style_layers, state_dict=state)


@dataclass(frozen=True)
class ModelSource:
    """What a model name means: ``kind`` "shipped" (a name of SHIPPED_MODELS, whatever folders the working directory
    holds), "run" (a run folder; ``path`` its checkpoint) or "file" (an exported model file, wae_lib.model.pretrained's
    format); ``path``: the file that is read."""

    name: str
    kind: str
    path: Path

    @property
    def label(self) -> str:
        """How figures name it: the shipped name, the run folder's name (also when given its checkpoint.pt), or
        the exported file's name."""
        return self.name if self.kind == "shipped" else (self.path.parent if self.kind == "run" else self.path).name


def resolve_model(name: str | Path) -> ModelSource:
    """The one reading of a model name: a shipped name, a run folder (or its checkpoint.pt), or an exported .pt.
    Raises FileNotFoundError (one line, saying what is accepted) for anything else."""
    text = str(name)
    if text in SHIPPED_MODELS:
        return ModelSource(text, "shipped", shipped_file(text))
    path = Path(name)
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            raise FileNotFoundError(f"model {text} is a folder without {CHECKPOINT} (not a training run folder); "
                                    f"train it with `python -m wae_lib train --out {text}`")
        return ModelSource(text, "run", path / CHECKPOINT)
    if path.name == CHECKPOINT and path.is_file():
        return ModelSource(text, "run", path)
    if path.is_file():
        return ModelSource(text, "file", path)
    raise FileNotFoundError(f"model {text} does not exist (give {' or '.join(map(repr, SHIPPED_MODELS))}, a run folder "
                            f"holding {CHECKPOINT}, or a .pt file)")


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> WAEStyle:
    """The trained WAEStyle a model name (:func:`resolve_model`) names, in eval mode, with ``checkpoint_info``
    (step, finished).

    A shipped name (``"pretrained"``: ours, ``"pretrained-paper"``: the paper's training) loads that model from
    the package (wae_lib/weights, see wae_lib.model.pretrained), whatever folders the working directory holds; so
    does an exported model file, with its ``provenance``.
    """
    source = resolve_model(run_dir)
    if source.kind != "run":
        return load_pretrained(source.path, device)
    path = source.path
    run_dir = path.parent
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


STALL_FACTOR = 10  # a log interval slower than this many times the run's median time per step was a stall


def training_cost(log_path: str | Path, batch_size: int) -> tuple[float, float]:
    """(images seen, training seconds) of a run from its log.jsonl; (nan, nan) when there is no log (e.g. the
    shipped model without its run).

    Each row's ``elapsed_s`` (wall seconds since its process started training; an older log's rows have only
    ``images_per_s``, the mean rate since then, from which it follows) gives the time between rows; a process
    that resumed starts again from 0, which is where one segment ends (an older log shows that only where the new
    process ran faster than the old one's mean; otherwise it reads as one slow interval, which the next rule
    caps). An interval slower than STALL_FACTOR x the median time per step (a suspended process, a sleeping
    machine) counts at that bound: a pause is not training.
    """
    path = Path(log_path)
    path = path / "log.jsonl" if path.is_dir() else path
    if not path.is_file():
        return float("nan"), float("nan")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "step" in r and (r.get("elapsed_s") is not None or r.get("images_per_s"))]
    intervals: list[tuple[int, float]] = []  # (steps, seconds) between consecutive rows
    prev_step, prev_t, start = 0, 0.0, 0  # start: the step its process began at
    for row in rows:
        step = row["step"]
        if row.get("elapsed_s") is not None:
            t = float(row["elapsed_s"])
            resumed = t < prev_t
        else:  # the mean rate since the process started: continuing, or a process that began at the last row
            t = (step - start) * batch_size / row["images_per_s"]
            resumed = t < prev_t
            if resumed:
                start = prev_step
                t = (step - start) * batch_size / row["images_per_s"]
        if resumed:
            prev_t = 0.0
        intervals.append((step - prev_step, t - prev_t))
        prev_step, prev_t = step, t
    per_step = sorted(s / n for n, s in intervals if n > 0)
    if not per_step:
        return float(prev_step * batch_size), 0.0
    bound = STALL_FACTOR * per_step[len(per_step) // 2]
    seconds = sum(min(s, bound * n) for n, s in intervals if n > 0)
    return float(prev_step * batch_size), seconds
