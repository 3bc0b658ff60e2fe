"""Decoder training for the AdaIN and WCT baselines (issue 9), on our model's training set.

    python -m wae_lib baselines --method adain --data celeba --out models/baseline_adain --steps 2000
    python -m wae_lib baselines --method wct --data data/processed/sets/mixed_train.npy --out DIR

The images come from the same packed set and loader as our model (wae_lib.data.training_sets: resolve_data_path,
load_images; the same ``data`` / ``data_root`` values, random horizontal flips as its default): the baselines
learn from exactly our training data. Losses (wae_lib.baselines.train_losses):

- AdaIN (Huang & Belongie 2017, eq. 11-13): content loss between the decoded image's relu3_1 features and the
  AdaIN target t, plus ``style_weight`` x the style loss on the channel means and standard deviations at
  relu1_1, relu2_1, relu3_1. The style images are the same batch rolled by one (image i gets the style of
  image i-1 of a random batch): the same data as our model, no second pool and no extra VGG pass.
- WCT (Li et al. 2017, eq. 1): per level, pixel reconstruction error + ``feature_weight`` x the error of the
  reconstruction's VGG features at that level. The three decoders are independent: summing their losses in
  one Adam step trains each exactly as separately, on the same batches.

The config: wae_lib.baselines.train_config. Run conventions as our model's (wae_lib.train): checkpoint.pt (atomic,
weights_only-loadable, the config inside) every ``ckpt_every`` steps, on Ctrl-C and at the end; resumed exactly
(decoders, Adam, step, batch RNG); log.jsonl (every term per logged step); metadata.json (wae_lib.utils.run_metadata).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError
from ..data.loader import TensorImages
from ..data.training_sets import (
    data_fingerprint,
    load_images,
    memory_fingerprint,
    resolve_data_path,
    same_data,
)
from ..model.checkpoint import CHECKPOINT, rng_state, run_lock, set_rng_state, truncate_log
from ..train.trainer import TrainingDiverged
from ..utils import (
    TrainingInterrupted,
    atomic_torch_save,
    atomic_write_text,
    package_versions,
    progress,
    resolve_device,
    run_metadata,
    set_seed,
)
from .adain import AdaIN
from .common import BaselineWeightsError, read_baseline_checkpoint
from .train_config import RESUMABLE_CHANGES, BaselineTrainConfig
from .train_losses import TERMS, load_validation_images, plateau, validation_loss, weighted_loss
from .wct import WCT


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
        truncate_log(self.out / "log.jsonl", self.step)  # rows past the checkpoint, and a line torn by a kill

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
                    elapsed = time.perf_counter() - t0  # since this process began: model.run.training_cost
                    row["images_per_s"] = (self.step - n0) * cfg.batch_size / elapsed
                    row["elapsed_s"] = round(elapsed, 3)
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
    """(training rows, validation rows) of a run's log.jsonl; empty lists when there is none. A line that is not a
    JSON row (the last one cut short by a kill) is refused in one line, not skipped: the shipped record states
    figures from these rows (a resumed run drops such a line itself: truncate_log)."""
    path = Path(run_dir) / "log.jsonl"
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            torn = " (cut short: the tail of an interrupted write)" if i == len(lines) else ""
            raise BaselineWeightsError(f"{path}, line {i} of {len(lines)}, is not a JSON row{torn}: delete that "
                                       f"line and run again")
        rows.append(row)
    return [r for r in rows if "loss" in r], [r for r in rows if "val_loss" in r]


def final_loss(train_rows: list[dict[str, Any]]) -> float:
    last = train_rows[-FINAL_ROWS:]
    return sum(r["loss"] for r in last) / len(last) if last else float("nan")


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


# --------------------------------------------------------------------------------------------------
# the learning-rate probe
# --------------------------------------------------------------------------------------------------
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
