"""What to train: the models of a profile's sweep, and the Config the command line asks for.

A sweep is one base Config (a profile, with the flags and YAML values on top) replaced per model: training set,
content size and seed (:func:`sweep_configs`); every run folder is named by :func:`wae_lib.config.run_name`.
``python -m wae_lib train`` (wae_lib.train.cli.main) parses its command line with :func:`build_parser`: a flag for
every Config field, and ``--config`` for a YAML file of them.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..config import SWEEPS, Config, ConfigError, check_known_fields, profile_config, run_name


def sweep_configs(base: Config, seeds: tuple[int, ...] = ()) -> list[tuple[str, Config]]:
    """(run folder name, config) of every model of ``base.profile``'s sweep (paper: 2 training sets x 5 content
    sizes), each ``base`` with its set, content size and seed replaced. The first seed's folders are named
    ``<set>_c<content>``, the others ``<set>_c<content>_s<seed>``."""
    sweep = SWEEPS.get(base.profile)
    if sweep is None:
        raise ConfigError(f"config field 'profile' = {base.profile!r} has no sweep; expected one of {sorted(SWEEPS)}")
    seeds = tuple(seeds) or (base.seed,)
    return [(run_name(data, cd, None if seed == seeds[0] else seed), base.replace(data=data, content_dim=cd, seed=seed))
            for seed in seeds for data in sweep["data"] for cd in sweep["content_dim"]]


# --------------------------------------------------------------------------------------------------
# command line: a flag for every Config field
# --------------------------------------------------------------------------------------------------
def build_parser(sweep: bool, description: str = "") -> argparse.ArgumentParser:
    """The parser of ``python -m wae_lib train`` (one run, ``--out``) or ``... train sweep`` (``--models-dir``)."""
    ap = argparse.ArgumentParser(prog="python -m wae_lib train" + (" sweep" if sweep else ""), description=description,
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
    return ap


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
    """The Config of a parsed command line: its profile, then the YAML file's fields, then the flags given."""
    overrides: dict[str, Any] = {}
    if args.config:
        overrides.update(read_yaml_config(args.config))
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = tuple(value) if isinstance(value, list) else value
    profile = overrides.pop("profile", None) or args.profile
    return profile_config(profile, **overrides) if profile != "custom" else Config(**overrides)
