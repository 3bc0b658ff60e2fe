"""A prepared source folder (``<root>/prepared/<source>``, see wae_lib.data.layout) and the packed-image files.

Every ``prepare_<source>`` (wae_lib.data.prepare) and the sample set (wae_lib.data.sample) write, under their folder:

* ``images.npy``  uint8 ``N x 64 x 64 x 3`` (``np.load(..., mmap_mode="r")`` works),
* ``manifest.csv`` one row per input file (columns ``MANIFEST_COLUMNS``): its path relative to the source
  folder, ``kept``/``rejected``, a reason from ``REASONS``, the detected face box where there is one, and for kept
  rows the ``index`` of its first image in ``images.npy`` (``n_images`` images from there on) and the file's
  fingerprints for the duplicate check (wae_lib.data.duplicates),
* ``prep_state.json`` the fingerprint that makes a re-run a no-op and the digests of the two files above; it is
  written last and removed first (``write_prepared``), so it only ever describes finished outputs
  (``up_to_date_state``, ``outputs_intact``).

The packed ``.npy`` format is the sets' too: ``write_npy_atomic`` streams one, ``npy_shape`` checks one from its
header, ``check_packed`` checks an array. Imported by the preparation workers: no torch here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import atomic_open, atomic_write_text, file_sha256, remove_durably
from .layout import OUT_SIZE, PAPER_COUNTS, DataError

IMAGES_FILE = "images.npy"
MANIFEST_FILE = "manifest.csv"
STATE_FILE = "prep_state.json"
STATE_FORMAT = 2  # 2: the state records the digests of images.npy and manifest.csv


# Manifest reasons. "ok" is the reason of every kept row.
OK = "ok"
REASONS = {
    OK: "kept",
    "unreadable": "the path could not be stat'ed or opened (dangling link, permission, I/O error)",
    "not_a_file": "not a regular file (FIFO, socket, device)",
    "empty_file": "zero bytes",
    "not_an_image": "no image decoder recognises the bytes (text, archive, ...)",
    "corrupt": "recognised as an image but decoding failed (truncated, broken stream)",
    "too_large": "over PIL's decompression-bomb limit",
    "too_small": "below the minimum size for this source",
    "not_3_channel": "ImageNet rule: the decoded image does not have exactly 3 channels",
    "no_face": "the face detector found no face",
    "face_too_small": "the largest detected face box is under min_face",
    "crop_outside_image": "the face crop leaves the image by more than max_pad_fraction",
    "error": "an unexpected error (detail column says which); reported, never raised",
}

MANIFEST_COLUMNS = (
    "path", "status", "reason", "detail", "mode", "width", "height",
    "face_x", "face_y", "face_w", "face_h", "n_faces",
    "crop_x", "crop_y", "crop_side", "index", "n_images",
    "pixel_digest", "perceptual_hash",  # kept rows: the duplicate check's fingerprints (wae_lib.data.duplicates)
)


def manifest_row(path: str, **kw: Any) -> dict[str, Any]:
    """A kept row for ``path`` (its manifest label), every other column empty unless given."""
    row = dict.fromkeys(MANIFEST_COLUMNS, "")
    row.update(path=path, status="kept", reason=OK)
    row.update(kw)
    return row


def safe_label(label: str) -> str:
    """A file name as text that any UTF-8 file (manifest.csv, info.json) can hold. Names that are not valid
    UTF-8 reach Python as lone surrogates (os.walk's surrogateescape); writing those raised UnicodeEncodeError.
    They become ``\\xff``-style escapes of the original bytes, e.g. ``caf\\xe9.jpg`` for Latin-1 ``café.jpg``."""
    try:
        label.encode("utf-8")
        return label
    except UnicodeEncodeError:
        try:
            return os.fsencode(label).decode("utf-8", "backslashreplace")
        except UnicodeError:  # surrogates outside surrogateescape's range
            return label.encode("utf-8", "backslashreplace").decode("utf-8")


# ---------------- the packed images (.npy) ----------------
def _npy_header(n: int) -> bytes:
    """The .npy header of a uint8 ``n x 64 x 64 x 3`` array, byte for byte what np.save writes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                               "fortran_order": False, "shape": (n, OUT_SIZE, OUT_SIZE, 3)})
    return buf.getvalue()


def write_npy_atomic(path: Path, parts: Iterable[np.ndarray], n: int) -> str:
    """Stream ``parts`` (total ``n`` images) into ``path`` atomically, without holding them all in memory;
    returns the file's sha256 (computed on the way, so verifying it later costs no extra pass here)."""
    digest = hashlib.sha256()
    with atomic_open(path, "wb", keep_identical=True) as f:
        for block in (_npy_header(n), *(np.ascontiguousarray(p, dtype=np.uint8) for p in parts)):
            if isinstance(block, np.ndarray):
                if block.shape[1:] != (OUT_SIZE, OUT_SIZE, 3):
                    raise DataError(f"{path}: a block of shape {block.shape} is not N x {OUT_SIZE} x {OUT_SIZE} x 3")
                n -= len(block)
                block = block.data
            digest.update(block)
            f.write(block)
        if n != 0:
            raise DataError(f"{path}: the parts hold {abs(n)} images {'fewer' if n > 0 else 'more'} than expected")
    return digest.hexdigest()


def npy_shape(path: Path) -> tuple[int, ...] | None:
    """The shape of a uint8 .npy file from its header, if the file is complete (its size matches the header);
    None for anything else (truncated, another dtype, not an .npy). Reads the header only."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran, dtype = read_header(f)
            data_start = f.tell()
        size = os.stat(path).st_size
    except (OSError, ValueError, KeyError):
        return None
    ok = dtype == np.uint8 and not fortran and size == data_start + int(np.prod(shape, dtype=np.int64))
    return tuple(shape) if ok else None


def check_packed(arr: np.ndarray, name: str) -> None:
    """Raise ValueError unless ``arr`` is a packed set: uint8 ``N x 64 x 64 x 3``."""
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (OUT_SIZE, OUT_SIZE, 3):
        raise DataError(f"{name}: expected a uint8 array N x {OUT_SIZE} x {OUT_SIZE} x 3 (wae_lib.data output), "
                         f"got {arr.dtype} {arr.shape}")


def read_images(folder: str | Path) -> np.ndarray:
    """``images.npy`` of a prepared folder, memory-mapped (read-only)."""
    return np.load(Path(folder) / IMAGES_FILE, mmap_mode="r")


# ---------------- the manifest ----------------
def _printable(value: Any) -> Any:
    """Text that UTF-8 can hold: an error detail may quote a file name that is not valid UTF-8 (see safe_label)."""
    return safe_label(value) if isinstance(value, str) else value


def write_manifest(path: Path, rows: Sequence[dict]) -> str:
    """Write manifest.csv atomically; returns its sha256."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows({k: _printable(v) for k, v in r.items()} for r in rows)
    data = buf.getvalue().encode("utf-8")
    with atomic_open(path, "wb", keep_identical=True) as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def read_manifest(out_dir: str | Path):
    """The manifest of a prepared folder as a pandas DataFrame."""
    import pandas as pd

    path = Path(out_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run a prepare_* function (or `python -m wae_lib data`) first")
    text = ("path", "status", "reason", "detail", "mode", "pixel_digest", "perceptual_hash")
    m = pd.read_csv(path, keep_default_na=False, dtype=dict.fromkeys(text, str))
    for col in text:  # a manifest written before a column existed
        if col not in m:
            m[col] = ""
    for col in MANIFEST_COLUMNS:
        if col not in text:  # empty cells (no face, rejected) become <NA>
            m[col] = pd.to_numeric(m[col], errors="coerce")
    for col in ("width", "height", "face_x", "face_y", "face_w", "face_h", "n_faces", "index", "n_images"):
        m[col] = m[col].astype("Int64")
    return m


def _summary(source: str, rows: Sequence[dict], n_images: int, out_dir: Path, src: str,
             skipped: bool) -> dict[str, Any]:
    by_reason = Counter(r["reason"] for r in rows)
    kept = by_reason.get(OK, 0)
    paper = PAPER_COUNTS.get(source, {})
    return {"source": source, "src": src, "out_dir": str(out_dir), "files": len(rows), "kept": kept,
            "rejected": len(rows) - kept, "images": n_images,
            "by_reason": dict(sorted(by_reason.items(), key=lambda kv: (kv[0] != OK, -kv[1], kv[0]))),
            "paper_kept": paper.get("kept"), "paper_files": paper.get("files"), "up_to_date": skipped}


def format_summary(summary: dict[str, Any]) -> str:
    """Kept / rejected counts by reason, next to the paper's count."""
    s = summary
    paper = ""
    if s.get("paper_kept"):
        of = f" of {s['paper_files']:,}" if s.get("paper_files") else ""
        paper = f"   (paper: {s['paper_kept']:,} kept{of})"
    extra = f", {s['images']} images" if s["images"] != s["kept"] else ""
    lines = [f"{s['source']}: {s['files']} files -> {s['kept']} kept{extra}, {s['rejected']} rejected{paper}"]
    for reason, n in s["by_reason"].items():
        if reason != OK:
            lines.append(f"    {reason:<20} {n:>8}")
    if s.get("up_to_date"):
        lines.append(f"    (up to date: {s['out_dir']} was not rewritten)")
    return "\n".join(lines)


# ---------------- the state record: what makes a re-run a no-op ----------------
def load_state(out_dir: Path) -> dict | None:
    """The state record of a prepared folder, or None (missing, unreadable, an older format)."""
    try:
        state = json.loads((out_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None


def outputs_intact(out_dir: Path, state: dict) -> bool:
    """Whether images.npy and manifest.csv are the files ``state`` recorded: the manifest's digest, then the
    array's count and shape (from its header; a truncated file fails here) and its digest. A crash between
    writes, a truncated copy or a hand-edited file is caught here, not trusted as up to date."""
    rec = state.get("outputs") or {}
    images, manifest = rec.get(IMAGES_FILE) or {}, rec.get(MANIFEST_FILE) or {}
    try:
        if file_sha256(out_dir / MANIFEST_FILE) != manifest.get("sha256"):
            return False
        shape = npy_shape(out_dir / IMAGES_FILE)
        if shape is None or list(shape) != images.get("shape") or shape[0] != state["summary"]["images"]:
            return False
        return file_sha256(out_dir / IMAGES_FILE) == images.get("sha256")
    except (OSError, KeyError, TypeError):
        return False


def up_to_date_state(out_dir: Path, fingerprint: str) -> dict | None:
    """The state record when it has this ``fingerprint`` and the outputs are intact (nothing to redo), else None."""
    state = load_state(out_dir)
    if state and state.get("fingerprint") == fingerprint and outputs_intact(out_dir, state):
        return state
    return None


def write_prepared(out_dir: Path, source: str, src: str, fingerprint: str, rows: list[dict], image_parts: Iterable,
                   n_images: int) -> dict:
    """Assign indices, then write in an order that no crash can turn into a false "up to date": the old state
    record is removed first, images.npy and manifest.csv are replaced (each atomically), the new state record,
    holding both files' digests, is written last."""
    i = 0
    for r in rows:
        if r["status"] == "kept":
            r["index"] = i
            i += int(r["n_images"])
    if i != n_images:
        raise DataError(f"{out_dir}: manifest counts {i} images, parts hold {n_images}")
    remove_durably(out_dir / STATE_FILE)
    images_sha = write_npy_atomic(out_dir / IMAGES_FILE, image_parts, n_images)
    manifest_sha = write_manifest(out_dir / MANIFEST_FILE, rows)
    summary = _summary(source, rows, n_images, out_dir, src, skipped=False)
    state = {"format": STATE_FORMAT, "fingerprint": fingerprint, "source": source, "src": _printable(src),
             "summary": summary,
             "outputs": {IMAGES_FILE: {"sha256": images_sha, "shape": [n_images, OUT_SIZE, OUT_SIZE, 3]},
                         MANIFEST_FILE: {"sha256": manifest_sha, "rows": len(rows)}}}
    atomic_write_text(out_dir / STATE_FILE, json.dumps(state, indent=2, default=str))
    return summary
