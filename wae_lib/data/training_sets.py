"""The training set of a run: which file (a set name or a .npy path), that it is the file data prep recorded,
its content digest (checkpoints are trusted by it, not by mtimes), the loader, and the data-dependent init batch."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import TRAINING_SETS, Config, ConfigError
from ..utils import file_sha256
from .layout import INFO_FILE, OUT_SIZE, set_path
from .loader import PackedImages
from .packed import npy_shape


def resolve_data_path(cfg: Config) -> Path:
    """``cfg.data`` is a training-set name of wae_lib.data's sets or a path to a packed ``.npy``."""
    if cfg.data.endswith(".npy"):
        path = Path(cfg.data)
    elif cfg.data in TRAINING_SETS:
        path = set_path(cfg.data_root, cfg.data)
    else:
        raise ConfigError(f"config field 'data' = {cfg.data!r} is invalid: expected one of {TRAINING_SETS} "
                          f"or a path to a packed images .npy written by wae_lib.data")
    if not path.is_file():
        raise ConfigError(f"config field 'data' = {cfg.data!r}: the packed dataset {path} does not exist; "
                          f"prepare it first with `make data` or `python -m wae_lib data all --data-root {cfg.data_root}`")
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
        recorded = json.loads((path.parent / INFO_FILE).read_text()).get("sha256", {}).get(path.name)
    except (OSError, ValueError, AttributeError):
        return  # sets written before digests were recorded
    if recorded is not None and digest != f"sha256:{recorded}":
        raise ConfigError(f"config field 'data' = {cfg.data!r}: {path} is not the file recorded in "
                          f"{path.parent / INFO_FILE} (changed since it was written); prepare the data again")


@dataclass(frozen=True)
class TrainingData:
    """A run's training set resolved once (:func:`resolve_training_data`): the file and its content digest, which
    the checkpoint records and a resumed or reused run is checked against."""

    path: Path
    digest: str


def resolve_training_data(cfg: Config) -> TrainingData:
    """``cfg.data`` resolved to its file, digested once and checked against what data prep recorded: the one call
    a run makes (wae_lib.train.run_folder.train hands the result to the Trainer)."""
    path = resolve_data_path(cfg)
    digest = data_fingerprint(path)
    check_recorded_digest(cfg, path, digest)
    return TrainingData(path, digest)


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


def memory_fingerprint(images) -> str:
    """A cheap fingerprint of in-memory images (every k-th image hashed) to detect a changed training set."""
    data = images.data
    step = max(1, len(data) // 256)
    return f"memory:{tuple(data.shape)}:" + hashlib.sha1(data[::step].cpu().numpy().tobytes()).hexdigest()[:16]
