"""Decoder training for the AdaIN and WCT baselines (issue 9), on our model's training set.

    python -m wae_lib baselines --method adain --data celeba --out models/baseline_adain --steps 2000
    python -m wae_lib baselines --method wct --data data/processed/sets/mixed_train.npy --out DIR

The images come from the same packed set and loader as our model (wae_lib.train.trainer.resolve_data_path /
load_images; the same ``data`` / ``data_root`` values, random horizontal flips as its default): the baselines
learn from exactly our training data. Losses:

- AdaIN (Huang & Belongie 2017, eq. 11-13): content loss between the decoded image's relu3_1 features and the
  AdaIN target t, plus ``style_weight`` x the style loss on the channel means and standard deviations at
  relu1_1, relu2_1, relu3_1. The style images are the same batch rolled by one (image i gets the style of
  image i-1 of a random batch): the same data as our model, no second pool and no extra VGG pass.
- WCT (Li et al. 2017, eq. 1): per level, pixel reconstruction error + ``feature_weight`` x the error of the
  reconstruction's VGG features at that level. The three decoders are independent: summing their losses in
  one Adam step trains each exactly as separately, on the same batches.

Run conventions as wae_lib.train.trainer: checkpoint.pt (atomic, weights_only-loadable, the config inside) every
``ckpt_every`` steps, on Ctrl-C and at the end; resumed exactly (decoders, Adam, step, batch RNG); log.jsonl
(every term per logged step); metadata.json (wae_lib.utils.run_metadata).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..config import DEFAULT_DATA_ROOT, ConfigError
from ..data.training_sets import data_fingerprint, load_images, resolve_data_path, same_data
from ..model.checkpoint import CHECKPOINT, RunFolderBusy, rng_state, run_lock, set_rng_state
from ..train.trainer import TrainingDiverged
from ..utils import (
    atomic_torch_save,
    atomic_write_text,
    package_versions,
    progress,
    resolve_device,
    run_metadata,
    set_seed,
    stage_done,
)
from .common import (
    ADAIN_LAYER,
    STYLE_LAYERS,
    WCT,
    AdaIN,
    BaselineWeightsError,
    adain,
    encode,
    mean_std,
    read_baseline_checkpoint,
)

METHODS = ("adain", "wct")


@dataclasses.dataclass(frozen=True)
class BaselineTrainConfig:
    method: str = "adain"  # adain | wct: which decoder(s) to train
    data: str = "celeba"  # our model's training set: a set name (celeba | mixed) or a packed images .npy
    data_root: str = DEFAULT_DATA_ROOT  # where wae_lib.data wrote the packed sets (as Config.data_root)
    vgg_source: str = "hed"  # the VGG16 of our model (wae_lib.model.vgg); recorded and checked at load
    width: float = 1.0  # decoder hidden channels x width (1.0 = Huang & Belongie's / Li et al.'s decoder)
    steps: int = 3000  # CPU budget: at batch 8, width 1, one core: AdaIN 0.6 s/step (30 min), WCT 0.9 s (45 min)
    batch_size: int = 8  # Huang & Belongie: 8
    lr: float = 1e-4  # Huang & Belongie: Adam, lr 1e-4
    lr_decay: float = 5e-5  # pytorch-AdaIN: lr / (1 + lr_decay * step); independent of `steps`, so a run extends
    content_weight: float = 1.0  # AdaIN content loss weight (Huang & Belongie: 1)
    style_weight: float = 10.0  # AdaIN mean/std style loss weight (Huang & Belongie: 10; same feature units)
    pixel_weight: float = 1.0  # WCT pixel reconstruction weight (Li et al.: 1)
    feature_weight: float = 1e-5  # WCT feature loss weight: Li et al. use lambda = 1 with their VGG; with ours the
    #   feature MSE of a 3x3 blur is 0.6-3e5 x its pixel MSE (relu3_1..relu1_1 on CelebA), so 1e-5 evens them
    hflip: bool = True  # random horizontal flips (as our model's Config.hflip)
    val_every: int = 0  # steps between held-out validation losses (0: none); the convergence criterion reads them
    val_sets: str = "content_eval,natural_eval"  # the held-out sets the validation images come from (no training set)
    val_images: int = 64  # validation images, spread evenly over val_sets, the same every time (AdaIN: style = next)
    patience: int = 0  # stop once the validation loss has not improved by min_improvement for this many
    #   validations in a row (0: train all `steps`): "until the decoder's own loss stops improving" (issue 17)
    min_improvement: float = 0.005  # relative improvement of the best validation loss that resets the patience
    seed: int = 0
    ckpt_every: int = 200  # steps between checkpoints (and at the end and on Ctrl-C)
    log_every: int = 10  # steps between log.jsonl rows
    device: str = "cpu"  # cpu | cuda | auto

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **kw: Any) -> BaselineTrainConfig:
        return dataclasses.replace(self, **kw)

    def validate(self) -> BaselineTrainConfig:
        checks = [("method", self.method in METHODS, f"one of {METHODS}"),
                  ("steps", self.steps >= 1, "at least 1"),
                  ("batch_size", self.batch_size >= 2, "at least 2 (AdaIN pairs images within a batch)"),
                  ("lr", self.lr > 0, "positive"), ("width", self.width > 0, "positive"),
                  ("ckpt_every", self.ckpt_every >= 1, "at least 1"), ("log_every", self.log_every >= 1, "at least 1"),
                  ("val_every", self.val_every >= 0, "0 (none) or more"),
                  ("val_images", self.val_images >= 2, "at least 2 (AdaIN pairs validation images)"),
                  ("patience", self.patience >= 0 and (self.patience == 0 or self.val_every > 0),
                   "0, or positive with val_every > 0 (it counts validations)"),
                  ("min_improvement", 0 <= self.min_improvement < 1, "in [0, 1)")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"config field {name!r} = {getattr(self, name)!r} is invalid: expected {expected}")
        return self


# what a resumed run may change: the budget, where it runs, what it logs and when it stops (not what it learns)
RESUMABLE_CHANGES = ("steps", "device", "ckpt_every", "log_every", "val_every", "val_images", "val_sets", "patience",
                     "min_improvement")

# The decoder budget of each study profile (wae_lib.config.PROFILES): the `baselines` stage of the Makefile.
# The data are the mixed set, as the model notebook 07 compares with by default (the shipped one is mixed_c256).
BASELINE_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"data": "mixed", "steps": 2, "batch_size": 4, "ckpt_every": 1, "log_every": 1},  # tests only
    "quick": {"data": "mixed", "steps": 150},  # minutes on a CPU: the decoders barely invert VGG
    "reference": {"data": "mixed", "steps": 3600},  # 28,800 images: as many as the shipped model saw
    "ours": {"data": "mixed", "steps": 3600},  # our training's sweep is compared with the same decoders
    "paper": {"data": "mixed", "steps": 160_000, "device": "auto"},  # Huang & Belongie: 160k batches of 8 (GPU)
    # the shipped decoders (wae_lib.baselines.shipped): until the held-out loss stops improving, 160k batches at most
    "converge": {"data": "mixed", "steps": 160_000, "val_every": 250, "patience": 8, "ckpt_every": 250},
}


def baseline_profile(profile: str, **overrides: Any) -> BaselineTrainConfig:
    """The decoder-training config of a study profile, with ``overrides`` (e.g. method, data_root)."""
    if profile not in BASELINE_PROFILES:
        raise ConfigError(f"baseline profile {profile!r} is unknown; expected one of {list(BASELINE_PROFILES)}")
    return BaselineTrainConfig(**{**BASELINE_PROFILES[profile], **overrides})


class TrainingInterrupted(RuntimeError):
    """Ctrl-C arrived; a checkpoint was written and the same call resumes."""


# --------------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------------
def adain_terms(model: AdaIN, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Huang & Belongie's decoder loss on a batch, the style of image i being image i-1's."""
    with torch.no_grad():
        feats = model.vgg(x)
        style = {n: f.roll(1, 0) for n, f in feats.items()}
        target = adain(feats[ADAIN_LAYER], style[ADAIN_LAYER])
    out = model.vgg(model.decode(target))
    content = F.mse_loss(out[ADAIN_LAYER], target)
    style_loss = x.new_zeros(())
    for n in STYLE_LAYERS:
        (m_o, s_o), (m_s, s_s) = mean_std(out[n]), mean_std(style[n])
        style_loss = style_loss + F.mse_loss(m_o, m_s) + F.mse_loss(s_o, s_s)
    return {"content": content, "style": style_loss}


def wct_terms(model: WCT, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Li et al.'s reconstruction loss, per level: pixel MSE and feature MSE at that level."""
    with torch.no_grad():
        feats = model.vgg(x)
    terms = {}
    for layer in model.levels:
        rec = model.decoders[layer](feats[layer])
        terms[f"pixel/{layer}"] = F.mse_loss(rec, x)
        terms[f"feature/{layer}"] = F.mse_loss(encode(model.vgg, rec, layer), feats[layer])
    return terms


def weighted_loss(cfg: BaselineTrainConfig, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    weights = {"content": cfg.content_weight, "style": cfg.style_weight, "pixel": cfg.pixel_weight,
               "feature": cfg.feature_weight}
    return sum(weights[k.split("/")[0]] * v for k, v in terms.items())


TERMS = {"adain": adain_terms, "wct": wct_terms}


@torch.no_grad()
def validation_loss(cfg: BaselineTrainConfig, model: AdaIN | WCT, images: torch.Tensor) -> float:
    """The training loss on fixed held-out images, in chunks of the batch size (AdaIN: image i styled by image
    i-1 of its chunk): the same number every time for the same decoders, so successive values show convergence."""
    was_training = model.decoders.training
    model.decoders.eval()
    total, count = 0.0, 0
    for start in range(0, len(images), cfg.batch_size):
        chunk = images[start:start + cfg.batch_size]
        if len(chunk) >= 2:  # a last single image has no AdaIN partner
            total += weighted_loss(cfg, TERMS[cfg.method](model, chunk)).item() * len(chunk)
            count += len(chunk)
    model.decoders.train(was_training)
    return total / count


def load_validation_images(cfg: BaselineTrainConfig) -> torch.Tensor:
    """``cfg.val_images`` images spread evenly over the held-out sets ``cfg.val_sets`` of ``cfg.data_root``."""
    from ..data.layout import SET_FILES, set_path
    from ..eval.images import load_set

    names = [n.strip() for n in cfg.val_sets.split(",") if n.strip()]
    missing = [n for n in names if n not in SET_FILES or not set_path(cfg.data_root, n).is_file()]
    if not names or missing:
        raise ConfigError(f"config field 'val_sets' = {cfg.val_sets!r}: {missing or 'no set'} not under "
                          f"{cfg.data_root}/sets; expected held-out sets of `make data` (e.g. content_eval,natural_eval)")
    share = [cfg.val_images // len(names) + (i < cfg.val_images % len(names)) for i in range(len(names))]
    return torch.cat([load_set(cfg.data_root, n, k) for n, k in zip(names, share)])


def plateau(history: list[tuple[int, float]], patience: int, min_improvement: float) -> bool:
    """True when none of the last ``patience`` validations improved the best earlier one by ``min_improvement``
    (relative): the loss has stopped improving."""
    if patience < 1 or len(history) <= patience:
        return False
    best_before = min(v for _, v in history[:-patience])
    return min(v for _, v in history[-patience:]) > best_before * (1 - min_improvement)


def probe_learning_rates(cfg: BaselineTrainConfig, images, rates: Sequence[float], steps: int,
                         val: torch.Tensor | None = None) -> dict[float, float]:
    """A short measured learning-rate sweep: ``steps`` steps from the same start at each rate; the score is the
    validation loss after them (``val``), else the mean training loss over the second half. Lowest wins; a rate
    whose loss diverges scores inf."""
    scores = {}
    for lr in rates:
        set_seed(cfg.seed)
        trainer = DecoderTrainer(cfg.replace(lr=lr), Path("."), images, "probe")
        trainer.init_feature_scales()
        try:
            losses = [trainer.train_step()["loss"] for _ in progress(iterable=range(steps), desc=f"{cfg.method} lr {lr:g}")]
        except TrainingDiverged:
            scores[lr] = math.inf
            continue
        scores[lr] = (validation_loss(cfg, trainer.model, val.to(trainer.device)) if val is not None
                      else float(sum(losses[steps // 2:]) / max(len(losses[steps // 2:]), 1)))
    if all(math.isinf(v) for v in scores.values()):
        raise TrainingDiverged(f"{cfg.method}: the loss diverged at every probed learning rate {list(rates)}; "
                               f"probe lower ones")
    return scores


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
class TensorImages:
    """An in-memory N x 3 x 64 x 64 float tensor in [0, 1] with PackedImages' ``batch(indices)``."""

    def __init__(self, images: torch.Tensor):
        if images.dim() != 4 or images.shape[1:] != (3, 64, 64):
            raise ValueError(f"training images must be N x 3 x 64 x 64, got {tuple(images.shape)}")
        self.data = images

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, indices) -> torch.Tensor:
        return self.data[torch.as_tensor(indices, dtype=torch.long, device=self.data.device)].float()


def memory_fingerprint(images) -> str:
    """A cheap fingerprint of in-memory images (every k-th image hashed) to detect a changed training set."""
    data = images.data
    step = max(1, len(data) // 256)
    return f"memory:{tuple(data.shape)}:" + hashlib.sha1(data[::step].cpu().numpy().tobytes()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------
class DecoderTrainer:
    def __init__(self, cfg: BaselineTrainConfig, out: Path, images, fingerprint: str,
                 val: torch.Tensor | None = None):
        self.cfg, self.out, self.images, self.fingerprint = cfg, out, images, fingerprint
        self.device = resolve_device(cfg.device)
        if cfg.batch_size > len(images):
            raise ConfigError(f"config field 'batch_size' = {cfg.batch_size} is larger than the training set "
                              f"({len(images)} images); lower it")
        cls = AdaIN if cfg.method == "adain" else WCT
        self.model = cls(vgg_source=cfg.vgg_source, width=cfg.width).to(self.device)
        self.opt = torch.optim.Adam(self.model.decoders.parameters(), lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)  # batches and flips
        self.step = 0
        self.val = val.to(self.device) if val is not None else None
        self.val_history: list[tuple[int, float]] = []  # (step, validation loss)
        self.converged = False  # stopped because the validation loss stopped improving (cfg.patience)

    @torch.no_grad()
    def init_feature_scales(self) -> None:
        """Each decoder's FeatureScale from one batch (its own generator: the batch order does not change)."""
        gen = torch.Generator().manual_seed(self.cfg.seed + 2)
        idx = torch.randperm(len(self.images), generator=gen)[:self.cfg.batch_size]
        feats = self.model.vgg(self.images.batch(idx).to(self.device))
        for layer, dec in self.model.decoders.items():
            dec[0].scale.fill_(1.0 / feats[layer].std().clamp_min(1e-6).item())

    def next_batch(self) -> torch.Tensor:
        b = self.cfg.batch_size
        idx = torch.randperm(len(self.images), generator=self.gen)[:b]
        flip = torch.rand(b, generator=self.gen) < 0.5 if self.cfg.hflip else torch.zeros(b, dtype=torch.bool)
        x = self.images.batch(idx).to(self.device)
        return torch.where(flip.to(self.device).view(-1, 1, 1, 1), x.flip(3), x)

    def train_step(self) -> dict[str, float]:
        lr = self.cfg.lr / (1.0 + self.cfg.lr_decay * self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        x = self.next_batch()
        terms = TERMS[self.cfg.method](self.model, x)
        loss = weighted_loss(self.cfg, terms)
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(f"baseline training: loss became {loss.item()} at step {self.step + 1}; the last "
                               f"checkpoint {self.out / CHECKPOINT} is kept. Lower lr.")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {"step": self.step, "lr": lr, "loss": loss.item(), **{k: v.item() for k, v in terms.items()}}

    def checkpoint(self, finished: bool) -> dict[str, Any]:
        return {"method": self.cfg.method, "vgg_source": self.model.vgg_source,
                "vgg_source_label": self.model.vgg.source.label, "config": self.cfg.to_dict(),
                "decoders": self.model.decoders.state_dict(), "optimizer": self.opt.state_dict(),
                "step": self.step, "finished": finished, "rng": rng_state(self.gen),
                "data_fingerprint": self.fingerprint, "versions": package_versions(),
                "val_key": self.val_key(), "val_history": self.val_history, "converged": self.converged}

    def val_key(self) -> list[Any]:
        """What the validation losses were measured on: a resumed run keeps its history only when it agrees."""
        return [self.cfg.val_sets, self.cfg.val_images]

    def save(self, finished: bool = False) -> None:
        atomic_torch_save(self.checkpoint(finished), self.out / CHECKPOINT)

    def resume(self, ckpt: dict[str, Any]) -> None:
        self.model.decoders.load_state_dict(ckpt["decoders"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.step = ckpt["step"]
        set_rng_state(ckpt["rng"], self.gen)
        if ckpt.get("val_key") == self.val_key():
            self.val_history = [(int(a), float(b)) for a, b in ckpt.get("val_history", [])]
        trim_log(self.out / "log.jsonl", self.step)

    def validate(self) -> dict[str, Any]:
        """One validation loss into the history and the log; sets ``converged`` at a plateau."""
        value = validation_loss(self.cfg, self.model, self.val)
        self.val_history.append((self.step, value))
        self.converged = plateau(self.val_history, self.cfg.patience, self.cfg.min_improvement)
        best = min(self.val_history, key=lambda r: r[1])
        row = {"step": self.step, "val_loss": value, "best_val_loss": best[1], "best_val_step": best[0]}
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    def run(self) -> None:
        cfg, t0, n0 = self.cfg, time.perf_counter(), self.step
        self.model.decoders.train()
        bar = progress(total=cfg.steps, initial=self.step,
                       desc=self.out.name if self.out.name == cfg.method else f"{cfg.method} {self.out.name}")
        try:
            while self.step < cfg.steps:
                row = self.train_step()
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    row["images_per_s"] = (self.step - n0) * cfg.batch_size / (time.perf_counter() - t0)
                    with open(self.out / "log.jsonl", "a") as f:
                        f.write(json.dumps(row) + "\n")
                    bar.set_postfix(loss=f"{row['loss']:.3g}", refresh=False)  # shown at the next draw
                if self.val is not None and cfg.val_every and self.step % cfg.val_every == 0:
                    val = self.validate()
                    bar.set_postfix(loss=f"{row['loss']:.3g}", val=f"{val['val_loss']:.3g}", refresh=False)
                    if self.converged:
                        print(f"[wae_lib] {self.out}: the validation loss has not improved by "
                              f"{cfg.min_improvement:.1%} in {cfg.patience} validations (best {val['best_val_loss']:.4g} "
                              f"at step {val['best_val_step']}): converged at step {self.step}", file=sys.stderr)
                        break
                if self.step % cfg.ckpt_every == 0 and self.step < cfg.steps:
                    self.save()
        except KeyboardInterrupt:
            self.save()
            raise TrainingInterrupted(f"interrupted at step {self.step}; checkpoint saved to "
                                      f"{self.out / CHECKPOINT}: run the same command to resume") from None
        finally:
            bar.close()
        self.save(finished=True)


FINAL_ROWS = 10  # "final loss": the mean training loss of this many last logged rows (one step is noisy)


def read_log(run_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, validation rows) of a run's log.jsonl; empty lists when there is none."""
    path = Path(run_dir) / "log.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return [r for r in rows if "loss" in r], [r for r in rows if "val_loss" in r]


def final_loss(train_rows: list[dict[str, Any]]) -> float:
    last = train_rows[-FINAL_ROWS:]
    return sum(r["loss"] for r in last) / len(last) if last else float("nan")


def trim_log(path: Path, step: int) -> None:
    """Drop log rows past the checkpoint being resumed (logged after it, before an interruption)."""
    if path.is_file():
        rows = [r for r in path.read_text().splitlines() if r.strip() and json.loads(r)["step"] <= step]
        path.write_text("".join(r + "\n" for r in rows))


def train_decoders(cfg: BaselineTrainConfig, out_dir: str | Path, images=None, force: bool = False) -> Path:
    """Train (resume, or reuse) the decoders of ``cfg.method`` in ``out_dir``; returns the folder.

    ``images``: None loads ``cfg.data`` with our model's loader; or an already loaded PackedImages, or an
    N x 3 x 64 x 64 tensor in [0, 1]. A finished checkpoint with ``step >= cfg.steps`` is reused; an earlier
    one is resumed if its config matches (``steps``, ``device`` and logging may change), else refused.
    """
    cfg.validate()
    out = Path(out_dir)
    with run_lock(out):  # a second run on the same folder refuses (RunFolderBusy) instead of interleaving its log
        return _train_decoders_locked(cfg, out, images, force)


def _train_decoders_locked(cfg: BaselineTrainConfig, out: Path, images, force: bool) -> Path:
    data_path = None
    if images is None:
        data_path = resolve_data_path(cfg)  # Config's rule: a set name under data_root, or a .npy path
    elif isinstance(images, torch.Tensor):
        images = TensorImages(images)
    fingerprint = data_fingerprint(data_path) if data_path is not None else memory_fingerprint(images)
    ckpt_path = out / CHECKPOINT
    ckpt = read_baseline_checkpoint(ckpt_path) if ckpt_path.is_file() and not force else None
    recorded = ckpt.get("data_fingerprint") if ckpt is not None else None
    same = same_data(recorded, data_path, fingerprint) if data_path is not None else recorded == fingerprint
    if ckpt is not None and not same:
        print(f"[wae_lib] {out}: the training images changed since these decoders were trained; retraining from "
              f"scratch (use another --out to keep them)", file=sys.stderr)
        ckpt = None
    if ckpt is not None:
        saved = ckpt["config"]
        diff = {k: (saved.get(k), v) for k, v in cfg.to_dict().items()
                if saved.get(k) != v and k not in RESUMABLE_CHANGES}
        if diff:
            raise ConfigError(f"{out} already holds {saved.get('method')} decoders with a different config {diff} "
                              f"(saved, requested); use another --out, or --force to retrain")
        if ckpt["finished"] and (ckpt["step"] >= cfg.steps or ckpt.get("converged")):
            how = "converged" if ckpt.get("converged") else "finished"
            print(f"[wae_lib] {out}: {how} decoders found (step {ckpt['step']}), reused; --force retrains",
                  file=sys.stderr)
            return out
    set_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    if ckpt is None:
        (out / "log.jsonl").unlink(missing_ok=True)
    if images is None:
        images = load_images(data_path, resolve_device(cfg.device))
    val = load_validation_images(cfg) if cfg.val_every else None
    trainer = DecoderTrainer(cfg, out, images, fingerprint, val)
    if ckpt is not None:
        trainer.resume(ckpt)
    else:
        trainer.init_feature_scales()
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    meta = run_metadata(cfg, trainer.model.vgg.source.label, cfg.seed)
    meta.update(data_path=str(data_path) if data_path else "in-memory images", n_images=len(images),
                resumed_from_step=trainer.step, decoder_parameters=sum(p.numel() for p in trainer.model.decoders.parameters()))
    (out / "metadata.json").write_text(json.dumps(meta, indent=2, default=str))
    trainer.run()
    return out


LR_PROBE = "lr_probe.json"


def parse_rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        rates = []
    if not rates or any(not (r > 0 and math.isfinite(r)) for r in rates):
        raise ConfigError(f"--lr-probe {text!r}: expected comma-separated positive learning rates, e.g. 1e-4,3e-4,1e-3")
    return rates


def choose_lr(cfg: BaselineTrainConfig, out: Path, rates: Sequence[float], steps: int,
              force: bool = False) -> BaselineTrainConfig:
    """``cfg`` with the learning rate of a measured sweep (:func:`probe_learning_rates`), recorded in
    ``out/lr_probe.json``; a run folder that already holds a probe (a resumed run) reuses its choice."""
    record = out / LR_PROBE
    if record.is_file() and not force:
        probe = json.loads(record.read_text())
        print(f"[wae_lib] {out}: learning rate {probe['chosen']:g} from its earlier probe ({record})", file=sys.stderr)
        return cfg.replace(lr=probe["chosen"])
    if steps < 2:
        raise ConfigError(f"--probe-steps {steps}: expected at least 2")
    cfg.validate()
    images = load_images(resolve_data_path(cfg), resolve_device(cfg.device))
    val = load_validation_images(cfg) if cfg.val_every else None
    t0 = time.perf_counter()
    scores = probe_learning_rates(cfg, images, rates, steps, val)
    chosen = min(scores, key=scores.get)
    measure = "validation loss" if val is not None else "mean training loss of the second half"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, json.dumps({"method": cfg.method, "probe_steps": steps, "measure": measure,
                                          "loss": {f"{k:g}": v for k, v in scores.items()}, "chosen": chosen,
                                          "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    print(f"[wae_lib] {cfg.method}: lr probe ({steps} steps each, {measure}): "
          + ", ".join(f"{k:g} -> {v:.4g}" for k, v in scores.items()) + f"; training at {chosen:g}", file=sys.stderr)
    return cfg.replace(lr=chosen)


# --------------------------------------------------------------------------------------------------
# command line: a flag per config field
# --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wae_lib baselines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="run folder (checkpoint.pt, log.jsonl, metadata.json)")
    ap.add_argument("--force", action="store_true", help="retrain from scratch even if a checkpoint is there")
    ap.add_argument("--profile", choices=list(BASELINE_PROFILES), default=None,
                    help="start from this study profile's budget (BASELINE_PROFILES); flags override it")
    for f in dataclasses.fields(BaselineTrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            ap.add_argument(flag, type=type(f.default), default=None,
                            choices=METHODS if f.name == "method" else None, help=f"default {f.default}")
    ap.add_argument("--lr-probe", default="", metavar="RATES",
                    help="choose lr by a short measured sweep over these comma-separated rates before training (e.g. "
                         "1e-4,3e-4,1e-3; the lowest validation loss wins, written to OUT/lr_probe.json)")
    ap.add_argument("--probe-steps", type=int, default=300, help="steps per rate of --lr-probe (default 300)")
    ap.add_argument("--continue-from", default="", metavar="FILE",
                    help="an empty --out starts from these shipped, unconverged decoders with their training state "
                         "(\"shipped\": the package's file of --method), so a run longer than one checkout carries on")
    args = ap.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(BaselineTrainConfig)
                 if getattr(args, f.name) is not None}
    try:
        cfg = baseline_profile(args.profile, **overrides) if args.profile else BaselineTrainConfig(**overrides)
        t0 = time.perf_counter()
        if args.continue_from:  # before the probe: a restored folder reuses the shipped run's choice of lr
            from .shipped import restore_run  # lazy: shipped_baselines imports this module

            restore_run(args.continue_from, args.out, cfg.method)
        if args.lr_probe:
            cfg = choose_lr(cfg, Path(args.out), parse_rates(args.lr_probe), args.probe_steps, args.force)
        train_decoders(cfg, args.out, force=args.force)
        stage_done(f"baseline {cfg.method}", f"{cfg.steps} steps in {args.out}", t0)
    except (ConfigError, TrainingInterrupted, TrainingDiverged, BaselineWeightsError, FileNotFoundError,
            RunFolderBusy) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
