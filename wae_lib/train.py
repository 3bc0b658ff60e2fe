"""Training: one function driven by Config, usable from a notebook and from the shell.

    python -m wae_lib.train --out models/celeba_c128 --data celeba --content-dim 128 --profile quick
    python -m wae_lib.train sweep --profile quick --models-dir models      # every model of a profile
    torchrun --nproc_per_node 2 -m wae_lib.train --out RUN ...             # DDP (NCCL on GPU, gloo on CPU)

Loss (SPEC §2): calibrated pixel + VGG feature + Gram terms, plus lambda x WAE penalty (MMD-IMQ or GAN).
Stabilisers from PILOT.md: capped log-variance (in the model), gradient-norm clipping against a running
mean, ICNR init (in the model), loss weights calibrated after a short warm-up.

A run folder holds: config.json, metadata.json, log.jsonl (every loss term per logged step),
calibration.json, samples/step_*.png, checkpoint.pt (atomic; weights_only loadable), and .lock while a run
holds it. Every file is written atomically (wae_lib.utils.atomic_open); the checkpoint is the run's state
record: on resume the log is cut back to its step, and load_model refuses a config.json that disagrees with it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .config import SWEEPS, TRAINING_SETS, Config, ConfigError, check_known_fields, profile_config, run_name
from .loader import PackedImages
from .losses import (
    calibrate_weights,
    gan_discriminator_loss,
    gan_encoder_penalty,
    mmd_imq,
    reconstruction_terms,
    term_targets,
)
from .models import LatentDiscriminator, WAEStyle
from .prepared import npy_shape
from .pretrained import load_pretrained
from .sets import OUT_SIZE
from .utils import (
    atomic_torch_save,
    atomic_write_text,
    file_sha256,
    fsync_dir,
    load_weights,
    package_versions,
    progress,
    remove_durably,
    remove_stale_temporaries,
    resolve_device,
    run_metadata,
    set_seed,
    stage_done,
)
from .vgg import VGG16Features

try:
    import fcntl
except ImportError:  # not POSIX: run folders are not locked
    fcntl = None

CHECKPOINT = "checkpoint.pt"
LOCK = ".lock"


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint (if any) is kept."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint was written and the run can be resumed."""


class RunFolderBusy(RuntimeError):
    """Another training process holds the run folder's lock."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or its run folder disagrees with it."""


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def resolve_data_path(cfg: Config) -> Path:
    """``cfg.data`` is a training-set name of wae_lib.data's sets or a path to a packed ``.npy``."""
    if cfg.data.endswith(".npy"):
        path = Path(cfg.data)
    elif cfg.data in TRAINING_SETS:
        path = Path(cfg.data_root) / "sets" / f"{cfg.data}_train.npy"
    else:
        raise ConfigError(f"config field 'data' = {cfg.data!r} is invalid: expected one of {TRAINING_SETS} "
                          f"or a path to a packed images .npy written by wae_lib.data")
    if not path.is_file():
        raise ConfigError(f"config field 'data' = {cfg.data!r}: the packed dataset {path} does not exist; "
                          f"prepare it first with `make data` or `python -m wae_lib.data all --out {cfg.data_root}`")
    shape = npy_shape(path)  # the header and the file size agree: not truncated
    if shape is None or len(shape) != 4 or shape[1:] != (OUT_SIZE, OUT_SIZE, 3):
        raise ConfigError(f"config field 'data' = {cfg.data!r}: {path} is not a complete uint8 N x {OUT_SIZE} x "
                          f"{OUT_SIZE} x 3 array (truncated, or not written by wae_lib.data); prepare it again")
    return path


def check_recorded_digest(cfg: Config, path: Path, digest: str) -> None:
    """A named training set must still be the file wae_lib.data recorded in sets/info.json (its content digest):
    an edited, swapped or partly restored set is refused instead of trained on. A path to a .npy is the user's."""
    if cfg.data not in TRAINING_SETS:
        return
    try:
        recorded = json.loads((path.parent / "info.json").read_text()).get("sha256", {}).get(path.name)
    except (OSError, ValueError, AttributeError):
        return  # sets written before digests were recorded
    if recorded is not None and digest != f"sha256:{recorded}":
        raise ConfigError(f"config field 'data' = {cfg.data!r}: {path} is not the file recorded in "
                          f"{path.parent / 'info.json'} (changed since it was written); prepare the data again")


def data_fingerprint(path: Path) -> str:
    """Content digest of the packed set. Not its modification time: ``touch``, ``cp`` without ``-p``, a restore
    or data prep rewriting identical bytes would otherwise retrain a finished model from scratch."""
    return "sha256:" + file_sha256(path)


def same_data(recorded: str | None, path: Path, digest: str) -> bool:
    """Whether a checkpoint's recorded fingerprint is the data at ``path`` (whose digest is ``digest``).
    Checkpoints written before content digests recorded ``size:mtime``; trusted only while those still match."""
    if recorded == digest:
        return True
    st = path.stat()
    return recorded == f"{st.st_size}:{st.st_mtime_ns}"


def load_images(path: Path, device: torch.device):
    return PackedImages(path, device=device)


def init_indices(cfg: Config, n_images: int) -> torch.Tensor:
    """Images for the data-dependent init: a seeded random draw from the whole set (``data_init_images``), or
    the first ``batch_size`` rows when it is 0 (the earlier behaviour: the mixed set starts with CelebA, so
    mixed models were initialised on faces only)."""
    if cfg.data_init_images == 0:
        return torch.arange(min(cfg.batch_size, n_images))
    gen = torch.Generator().manual_seed(cfg.seed + 2)  # its own stream: the batch order does not change
    return torch.randperm(n_images, generator=gen)[:min(cfg.data_init_images, n_images)].sort().values


# --------------------------------------------------------------------------------------------------
# distributed helpers (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and device_name != "cpu"
        dist.init_process_group("nccl" if use_cuda else "gloo")
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return info


def all_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= info.world
    return t


def gather_with_grad(z: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """All ranks' latents, differentiable: the MMD is computed on the global batch, as in one process."""
    if info.world == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0)


# --------------------------------------------------------------------------------------------------
# state that is not a module: calibration and gradient clipping
# --------------------------------------------------------------------------------------------------
def loss_targets(cfg: Config) -> dict[str, float]:
    """Each reconstruction term's share of the total (SPEC §2: roughly equal), from the config."""
    return term_targets(cfg.style_layers, cfg.w_pixel, cfg.w_feature, cfg.w_gram, cfg.gram_layer_weights, cfg.w_tv)


@dataclasses.dataclass
class LossState:
    weights: dict[str, float]  # weights in force (explicit until calibrated; the latest running ones)
    calibrated: bool = False
    sums: dict[str, float] = dataclasses.field(default_factory=dict)  # raw terms summed during calibration
    count: int = 0
    grad_ema: float = 0.0  # running mean of the gradient norm (PILOT: clip above 3x it)
    running: list[float] = dataclasses.field(default_factory=list)  # balance=running: EMA of each raw term
    running_steps: int = 0

    @classmethod
    def initial(cls, cfg: Config) -> LossState:
        """Explicit weights; with fixed calibration, the warm-up before it trains on pixel + penalty only.

        PILOT.md's untried idea, confirmed here: with the VGG terms on from the first step the decoder
        stalls near a flat output (pixel MSE 0.078 -> 0.077 in 60 steps on 16 faces), without them it learns.
        With ``balance="running"`` every term is normalised by its own running mean from step 0 instead.
        """
        targets = loss_targets(cfg)
        if not cfg.calibrate or cfg.balance == "running":
            return cls(weights=targets, calibrated=not cfg.calibrate)
        w = {k: (v if k in ("pixel", "tv") else 0.0) for k, v in targets.items()}
        return cls(weights=w, calibrated=False)


def penalty_weight_at(step: int, cfg: Config) -> float:
    """lambda, ramped linearly from 0 over ``penalty_warmup`` steps (0: full lambda from the first step)."""
    if cfg.penalty_warmup and step < cfg.penalty_warmup:
        return cfg.penalty_weight * (step + 1) / cfg.penalty_warmup
    return cfg.penalty_weight


def lr_at(step: int, cfg: Config) -> float:
    if cfg.lr_warmup and step < cfg.lr_warmup:
        return cfg.lr * (step + 1) / cfg.lr_warmup
    if cfg.lr_decay == "none":
        return cfg.lr
    progress = (step - cfg.lr_warmup) / max(1, cfg.steps - cfg.lr_warmup)
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


# --------------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------------
def load_checkpoint(path: Path) -> dict[str, Any]:
    return load_weights(path, CheckpointError, "checkpoint", "; delete it to retrain, or restore it from a backup")


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


def vgg_from_checkpoint(ckpt: dict[str, Any], layers) -> VGG16Features:
    prefix = "vgg.features."
    state = {k[len(prefix):]: v for k, v in ckpt["model"].items() if k.startswith(prefix)}
    return VGG16Features(ckpt["vgg_source"], layers, state_dict=state, label=ckpt["vgg_source_label"])


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> WAEStyle:
    """The trained WAEStyle of a run folder, in eval mode (the VGG16 weights come from the checkpoint).

    ``"pretrained"`` loads the model shipped inside the package (wae_lib/weights, see wae_lib.pretrained).
    """
    if str(run_dir) == "pretrained" and not Path(run_dir).exists():
        return load_pretrained(device=device)
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no {CHECKPOINT}; train it with `python -m wae_lib.train --out {run_dir}`")
    ckpt = load_checkpoint(path)
    cfg = Config.from_dict(ckpt["config"], str(path))
    check_config_json(Path(run_dir), cfg)
    model = WAEStyle(cfg, vgg=vgg_from_checkpoint(ckpt, cfg.style_layers), verbose=False)
    model.load_state_dict(ckpt["model"])
    model.checkpoint_info = {k: ckpt[k] for k in ("step", "finished", "vgg_source", "vgg_source_label")}
    return model.to(device).eval()


RUNTIME_FIELDS = ("device", "compile", "log_every", "sample_every", "ckpt_every")  # do not change what is learnt


def check_config_json(run_dir: Path, ckpt_cfg: Config) -> None:
    """Refuse a run folder whose config.json disagrees with its checkpoint: evaluation labels figures from
    config.json while the weights follow the checkpoint, so an edited or mixed-up folder would be mislabelled.
    A folder without config.json (an export, a copied checkpoint) is described by its checkpoint alone."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    saved, ckpt = Config.load(path).to_dict(), ckpt_cfg.to_dict()
    diff = {k: (saved[k], ckpt[k]) for k in ckpt if saved[k] != ckpt[k] and k not in RUNTIME_FIELDS}
    if diff:
        shown = ", ".join(f"{k}: config.json {a!r} vs checkpoint {b!r}" for k, (a, b) in sorted(diff.items()))
        raise CheckpointError(f"{run_dir}: config.json disagrees with {CHECKPOINT} on {sorted(diff)} ({shown}); "
                              f"restore config.json, or retrain the folder with --force")


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


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb+") as f:
            os.fsync(f.fileno())


# --------------------------------------------------------------------------------------------------
# the training loop
# --------------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, cfg: Config, out: Path, info: DistInfo, data_digest: str | None = None):
        self.cfg, self.out, self.info = cfg, out, info
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and info.world > 1:
            self.device = torch.device("cuda", info.local_rank)
            torch.cuda.set_device(self.device)
        if info.world > 1 and cfg.batch_size % info.world:
            raise ConfigError(f"config field 'batch_size' = {cfg.batch_size} must be divisible by the number of "
                              f"processes ({info.world})")
        self.data_path = resolve_data_path(cfg)
        self.data_digest = data_digest or data_fingerprint(self.data_path)  # once: recorded in every checkpoint
        self.images = load_images(self.data_path, self.device)
        if cfg.batch_size > len(self.images):
            raise ConfigError(f"config field 'batch_size' = {cfg.batch_size} is larger than the dataset "
                              f"{self.data_path} ({len(self.images)} images); lower it")
        self.model = WAEStyle(cfg, verbose=info.main).to(self.device)
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
        self.step_model: nn.Module = self.model
        if info.world > 1:
            ids = [self.device.index] if self.cuda else None
            self.step_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
            if self.disc is not None:
                self.disc = nn.parallel.DistributedDataParallel(self.disc, device_ids=ids, broadcast_buffers=False)
        if cfg.compile:
            self.step_model = torch.compile(self.step_model)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)  # batches, flips, sampling noise, prior
        self.state = LossState.initial(cfg)
        self.term_names = list(self.state.weights)
        self.targets = torch.tensor([loss_targets(cfg)[k] for k in self.term_names], device=self.device)
        self.running = torch.zeros(len(self.term_names), device=self.device)  # balance=running (tensor: no sync)
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
            out = self.step_model(x, grams_x, noise=noise)
            terms = reconstruction_terms(x, out["x_hat"], feats_x, model.vgg(out["x_hat"]), cfg.style_layers, grams_x,
                                         tv=cfg.w_tv > 0)
            z_all = gather_with_grad(out["z"].float(), self.info)
            if cfg.penalty == "mmd":
                terms["penalty"] = mmd_imq(z_all, prior, cfg.prior_sigma)
            else:
                terms["penalty"] = gan_encoder_penalty(self.disc_module()(z_all))  # its grads are zeroed later
        raw = torch.stack([terms[k].float() for k in self.term_names])
        recon = (self.term_weights(raw) * raw).sum()
        loss = recon + penalty_weight_at(self.step, cfg) * terms["penalty"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = self.clip_gradients()
        self.opt.step()
        if self.disc is not None:
            self.disc_step(out["z"].detach().float(), prior)
        terms = {k: v.detach() for k, v in terms.items()}
        terms["loss"], terms["grad_norm"] = loss.detach(), grad_norm
        self.maybe_calibrate(terms)
        self.step += 1
        return terms

    def term_weights(self, raw: torch.Tensor) -> torch.Tensor:
        """The weight of each reconstruction term this step (a tensor: no host sync).

        balance=running: target share / bias-corrected running mean of the term's raw value, the current
        batch included, so each term contributes about its share at every step (issue 8). Otherwise the
        weights in force (explicit, then calibrated once).
        """
        if self.cfg.calibrate and self.cfg.balance == "running":
            m = self.cfg.balance_momentum
            self.running = m * self.running + (1 - m) * all_mean(raw.detach(), self.info)
            self.state.running_steps += 1
            return self.targets / (self.running / (1 - m ** self.state.running_steps)).clamp_min(1e-12)
        return torch.tensor([self.state.weights[k] for k in self.term_names], device=raw.device)

    def disc_step(self, z: torch.Tensor, prior: torch.Tensor) -> None:
        z_all = gather_with_grad(z, self.info)
        with self.autocast():
            d_loss = gan_discriminator_loss(self.disc(prior), self.disc(z_all))
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.disc_opt.step()

    def clip_gradients(self) -> torch.Tensor:
        """Clip the global gradient norm at grad_clip_factor x its running mean (PILOT.md)."""
        params = [p for p in self.model.trainable_parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if self.cfg.grad_clip_factor > 0:
            if self.state.grad_ema <= 0:  # first step: the mean starts at the first norm (one host sync)
                self.state.grad_ema = float(norm)
            limit = self.cfg.grad_clip_factor * self.state.grad_ema
            torch.nn.utils.clip_grads_with_norm_(params, limit, norm)
            # running mean of the clipped norm; kept on the host, updated at log steps only
            self._pending_norms.append(torch.clamp(norm, max=limit))
        return norm

    def maybe_calibrate(self, terms: dict[str, torch.Tensor]) -> None:
        """SPEC §2: after a warm-up, average raw terms over a few batches, then fix the weights."""
        cfg, st = self.cfg, self.state
        if st.calibrated or cfg.balance == "running" or self.step < cfg.calibrate_after:
            return
        raw = torch.stack([terms[k].float() for k in st.weights])
        raw = all_mean(raw, self.info).tolist()
        for k, v in zip(st.weights, raw):
            st.sums[k] = st.sums.get(k, 0.0) + v
        st.count += 1
        if st.count >= cfg.calibrate_batches:
            means = {k: v / st.count for k, v in st.sums.items()}
            st.weights = calibrate_weights(means, loss_targets(cfg))
            st.calibrated = True
            st.grad_ema = 0.0  # the loss scale just changed: restart the clipping statistics
            if self.info.main:
                atomic_write_text(self.out / "calibration.json", json.dumps(
                    {"step": self.step + 1, "raw_term_means": means, "weights": st.weights,
                     "targets": loss_targets(cfg)}, indent=2))

    # ---------------- bookkeeping ----------------
    def sync_running_state(self) -> None:
        """Copy the running balance (a device tensor) into the serialisable LossState (a host sync)."""
        if self.cfg.calibrate and self.cfg.balance == "running" and self.state.running_steps:
            self.state.running = self.running.tolist()
            m = self.cfg.balance_momentum
            norm = [v / (1 - m ** self.state.running_steps) for v in self.state.running]
            self.state.weights = {k: t / max(v, 1e-12) for k, t, v in
                                  zip(self.term_names, self.targets.tolist(), norm)}

    def checkpoint_dict(self, finished: bool) -> dict[str, Any]:
        self.sync_running_state()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "disc": self.disc_module().state_dict() if self.disc is not None else None,
            "disc_optimizer": self.disc_opt.state_dict() if self.disc_opt is not None else None,
            "step": self.step,
            "finished": finished,
            "rng": rng_state(self.gen),
            "loss_state": dataclasses.asdict(self.state),
            "config": self.cfg.to_dict(),
            "vgg_source": self.model.vgg_source,
            "vgg_source_label": self.model.vgg_source_label,
            "data_fingerprint": self.data_digest,
            "versions": package_versions(),
        }

    def disc_module(self) -> nn.Module:
        return self.disc.module if isinstance(self.disc, nn.parallel.DistributedDataParallel) else self.disc

    def save(self, finished: bool = False) -> None:
        if self.info.main:
            _fsync_file(self.out / "log.jsonl")  # the log rows up to this step are on disk before the checkpoint
            try:
                atomic_torch_save(self.checkpoint_dict(finished), self.out / CHECKPOINT)
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
        self.step = self.saved_step = ckpt["step"]
        self.state = LossState(**ckpt["loss_state"])
        if self.state.running:
            self.running = torch.tensor(self.state.running, device=self.device)
        set_rng_state(ckpt["rng"], self.gen)

    def log_rows(self, rows: list[dict[str, torch.Tensor]], images_per_s: float) -> dict[str, float]:
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
        if self._pending_norms:
            for n in torch.stack(self._pending_norms).tolist():
                self.state.grad_ema = 0.99 * self.state.grad_ema + 0.01 * n
            self._pending_norms.clear()
        last = dict(zip(names, values[-1].tolist()))
        self.sync_running_state()
        weighted = {k: self.state.weights[k] * last[k] for k in self.state.weights}
        weighted["penalty"] = penalty_weight_at(self.step - 1, self.cfg) * last["penalty"]
        total = sum(abs(v) for v in weighted.values()) or 1.0
        row = {"step": self.step, "lr": lr_at(self.step - 1, self.cfg), "images_per_s": images_per_s,
               "calibrated": self.state.calibrated, **last, "weighted": weighted,
               "share": {k: abs(v) / total for k, v in weighted.items()}}
        if self.info.main:  # one write per row; resume cuts the log back to the checkpoint (truncate_log)
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        return last

    def save_samples(self) -> None:
        if not self.info.main:
            return
        from .figures import training_sample_grid

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
                    ips = (self.step - n0) * cfg.batch_size / (time.perf_counter() - t0)
                    last = self.log_rows(rows, ips)
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


RESUMABLE_CHANGES = ("steps", *RUNTIME_FIELDS)


def config_difference(saved: Config, requested: Config) -> dict[str, tuple[Any, Any]]:
    """Fields that differ, except those a resumed run may change (more steps, another device, logging)."""
    a, b = saved.to_dict(), requested.to_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES}


def train(cfg: Config, out: str | Path, force: bool = False) -> Path:
    """Train (or resume, or reuse) the run in folder ``out``; returns the folder.

    A folder whose checkpoint is finished with the same config and the same training data (content digest) is
    reused unless ``force``; an unfinished checkpoint is resumed exactly (model, optimiser, step, RNG states,
    calibration). The folder is locked for the whole run (RunFolderBusy if another run holds it).
    """
    out = Path(out)
    cfg.validate()  # types and ranges, before anything is written
    info = init_distributed(cfg.device)
    data_path = resolve_data_path(cfg)  # fail on a bad data setting before anything is built or written
    digest = data_fingerprint(data_path)
    check_recorded_digest(cfg, data_path, digest)
    with run_lock(out, enabled=info.main):
        return _train_locked(cfg, out, info, data_path, digest, force)


def _train_locked(cfg: Config, out: Path, info: DistInfo, data_path: Path, digest: str, force: bool) -> Path:
    if info.main and out.is_dir():
        remove_stale_temporaries(out)  # of a run killed while writing (the lock says none is running now)
    ckpt_path = out / CHECKPOINT
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.is_file() and not force else None
    if ckpt is not None and not same_data(ckpt.get("data_fingerprint"), data_path, digest):
        if info.main:
            print(f"[wae_lib] {out}: the content of the training data {data_path} changed since this run was "
                  f"trained; retraining from scratch (use another --out to keep the old run)", file=sys.stderr)
        ckpt = None
    if ckpt is not None:
        diff = config_difference(Config.from_dict(ckpt["config"], str(ckpt_path)), cfg)
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
    trainer = Trainer(cfg, out, info, data_digest=digest)
    if ckpt is not None:
        trainer.resume(ckpt)
        if ckpt["config"] != cfg.to_dict():  # e.g. more steps: the checkpoint says so before config.json does
            trainer.save()
    if info.main:
        cfg.save(out / "config.json")
        meta = run_metadata(cfg, trainer.model.vgg_source_label)
        meta.update(data_path=str(trainer.data_path), data_fingerprint=digest, n_images=len(trainer.images),
                    world_size=info.world, resumed_from_step=trainer.step)
        atomic_write_text(out / "metadata.json", json.dumps(meta, indent=2, default=str))
        fsync_dir(out)
    trainer.run()
    return out


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


def steps_for_epochs(epochs: float, n_images: int, batch_size: int) -> int:
    """Optimiser steps that show the model ``epochs`` passes over ``n_images``."""
    return max(1, math.ceil(epochs * n_images / batch_size))


def sweep_configs(base: Config, seeds: tuple[int, ...] = ()) -> list[tuple[str, Config]]:
    """(run folder name, config) of every model of ``base.profile``'s sweep (paper: 2 training sets x 5 content
    sizes), each ``base`` with its set, content size and seed replaced. The first seed's folders are named
    ``<set>_c<content>``, the others ``<set>_c<content>_s<seed>``."""
    sweep = SWEEPS.get(base.profile)
    if sweep is None:
        raise ConfigError(f"config field 'profile' = {base.profile!r} has no sweep; expected one of {sorted(SWEEPS)}")
    seeds = tuple(seeds) or (base.seed,)
    out = []
    for seed in seeds:
        for data in sweep["data"]:
            for cd in sweep["content_dim"]:
                name = run_name(data, cd) + ("" if seed == seeds[0] else f"_s{seed}")
                out.append((name, base.replace(data=data, content_dim=cd, seed=seed)))
    return out


def train_sweep(base: Config, models_dir: str | Path = "models", seeds: tuple[int, ...] = (),
                force: bool = False) -> list[Path]:
    """Train every model of ``base.profile``'s sweep (and each seed) into ``models_dir``; finished runs are reused."""
    t0 = time.perf_counter()
    runs = [train(cfg, Path(models_dir) / name, force=force) for name, cfg in sweep_configs(base, seeds)]
    if init_distributed(base.device).main:
        stage_done(f"sweep {base.profile}", f"{len(runs)} runs in {models_dir}", t0)
    return runs


# --------------------------------------------------------------------------------------------------
# command line: a flag for every Config field
# --------------------------------------------------------------------------------------------------
def add_config_flags(ap: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Config):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif isinstance(default, tuple):
            ap.add_argument(flag, nargs="+", default=None)
        else:
            ap.add_argument(flag, type=type(default), default=None)


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    """The Config fields of a YAML file, checked like flags: a mapping of known field names (their values are
    coerced and range-checked by Config itself). Errors name the file."""
    import yaml

    try:
        d = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigError(f"--config {path}: expected a mapping of config fields, got {type(d).__name__}")
    check_known_fields(d, str(path))
    return d


def config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    if args.config:
        overrides.update(read_yaml_config(args.config))
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    profile = overrides.pop("profile", None) or args.profile
    cfg = profile_config(profile, **overrides) if profile != "custom" else Config(**overrides)
    if getattr(args, "epochs", None):
        import numpy as np

        n = len(np.load(resolve_data_path(cfg), mmap_mode="r"))
        cfg = cfg.replace(steps=steps_for_epochs(args.epochs, n, cfg.batch_size))
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    sweep = bool(argv) and argv[0] == "sweep"
    if sweep:
        argv = argv[1:]
    ap = argparse.ArgumentParser(prog="python -m wae_lib.train" + (" sweep" if sweep else ""), description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    if sweep:
        ap.add_argument("--models-dir", default="models")
        ap.add_argument("--seeds", type=int, nargs="+", default=(),
                        help="train the sweep once per seed (folders of later seeds end in _s<seed>)")
    else:
        ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--config", help="YAML file of Config fields (flags override it)")
    ap.add_argument("--force", action="store_true", help="retrain even if a finished run is there")
    ap.add_argument("--epochs", type=float, help="passes over the training set (sets --steps from its size)")
    add_config_flags(ap)
    ap.set_defaults(profile="custom")
    args = ap.parse_args(argv)
    if sweep and args.epochs:
        ap.error("--epochs is per training set; use --steps with sweep")
    try:
        if sweep:
            train_sweep(config_from_args(args), args.models_dir, tuple(args.seeds), args.force)
        else:
            train(config_from_args(args), args.out, args.force)
    except (ConfigError, TrainingDiverged, TrainingInterrupted, RunFolderBusy, CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # one line, like argparse's; no traceback for expected failures
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
