"""One configuration dataclass per run (model + training), with commented defaults.

Every default cites where it comes from: the paper (SPEC.md section numbers), our reading of a gap
(SPEC.md section 6), or the CPU pilot (PILOT.md). The config is saved inside every checkpoint and run
folder (``config.json``) so a run can always be rebuilt from its folder alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .params import Invalid, coerce
from .profiles import CONTENT_DIMS_PAPER, TRAINING_SETS  # noqa: F401 (re-exported; their home is profiles.py)
from .utils import UserError, atomic_write_text

STYLE_LAYERS_DEFAULT = ("relu1_1", "relu2_1", "relu3_1")  # SPEC §6: the first three Gatys style layers
TRAINING_SET_LABELS = {"celeba": "CelebA-only", "mixed": "mixed"}  # the paper's names (Fig. 6-7 rows)
VGG_SOURCES = ("auto", "imagenet", "hed", "random")  # or a path to a .pth state dict
PENALTIES = ("mmd", "gan")
BALANCES = ("fixed", "running")
UPSAMPLES = ("subpixel", "resize")
OBJECTIVES = ("paper", "swap")  # reconstruction only (SPEC §2) | + swapped pairs (issue 16, docs/DEPARTURES.md)
STYLE_INJECTIONS = ("concat", "modulate")  # the paper's concatenated latent | + per-stage modulation (issue 16)
CONTENT_NORMS = ("none", "instance")  # Table 1 as printed | instance norm after each conv (issue 16)
CONTENT_MAPS = (0, 4, 8, 16, 32)  # 0: Table 1's content vector | the side of a spatial content map at 64 px (issue 33)
IMAGE_SIZE = 64  # SPEC §4: every training image is 64 x 64; a content map's side is counted at this size
# the models shipped in wae_lib/weights (wae_lib.model.pretrained), by load_model name; torch-free here so that the CLI's
# --help can name them. The default of the CLI, the explorer and notebook 07 is DEFAULT_SHIPPED_MODEL.
# The one default data root: what `make data` writes without DATA_DIR (the Makefile's DATA_ROOT for the sample set),
# the notebooks' `data_root` and every command's --data-root default (tests/test_faults.py checks that they agree)
DEFAULT_DATA_ROOT = "data/processed/sample"

SHIPPED_MODELS = {
    "pretrained": "ours: a 16x16x8 spatial content map (issue 33), swapped-pair training, the style modulating every "
                  "decoder stage (issue 16); trained on a GPU",
    "pretrained-paper": "the paper's training: reconstruction only (Nakada & Asoh 2019)",
}
DEFAULT_SHIPPED_MODEL = "pretrained"


@dataclass(frozen=True)
class VGGSource:
    """The frozen VGG16 a model was built with, resolved once (wae_lib.model.vgg) and then passed and saved whole.

    ``name``: imagenet | hed | random | a .pth path (never ``auto``); ``label``: what captions and metadata say;
    ``sha256``: wae_lib.model.vgg.weights_digest of the source's weights, checked whenever they are loaded again by
    name ("": not recorded, a run trained before this value existed).
    """

    name: str
    label: str
    sha256: str

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VGGSource:
        if set(d) != {f.name for f in fields(cls)} or not all(isinstance(v, str) for v in d.values()):
            raise Invalid("a VGG16 source name, or a mapping of name, label and sha256 strings")
        return cls(**d)


def vgg_source_value(value: Any) -> str | VGGSource:
    """``Config.vgg_source`` as a request (a string) or a resolved :class:`VGGSource` (from a saved config)."""
    if isinstance(value, VGGSource):
        return value
    if isinstance(value, Mapping):
        return VGGSource.from_dict(value)
    return coerce(value, str)


def is_vgg_source_name(name: str) -> bool:
    return name in VGG_SOURCES or name.endswith((".pth", ".pt"))


@dataclass
class Config:
    # ---------------- model (SPEC §3, Tables 1-2) ----------------
    content_dim: int = 128  # content latent size; the paper studies 512, 256, 128, 64, 32. With content_map > 0:
    #   the map's channels, the content numbers at each position
    content_map: int = 0  # 0: the paper's content vector (Table 1: convs 1-5 and a fully connected layer) |
    #   N (DEPARTURE, issue 33): a spatial map of N x N positions x content_dim channels at 64 px, from the first
    #   1 + log2(64 / N) convs of Table 1 and a 1x1 conv; the decoder starts at N x N (Table 2's stages from there
    #   on) and the model is fully convolutional (a 128 px image has a 2N x 2N map). Why: a vector of 256 numbers
    #   could not even reconstruct a held-out face (identity kept 0.28); a 16 x 16 x 8 map kept it (issue 33,
    #   reports/ablations/content_code.md). The WAE penalty then applies per position (wae_lib.model.losses.map_mmd)
    style_dim_per_layer: int = 64  # SPEC §3: 64 style variables per VGG layer (3 layers -> 192)
    style_layers: tuple[str, ...] = STYLE_LAYERS_DEFAULT  # VGG16 layers whose Gram matrices feed the style net
    style_hidden: int = 256  # hidden width of the 3-stage style FC nets (not in the paper; pilot: ~11M params)
    style_depth: int = 3  # SPEC §3: "3 stages" read as 3 fully connected layers
    gated: bool = True  # SPEC §6: GLU reading of Table 1's channel halving; False = widths as printed
    width: float = 1.0  # channel multiplier of encoder and decoder (1.0 = Tables 1-2; CPU profiles scale down)
    n_resblocks: int = 3  # Table 2: three ResBlocks at 8x8
    stochastic: bool = True  # SPEC §6: Gaussian encoders (mean, log-variance); False = deterministic
    logvar_max: float = -4.0  # PILOT: cap on the encoders' log-variance; free variance diverged
    data_init: bool = True  # weight norm's data-dependent init of the latent heads (Salimans & Kingma 2016)
    data_init_images: int = 256  # DEPARTURE (issue 8): a seeded random batch of this many training images, drawn
    #   from the whole set (the mixed set is stored CelebA -> anime -> ImageNet); 0 = the first batch_size rows
    gram_standardize: bool = True  # DEPARTURE (issue 8): standardise the style nets' log-Gram inputs per entry with
    #   statistics of the init batch (saved in the checkpoint), so the style latent starts at unit std; the
    #   paper does not say how Grams are fed. False = log1p(Gram) as is
    upsample: str = "subpixel"  # Table 2: sub-pixel convs | "resize": nearest x2 + 3x3 conv (Odena et al. 2016),
    #   no checkerboard by construction
    vgg_source: str | VGGSource = "auto"  # auto | imagenet | hed | random | path/to/vgg16.pth (see wae_lib.model.vgg);
    #   the model records the VGGSource it resolved this to, so a run's saved config names the weights it used
    style_injection: str = "concat"  # concat: the decoder reads [content | style] once, at its input (Table 2) |
    #   modulate (DEPARTURE, issue 16): also IN(h) * (1 + g(s)) + b(s) after each upsampling stage, g and b
    #   linear in the style latent and zero at init (MUNIT's AdaIN decoder, Huang et al. 2018)
    content_norm: str = "none"  # none: Table 1 as printed | instance (DEPARTURE, issue 16): instance norm
    #   after each conv, so the content latent cannot carry the image's colour statistics (MUNIT's encoder)

    # ---------------- losses (SPEC §2, §6) ----------------
    penalty: str = "mmd"  # mmd (WAE-MMD, IMQ kernel) | gan (WAE-GAN latent discriminator)
    penalty_weight: float = 10.0  # lambda; PILOT: 10 with calibrated terms (WAE paper: 100 on unnormalised sums)
    prior_sigma: float = 1.0  # prior N(0, sigma^2 I) on the joint latent
    calibrate: bool = True  # SPEC §2: weight the reconstruction terms so each contributes about equally
    calibrate_after: int = 20  # PILOT: calibrate after a short warm-up, not on the first (flat grey) batch
    calibrate_batches: int = 5  # average the raw terms over this many batches before fixing weights
    balance: str = "running"  # how "roughly equal" contributions are kept (SPEC §2):
    #   fixed: warm up on pixel + penalty for calibrate_after steps, then fix weights once (the first reading)
    #   running (default, issue 8): from step 0, each term is divided by a running mean of its own raw value
    #   (bias-corrected EMA), so every term keeps its share of the total during the whole run
    balance_momentum: float = 0.98  # EMA momentum of the running balance (about 50 steps of memory)
    penalty_warmup: int = 0  # steps over which lambda ramps linearly from 0 (0 = full lambda from step 0)
    w_pixel: float = 1.0  # explicit weights: used as-is when calibrate=False; with calibration they are each
    w_feature: float = 1.0  #   term's share of the total (pixel : feature : gram), 1 : 1 : 1 in the paper's reading
    w_gram: float = 1.0
    gram_layer_weights: tuple[float, ...] = ()  # relative share of each style layer within the Gram term
    #   (aligned with style_layers; empty = equal shares, SPEC §6). E.g. (0.2, 1, 1) damps relu1_1's texture
    w_tv: float = 0.0  # total-variation term's share (0 = off; not in the paper): suppresses pixel-scale patterns
    objective: str = "paper"  # paper: reconstruction only (SPEC §2) | swap (DEPARTURE, issue 16): also decode
    #   each content latent with a partner's style latent (the batch rolled by one) and score that output
    #   against the partner's Gram matrices and against its own image's instance-normalised VGG features
    w_swap_gram: float = 1.0  # swap only: share of the swapped output's Gram term (split over style_layers)
    w_swap_content: float = 1.0  # swap only: share of the swapped output's content term (split over its layers)
    swap_content_layers: tuple[str, ...] = ("relu3_1",)  # swap only: VGG layers of the content term, each
    #   instance-normalised first (MUNIT's perceptual loss), so it asks for structure, not colour
    w_cycle: float = 0.0  # swap only: share of the latent cycle (DRIT / MUNIT): re-encode the swapped output,
    #   match its content latent to the own one and its style latent to the partner's (0 = off)
    w_texture: float = 0.0  # swap only: share of the texture critic's term (0 = off): a patch co-occurrence
    #   discriminator (Swapping Autoencoder) asks patches of the swapped output to look like the partner's patches
    texture_patch: int = 16  # texture critic: patch side in px (a quarter of the 64 px image)
    texture_refs: int = 4  # texture critic: reference patches of the partner beside each judged patch

    # ---------------- data ----------------
    data: str = "celeba"  # training set name (celeba | mixed) or a path to a packed images.npy
    data_root: str = DEFAULT_DATA_ROOT  # where wae_lib.data wrote the packed sets (sets/*.npy, sets/info.json)
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
    disc_lr: float = 5e-4  # learning rate of the critics: WAE-GAN's latent one, the texture critic (w_texture)
    disc_hidden: int = 512  # WAE-GAN only: discriminator width (WAE paper: 4 layers of 512)

    # ---------------- run ----------------
    init_from: str = ""  # a run folder or shipped model name whose weights start this run (the paper: "", random
    #   init); tensors it lacks (e.g. the style modulation of a paper-trained model) keep their fresh init
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False  # torch.compile the training step's models
    channels_last: bool = True  # on CUDA
    log_every: int = 10  # steps between loss log rows (host syncs happen only here)
    sample_every: int = 500  # steps between PNG grids of reconstructions and transfers
    ckpt_every: int = 500  # steps between checkpoints
    profile: str = "custom"  # which profile built this config (quick, paper, smoke, custom)
    scaled_note: str = ""  # how this run departs from the paper's scale, shown on every output; a template whose
    #   {fields} are filled from this config (see scale_note), so captions state the run's real schedule
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into metadata

    def __post_init__(self) -> None:
        self.validate()

    @property
    def style_dim(self) -> int:
        return self.style_dim_per_layer * len(self.style_layers)

    @property
    def content_latent_dim(self) -> int:
        """The content latent's numbers at 64 px: content_dim for the vector, content_dim x N x N for a map."""
        return self.content_dim * self.content_map**2 if self.content_map else self.content_dim

    @property
    def content_shape(self) -> tuple[int, ...]:
        """The content latent of one 64 px image: (content_dim,) or (content_dim, N, N)."""
        return (self.content_dim, self.content_map, self.content_map) if self.content_map else (self.content_dim,)

    @property
    def content_label(self) -> str:
        """How captions name the content code: ``256`` (a vector) or ``16x16x8 map``."""
        return f"{self.content_map}x{self.content_map}x{self.content_dim} map" if self.content_map else str(self.content_dim)

    @property
    def latent_dim(self) -> int:
        return self.content_latent_dim + self.style_dim

    @property
    def scale_note(self) -> str:
        """``scaled_note`` with this run's own values (steps, batch size, width...) filled in."""
        try:
            return self.scaled_note.format_map({**self.to_dict(), "content_label": self.content_label})
        except (KeyError, IndexError, ValueError):  # a hand-written note with stray braces: shown as written
            return self.scaled_note

    def coerce_fields(self) -> None:
        """Every field to its declared type (wae_lib.params.coerce), whichever way it arrived: a YAML ``1e-3``
        (a string there) becomes 0.001, ``style_layers: relu1_1`` one layer, ``batch_size: 8.5`` an error."""
        for name, kind in _field_types().items():
            value = getattr(self, name)
            try:
                setattr(self, name, coerce(value, kind))
            except Invalid as exc:
                raise ConfigError(f"config field {name!r} = {value!r} is invalid: expected {exc.expected}") from None

    def validate(self) -> None:
        """Fail early, naming the parameter and the allowed values (types first, then ranges)."""
        self.coerce_fields()
        check(self.content_dim > 0, "content_dim", self.content_dim, "a positive integer (paper: 512, 256, 128, 64, 32)")
        check(self.style_dim_per_layer > 0, "style_dim_per_layer", self.style_dim_per_layer, "a positive integer")
        check(len(self.style_layers) > 0, "style_layers", self.style_layers, "at least one VGG16 layer name")
        check(self.style_depth >= 1, "style_depth", self.style_depth, "an integer >= 1")
        check(self.style_hidden >= 1, "style_hidden", self.style_hidden, "an integer >= 1")
        check(self.n_resblocks >= 0, "n_resblocks", self.n_resblocks, "an integer >= 0")
        check(self.width > 0, "width", self.width, "a positive channel multiplier (1.0 = the paper)")
        check(self.penalty in PENALTIES, "penalty", self.penalty, f"one of {PENALTIES}")
        check(self.penalty_weight >= 0, "penalty_weight", self.penalty_weight, "a non-negative number")
        check(self.prior_sigma > 0, "prior_sigma", self.prior_sigma, "a positive number (the prior's std)")
        check(self.calibrate_after >= 0, "calibrate_after", self.calibrate_after, "an integer >= 0")
        check(self.calibrate_batches >= 1, "calibrate_batches", self.calibrate_batches, "an integer >= 1")
        for name in ("w_pixel", "w_feature", "w_gram"):
            check(getattr(self, name) >= 0, name, getattr(self, name), "a non-negative number")
        check(self.steps > 0, "steps", self.steps, "a positive integer")
        check(self.batch_size > 1, "batch_size", self.batch_size, "an integer >= 2 (the MMD needs pairs)")
        check(self.lr > 0, "lr", self.lr, "a positive number")
        check(self.disc_lr > 0, "disc_lr", self.disc_lr, "a positive number")
        check(self.disc_hidden >= 1, "disc_hidden", self.disc_hidden, "an integer >= 1")
        for name in ("beta1", "beta2"):
            check(0 <= getattr(self, name) < 1, name, getattr(self, name), "a number in [0, 1)")
        check(self.lr_warmup >= 0, "lr_warmup", self.lr_warmup, "an integer >= 0")
        check(0 <= self.lr_min_ratio <= 1, "lr_min_ratio", self.lr_min_ratio, "a number in [0, 1]")
        check(self.grad_clip_factor >= 0, "grad_clip_factor", self.grad_clip_factor, "a number >= 0 (0: no clip)")
        check(self.log_every >= 1, "log_every", self.log_every, "an integer >= 1")
        check(self.ckpt_every >= 1, "ckpt_every", self.ckpt_every, "an integer >= 1")
        check(self.sample_every >= 0, "sample_every", self.sample_every, "an integer >= 0 (0: no samples)")
        check(self.lr_decay in ("none", "cosine"), "lr_decay", self.lr_decay, "none or cosine")
        check(self.balance in BALANCES, "balance", self.balance, f"one of {BALANCES}")
        check(0.0 < self.balance_momentum < 1.0, "balance_momentum", self.balance_momentum, "a number in (0, 1)")
        check(self.upsample in UPSAMPLES, "upsample", self.upsample, f"one of {UPSAMPLES}")
        check(self.penalty_warmup >= 0, "penalty_warmup", self.penalty_warmup, "an integer >= 0")
        check(self.data_init_images >= 0, "data_init_images", self.data_init_images, "an integer >= 0")
        check(self.w_tv >= 0, "w_tv", self.w_tv, "a non-negative number")
        check(self.objective in OBJECTIVES, "objective", self.objective, f"one of {OBJECTIVES}")
        check(self.style_injection in STYLE_INJECTIONS, "style_injection", self.style_injection,
              f"one of {STYLE_INJECTIONS}")
        check(self.content_norm in CONTENT_NORMS, "content_norm", self.content_norm, f"one of {CONTENT_NORMS}")
        check(self.content_map in CONTENT_MAPS, "content_map", self.content_map,
              f"one of {CONTENT_MAPS} (0: the paper's vector; else the map's side at {IMAGE_SIZE} px)")
        check(8 <= self.texture_patch <= IMAGE_SIZE, "texture_patch", self.texture_patch,  # the critic halves it 3x
              f"an integer from 8 to {IMAGE_SIZE} (px)")
        check(self.texture_refs >= 1, "texture_refs", self.texture_refs, "an integer >= 1")
        for name in ("w_swap_gram", "w_swap_content", "w_cycle", "w_texture"):
            check(getattr(self, name) >= 0, name, getattr(self, name), "a non-negative number")
        check(self.objective != "swap" or (len(self.swap_content_layers) > 0
                                            and set(self.swap_content_layers) <= set(self.style_layers)),
              "swap_content_layers", self.swap_content_layers, f"one or more of the style layers {self.style_layers}")
        check(len(self.gram_layer_weights) in (0, len(self.style_layers)) and all(w >= 0 for w in
              self.gram_layer_weights), "gram_layer_weights", self.gram_layer_weights,
              f"empty or {len(self.style_layers)} non-negative numbers, one per style layer")
        try:
            self.vgg_source = vgg_source_value(self.vgg_source)
        except Invalid as exc:
            raise ConfigError(f"config field 'vgg_source' = {self.vgg_source!r} is invalid: expected {exc.expected}") \
                from None
        resolved = isinstance(self.vgg_source, VGGSource)
        name = self.vgg_source.name if resolved else self.vgg_source
        check(is_vgg_source_name(name) and not (resolved and name == "auto"), "vgg_source", self.vgg_source,
              f"one of {VGG_SOURCES} or a path ending in .pth/.pt")

    # ---------------- serialisation ----------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["style_layers"] = list(self.style_layers)
        d["gram_layer_weights"] = list(self.gram_layer_weights)
        d["swap_content_layers"] = list(self.swap_content_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "") -> Config:
        """A Config from a mapping (config.json, a YAML file, a checkpoint); ``source`` names it in errors."""
        check_known_fields(d, source)
        return cls(**d)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> Config:
        try:
            d = json.loads(Path(path).read_text())
        except ValueError as exc:
            raise ConfigError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path} holds {type(d).__name__}, expected a mapping of config fields")
        return cls.from_dict(d, str(path))


class ConfigError(UserError, ValueError):
    """A configuration value is outside what the code accepts."""

    subject = "config field {name!r}"  # how check() names the value


class EvaluationError(UserError, ValueError):
    """A notebook parameter or an input on disk is not what the evaluation needs; the message names it."""

    subject = "parameter {name}"


def check(ok: bool, name: str, value: Any, expected: str,
          error: type[ConfigError] | type[EvaluationError] = ConfigError) -> None:
    """Raise ``error`` when ``ok`` is false, naming the value in one line: ``config field 'lr' = 0 is invalid:
    expected a positive number`` (ConfigError) or ``parameter n = 0 is invalid: ...`` (EvaluationError)."""
    if not ok:
        raise error(f"{error.subject.format(name=name)} = {value!r} is invalid: expected {expected}")


@functools.cache
def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)}


def check_known_fields(d: dict[str, Any], source: str = "") -> None:
    """Refuse names that are not Config fields (a typo in YAML or a notebook), naming them and the source."""
    known = {f.name for f in fields(Config)}
    unknown = sorted(set(d) - known)
    if unknown:
        where = f" in {source}" if source else ""
        raise ConfigError(f"unknown config field(s) {unknown}{where}; known fields: {sorted(known)}")


from .profiles import PROFILES, REFERENCE_PROFILE, SMALL_PROFILES, SWEEPS  # noqa: E402,F401


def profile_config(profile: str, **overrides: Any) -> Config:
    """The Config of a named profile, with overrides applied on top."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {sorted(PROFILES)}")
    check_known_fields(overrides)
    return Config(**{**PROFILES[profile], "profile": profile, **overrides})


def run_name(data: str, content_dim: int, seed: int | None = None) -> str:
    """Folder name of one model of a sweep, e.g. ``celeba_c128``; a further seed of it ends in ``_s<seed>``."""
    return f"{Path(data).stem if data.endswith('.npy') else data}_c{content_dim}" + (
        "" if seed is None else f"_s{seed}")


def training_set_label(data: str) -> str:
    """The paper's name of a training set (``celeba`` -> ``CelebA-only``); another data name as it is."""
    return TRAINING_SET_LABELS.get(data, data)
