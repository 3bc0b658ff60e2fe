"""One configuration dataclass per run (model + training), with commented defaults.

Every default cites where it comes from: the paper (SPEC.md section numbers), our reading of a gap
(SPEC.md section 6), or the CPU pilot (PILOT.md). The config is saved inside every checkpoint and run
folder (``config.json``) so a run can always be rebuilt from its folder alone.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

STYLE_LAYERS_DEFAULT = ("relu1_1", "relu2_1", "relu3_1")  # SPEC §6: the first three Gatys style layers
CONTENT_DIMS_PAPER = (512, 256, 128, 64, 32)  # SPEC §3: content latent sizes studied
TRAINING_SETS = ("celeba", "mixed")  # SPEC §4: CelebA only / CelebA + AnimeFace + ImageNet
VGG_SOURCES = ("auto", "imagenet", "hed", "random")  # or a path to a .pth state dict
PENALTIES = ("mmd", "gan")


@dataclass
class Config:
    # ---------------- model (SPEC §3, Tables 1-2) ----------------
    content_dim: int = 128  # content latent size; the paper studies 512, 256, 128, 64, 32
    style_dim_per_layer: int = 64  # SPEC §3: 64 style variables per VGG layer (3 layers -> 192)
    style_layers: tuple[str, ...] = STYLE_LAYERS_DEFAULT  # VGG16 layers whose Gram matrices feed the style net
    style_hidden: int = 256  # hidden width of the 3-stage style FC nets (not in the paper; pilot: ~11M params)
    style_depth: int = 3  # SPEC §3: "3 stages" read as 3 fully connected layers
    gated: bool = True  # SPEC §6: GLU reading of Table 1's channel halving; False = widths as printed
    width: float = 1.0  # channel multiplier of encoder and decoder (1.0 = Tables 1-2; CPU profiles scale down)
    n_resblocks: int = 3  # Table 2: three ResBlocks at 8x8
    stochastic: bool = True  # SPEC §6: Gaussian encoders (mean, log-variance); False = deterministic
    logvar_max: float = -4.0  # PILOT: cap on the encoders' log-variance; free variance diverged
    data_init: bool = True  # weight norm's data-dependent init on the first batch (Salimans & Kingma 2016)
    vgg_source: str = "auto"  # auto | imagenet | hed | random | path/to/vgg16.pth (see wae_lib.vgg)

    # ---------------- losses (SPEC §2, §6) ----------------
    penalty: str = "mmd"  # mmd (WAE-MMD, IMQ kernel) | gan (WAE-GAN latent discriminator)
    penalty_weight: float = 10.0  # lambda; PILOT: 10 with calibrated terms (WAE paper: 100 on unnormalised sums)
    prior_sigma: float = 1.0  # prior N(0, sigma^2 I) on the joint latent
    calibrate: bool = True  # SPEC §2: weight the reconstruction terms so each contributes about equally
    calibrate_after: int = 20  # PILOT: calibrate after a short warm-up, not on the first (flat grey) batch
    calibrate_batches: int = 5  # average the raw terms over this many batches before fixing weights
    w_pixel: float = 1.0  # explicit weights, used as-is when calibrate=False (and before calibration)
    w_feature: float = 1.0
    w_gram: float = 1.0

    # ---------------- data ----------------
    data: str = "celeba"  # training set name (celeba | mixed) or a path to a packed images.npy
    data_root: str = "data/processed"  # where wae_lib.data writes its packed sets
    hflip: bool = True  # random horizontal flips during training

    # ---------------- optimisation (SPEC §6: the WAE paper's CelebA settings as a start) ----------------
    steps: int = 20000  # optimiser steps
    batch_size: int = 100  # WAE paper: 100
    lr: float = 1e-3  # WAE paper: Adam lr 1e-3
    beta1: float = 0.5  # WAE paper: beta1 0.5
    beta2: float = 0.999
    lr_warmup: int = 100  # linear learning-rate warm-up steps (pilot idea; 0 disables)
    lr_decay: str = "cosine"  # none | cosine (to lr_min_ratio * lr at the last step)
    lr_min_ratio: float = 0.1
    grad_clip_factor: float = 3.0  # PILOT: clip gradient norms above this multiple of their running mean
    disc_lr: float = 5e-4  # WAE-GAN only: discriminator learning rate
    disc_hidden: int = 512  # WAE-GAN only: discriminator width (WAE paper: 4 layers of 512)

    # ---------------- run ----------------
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile the training step's models
    channels_last: bool = True  # on CUDA
    log_every: int = 10  # steps between loss log rows (host syncs happen only here)
    sample_every: int = 500  # steps between PNG grids of reconstructions and transfers
    ckpt_every: int = 500  # steps between checkpoints
    profile: str = "custom"  # which profile built this config (quick, paper, smoke, custom)
    scaled_note: str = ""  # how this run departs from the paper's scale, shown on every output
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into metadata

    def __post_init__(self) -> None:
        self.style_layers = tuple(self.style_layers)
        self.validate()

    @property
    def style_dim(self) -> int:
        return self.style_dim_per_layer * len(self.style_layers)

    @property
    def latent_dim(self) -> int:
        return self.content_dim + self.style_dim

    def validate(self) -> None:
        """Fail early, naming the parameter and the allowed values."""
        _check(self.content_dim > 0, "content_dim", self.content_dim, "a positive integer (paper: 512, 256, 128, 64, 32)")
        _check(self.style_dim_per_layer > 0, "style_dim_per_layer", self.style_dim_per_layer, "a positive integer")
        _check(len(self.style_layers) > 0, "style_layers", self.style_layers, "at least one VGG16 layer name")
        _check(self.style_depth >= 1, "style_depth", self.style_depth, "an integer >= 1")
        _check(self.width > 0, "width", self.width, "a positive channel multiplier (1.0 = the paper)")
        _check(self.penalty in PENALTIES, "penalty", self.penalty, f"one of {PENALTIES}")
        _check(self.penalty_weight >= 0, "penalty_weight", self.penalty_weight, "a non-negative number")
        _check(self.steps > 0, "steps", self.steps, "a positive integer")
        _check(self.batch_size > 1, "batch_size", self.batch_size, "an integer >= 2 (the MMD needs pairs)")
        _check(self.lr > 0, "lr", self.lr, "a positive number")
        _check(self.lr_decay in ("none", "cosine"), "lr_decay", self.lr_decay, "none or cosine")
        _check(
            self.vgg_source in VGG_SOURCES or self.vgg_source.endswith((".pth", ".pt")),
            "vgg_source", self.vgg_source, f"one of {VGG_SOURCES} or a path ending in .pth/.pt",
        )

    # ---------------- serialisation ----------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["style_layers"] = list(self.style_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))


class ConfigError(ValueError):
    """A configuration value is outside what the code accepts."""


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"config field {name!r} = {value!r} is invalid: expected {expected}")


# --------------------------------------------------------------------------------------------------
# Profiles: the same pipeline at different scales. Each maps to Config overrides plus a sweep.
# --------------------------------------------------------------------------------------------------
PROFILES: dict[str, dict[str, Any]] = {
    # The paper's scale (SPEC §3, §5): full-width networks, 10 models; for GPUs.
    "paper": dict(width=1.0, style_hidden=256, batch_size=100, steps=50_000, lr=1e-3, log_every=50,
                  sample_every=2000, ckpt_every=2000, calibrate_after=200, calibrate_batches=20, lr_warmup=500,
                  scaled_note=""),
    # 2 CPU cores, minutes: channels x1/4, a short schedule (~19 img/s measured, ~80 s a model, 6 models).
    "quick": dict(width=0.25, style_hidden=128, batch_size=16, steps=90, lr=1e-3, log_every=5,
                  sample_every=45, ckpt_every=30, calibrate_after=25, calibrate_batches=3, lr_warmup=5,
                  scaled_note="quick profile: channels x1/4 of Tables 1-2, style FC width 128, 90 steps of 16 "
                              "images on 2 CPU cores (the paper trains full width on GPUs for many epochs)"),
    # Seconds: for tests only.
    "smoke": dict(width=0.0625, style_hidden=16, style_dim_per_layer=8, batch_size=8, steps=6, log_every=1,
                  sample_every=3, ckpt_every=3, calibrate_after=1, calibrate_batches=2, lr_warmup=0,
                  scaled_note="smoke profile: channels x1/16, 6 steps (a test, not a result)"),
}

SWEEPS: dict[str, dict[str, tuple]] = {
    "paper": {"data": TRAINING_SETS, "content_dim": CONTENT_DIMS_PAPER},
    "quick": {"data": TRAINING_SETS, "content_dim": (128, 64, 32)},
    "smoke": {"data": TRAINING_SETS, "content_dim": (32, 16)},
}


def profile_config(profile: str, **overrides: Any) -> Config:
    """The Config of a named profile, with overrides applied on top."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    return Config(**{**PROFILES[profile], "profile": profile, **overrides})


def run_name(data: str, content_dim: int) -> str:
    """Folder name of one model of a sweep, e.g. ``celeba_c128``."""
    return f"{Path(data).stem if data.endswith('.npy') else data}_c{content_dim}"
