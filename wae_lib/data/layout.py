"""The data's names and places: the one home of the folder layout, the source and set names, their files, and
the paper's counts (SPEC.md §4). Nothing here computes; every other data module imports it.

A data root (``Config.data_root``, the notebooks' ``data_root``, the Makefile's ``DATA_ROOT``, the CLIs' ``--data-root``) holds::

    <root>/prepared/<source>/   one folder per source (SOURCES): images.npy, manifest.csv, prep_state.json
                                (written by wae_lib.data.prepare; their files: wae_lib.data.packed)
    <root>/sets/                the packed sets (SET_FILES), content_eval_identity.npy and info.json
                                (written by wae_lib.data.build_sets)

Build these paths with ``prepared_dir``, ``sets_dir`` and ``set_path``, never by hand. A data folder (DATA_DIR) as
the preparation reads it: ``faces/ anime/ natural/ styles/`` (DATA_DIR_LAYOUT lists the accepted names, find_source
picks one) and an ``identity.csv`` beside or inside the faces folder (find_identity_file, read_identities).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DEFAULT_DATA_ROOT
from ..utils import UserError


class DataError(UserError, ValueError, RuntimeError):
    """A data input that cannot be used (a bad parameter, an empty folder, no faces) or prepared files that no longer
    match what was recorded: one line from the command line (wae_lib.command). A ValueError and a RuntimeError too,
    for callers that caught those before it existed."""

OUT_SIZE = 64  # the networks' input size (SPEC.md §3, Table 1): every packed image is uint8 64 x 64 x 3

# ---------------- the layout of a data root ----------------
PREPARED = "prepared"  # <root>/prepared/<source>/
SETS = "sets"  # <root>/sets/
INFO_FILE = "info.json"  # <root>/sets/info.json: what build_sets made, with counts, rules and digests
# Identity of every content_eval image, aligned with the rows of content_eval.npy (int64, -1 = unknown).
EVAL_IDENTITY_FILE = "content_eval_identity.npy"

# ---------------- the sources (one prepared folder each) and the sets ----------------
SOURCES = ("celeba", "anime", "imagenet", "styles")
# Set names used by the rest of the package (wae_lib.config TRAINING_SETS, figures, evaluation).
SET_FILES = {
    "celeba": "celeba_train.npy",
    "mixed": "mixed_train.npy",
    "content_eval": "content_eval.npy",
    "style_eval": "style_eval.npy",
    "natural_eval": "natural_eval.npy",
}
SET_ROLES = {
    "celeba": "training set 1 of the paper: CelebA face crops only (minus content_eval)",
    "mixed": "training set 2 of the paper: CelebA + AnimeFace + ImageNet crops (minus the eval hold-outs)",
    "content_eval": "held-out CelebA face crops, in no training set (content images of Fig. 6-7)",
    "style_eval": "style images at 64x64 (the role of the paper's Fig. 5)",
    "natural_eval": "held-out non-face images, in no training set (for the face-hallucination check, claim C2)",
}

# SPEC.md §4: counts the paper reports after its preprocessing.
PAPER_COUNTS: dict[str, dict[str, int | None]] = {
    "celeba": {"kept": 193_800, "files": 202_599},
    "anime": {"kept": 14_490, "files": None},
    "imagenet": {"kept": 196_371, "files": None},
    "styles": {"kept": 8, "files": None},  # Fig. 5 shows 8 style images
}
# SPEC.md §4: the mixed set is all three sources together, i.e. these shares of 404,661 images.
PAPER_MIXED_SHARES = {s: PAPER_COUNTS[s]["kept"] / sum(PAPER_COUNTS[t]["kept"] for t in ("celeba", "anime", "imagenet"))
                      for s in ("celeba", "anime", "imagenet")}
PAPER_SET_COUNTS = {
    "celeba": 193_800,
    "mixed": 193_800 + 14_490 + 196_371,
    "content_eval": None,  # the paper does not hold out content images
    "style_eval": 8,
    "natural_eval": None,
}


def prepared_dir(root: str | Path, source: str | None = None) -> Path:
    """``<root>/prepared``, or with ``source`` (one of SOURCES) ``<root>/prepared/<source>``."""
    if source is not None and source not in SOURCES:
        raise DataError(f"source {source!r}: expected one of {list(SOURCES)}")
    folder = Path(root) / PREPARED
    return folder if source is None else folder / source


def sets_dir(root: str | Path) -> Path:
    """``<root>/sets``: the packed sets, their identities and info.json."""
    return Path(root) / SETS


def set_path(root: str | Path, name: str) -> Path:
    """Path of a named set (``celeba``, ``mixed``, ``content_eval``, ``style_eval``, ``natural_eval``)."""
    if name not in SET_FILES:
        raise DataError(f"set name {name!r}: expected one of {list(SET_FILES)}")
    return sets_dir(root) / SET_FILES[name]


def resolve_data_root(root: str | Path = "") -> str:
    """A notebook's ``data_root`` parameter, resolved once at its top: empty means the one default,
    wae_lib.config.DEFAULT_DATA_ROOT (what `make data` writes for the embedded sample), so no notebook repeats it
    (issue 36). Refuses, in one line, a root whose sets/info.json was never written, before any work starts."""
    resolved = str(root) or DEFAULT_DATA_ROOT
    _info_path(resolved)
    return resolved


def _info_path(root: str | Path) -> Path:
    path = sets_dir(root) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"data_root = {str(root)!r}: {path} does not exist. Prepare the data first: "
                                f"`python -m wae_lib data all --data-root {root}` (add --data-dir DIR for real data)")
    return path


def load_set_info(root: str | Path) -> dict[str, Any]:
    """``<root>/sets/info.json`` written by build_sets/prepare_all; the error names the folder and how to make it."""
    return json.loads(_info_path(root).read_text())


def load_eval_identities(root: str | Path) -> np.ndarray | None:
    """Identity of each ``content_eval`` image (int64, aligned with the rows of content_eval.npy, -1 = unknown),
    or None when no identity is known (split by file, or sets written before identities were recorded)."""
    path = sets_dir(root) / EVAL_IDENTITY_FILE
    if not path.is_file():
        return None
    ids = np.load(path)
    return ids if (ids >= 0).any() else None


# ---------------- a data folder (DATA_DIR), as the preparation reads it ----------------
# Folder names accepted under data_dir for each source (the first that exists is used).
DATA_DIR_LAYOUT = {
    "celeba": ("faces", "img_align_celeba", "celeba/img_align_celeba", "celeba"),
    "anime": ("anime", "animeface-character-dataset", "animeface"),
    "imagenet": ("natural", "imagenet", "ILSVRC/Data/CLS-LOC/train"),
    "styles": ("styles",),
}
# A CSV with columns file,identity (CelebA's identity_CelebA.txt as CSV), beside faces/ or inside it.
IDENTITY_FILE = "identity.csv"


def find_source(data_dir: Path, source: str) -> Path | None:
    """The folder of ``source`` in a data folder: the first of its DATA_DIR_LAYOUT names that exists, or None."""
    for name in DATA_DIR_LAYOUT[source]:
        if (data_dir / name).is_dir():
            return data_dir / name
    return None


def find_identity_file(faces_dir: str | Path) -> Path | None:
    """``identity.csv`` beside the faces folder (``DATA_DIR/identity.csv``) or inside it; None if neither."""
    faces_dir = Path(faces_dir)
    for path in (faces_dir.parent / IDENTITY_FILE, faces_dir / IDENTITY_FILE):
        if path.is_file():
            return path
    return None


def read_identities(path: str | Path) -> dict[str, int]:
    """``file -> identity`` from a CSV whose header names the columns ``file`` and ``identity`` (an integer >= 0).

    Raises ValueError naming the file (and line) when it is empty, lacks a column, has a non-integer or negative
    identity, or lists one file with two identities."""
    path = Path(path)

    def bad(problem: str) -> ValueError:
        return ValueError(f"identity file {path}: {problem} (expected a CSV with the header 'file,identity' and one "
                          f"row per face photo, identity an integer >= 0)")

    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise bad(f"cannot be read ({type(e).__name__}: {e})") from None
    if not rows:
        raise bad("is empty")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("file", "identity") if c not in header]
    if missing:
        raise bad(f"the header {rows[0]} lacks the column(s) {missing}")
    fi, ii = header.index("file"), header.index("identity")
    table: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(fi, ii):
            raise bad(f"line {line} has {len(row)} field(s): {row}")
        name, ident = row[fi].strip(), row[ii].strip()
        if not name:
            raise bad(f"line {line} has an empty file name")
        if not ident.lstrip("+").isdigit():
            raise bad(f"line {line}: the identity {ident!r} of {name!r} is not an integer >= 0")
        if table.setdefault(name, int(ident)) != int(ident):
            raise bad(f"line {line}: {name!r} is listed with identities {table[name]} and {int(ident)}")
    if not table:
        raise bad("has a header but no rows")
    return table


def label_identities(labels: Iterable[str], table: dict[str, int]) -> dict[str, int]:
    """Manifest label -> identity, matching the file column by relative path or by base name; unlisted labels
    are left out."""
    out = {}
    for label in labels:
        ident = table.get(label, table.get(Path(label).name))
        if ident is not None:
            out[label] = ident
    return out
