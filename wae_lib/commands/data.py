"""Data: the paper's three training sources prepared as SPEC.md §4 describes, plus an offline sample set.

``python -m wae_lib data``, the data stage (the Makefile's ``make data``)::

    python -m wae_lib data all --data-root ROOT [--data-dir DIR]   every source + the sets (no DIR: the sample set)
    python -m wae_lib data celeba|anime|imagenet|styles SRC OUT   one source into one folder
    python -m wae_lib data download --data-dir DIR                 CelebA and Imagenette through torchvision

Every PrepConfig field is a flag (``--crop-multiple 1.4``). The library behind it: the modules of wae_lib.data,
one per concern (listed in its docstring).
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from ..config import DEFAULT_DATA_ROOT
from ..data.download import DOWNLOAD_CACHE, IMAGENETTE_SIZES
from ..data.layout import SOURCES
from ..data.options import PrepConfig

HELP = "prepare the paper's datasets (or the embedded sample) into a data root (make data)"
DESCRIPTION = __doc__


def _config_from_args(args: argparse.Namespace) -> PrepConfig:
    changes = {f.name: getattr(args, f.name) for f in fields(PrepConfig) if getattr(args, f.name, None) is not None}
    return PrepConfig(**changes)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing parameters (PrepConfig; defaults in wae_lib/data/options.py)")
    for f in fields(PrepConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            g.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction)
        else:
            typ = {"int": int, "float": float, "str": str}[str(f.type)]
            g.add_argument(flag, dest=f.name, type=typ, default=None, metavar=f.name.upper())


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=type(p))
    for source in SOURCES:
        sp = sub.add_parser(source, help=f"one source: the {source} folder SRC prepared into OUT (wae_lib.data.prepare)")
        sp.add_argument("src", help="source folder")
        sp.add_argument("out", help="output folder (images.npy, manifest.csv)")
        if source == "celeba":
            sp.add_argument("--download", action="store_true",
                            help="download CelebA with torchvision into SRC first (needs internet)")
        _add_config_args(sp)
    sp = sub.add_parser("all", help="every source + the sets (sample set without --data-dir)")
    sp.add_argument("--data-dir", default=None, help="folder with faces/ anime/ natural/ styles/ (default: the "
                    "embedded sample set, not the paper's data)")
    sp.add_argument("--data-root", default=DEFAULT_DATA_ROOT,
                    help=f"the prepared data's root (prepared/, sets/); default {DEFAULT_DATA_ROOT}")
    _add_config_args(sp)
    sp = sub.add_parser("download", help="download CelebA and Imagenette with torchvision (md5-checked) into a "
                        "DATA_DIR: faces/, identity.csv, natural/ (needs internet; CelebA needs `pip install gdown`)")
    sp.add_argument("--data-dir", required=True, help="the data folder (DATA_DIR); archives go to DATA_DIR/" +
                    DOWNLOAD_CACHE)
    sp.add_argument("--imagenette-size", choices=IMAGENETTE_SIZES, default=IMAGENETTE_SIZES[0],
                    help="short side of the Imagenette photos (320px: ~330 MB, 160px: ~100 MB)")


def run(args) -> int:
    from ..data.build_sets import prepare_all
    from ..data.download import download_celeba, download_data
    from ..data.packed import format_summary
    from ..data.prepare import PREPARERS

    if args.cmd == "download":
        download_data(args.data_dir, args.imagenette_size)
        return 0
    cfg = _config_from_args(args)
    if args.cmd == "all":
        prepare_all(args.data_dir, Path(args.data_root), cfg)
        return 0
    src = args.src
    if args.cmd == "celeba" and args.download:
        src = download_celeba(src)
    print(format_summary(PREPARERS[args.cmd](src, args.out, cfg)))
    return 0
