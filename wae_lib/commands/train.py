"""``python -m wae_lib train``: one run folder, or every model of a profile's sweep.

    python -m wae_lib train --out models/celeba_c128 --data celeba --content-dim 128 --profile quick
    python -m wae_lib train sweep --profile quick --models-dir models      # every model of a profile
    torchrun --nproc_per_node 2 -m wae_lib train --out RUN ...              # DDP (NCCL on GPU, gloo on CPU)

A flag for every Config field (wae_lib.config; its comments are the defaults' reasons) and ``--config`` for a YAML
file of them: the profile first, then the file, then the flags. A finished run folder with the same config and
data is reused, an unfinished one resumed (wae_lib.train.run_folder). Ctrl-C or SIGTERM in the loop writes a
checkpoint first and exits with 130; the same command continues.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

MODELS_DIR = "models"
HELP = "train one model (--out) or a profile's sweep (train sweep --models-dir ...)"
DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    parser.add_argument("mode", nargs="?", choices=["sweep"], help="sweep: every model of --profile's sweep into "
                        "--models-dir (one folder per model)")
    parser.add_argument("--out", help="the run folder (one model)")
    parser.add_argument("--models-dir", default=MODELS_DIR, help="sweep: the folder of the run folders")
    parser.add_argument("--seeds", type=int, nargs="+", default=(),
                        help="sweep: train it once per seed (folders of later seeds end in _s<seed>)")
    parser.add_argument("--config", help="YAML file of Config fields (flags override it)")
    parser.add_argument("--force", action="store_true", help="retrain even if a finished run is there")
    parser.add_argument("--epochs", type=float, help="passes over the training set (sets --steps from its size; one "
                        "model only: the sweep's sets differ in size)")
    add_config_flags(parser)
    parser.set_defaults(profile="custom")


def add_config_flags(parser) -> None:
    """A flag per Config field: ``--content-dim``, ``--gated/--no-gated``, ``--style-layers a b``."""
    from ..config import Config

    for f in dataclasses.fields(Config):
        if f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif isinstance(default, tuple):
            parser.add_argument(flag, nargs="+", default=None)
        else:
            parser.add_argument(flag, type=type(default), default=None)


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    """The Config fields of a YAML file, checked like flags: a mapping of known field names (their values are
    coerced and range-checked by Config itself). Errors name the file."""
    import yaml

    from ..config import ConfigError, check_known_fields

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


def config_from_args(args: argparse.Namespace):
    """The Config of a parsed command line: its profile, then the YAML file's fields, then the flags given."""
    from ..config import Config, profile_config

    overrides: dict[str, Any] = {}
    if args.config:
        overrides.update(read_yaml_config(args.config))
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    profile = overrides.pop("profile", None) or args.profile
    return profile_config(profile, **overrides) if profile != "custom" else Config(**overrides)


def run(args) -> int:
    import numpy as np
    import torch.distributed as dist

    from ..data.training_sets import resolve_data_path
    from ..train.run_folder import steps_for_epochs, train, train_sweep
    from ..utils import UserError

    sweep = args.mode == "sweep"
    if sweep and args.epochs:
        raise UserError("--epochs is per training set; use --steps with sweep")
    if not sweep and not args.out:
        raise UserError("--out is required (the run folder), or train sweep --models-dir DIR")
    if sweep and args.out:
        raise UserError("--out names one run folder; train sweep writes one per model into --models-dir")
    if not sweep and (args.seeds or args.models_dir != MODELS_DIR):
        raise UserError("--seeds and --models-dir are for train sweep; one run goes into --out")
    try:
        cfg = config_from_args(args)
        if sweep:
            train_sweep(cfg, args.models_dir, tuple(args.seeds), args.force)
        else:
            if args.epochs:
                n_images = len(np.load(resolve_data_path(cfg), mmap_mode="r"))
                cfg = cfg.replace(steps=steps_for_epochs(args.epochs, n_images, cfg.batch_size))
            train(cfg, args.out, args.force)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0
