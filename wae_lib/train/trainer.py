"""The training loop: :class:`Trainer` (batches, the step, logging, samples, checkpoints, DDP), one run's state.

Starting, resuming or reusing a run folder (``train``, ``train_sweep``) is wae_lib.train.run_folder, the ``train``
command wae_lib.commands.train; the loss weights and schedules are in wae_lib.train.balance, the checkpoint, lock and log files in
wae_lib.model.checkpoint, reading runs back (load_model) in wae_lib.model.run, and the sweep's configs in
wae_lib.train.sweep.

Loss (SPEC §2): calibrated pixel + VGG feature + Gram terms, plus lambda x WAE penalty (MMD-IMQ or GAN); with
``objective="swap"`` (issue 16) also the swapped-pair terms of wae_lib.model.losses (swap_terms, cycle_terms).
Stabilisers from PILOT.md: capped log-variance (in the model), gradient-norm clipping against a running
mean, ICNR init (in the model), loss weights calibrated after a short warm-up.

A run folder holds: config.json, metadata.json, log.jsonl (every loss term per logged step),
calibration.json, samples/step_*.png, checkpoint.pt (atomic; weights_only loadable), and .lock while a run
holds it. Every file is written atomically (wae_lib.utils.atomic_open); the checkpoint is the run's state
record: on resume the log is cut back to its step, and load_model refuses a config.json that disagrees with it.
config.json, metadata.json and the checkpoint record the VGG16 source the model resolved (name, label, digest).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..config import Config, ConfigError
from ..data.training_sets import TrainingData, init_indices, load_images, resolve_training_data
from ..model.checkpoint import CHECKPOINT, rng_state, set_rng_state, write_checkpoint
from ..model.losses import (
    cycle_terms,
    gan_discriminator_loss,
    gan_encoder_penalty,
    map_mmd,
    mmd_imq,
    reconstruction_terms,
    swap_terms,
)
from ..model.networks import LatentDiscriminator
from ..model.texture_critic import PatchCritic, texture_patches
from ..model.vgg import VGG16Features
from ..model.wae import WAEStyle
from ..utils import (
    TrainingInterrupted,
    UserError,
    atomic_write_text,
    package_versions,
    progress,
    resolve_device,
)
from .balance import LossBalance, lr_at, penalty_weight_at
from .distributed import DistInfo, all_mean, gather_with_grad
from .samples import training_sample_grid


class TrainingDiverged(UserError, RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint (if any) is kept."""


def swap_partners(n: int, device: torch.device) -> torch.Tensor:
    """Each image's partner for ``objective="swap"``: the batch rolled by one (k -> k - 1). The batch is a fresh
    random draw every step, so this is a random pairing without a self-pair, and draws nothing from the run's
    generator (the paper objective's random stream stays as it was)."""
    return torch.roll(torch.arange(n, device=device), 1)


def mmd_penalty(z: torch.Tensor, prior: torch.Tensor, cfg: Config) -> torch.Tensor:
    """The WAE-MMD penalty of flat latents ``z`` against prior samples of the same shape: one MMD of the joint
    latent (the paper's vector code), or, for a content map (``cfg.content_map``, issue 33), the per-position MMD of
    the map (losses.map_mmd) plus the MMD of the style latent. Two terms rather than the style latent joined to
    every position: in one kernel of 8 + 192 numbers the style's distances would drown the map's 8 channels."""
    if not cfg.content_map:
        return mmd_imq(z, prior, cfg.prior_sigma)
    (zc, zs), (pc, ps) = (t.split([cfg.content_latent_dim, cfg.style_dim], dim=1) for t in (z, prior))
    shape = (-1, *cfg.content_shape)
    return map_mmd(zc.reshape(shape), pc.reshape(shape), cfg.prior_sigma) + mmd_imq(zs, ps, cfg.prior_sigma)


# --------------------------------------------------------------------------------------------------
# the training loop
# --------------------------------------------------------------------------------------------------
def unwrap(module: nn.Module) -> nn.Module:
    """The module a DDP wrapper holds (its state dict and, for a critic, the calls that must not all-reduce)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class Trainer:
    """One run's training state and loop. ``vgg``: the frozen VGG16 to build the model with (a resumed run's, from
    its checkpoint); by default the model resolves ``cfg.vgg_source``. ``data``: the training set as the run
    resolved it (wae_lib.data.training_sets.resolve_training_data; by default resolved here, for a probe).
    ``self.cfg`` is the model's config, with the VGG16 source resolved."""

    def __init__(self, cfg: Config, out: Path, info: DistInfo, data: TrainingData | None = None,
                 vgg: VGG16Features | None = None):
        self.out, self.info = out, info
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and info.world > 1:
            self.device = torch.device("cuda", info.local_rank)
            torch.cuda.set_device(self.device)
        if info.world > 1 and cfg.batch_size % info.world:
            raise ConfigError(f"config field 'batch_size' = {cfg.batch_size} must be divisible by the number of "
                              f"processes ({info.world})")
        data = data or resolve_training_data(cfg)  # a run resolves it once (run_folder.train); a probe here
        self.data_path, self.data_digest = data.path, data.digest  # the digest: recorded in every checkpoint
        self.images = load_images(self.data_path, self.device)
        if cfg.batch_size > len(self.images):
            raise ConfigError(f"config field 'batch_size' = {cfg.batch_size} is larger than the dataset "
                              f"{self.data_path} ({len(self.images)} images); lower it")
        self.model = WAEStyle(cfg, vgg=vgg, verbose=info.main).to(self.device)
        self.cfg = cfg = self.model.config
        if cfg.data_init:  # the same images on every rank, before DDP wraps the model; its own generator
            self.model.data_init(self.images.batch(init_indices(cfg, len(self.images))))
        self.cuda = self.device.type == "cuda"
        if self.cuda and cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        params = self.model.trainable_parameters()
        self.opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.disc = self.disc_opt = None
        if cfg.penalty == "gan":
            self.disc = LatentDiscriminator(cfg.latent_dim, cfg.disc_hidden).to(self.device)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=(cfg.beta1, cfg.beta2))
        self.texture = self.texture_opt = None  # the texture critic (model/texture_critic.py): the trainer's, not the model's
        if cfg.objective == "swap" and cfg.w_texture > 0:
            self.texture = PatchCritic().to(self.device)
            self.texture_opt = torch.optim.Adam(self.texture.parameters(), lr=cfg.disc_lr, betas=(cfg.beta1, cfg.beta2))
        self.step_model: nn.Module = self.model
        if info.world > 1:
            ids = [self.device.index] if self.cuda else None
            self.step_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
            if self.disc is not None:
                self.disc = nn.parallel.DistributedDataParallel(self.disc, device_ids=ids, broadcast_buffers=False)
            if self.texture is not None:
                self.texture = nn.parallel.DistributedDataParallel(self.texture, device_ids=ids)
        if cfg.compile:
            self.step_model = torch.compile(self.step_model)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)  # batches, flips, sampling noise, prior
        self.balance = LossBalance(cfg, self.device, reduce=lambda t: all_mean(t, info))
        self.step = 0
        self.saved_step: int | None = None  # step of the checkpoint on disk that this run wrote or resumed
        self.stop_signal: int | None = None
        self._pending_norms: list[torch.Tensor] = []  # clipped grad norms not yet folded into grad_ema

    # ---------------- one step ----------------
    def autocast(self):
        if self.cuda and self.cfg.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The global batch is drawn from one generator shared by every rank; each rank takes its slice."""
        cfg, b = self.cfg, self.cfg.batch_size
        idx = torch.randperm(len(self.images), generator=self.gen)[:b]
        flip = torch.rand(b, generator=self.gen) < 0.5 if cfg.hflip else torch.zeros(b, dtype=torch.bool)
        noise = torch.randn(b, cfg.latent_dim, generator=self.gen)
        prior = torch.randn(b, cfg.latent_dim, generator=self.gen) * cfg.prior_sigma
        per = b // self.info.world
        mine = slice(self.info.rank * per, (self.info.rank + 1) * per)
        x = self.images.batch(idx[mine])
        f = flip[mine].to(self.device)
        x = torch.where(f.view(-1, 1, 1, 1), x.flip(3), x)
        if self.cuda and cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, noise[mine].to(self.device), prior.to(self.device)

    def train_step(self) -> dict[str, torch.Tensor]:
        cfg, model = self.cfg, self.model
        lr = lr_at(self.step, cfg)
        for g in self.opt.param_groups:
            g["lr"] = lr
        x, noise, prior = self.next_batch()
        with self.autocast():
            with torch.no_grad():
                feats_x = model.vgg(x)
                grams_x = model.grams(feats_x)
            partner = swap_partners(len(x), x.device) if cfg.objective == "swap" else None
            out = self.step_model(x, grams_x, noise=noise, partner=partner)
            terms = reconstruction_terms(x, out["x_hat"], feats_x, model.vgg(out["x_hat"]), cfg.style_layers, grams_x,
                                         tv=cfg.w_tv > 0)
            if partner is not None:
                terms.update(swap_terms(out["feats_swap"], feats_x, {n: g[partner] for n, g in grams_x.items()},
                                        cfg.style_layers, cfg.swap_content_layers))
                if cfg.w_cycle > 0:
                    c, s = out["mean"].split([cfg.content_latent_dim, cfg.style_dim], dim=1)
                    terms.update(cycle_terms(out["cycle_content"], out["cycle_style"], c, s[partner]))
                if self.texture is not None:  # the generator's side: the critic should take its patch for the partner's
                    patches = texture_patches(out["x_swap"], x[partner], cfg.texture_patch, cfg.texture_refs, self.gen,
                                              self.info.rank * len(x), cfg.batch_size)
                    critic = self.texture_module().requires_grad_(False)  # frozen here: only the decoder learns
                    terms["texture"] = gan_encoder_penalty(critic(patches[0], patches[2]))
                    critic.requires_grad_(True)
            z_all = gather_with_grad(out["z"].float(), self.info)
            if cfg.penalty == "mmd":
                terms["penalty"] = mmd_penalty(z_all, prior, cfg)
            else:
                terms["penalty"] = gan_encoder_penalty(self.disc_module()(z_all))  # its grads are zeroed later
        raw = torch.stack([terms[k].float() for k in self.balance.names])
        recon = (self.balance.weights(raw) * raw).sum()
        loss = recon + penalty_weight_at(self.step, cfg) * terms["penalty"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = self.clip_gradients()
        self.opt.step()
        if self.disc is not None:
            self.disc_step(out["z"].detach().float(), prior)
        if self.texture is not None:
            terms["texture_critic"] = self.texture_step(patches[0].detach(), patches[1], patches[2])
        terms = {k: v.detach() for k, v in terms.items()}
        terms["loss"], terms["grad_norm"] = loss.detach(), grad_norm
        calibration = self.balance.calibrate(terms, self.step)
        if calibration is not None and self.info.main:
            atomic_write_text(self.out / "calibration.json", json.dumps(calibration, indent=2))
        self.step += 1
        return terms

    def disc_step(self, z: torch.Tensor, prior: torch.Tensor) -> None:
        z_all = gather_with_grad(z, self.info)
        with self.autocast():
            d_loss = gan_discriminator_loss(self.disc(prior), self.disc(z_all))
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.disc_opt.step()

    def texture_step(self, fake: torch.Tensor, real: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        """The texture critic's step: the partner's own patch (real) against the swapped output's (fake), each beside
        the partner's reference patches; the same non-saturating loss as the latent critic's. Returns its loss."""
        with self.autocast():
            loss = gan_discriminator_loss(self.texture(real, refs), self.texture(fake, refs))
        self.texture_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.texture_opt.step()
        return loss.detach()

    def clip_gradients(self) -> torch.Tensor:
        """Clip the global gradient norm at grad_clip_factor x its running mean (PILOT.md)."""
        params = [p for p in self.model.trainable_parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if self.cfg.grad_clip_factor > 0:
            state = self.balance.state
            if state.grad_ema <= 0:  # first step: the mean starts at the first norm (one host sync)
                state.grad_ema = float(norm)
            limit = self.cfg.grad_clip_factor * state.grad_ema
            torch.nn.utils.clip_grads_with_norm_(params, limit, norm)
            # running mean of the clipped norm; kept on the host, updated at log steps only
            self._pending_norms.append(torch.clamp(norm, max=limit))
        return norm

    # ---------------- bookkeeping ----------------
    def checkpoint_dict(self, finished: bool) -> dict[str, Any]:
        self.balance.sync()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "disc": self.disc_module().state_dict() if self.disc is not None else None,
            "disc_optimizer": self.disc_opt.state_dict() if self.disc_opt is not None else None,
            "texture_critic": self.texture_module().state_dict() if self.texture is not None else None,
            "texture_optimizer": self.texture_opt.state_dict() if self.texture_opt is not None else None,
            "step": self.step,
            "finished": finished,
            "rng": rng_state(self.gen),
            "loss_state": dataclasses.asdict(self.balance.state),
            "config": self.cfg.to_dict(),  # its vgg_source: the VGGSource the model resolved
            "data_fingerprint": self.data_digest,
            "versions": package_versions(),
        }

    def disc_module(self) -> nn.Module:
        return unwrap(self.disc)

    def texture_module(self) -> nn.Module:
        return unwrap(self.texture)

    def save(self, finished: bool = False) -> None:
        if self.info.main:
            try:
                write_checkpoint(self.out, self.checkpoint_dict(finished))
            except OSError as exc:
                raise OSError(exc.errno, f"{exc.strerror}; {self.kept_checkpoint()}; free some space (or raise "
                                         f"`ulimit -f`) and run the same command to resume") from exc
        self.saved_step = self.step
        if self.info.world > 1:
            dist.barrier()

    def kept_checkpoint(self) -> str:
        """What is left on disk after a failure: the last good checkpoint, or, honestly, none."""
        if self.saved_step is None:
            return f"no checkpoint was written yet (the first is due at step {min(self.cfg.ckpt_every, self.cfg.steps)})"
        return f"the last good checkpoint ({self.out / CHECKPOINT}, step {self.saved_step}) is kept"

    def resume(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if self.disc is not None and ckpt.get("disc"):
            self.disc_module().load_state_dict(ckpt["disc"])
            self.disc_opt.load_state_dict(ckpt["disc_optimizer"])
        if self.texture is not None and ckpt.get("texture_critic"):
            self.texture_module().load_state_dict(ckpt["texture_critic"])
            self.texture_opt.load_state_dict(ckpt["texture_optimizer"])
        self.step = self.saved_step = ckpt["step"]
        self.balance.load(ckpt["loss_state"])
        set_rng_state(ckpt["rng"], self.gen)

    def log_rows(self, rows: list[dict[str, torch.Tensor]], images_per_s: float, elapsed_s: float) -> dict[str, float]:
        """One host sync per log interval: NaN check, clip statistics, and a JSONL row."""
        first_step = self.step - len(rows)
        values = torch.stack([torch.stack([r[k].float() for k in rows[0]]) for r in rows]).cpu()
        names = list(rows[0])
        bad = ~torch.isfinite(values)
        if bad.any():
            i, j = (int(v) for v in bad.nonzero()[0])
            raise TrainingDiverged(
                f"loss term {names[j]!r} became {values[i, j].item()} at step {first_step + i + 1}; "
                f"{self.kept_checkpoint()}. Lower lr or penalty_weight, or raise calibrate_after.")
        state = self.balance.state
        if self._pending_norms:
            for n in torch.stack(self._pending_norms).tolist():
                state.grad_ema = 0.99 * state.grad_ema + 0.01 * n
            self._pending_norms.clear()
        last = dict(zip(names, values[-1].tolist()))
        self.balance.sync()
        weighted = {k: state.weights[k] * last[k] for k in state.weights}
        weighted["penalty"] = penalty_weight_at(self.step - 1, self.cfg) * last["penalty"]
        total = sum(abs(v) for v in weighted.values()) or 1.0
        row = {"step": self.step, "lr": lr_at(self.step - 1, self.cfg), "images_per_s": images_per_s,
               "elapsed_s": round(elapsed_s, 3), "calibrated": state.calibrated, **last, "weighted": weighted,
               "share": {k: abs(v) / total for k, v in weighted.items()}}
        if self.info.main:  # one write per row; resume cuts the log back to the checkpoint (truncate_log)
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        return last

    def save_samples(self) -> None:
        if not self.info.main:
            return
        was_training = self.model.training
        self.model.eval()
        path = self.out / "samples" / f"step_{self.step:06d}.png"
        training_sample_grid(self.model, self.images, path, self.cfg, step=self.step)
        self.model.train(was_training)

    # ---------------- the loop ----------------
    def run(self) -> None:
        cfg = self.cfg
        rows: list[dict[str, torch.Tensor]] = []
        self.model.train()
        bar = progress(total=cfg.steps, initial=self.step, disable=not self.info.main, desc=self.out.name)
        t0, n0 = time.perf_counter(), self.step
        with self.signals(), bar:  # the bar is closed (its line finished) before an error is printed
            while self.step < cfg.steps:
                try:
                    rows.append(self.train_step())
                except RuntimeError as exc:  # torch.OutOfMemoryError on CUDA; a plain RuntimeError on CPU
                    if isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in str(exc):
                        raise RuntimeError(f"out of memory at batch_size={cfg.batch_size}, width={cfg.width} on "
                                           f"{self.device}: lower 'batch_size' (or 'width'), or disable 'compile'; "
                                           f"{self.kept_checkpoint()}") from exc
                    raise
                bar.update(1)
                checkpoint_due = self.step % cfg.ckpt_every == 0 and self.step < cfg.steps
                # checkpoint steps are log steps too: no weights are saved that were not NaN-checked
                if (self.step % cfg.log_every == 0 or self.step == cfg.steps or self.stop_signal
                        or checkpoint_due):
                    if self.cuda:
                        torch.cuda.synchronize()
                    elapsed = time.perf_counter() - t0  # since this process began: model.run.training_cost
                    ips = (self.step - n0) * cfg.batch_size / elapsed
                    last = self.log_rows(rows, ips, elapsed)
                    rows.clear()
                    bar.set_postfix(loss=f"{last['loss']:.3g}", pen=f"{last['penalty']:.3g}", ips=f"{ips:.1f}",
                                    refresh=False)  # shown at the next draw (utils.progress)
                if cfg.sample_every and self.step % cfg.sample_every == 0:
                    self.save_samples()
                if self.stop_signal:
                    self.save()
                    raise TrainingInterrupted(f"stopped by signal {self.stop_signal} at step {self.step}; checkpoint "
                                              f"saved to {self.out / CHECKPOINT}: run the same command to resume")
                if checkpoint_due:
                    self.save()
        if cfg.sample_every and self.step % cfg.sample_every:
            self.save_samples()
        self.save(finished=True)

    @contextlib.contextmanager
    def signals(self):
        """SIGINT/SIGTERM finish the current step, write a checkpoint and stop (resumable)."""
        def handler(signum, frame):
            self.stop_signal = signum

        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in old:
                signal.signal(s, handler)
        except ValueError:  # not the main thread (e.g. some notebook runners): no handlers, nothing else changes
            old = {}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)
