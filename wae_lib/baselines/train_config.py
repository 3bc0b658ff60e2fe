"""A decoder run's configuration (:class:`BaselineTrainConfig`: Huang & Belongie's and Li et al.'s settings, our
budget, validation and convergence) and each study profile's decoder budget (:func:`baseline_profile`), for
wae_lib.baselines.train.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import DEFAULT_DATA_ROOT, ConfigError

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
