"""Data: the paper's three training sources prepared as SPEC.md §4 describes, plus an offline sample set.

Every ``prepare_<source>(src, out_dir, cfg)`` walks a folder, turns each file into zero or more 64x64 RGB
crops and writes, under ``out_dir``:

* ``images.npy``  uint8 ``N x 64 x 64 x 3`` (``np.load(..., mmap_mode="r")`` works),
* ``manifest.csv`` one row per input file (columns ``MANIFEST_COLUMNS``): its path relative to ``src``,
  ``kept``/``rejected``, a reason from ``REASONS``, the detected face box where there is one, and for kept
  rows the ``index`` of its first image in ``images.npy`` (``n_images`` images from there on),
* ``prep_state.json`` the fingerprint that makes a re-run a no-op (see "resuming" below) and the digests of
  the two files above; it is written last and removed first, so it only ever describes finished outputs.

Sources (SPEC.md §4):

* CelebA (``prepare_celeba``): an OpenCV Haar cascade finds the face; the crop is a square of
  ``crop_multiple`` x the face box, centred on the box (plus ``crop_offset_y``), resized to 64x64, so faces
  come out about the same size. No face -> ``no_face``; a face box under ``min_face`` px -> ``face_too_small``.
* AnimeFace (``prepare_anime``) and style artworks (``prepare_styles``): square centre crop of the short side,
  resized to 64x64.
* ImageNet (``prepare_imagenet``): keep images with width and height >= 64 and cut the central 64x64 region
  (literal reading, SPEC.md §6); ``imagenet_resize_first`` resizes the short side to 64 first. Greyscale (and
  CMYK, ...) files are converted to RGB; ``imagenet_require_rgb=True`` drops them as the paper does.

Robustness: any file (truncated JPEG, zero bytes, text, dangling link, FIFO, 16-bit PNG, CMYK, ...) ends as a
manifest row with a reason; nothing raises. A file name that is not valid UTF-8 is kept under an escaped name
(``\\xff``, ``safe_label``), with a note in the detail column. Speed: files are processed in chunks by a process
pool (one process per core, started once), JPEGs are decoded at reduced size where the geometry allows (PIL draft).
Resuming: each finished chunk is saved under ``out_dir/.parts`` (``.npz``, read with ``allow_pickle=False``: a
planted file cannot run as code; one that does not read back is recomputed); an interrupted run continues from
there, and a run whose inputs and parameters are unchanged, and whose outputs still match their recorded digests,
does nothing. Output is a pure function of the sorted file list and the parameters, so a re-run is
byte-identical. Every output is written atomically (wae_lib.utils.atomic_open), the state record last.

``prepare_all`` runs the four sources and ``build_sets`` cuts the paper's two training sets plus held-out
evaluation sets: held-out faces are whole identities when the data folder has an ``identity.csv``
(``load_eval_identities`` gives each one's identity), and the mixed set follows the paper's proportions
(``mixed_anime_ratio``, ``mixed_imagenet_ratio``). With ``data_dir=None`` it builds a small *sample set* from
images shipped inside scikit-image and matplotlib (not the paper's data; it lets everything run offline).
``PackedImages`` serves a packed set to the training loop from (GPU) memory. ``download_data`` (``python -m
wae_lib.data download --out DIR``) fills such a data folder with CelebA and Imagenette through torchvision.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import stat
import struct
import sys
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .params import Invalid, coerce
from .utils import (
    atomic_open,
    atomic_write_text,
    file_sha256,
    remove_durably,
    remove_stale_temporaries,
    stage_done,
)
from .utils import progress as progress_bar  # here `progress` is the preparers' on/off flag

OUT_SIZE = 64  # the networks' input size (SPEC.md §3, Table 1)
STATE = "prep_state.json"
STATE_FORMAT = 2  # 2: the state records the digests of images.npy and manifest.csv

SOURCES = ("celeba", "anime", "imagenet", "styles")

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
SAMPLE_SOURCE_LABEL = "embedded sample set (not the paper's data)"

# Identity of every content_eval image, aligned with the rows of content_eval.npy (int64, -1 = unknown).
EVAL_IDENTITY_FILE = "content_eval_identity.npy"
# A CSV with columns file,identity (CelebA's identity_CelebA.txt as CSV), beside faces/ or inside it.
IDENTITY_FILE = "identity.csv"

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
)


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepConfig:
    """Every preprocessing parameter, with the reading of SPEC.md §4/§6 as defaults."""

    # ---------------- CelebA face detection and crop (SPEC.md §4: "OpenCV finds the face centre") -------
    cascade: str = "haarcascade_frontalface_alt2.xml"  # file in cv2.data.haarcascades, or a path. alt2 gave
    #   tighter face centres on aligned CelebA than _default (std 1.5 vs 2.9 px) at the same detection rate
    scale_factor: float = 1.1  # detectMultiScale scaleFactor (OpenCV's default)
    min_neighbors: int = 3  # detectMultiScale minNeighbors (OpenCV's default)
    detect_scale: float = 0.5  # the detector runs on the greyscale image resized by this factor: CelebA faces
    #   (~100 px) stay far above the 24 px Haar window, detection is ~4.5x faster, and the detection rate
    #   and centring on the 597 test faces were as good as at full size (1.0 = full resolution)
    detect_min_size: int = 24  # smallest box the detector searches, in detector pixels (the Haar window)
    min_face: int = 64  # SPEC.md §6 "face is small": reject when the face box side (source px) is below this
    crop_multiple: float = 1.35  # crop side = this x face box side, so faces come out the same size; on aligned
    #   CelebA (alt2 box ~105 px) the crop is ~142 px, close to the WAE paper's 140x140 CelebA crop
    crop_offset_y: float = 0.0  # crop centre = face box centre + this x box side (positive moves the crop down)
    max_pad_fraction: float = 0.1  # a crop may leave the image by this share of its side (filled by reflection)

    # ---------------- ImageNet (SPEC.md §4, §6) ----------------
    imagenet_min_side: int = 64  # keep images whose width and height are both >= this
    imagenet_require_rgb: bool = False  # DEPARTURE: the paper keeps only 3-channel images (True); by default
    #   greyscale/CMYK/RGBA/palette files are converted to RGB instead of dropped (data-large: 20 of 1,000 photos)
    imagenet_resize_first: bool = False  # False: literal central 64x64 crop; True: short side -> 64 first
    imagenet_extra_crops: int = 0  # DEPARTURE from the paper when > 0: this many extra random 64x64 crops per
    #   image (same scale as the central crop), for small folders; 0 in the paper profile. build_sets uses
    #   them only as far as mixed_imagenet_ratio asks (data-large: 7, so 1,000 photos give up to 8,000 crops)

    # ---------------- AnimeFace and style images ----------------
    min_side: int = 64  # reject images whose short side is under this (they would have to be upscaled)

    # ---------------- speed ----------------
    use_draft: bool = True  # decode JPEGs at 1/2..1/8 size when the output still has >= 64 px (anime, styles,
    #   ImageNet with resize-first); never where it would change the geometry (faces, literal ImageNet crop)
    workers: int = 0  # processes; 0 = all available cores
    chunk_size: int = 64  # files per task: large enough to amortise IPC, small enough to resume finely

    # ---------------- splits (build_sets) ----------------
    seed: int = 0  # held-out choice and extra-crop positions
    eval_fraction: float = 0.05  # share of kept CelebA files held out as content_eval ...
    eval_max: int = 500  # ... but at most this many (the paper trains on all 193,800); 0 = hold out none
    eval_min: int = 150  # identity split only: hold out whole identities until at least this many faces (or
    #   eval_fraction of them if more), as far as the data allows: at most half of the identities are held out
    natural_eval_count: int = 16  # ImageNet files held out as natural_eval (all their crops)

    # ---------------- mixed set proportions (build_sets; SPEC.md §4: 193,800 + 14,490 + 196,371) --------
    mixed_anime_ratio: float = 14_490 / 193_800  # keep at most round(n_celeba_train x this) AnimeFace images
    #   (seeded-hash choice), the paper's anime:CelebA ratio; 0 = keep every anime image
    mixed_imagenet_ratio: float = 196_371 / 193_800  # use at most round(n_celeba_train x this) ImageNet crops
    #   (central crops first, then extra crops; seeded-hash choice); 0 = every crop. On the paper's full data
    #   both rules keep every image, i.e. they reproduce the paper's mixed set

    def replace(self, **changes: Any) -> PrepConfig:
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        for f in fields(self):  # types first (flags, notebooks and Python arrive here alike), then ranges
            kind = {"int": int, "float": float, "str": str, "bool": bool}[str(f.type)]
            try:
                object.__setattr__(self, f.name, coerce(getattr(self, f.name), kind))
            except Invalid as exc:
                raise ValueError(f"PrepConfig.{f.name} = {getattr(self, f.name)!r} is invalid: expected "
                                 f"{exc.expected}") from None
        checks = [
            ("scale_factor", self.scale_factor > 1.0, "a number > 1"),
            ("min_neighbors", self.min_neighbors >= 0, "an integer >= 0"),
            ("detect_scale", 0.0 < self.detect_scale <= 1.0, "a number in (0, 1]"),
            ("detect_min_size", self.detect_min_size >= 1, "an integer >= 1"),
            ("min_face", self.min_face >= 0, "an integer >= 0"),
            ("crop_multiple", self.crop_multiple > 0, "a number > 0"),
            ("max_pad_fraction", 0.0 <= self.max_pad_fraction < 0.5, "a number in [0, 0.5)"),
            ("imagenet_min_side", self.imagenet_min_side >= OUT_SIZE, f"an integer >= {OUT_SIZE}"),
            ("imagenet_extra_crops", self.imagenet_extra_crops >= 0, "an integer >= 0"),
            ("min_side", self.min_side >= 1, "an integer >= 1"),
            ("workers", self.workers >= 0, "an integer >= 0 (0 = all cores)"),
            ("chunk_size", self.chunk_size >= 1, "an integer >= 1"),
            ("eval_fraction", 0.0 <= self.eval_fraction < 1.0, "a number in [0, 1)"),
            ("eval_max", self.eval_max >= 0, "an integer >= 0"),
            ("eval_min", self.eval_min >= 0, "an integer >= 0"),
            ("mixed_anime_ratio", self.mixed_anime_ratio >= 0, "a number >= 0 (0 = keep every anime image)"),
            ("mixed_imagenet_ratio", self.mixed_imagenet_ratio >= 0, "a number >= 0 (0 = every ImageNet crop)"),
            ("natural_eval_count", self.natural_eval_count >= 0, "an integer >= 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"PrepConfig.{name} = {getattr(self, name)!r} is invalid: expected {expected}")


# Fields that change what a source's prepare_* writes (workers/chunk size/splits do not).
_OUTPUT_FIELDS = {
    "celeba": ("cascade", "scale_factor", "min_neighbors", "detect_scale", "detect_min_size", "min_face",
               "crop_multiple", "crop_offset_y", "max_pad_fraction"),
    "anime": ("min_side", "use_draft"),
    "styles": ("min_side", "use_draft"),
    "imagenet": ("imagenet_min_side", "imagenet_require_rgb", "imagenet_resize_first", "imagenet_extra_crops",
                 "use_draft", "seed"),
}
_SPLIT_FIELDS = ("seed", "eval_fraction", "eval_max", "eval_min", "natural_eval_count", "mixed_anime_ratio",
                 "mixed_imagenet_ratio")


def n_workers(cfg: PrepConfig) -> int:
    if cfg.workers:
        return cfg.workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------------------------------
# decoding: any file -> RGB uint8 array, or a reason
# --------------------------------------------------------------------------------------------------
class Rejected(Exception):
    """A file that yields no image; ``reason`` is a key of REASONS."""

    def __init__(self, reason: str, detail: str = "", info: dict[str, Any] | None = None, **more: Any):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.info = reason, detail, {**(info or {}), **more}


@dataclass
class Decoded:
    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied
    mode: str  # PIL mode of the file as stored (before conversion)
    width: int  # full-resolution size, EXIF orientation applied
    height: int
    scale: float  # decoded size / full size (< 1 when JPEG draft mode was used)


def open_image(path: Path) -> Image.Image:
    """``Image.open`` with every failure mapped to a Rejected reason."""
    try:
        st = os.stat(path)  # follows links: a dangling link fails here
    except OSError as e:
        raise Rejected("unreadable", f"{type(e).__name__}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):  # opening a FIFO would block forever
        raise Rejected("not_a_file", "not a regular file")
    if st.st_size == 0:
        raise Rejected("empty_file", "0 bytes")
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise Rejected("not_an_image", "no decoder recognises it") from None
    except Image.DecompressionBombError as e:
        raise Rejected("too_large", str(e)[:120]) from None
    except OSError as e:  # PIL raises OSError without errno for malformed headers; errno means real I/O
        reason = "unreadable" if e.errno is not None else "corrupt"
        raise Rejected(reason, f"{type(e).__name__}: {e.strerror or e}"[:120]) from None
    except (SyntaxError, ValueError, EOFError, struct.error) as e:  # how some plugins report bad headers
        raise Rejected("corrupt", f"{type(e).__name__}: {e}"[:120]) from None


def _exif_orientation(im: Image.Image) -> int:
    """EXIF orientation tag (1 = as stored; 5-8 swap width and height)."""
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block only loses the orientation
        return 1


def _draft(im: Image.Image, min_side: int) -> None:
    """Ask the JPEG decoder for a 1/2, 1/4 or 1/8 scale that keeps the short side >= ``min_side``."""
    if im.format != "JPEG":
        return
    w, h = im.size
    s = min(w, h) / min_side
    if s >= 2:
        im.draft(None, (int(np.ceil(w / s)), int(np.ceil(h / s))))


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Any PIL mode -> H x W x 3 uint8. Alpha is composited on white; 16-bit greyscale keeps its top 8 bits."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im, dtype=np.int64)
        # 16-bit PNG greyscale opens as I;16 or I with values 0..65535: scale, do not clip (clipping whitens it)
        a = a // 257 if a.max(initial=0) > 255 else a
        grey = np.clip(a, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        a = a * 255 if a.max(initial=0) <= 1.0 else a
        grey = np.clip(a + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def decode_image(path: Path, *, draft_min_side: int | None = None, require_rgb: bool = False,
                 min_side: int = 1) -> Decoded:
    """Decode ``path`` to RGB (EXIF orientation applied) or raise Rejected.

    ``draft_min_side``: allow JPEG draft decoding as long as the short side stays >= this.
    ``require_rgb``: reject files whose stored image does not have exactly 3 channels (SPEC.md §4, ImageNet).
    ``min_side``: reject when width or height (full resolution) is below this, before decoding.
    """
    im = open_image(path)
    with im, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's palette-transparency and EXIF warnings: handled below
        mode = im.mode
        orientation = _exif_orientation(im)
        width, height = im.size[::-1] if orientation in (5, 6, 7, 8) else im.size
        info = {"mode": mode, "width": width, "height": height}
        if require_rgb and mode != "RGB":
            raise Rejected("not_3_channel", f"mode {mode}", **info)
        if min(width, height) < min_side:
            raise Rejected("too_small", f"{width}x{height} < {min_side}", **info)
        if draft_min_side:
            _draft(im, draft_min_side)
        try:
            im.load()
            if orientation != 1:
                with contextlib.suppress(Exception):  # a broken EXIF block only loses the orientation
                    im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(im)
        except Image.DecompressionBombError as e:
            raise Rejected("too_large", str(e)[:120], **info) from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
            reason = "unreadable" if getattr(e, "errno", None) is not None else "corrupt"
            raise Rejected(reason, f"{type(e).__name__}: {e}"[:120], **info) from None
    scale = rgb.shape[1] / width if width else 1.0
    return Decoded(np.ascontiguousarray(rgb), mode, width, height, scale)


# --------------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------------
_DETECTORS: dict[str, cv2.CascadeClassifier] = {}


def cascade_path(name: str) -> Path:
    """A cascade file name in ``cv2.data.haarcascades``, or a path to one."""
    candidates = [Path(name), Path(cv2.data.haarcascades) / name]
    for p in candidates:
        if p.is_file():
            return p
    raise FileNotFoundError(f"PrepConfig.cascade = {name!r}: no such file (looked in {cv2.data.haarcascades}); "
                            f"expected a Haar cascade XML such as 'haarcascade_frontalface_alt2.xml' or a path")


def face_detector(name: str) -> cv2.CascadeClassifier:
    """One CascadeClassifier per process (loading the XML costs ~50 ms)."""
    if name not in _DETECTORS:
        det = cv2.CascadeClassifier(str(cascade_path(name)))
        if det.empty():
            raise ValueError(f"PrepConfig.cascade = {name!r}: OpenCV could not load it as a cascade classifier")
        _DETECTORS[name] = det
    return _DETECTORS[name]


def detect_faces(rgb: np.ndarray, cfg: PrepConfig) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in ``rgb`` pixels, largest first (ties broken by position: deterministic)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    s = cfg.detect_scale
    if s != 1.0:
        grey = cv2.resize(grey, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    m = cfg.detect_min_size
    if min(grey.shape) < m:
        return []
    boxes = face_detector(cfg.cascade).detectMultiScale(grey, scaleFactor=cfg.scale_factor,
                                                        minNeighbors=cfg.min_neighbors, minSize=(m, m))
    out = [tuple(int(round(v / s)) for v in b) for b in np.asarray(boxes).reshape(-1, 4)]
    return sorted(out, key=lambda b: (-b[2] * b[3], b[1], b[0]))


def face_crop_box(face: Sequence[float], cfg: PrepConfig) -> tuple[float, float, float]:
    """(left, top, side) of the square crop around a face box: ``crop_multiple`` x the box, centred on it."""
    x, y, w, h = face
    side = cfg.crop_multiple * max(w, h)
    cx, cy = x + w / 2, y + h / 2 + cfg.crop_offset_y * h
    return cx - side / 2, cy - side / 2, side


def crop_resize(rgb: np.ndarray, left: float, top: float, side: float, *, max_pad_fraction: float = 0.0,
                out: int = OUT_SIZE) -> np.ndarray | None:
    """The square (left, top, side) of ``rgb`` resized to ``out`` x ``out``; None if it leaves the image by
    more than ``max_pad_fraction`` of its side (smaller overhangs are filled by reflection)."""
    s = max(1, int(round(side)))
    x0, y0 = int(round(left)), int(round(top))
    h, w = rgb.shape[:2]
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + s - w), max(0, y0 + s - h)
    if max(pad_l, pad_t, pad_r, pad_b) > max_pad_fraction * s:
        return None
    if pad_l or pad_t or pad_r or pad_b:
        rgb = cv2.copyMakeBorder(rgb, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REFLECT_101)
        x0, y0 = x0 + pad_l, y0 + pad_t
    patch = rgb[y0:y0 + s, x0:x0 + s]
    interp = cv2.INTER_AREA if s >= out else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(patch, (out, out), interpolation=interp))


def centre_square(rgb: np.ndarray) -> tuple[int, int, int]:
    """(left, top, side) of the centred square of the short side."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    return (w - side) // 2, (h - side) // 2, side


def _file_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the seed and the file's path: crops do not depend on file order."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


# --------------------------------------------------------------------------------------------------
# per-source processing of one file -> (manifest row, images)
# --------------------------------------------------------------------------------------------------
def _row(path: str, **kw: Any) -> dict[str, Any]:
    row = dict.fromkeys(MANIFEST_COLUMNS, "")
    row.update(path=path, status="kept", reason=OK)
    row.update(kw)
    return row


def _process_celeba(path: Path, label: str, cfg: PrepConfig) -> tuple[dict, list[np.ndarray]]:
    """SPEC.md §4: OpenCV finds the face; crop = crop_multiple x face box centred on it; drop small faces."""
    d = decode_image(path, min_side=cfg.min_face)
    row = _row(label, mode=d.mode, width=d.width, height=d.height)
    faces = detect_faces(d.rgb, cfg)
    if not faces:
        raise Rejected("no_face", "", row)
    x, y, w, h = faces[0]
    row.update(face_x=x, face_y=y, face_w=w, face_h=h, n_faces=len(faces))
    if max(w, h) < cfg.min_face:
        raise Rejected("face_too_small", f"{max(w, h)} < {cfg.min_face}", row)
    left, top, side = face_crop_box(faces[0], cfg)
    row.update(crop_x=round(left, 1), crop_y=round(top, 1), crop_side=round(side, 1))
    img = crop_resize(d.rgb, left, top, side, max_pad_fraction=cfg.max_pad_fraction)
    if img is None:
        raise Rejected("crop_outside_image", f"overhang > {cfg.max_pad_fraction:.0%} of the crop", row)
    return row, [img]


def _process_square(path: Path, label: str, cfg: PrepConfig) -> tuple[dict, list[np.ndarray]]:
    """SPEC.md §4 (AnimeFace; also the style images): square of the short side, resized to 64x64."""
    d = decode_image(path, draft_min_side=OUT_SIZE if cfg.use_draft else None, min_side=cfg.min_side)
    left, top, side = centre_square(d.rgb)
    row = _row(label, mode=d.mode, width=d.width, height=d.height,
               crop_x=round(left / d.scale, 1), crop_y=round(top / d.scale, 1), crop_side=round(side / d.scale, 1))
    return row, [crop_resize(d.rgb, left, top, side)]


def _process_imagenet(path: Path, label: str, cfg: PrepConfig) -> tuple[dict, list[np.ndarray]]:
    """SPEC.md §4/§6: 3-channel images with both sides >= 64; the central 64x64 region (literal reading), or
    with ``imagenet_resize_first`` the short side resized to 64 first. Extra random crops are a departure."""
    resize_first = cfg.imagenet_resize_first
    d = decode_image(path, draft_min_side=OUT_SIZE if (resize_first and cfg.use_draft) else None,
                     require_rgb=cfg.imagenet_require_rgb, min_side=cfg.imagenet_min_side)
    rgb = d.rgb
    if resize_first:
        h, w = rgb.shape[:2]
        f = OUT_SIZE / min(h, w)
        size = (max(OUT_SIZE, int(round(w * f))), max(OUT_SIZE, int(round(h * f))))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    x0, y0 = (w - OUT_SIZE) // 2, (h - OUT_SIZE) // 2
    images = [np.ascontiguousarray(rgb[y0:y0 + OUT_SIZE, x0:x0 + OUT_SIZE])]
    rng = _file_rng(cfg.seed, label)
    for _ in range(cfg.imagenet_extra_crops):
        x, y = int(rng.integers(0, w - OUT_SIZE + 1)), int(rng.integers(0, h - OUT_SIZE + 1))
        images.append(np.ascontiguousarray(rgb[y:y + OUT_SIZE, x:x + OUT_SIZE]))
    unit = 1.0 if resize_first else d.scale  # crop box in full-resolution pixels of the file
    row = _row(label, mode=d.mode, width=d.width, height=d.height, crop_x=round(x0 / unit, 1),
               crop_y=round(y0 / unit, 1), crop_side=round(OUT_SIZE / unit, 1))
    return row, images


_PROCESSORS = {"celeba": _process_celeba, "anime": _process_square, "styles": _process_square,
               "imagenet": _process_imagenet}


def process_file(source: str, path: Path, label: str, cfg: PrepConfig) -> tuple[dict, list[np.ndarray]]:
    """One file -> (manifest row, 64x64 crops). Never raises for a bad file: the row says why."""
    try:
        row, images = _PROCESSORS[source](path, label, cfg)
        row["n_images"] = len(images)
        return row, images
    except Rejected as r:
        row = _row(label)
        row.update(r.info)
        row.update(path=label, status="rejected", reason=r.reason, detail=r.detail, n_images=0)
        return row, []
    except Exception as e:  # an unforeseen failure of one file must not end a 200k-file run
        row = _row(label, status="rejected", reason="error", detail=f"{type(e).__name__}: {e}"[:200], n_images=0)
        return row, []


# --------------------------------------------------------------------------------------------------
# chunked, parallel, resumable runner
# --------------------------------------------------------------------------------------------------
NON_UTF8_NOTE = "file name is not valid UTF-8: the path column shows its bytes as \\x escapes"


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


def list_files(src: Path, exclude: Path | None = None) -> list[tuple[str, Path]]:
    """Every entry under ``src`` that is not a directory (files, links, FIFOs...), sorted by relative path.

    Non-image files are listed on purpose: each gets a manifest row with its reason. ``exclude`` (the output
    folder, when it lies inside ``src``) is skipped so that our own outputs never become inputs. Labels are
    ``safe_label``s: a name that is not valid UTF-8 is listed under an escaped name, never dropped."""
    out = []
    skip = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).resolve() != skip]
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath) / name
            out.append((safe_label(p.relative_to(src).as_posix()), p))
        # os.walk reports links to directories as dirnames; they are not followed (no cycles), so list them
        for name in dirnames:
            p = Path(dirpath) / name
            if p.is_symlink():
                out.append((safe_label(p.relative_to(src).as_posix()), p))
    out.sort(key=lambda t: t[0])
    return out


def _stat_key(path: Path) -> tuple[int, int]:
    """Inputs are listed by size and modification time, not content: hashing every source image on each run
    would mean reading all of ImageNet. A touched input only makes its chunk recompute; the output is then
    byte-identical, and what depends on it (sets, trained models) is keyed by content digests, so stays."""
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, -1


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _versions() -> dict[str, str]:
    """Library versions and this file's digest: outputs are recomputed when any of them changes."""
    import PIL

    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return {"opencv": cv2.__version__, "pillow": PIL.__version__, "numpy": np.__version__, "wae_lib.data": code}


def _output_params(source: str, cfg: PrepConfig) -> dict[str, Any]:
    return {"source": source, "format": 1, **{k: getattr(cfg, k) for k in _OUTPUT_FIELDS[source]}, **_versions()}


def _process_chunk(task: tuple) -> tuple[int, int, dict[str, int]]:
    """Worker: process one chunk of files and save it as a part file (images + manifest rows)."""
    source, files, part_path, cfg = task
    rows, images = [], []
    for label, path in files:
        row, imgs = process_file(source, Path(path), label, cfg)
        if not Path(path).as_posix().endswith(label):  # list_files escaped the name (safe_label)
            row["detail"] = "; ".join(d for d in (row["detail"], NON_UTF8_NOTE) if d)
        rows.append(row)
        images.extend(imgs)
    arr = np.stack(images) if images else np.zeros((0, OUT_SIZE, OUT_SIZE, 3), np.uint8)
    _save_part(Path(part_path), rows, arr)  # a part file exists only when complete: safe to resume from
    return len(files), len(images), dict(Counter(r["reason"] for r in rows))


def _save_part(path: Path, rows: list[dict], images: np.ndarray) -> None:
    """One finished chunk as plain arrays: its images and its manifest rows as JSON text. Never a pickle: resuming
    reads ``.parts`` back, and a file planted there must not be able to run code when it is read."""
    with atomic_open(path, "wb", sync=False) as f:  # no fsync: a part lost to a crash fails _load_part, is redone
        np.savez(f, images=images, rows=np.array(json.dumps(rows)))


def _load_part(path: Path, n_files: int) -> tuple[list[dict], np.ndarray] | None:
    """(rows, images) of a part file we wrote, or None for anything else (missing, truncated, pickled, foreign,
    inconsistent): such a part is recomputed, never trusted."""
    try:
        with np.load(path, allow_pickle=False) as z:
            rows, images = json.loads(str(z["rows"])), z["images"]
    except Exception:  # np.load refuses pickles (ValueError); zip/JSON errors for anything truncated or foreign
        return None
    ok = (isinstance(rows, list) and len(rows) == n_files and all(isinstance(r, dict) for r in rows)
          and images.dtype == np.uint8 and images.shape[1:] == (OUT_SIZE, OUT_SIZE, 3)
          and len(images) == sum(int(r.get("n_images") or 0) for r in rows if r.get("status") == "kept"))
    return (rows, images) if ok else None


# A worker re-imports the parent's __main__; when that is this module (`python -m wae_lib.data`) runpy warns that
# it is already imported (by the forkserver preload). Harmless; the filter is inherited by forked workers.
warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package.*", category=RuntimeWarning)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe


def _pool_context() -> mp.context.BaseContext:
    """forkserver on Linux (no fork of a parent that may hold torch/CUDA threads), spawn elsewhere."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["wae_lib.data"])  # imported once in the server, inherited by workers
        return ctx
    return mp.get_context("spawn")


def _run_chunks(tasks: list[tuple], workers: int, desc: str, total_files: int, done_files: int,
                progress: bool) -> None:
    bar = progress_bar(total=total_files, initial=done_files, desc=desc, unit="img", disable=not progress,
                       notebook=False)
    with bar:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                bar.update(_process_chunk(t)[0])
            return
        with _pool_context().Pool(min(workers, len(tasks)), initializer=_worker_init) as pool:
            for n_files, _, _ in pool.imap_unordered(_process_chunk, tasks, chunksize=1):
                bar.update(n_files)


def _npy_header(n: int) -> bytes:
    """The .npy header of a uint8 ``n x 64 x 64 x 3`` array, byte for byte what np.save writes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                               "fortran_order": False, "shape": (n, OUT_SIZE, OUT_SIZE, 3)})
    return buf.getvalue()


def _write_npy_atomic(path: Path, parts: Iterable[np.ndarray], n: int) -> str:
    """Stream ``parts`` (total ``n`` images) into ``path`` atomically, without holding them all in memory;
    returns the file's sha256 (computed on the way, so verifying it later costs no extra pass here)."""
    digest = hashlib.sha256()
    with atomic_open(path, "wb", keep_identical=True) as f:
        for block in (_npy_header(n), *(np.ascontiguousarray(p, dtype=np.uint8) for p in parts)):
            if isinstance(block, np.ndarray):
                if block.shape[1:] != (OUT_SIZE, OUT_SIZE, 3):
                    raise RuntimeError(f"{path}: a block of shape {block.shape} is not N x {OUT_SIZE} x {OUT_SIZE} x 3")
                n -= len(block)
                block = block.data
            digest.update(block)
            f.write(block)
        if n != 0:
            raise RuntimeError(f"{path}: the parts hold {abs(n)} images {'fewer' if n > 0 else 'more'} than expected")
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

    path = Path(out_dir) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run a prepare_* function (or `python -m wae_lib.data`) first")
    text = ("path", "status", "reason", "detail", "mode")
    m = pd.read_csv(path, keep_default_na=False, dtype=dict.fromkeys(text, str))
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


def _load_state(out_dir: Path) -> dict | None:
    try:
        state = json.loads((out_dir / STATE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("format") == STATE_FORMAT else None


def outputs_intact(out_dir: Path, state: dict) -> bool:
    """Whether images.npy and manifest.csv are the files ``state`` recorded: the manifest's digest, then the
    array's count and shape (from its header; a truncated file fails here) and its digest. A crash between
    writes, a truncated copy or a hand-edited file is caught here, not trusted as up to date."""
    rec = state.get("outputs") or {}
    images, manifest = rec.get("images.npy") or {}, rec.get("manifest.csv") or {}
    try:
        if file_sha256(out_dir / "manifest.csv") != manifest.get("sha256"):
            return False
        shape = npy_shape(out_dir / "images.npy")
        if shape is None or list(shape) != images.get("shape") or shape[0] != state["summary"]["images"]:
            return False
        return file_sha256(out_dir / "images.npy") == images.get("sha256")
    except (OSError, KeyError, TypeError):
        return False


def _is_up_to_date(out_dir: Path, fingerprint: str) -> dict | None:
    state = _load_state(out_dir)
    if state and state.get("fingerprint") == fingerprint and outputs_intact(out_dir, state):
        return state
    return None


def _finish(out_dir: Path, source: str, src: str, fingerprint: str, rows: list[dict], image_parts: Iterable,
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
        raise RuntimeError(f"{out_dir}: manifest counts {i} images, parts hold {n_images}")
    remove_durably(out_dir / STATE)
    images_sha = _write_npy_atomic(out_dir / "images.npy", image_parts, n_images)
    manifest_sha = write_manifest(out_dir / "manifest.csv", rows)
    summary = _summary(source, rows, n_images, out_dir, src, skipped=False)
    state = {"format": STATE_FORMAT, "fingerprint": fingerprint, "source": source, "src": _printable(src),
             "summary": summary,
             "outputs": {"images.npy": {"sha256": images_sha, "shape": [n_images, OUT_SIZE, OUT_SIZE, 3]},
                         "manifest.csv": {"sha256": manifest_sha, "rows": len(rows)}}}
    atomic_write_text(out_dir / STATE, json.dumps(state, indent=2, default=str))
    return summary


def _clear_stale_parts(parts_dir: Path, wanted: set[str]) -> None:
    """Remove everything in ``.parts`` that this run does not expect: parts of other inputs or parameters, old
    pickled ``.pkl`` parts, temporaries of a killed run, anything planted there."""
    for stale in parts_dir.iterdir():
        if stale.name not in wanted:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()


def run_prepare(source: str, files: Sequence[tuple[str, Path]], out_dir: str | Path, cfg: PrepConfig, *,
                src: str = "", progress: bool = True) -> dict[str, Any]:
    """Process ``files`` ((manifest label, path) pairs) for ``source`` into ``out_dir``; resumable."""
    if source not in _PROCESSORS:
        raise ValueError(f"source = {source!r}: expected one of {sorted(_PROCESSORS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # of a run killed while writing
    listing = [(label, *_stat_key(p)) for label, p in files]
    params = _output_params(source, cfg)
    fingerprint = _digest({"params": params, "listing": listing})
    state = _is_up_to_date(out_dir, fingerprint)
    if state:
        summary = dict(state["summary"], up_to_date=True, out_dir=str(out_dir))
        return summary

    parts_dir = out_dir / ".parts"
    parts_dir.mkdir(exist_ok=True)
    cs = cfg.chunk_size
    chunks = [files[i:i + cs] for i in range(0, len(files), cs)]
    # A part's name holds the digest of its inputs: after any change only the affected chunks are redone.
    part_paths = [parts_dir / f"{k:06d}-{_digest({'p': params, 'l': listing[k * cs:(k + 1) * cs]})[:20]}.npz"
                  for k in range(len(chunks))]
    _clear_stale_parts(parts_dir, {p.name for p in part_paths})
    todo = [k for k, p in enumerate(part_paths) if _load_part(p, len(chunks[k])) is None]
    done_files = len(files) - sum(len(chunks[k]) for k in todo)
    tasks = [(source, [(label, str(p)) for label, p in chunks[k]], str(part_paths[k]), cfg) for k in todo]
    _run_chunks(tasks, n_workers(cfg), f"{source} ({out_dir.name})", len(files), done_files, progress)

    def load(k: int) -> tuple[list[dict], np.ndarray]:
        part = _load_part(part_paths[k], len(chunks[k]))
        if part is None:
            raise RuntimeError(f"{part_paths[k]}: the part just written does not read back (disk trouble?)")
        return part

    rows: list[dict] = []
    n_images = 0
    for k in range(len(chunks)):
        part_rows, part_images = load(k)
        rows.extend(part_rows)
        n_images += len(part_images)
    summary = _finish(out_dir, source, src, fingerprint, rows, (load(k)[1] for k in range(len(chunks))), n_images)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return summary


def _source_dir(src: str | Path, what: str, subdirs: Sequence[str] = ()) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{what}: source folder {str(src)!r} does not exist or is not a folder")
    for sub in subdirs:  # accept the dataset's root as well as the image folder itself
        if (src / sub).is_dir():
            return src / sub
    return src


def prepare_celeba(src: str | Path, out_dir: str | Path, cfg: PrepConfig | None = None, *,
                   progress: bool = True) -> dict[str, Any]:
    """CelebA ``img_align_celeba/`` (or torchvision's CelebA root) -> face crops (SPEC.md §4)."""
    cfg = cfg or PrepConfig()
    face_detector(cfg.cascade)  # fail early, in the parent, on a bad cascade parameter
    root = _source_dir(src, "prepare_celeba", ("img_align_celeba", "celeba/img_align_celeba"))
    files = [f for f in list_files(root, Path(out_dir)) if f[0] != IDENTITY_FILE]  # faces/identity.csv: not a face
    return run_prepare("celeba", files, out_dir, cfg, src=str(root), progress=progress)


def prepare_anime(src: str | Path, out_dir: str | Path, cfg: PrepConfig | None = None, *,
                  progress: bool = True) -> dict[str, Any]:
    """AnimeFace (any folder of images) -> square centre crop of the short side, 64x64 (SPEC.md §4)."""
    cfg = cfg or PrepConfig()
    root = _source_dir(src, "prepare_anime")
    return run_prepare("anime", list_files(root, Path(out_dir)), out_dir, cfg, src=str(root), progress=progress)


def prepare_imagenet(src: str | Path, out_dir: str | Path, cfg: PrepConfig | None = None, *,
                     progress: bool = True) -> dict[str, Any]:
    """ImageNet ``ILSVRC/Data/CLS-LOC/train`` (or any folder) -> central 64x64 crops (SPEC.md §4, §6)."""
    cfg = cfg or PrepConfig()
    root = _source_dir(src, "prepare_imagenet", ("ILSVRC/Data/CLS-LOC/train", "Data/CLS-LOC/train"))
    return run_prepare("imagenet", list_files(root, Path(out_dir)), out_dir, cfg, src=str(root), progress=progress)


def prepare_styles(src: str | Path, out_dir: str | Path, cfg: PrepConfig | None = None, *,
                   progress: bool = True) -> dict[str, Any]:
    """Style artworks -> square centre crop of the short side, 64x64 (the role of the paper's Fig. 5)."""
    cfg = cfg or PrepConfig()
    root = _source_dir(src, "prepare_styles")
    return run_prepare("styles", list_files(root, Path(out_dir)), out_dir, cfg, src=str(root), progress=progress)


PREPARERS = {"celeba": prepare_celeba, "anime": prepare_anime, "imagenet": prepare_imagenet,
             "styles": prepare_styles}


# --------------------------------------------------------------------------------------------------
# downloading (needs internet): CelebA and Imagenette through torchvision, laid out as DATA_DIR expects
# --------------------------------------------------------------------------------------------------
# torchvision checks the md5 of every file it downloads (and of a file already there before it skips it); the
# unpacked images themselves carry no checksum in torchvision. Archives stay in DIR/.downloads, so a run that was
# interrupted, or a deleted faces/ or natural/, is redone from them without downloading again.
DOWNLOAD_CACHE = ".downloads"
CELEBA_SITE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
IMAGENETTE_SIZES = ("320px", "160px")  # torchvision's sizes (short side); "full" (1.5 GB of large photos) left out
DOWNLOAD_HOWTO = {  # the sources no library downloads: what to put where
    "anime": "the AnimeFace Character Dataset (http://www.nurs.or.jp/~nagadomi/animeface-character-dataset/), or any "
             "folder of anime face images: copy or link it as {dir}/anime/ (optional: without it the mixed set has "
             "no anime images)",
    "styles": "the style images (artworks; the paper's Fig. 5 uses 8) as {dir}/styles/ (required by the data stage)",
}


class DownloadError(RuntimeError):
    """A dataset could not be downloaded; the message is one line with the cause and the manual alternative."""


def _cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def download_celeba(root: str | Path) -> Path:
    """The online path: torchvision downloads CelebA into ``root/celeba`` (Google Drive, ~1.4 GB; needs ``pip install
    gdown``), checking each file's md5 (files already there and intact are not downloaded again), and unpacks the
    aligned images. Writes ``root/celeba/identity.csv`` (file, identity; beside the image folder, where
    find_identity_file looks) and returns the ``img_align_celeba`` folder, ready for ``prepare_celeba``.
    Raises DownloadError."""
    from torchvision.datasets import CelebA
    from torchvision.datasets.utils import check_integrity, extract_archive

    root = Path(root)
    base = root / CelebA.base_folder
    try:
        # every file there and intact (md5): unpack it here, since torchvision's download path needs gdown even then
        if all(check_integrity(base / name, md5) for _, md5, name in CelebA.file_list):
            if not (base / "img_align_celeba").is_dir():
                extract_archive(str(base / "img_align_celeba.zip"))
            ds = CelebA(str(root), split="all", target_type="identity")
        else:
            ds = CelebA(str(root), split="all", target_type="identity", download=True)
    except Exception as exc:  # no internet, no gdown, a checksum mismatch, a full disk: one line, with the way by hand
        raise DownloadError(
            f"CelebA: download failed ({_cause(exc)}). It needs internet and `pip install gdown` (Google Drive). By "
            f"hand: get img_align_celeba.zip and the 5 list files of torchvision.datasets.CelebA.file_list from "
            f"{CELEBA_SITE} into {root / 'celeba'}/ and run again (their md5s are checked)") from exc
    folder = base / "img_align_celeba"
    missing = [name for name in ds.filename if not (folder / name).is_file()]
    if missing:
        raise DownloadError(f"CelebA: {len(missing)} of {len(ds.filename)} images missing from {folder} (e.g. "
                            f"{missing[0]}; an interrupted unpacking?): delete that folder and run again")
    rows = "".join(f"{name},{int(ident)}\n" for name, ident in zip(ds.filename, ds.identity[:, 0].tolist()))
    atomic_write_text(folder.parent / IDENTITY_FILE, "file,identity\n" + rows)
    return folder


def download_imagenette(root: str | Path, size: str = "320px") -> Path:
    """torchvision downloads Imagenette (10 ImageNet classes, https://github.com/fastai/imagenette) into ``root``,
    checking the archive's md5, and unpacks it; returns its ``train`` folder (``<wnid>/*.JPEG``), ready for
    ``prepare_imagenet``. Raises DownloadError."""
    from torchvision.datasets import Imagenette

    if size not in IMAGENETTE_SIZES:
        raise ValueError(f"Imagenette size {size!r}: expected one of {IMAGENETTE_SIZES}")
    url, md5 = Imagenette._ARCHIVES[size]
    try:
        Imagenette(str(root), split="train", size=size, download=True)
    except Exception as exc:
        raise DownloadError(f"Imagenette: download of {url} failed ({_cause(exc)}). It needs internet. By hand: put "
                            f"that file (md5 {md5}) in {Path(root)}/ and run again") from exc
    return Path(root) / Path(url).stem / "train"


def _imagenette_dir(root: Path, size: str) -> Path:
    """Where torchvision unpacks Imagenette of this size under ``root`` (``imagenette2-320``, ...)."""
    from torchvision.datasets import Imagenette

    return root / Path(Imagenette._ARCHIVES[size][0]).stem


def download_data(out: str | Path, imagenette_size: str = "320px") -> dict[str, int | None]:
    """Fill the data folder ``out`` for ``prepare_all`` (``make data DATA_DIR=out``): ``faces/`` (CelebA's aligned
    images) with ``identity.csv`` beside it, and ``natural/`` (Imagenette's training photos), downloaded by
    torchvision into ``out/.downloads`` and moved (renamed, never copied) into place. A folder that is already
    there is left alone: a second run downloads nothing, and a deleted folder is redone from the kept archives.
    Prints how to add ``anime/`` and ``styles/``, which no library downloads. Returns the number of images per
    folder (None: already there, not counted). Raises DownloadError (one line naming each dataset that failed,
    after trying every one)."""
    if imagenette_size not in IMAGENETTE_SIZES:
        raise ValueError(f"Imagenette size {imagenette_size!r}: expected one of {IMAGENETTE_SIZES}")
    t0 = time.perf_counter()
    out = Path(out)
    cache = out / DOWNLOAD_CACHE
    out.mkdir(parents=True, exist_ok=True)

    def faces() -> Path:
        src = download_celeba(cache)
        os.replace(src.parent / IDENTITY_FILE, out / IDENTITY_FILE)  # first: faces/ being there means finished
        os.rename(src, out / "faces")
        return out / "faces"

    def natural() -> Path:
        train = download_imagenette(cache, imagenette_size)
        os.rename(train, out / "natural")
        shutil.rmtree(train.parent, ignore_errors=True)  # the rest of the unpacked archive (its val/ split)
        return out / "natural"

    counts: dict[str, int | None] = {}
    errors: list[str] = []
    for name, dataset, unpacked, fetch in (
            ("faces", "CelebA", cache / "celeba" / "img_align_celeba", faces),
            ("natural", "Imagenette", _imagenette_dir(cache, imagenette_size), natural)):
        if (out / name).exists() or (out / name).is_symlink():
            counts[name] = None
            print(f"{name}/: already there, {dataset} not downloaded")
            continue
        shutil.rmtree(unpacked, ignore_errors=True)  # unpacked but not moved: an unfinished run, redone from the archive
        try:
            folder = fetch()
        except DownloadError as exc:
            errors.append(str(exc))
            continue
        counts[name] = sum(len(files) for _, _, files in os.walk(folder))
        print(f"{name}/: {counts[name]} {dataset} images" + (f", {IDENTITY_FILE} beside it" if name == "faces" else ""))
    for name, howto in DOWNLOAD_HOWTO.items():
        print(f"{name}/: {'there' if (out / name).is_dir() else 'yours to add'}: {howto.format(dir=out)}")
    if errors:
        raise DownloadError(" | ".join(errors))
    stage_done("download", ", ".join(f"{k} {'already there' if v is None else f'{v} images'}" for k, v in counts.items())
               + f" in {out} (archives kept in {cache}: delete them to free the space)", t0, file=sys.stdout)
    return counts


# --------------------------------------------------------------------------------------------------
# the embedded sample set (data_dir=None)
# --------------------------------------------------------------------------------------------------
# Images shipped inside the scikit-image and matplotlib wheels (no download). Face photos: the two with a
# frontal face. "natural": colour photos without faces. Styles: eight non-photographic images (Fig. 5 has 8).
SAMPLE_FACES = ("skimage:astronaut.png", "mpl:grace_hopper.jpg")
SAMPLE_NATURAL_TRAIN = ("skimage:chelsea.png", "skimage:motorcycle_left.png", "skimage:hubble_deep_field.jpg",
                        "skimage:retina.jpg")
SAMPLE_NATURAL_EVAL = ("skimage:coffee.png", "skimage:rocket.jpg")
SAMPLE_STYLES = ("skimage:ihc.png", "skimage:logo.png", "skimage:color.png", "mpl:Minduka_Present_Blue_Pack.png",
                 "skimage:brick.png", "skimage:grass.png", "skimage:gravel.png", "skimage:chessboard_RGB.png")
SAMPLE_FACE_CROPS = 160  # per face photo: random jitter of the face crop + flips
SAMPLE_NATURAL_CROPS = 75  # per training photo: random squares (64 px .. short side) + flips
SAMPLE_NATURAL_EVAL_CROPS = 8  # per held-out photo (the first is the centre square)


def sample_image_path(ref: str) -> Path:
    """``skimage:<file>`` or ``mpl:<file>`` -> the file inside the installed package."""
    pkg, _, name = ref.partition(":")
    if pkg == "skimage":
        import skimage.data

        base = Path(skimage.data.__file__).parent
    elif pkg == "mpl":
        import matplotlib

        base = Path(matplotlib.get_data_path()) / "sample_data"
    else:
        raise ValueError(f"sample image reference {ref!r}: expected 'skimage:<file>' or 'mpl:<file>'")
    path = base / name
    if not path.is_file():
        raise FileNotFoundError(f"sample image {ref!r} is not in the installed package ({path}); the sample set "
                                f"needs the scikit-image and matplotlib wheels' bundled data")
    return path


def _random_square(rng: np.random.Generator, h: int, w: int, lo: float, hi: float) -> tuple[float, float, float]:
    side = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return rng.uniform(0, w - side), rng.uniform(0, h - side), side


def _maybe_flip(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(img[:, ::-1]) if rng.random() < 0.5 else img


def _sample_faces(cfg: PrepConfig) -> tuple[list[dict], list[np.ndarray]]:
    """Jittered face crops (scale x0.9-1.1, shift up to 5% of the box, flips): one manifest row per crop, so
    that build_sets holds out individual crops (only two face photos exist offline)."""
    rows, images = [], []
    for ref in SAMPLE_FACES:
        d = decode_image(sample_image_path(ref))
        faces = detect_faces(d.rgb, cfg)
        if not faces:
            raise RuntimeError(f"sample set: no face found in {ref} with PrepConfig {cfg}")
        x, y, w, h = faces[0]
        rng = _file_rng(cfg.seed, ref)
        for k in range(SAMPLE_FACE_CROPS):
            j = rng.uniform(-0.05, 0.05, size=2) * w
            side = cfg.crop_multiple * w * rng.uniform(0.9, 1.1)
            cx, cy = x + w / 2 + j[0], y + h / 2 + cfg.crop_offset_y * h + j[1]
            img = crop_resize(d.rgb, cx - side / 2, cy - side / 2, side, max_pad_fraction=0.49)
            images.append(_maybe_flip(img, rng))
            rows.append(_row(f"{ref}#{k:03d}", mode=d.mode, width=d.width, height=d.height, face_x=x, face_y=y,
                             face_w=w, face_h=h, n_faces=len(faces), crop_x=round(cx - side / 2, 1),
                             crop_y=round(cy - side / 2, 1), crop_side=round(side, 1), n_images=1))
    return rows, images


def _sample_natural(refs: Sequence[str], n_crops: int, seed: int) -> tuple[list[dict], list[np.ndarray]]:
    """Random squares of 64 px up to the short side, resized to 64x64, flipped half the time; one row per photo."""
    rows, images = [], []
    for ref in refs:
        d = decode_image(sample_image_path(ref))
        h, w = d.rgb.shape[:2]
        rng = _file_rng(seed, ref)
        crops = [crop_resize(d.rgb, *centre_square(d.rgb))]
        while len(crops) < n_crops:
            crops.append(_maybe_flip(crop_resize(d.rgb, *_random_square(rng, h, w, OUT_SIZE, min(h, w))), rng))
        images.extend(crops)
        rows.append(_row(ref, mode=d.mode, width=d.width, height=d.height, n_images=len(crops)))
    return rows, images


def build_sample_prepared(prepared_root: str | Path, cfg: PrepConfig | None = None) -> dict[str, dict]:
    """The offline sample set, written like prepare_* output under ``prepared_root/<source>``.

    Not the paper's data: two face photos (astronaut, Grace Hopper) give jittered face crops, six colour
    photos give random crops, eight non-photographic images stand in for the style artworks, and there is
    no anime source. It exists so that every later stage runs without downloads."""
    cfg = cfg or PrepConfig()
    root = Path(prepared_root)
    natural_refs = SAMPLE_NATURAL_TRAIN + SAMPLE_NATURAL_EVAL
    builders = {
        "celeba": lambda: _sample_faces(cfg),
        "anime": lambda: ([], []),
        "imagenet": lambda: _sample_natural(natural_refs, SAMPLE_NATURAL_CROPS, cfg.seed),
    }
    params = {"celeba": _output_params("celeba", cfg), "anime": {}, "imagenet": {"seed": cfg.seed}}
    summaries: dict[str, dict] = {}
    for source, build in builders.items():
        out_dir = root / source
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out_dir)
        fingerprint = _digest({"sample": 1, "params": params[source], "faces": SAMPLE_FACES,
                               "nat": natural_refs, "n": [SAMPLE_FACE_CROPS, SAMPLE_NATURAL_CROPS], **_versions()})
        state = _is_up_to_date(out_dir, fingerprint)
        if state:
            summaries[source] = dict(state["summary"], up_to_date=True)
            continue
        rows, images = build()
        if source == "imagenet":  # held-out photos need fewer crops
            keep_rows, keep_images, i = [], [], 0
            for r in rows:
                n = r["n_images"] if r["path"] not in SAMPLE_NATURAL_EVAL else SAMPLE_NATURAL_EVAL_CROPS
                keep_images.extend(images[i:i + n])
                i += r["n_images"]
                keep_rows.append(dict(r, n_images=n))
            rows, images = keep_rows, keep_images
        summaries[source] = _finish(out_dir, source, "sample", fingerprint, rows, [np.stack(images)] if images
                                    else [], len(images))
    styles = [(ref, sample_image_path(ref)) for ref in SAMPLE_STYLES]
    summaries["styles"] = run_prepare("styles", styles, root / "styles", cfg, src="sample", progress=False)
    return summaries


# --------------------------------------------------------------------------------------------------
# sets
# --------------------------------------------------------------------------------------------------
def set_path(out_root: str | Path, name: str) -> Path:
    """Path of a named set (``celeba``, ``mixed``, ``content_eval``, ``style_eval``, ``natural_eval``)."""
    if name not in SET_FILES:
        raise ValueError(f"set name {name!r}: expected one of {list(SET_FILES)}")
    return Path(out_root) / "sets" / SET_FILES[name]


def load_set_info(out_root: str | Path) -> dict[str, Any]:
    """``sets/info.json`` written by build_sets/prepare_all."""
    path = Path(out_root) / "sets" / "info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: prepare the data first with "
                                f"`python -m wae_lib.data all --out {out_root}` (add --data-dir DIR for real data)")
    return json.loads(path.read_text())


def _hash_rank(items: Iterable[Any], seed: int, salt: str, key: Any = str) -> list[Any]:
    """``items`` sorted by a seeded hash of ``key(item)``: independent of input order, stable when items are added."""
    return sorted(items, key=lambda it: hashlib.sha256(f"{seed}:{salt}:{key(it)}".encode()).hexdigest())


def _held_out(labels: Sequence[str], n: int, seed: int, salt: str) -> set[str]:
    """The ``n`` labels with the smallest seeded hash: independent of file order and stable when files are
    added (a file's membership changes only if it is pushed out of the n smallest)."""
    return set(_hash_rank(labels, seed, salt)[:n])


def _kept_rows(prepared: Path):
    m = read_manifest(prepared)
    return m[m["status"] == "kept"]


def _image_ranges(rows, selected: set[str], first_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(indices of rows in ``selected``, indices of all other rows), as image indices into images.npy."""
    inside, outside = [], []
    for path, idx, n in zip(rows["path"], rows["index"], rows["n_images"]):
        idx, n = int(idx), int(n)
        if path in selected:
            inside.extend(range(idx, idx + (1 if first_only else n)))
        else:
            outside.extend(range(idx, idx + n))
    return np.asarray(inside, dtype=np.int64), np.asarray(outside, dtype=np.int64)


def _take(images: np.ndarray, idx: np.ndarray, block: int = 8192) -> Iterator[np.ndarray]:
    for i in range(0, len(idx), block):
        yield np.asarray(images[idx[i:i + block]])


# ---------------- content_eval: held-out faces, by identity when an identity file exists ----------------
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


def file_split(labels: Sequence[str], cfg: PrepConfig) -> set[str]:
    """Held-out faces without an identity file: ``eval_fraction`` of the kept files (at least 1, at most
    ``eval_max``), seeded hash of the path. The same person may then be in training and content_eval."""
    n = len(labels)
    n_eval = 0 if cfg.eval_fraction == 0 or n < 2 else min(cfg.eval_max, max(1, round(cfg.eval_fraction * n)))
    return _held_out(labels, n_eval, cfg.seed, "content_eval")


def identity_split(identities: dict[str, int], cfg: PrepConfig) -> list[int]:
    """Held-out identities (our addition; SPEC.md §4: the paper holds nothing out). Whole identities in seeded-hash
    order until their faces reach ``max(eval_min, round(eval_fraction x faces))``; an identity that would take
    the count above ``eval_max`` is skipped, and at most half of the identities are held out (the rest train).
    ``eval_fraction = 0`` or ``eval_max = 0``: none."""
    sizes = Counter(identities.values())
    if cfg.eval_fraction == 0 or cfg.eval_max == 0 or len(sizes) < 2:
        return []
    target = min(cfg.eval_max, max(cfg.eval_min, round(cfg.eval_fraction * len(identities))))
    chosen, count = [], 0
    for ident in _hash_rank(sorted(sizes), cfg.seed, "content_eval_identity"):
        if count >= target or len(chosen) >= len(sizes) // 2:
            break
        if count + sizes[ident] <= cfg.eval_max:
            chosen.append(ident)
            count += sizes[ident]
    return sorted(chosen)


def _content_split(labels: Sequence[str], identity_file: Path | None,
                   cfg: PrepConfig) -> tuple[set[str], dict[str, int], dict[str, Any]]:
    """(held-out labels, label -> identity, summary for info.json) for the kept CelebA files."""
    if identity_file is None:
        held = file_split(labels, cfg)
        return held, {}, {
            "split": "file", "identity_file": None, "held_out_faces": len(held), "held_out_identities": None,
            "rule": f"no {IDENTITY_FILE}: {cfg.eval_fraction:g} of the kept faces (at most {cfg.eval_max}) by a "
                    f"seeded hash of the file name; the same person may be in training and content_eval"}
    ids = label_identities(labels, read_identities(identity_file))
    if labels and not ids:
        raise ValueError(f"identity file {identity_file}: none of the {len(labels)} kept faces is listed in it (its "
                         f"'file' column must hold the face files' names, such as {labels[0]!r})")
    chosen = set(identity_split(ids, cfg))
    held = {label for label, i in ids.items() if i in chosen}
    train_ids = {i for label, i in ids.items() if label not in held}
    if chosen & train_ids:  # cannot happen by construction; checked because evaluation relies on it
        raise RuntimeError(f"identity split: identities {sorted(chosen & train_ids)} in training and content_eval")
    return held, ids, {
        "split": "identity", "identity_file": str(identity_file), "held_out_faces": len(held),
        "held_out_identities": len(chosen), "train_faces": len(labels) - len(held),
        "train_identities": len(train_ids), "faces_without_identity": len(labels) - len(ids),
        "identities_in_both": 0, "content_eval_identities": sorted(chosen),
        "rule": f"whole identities from {identity_file.name}, in seeded-hash order, until the held-out faces reach "
                f"max(eval_min={cfg.eval_min}, eval_fraction={cfg.eval_fraction:g} x faces), at most "
                f"eval_max={cfg.eval_max} faces and half of the identities; faces not in the file stay in training"}


def _eval_identities(rows, held: set[str], ids: dict[str, int]) -> np.ndarray:
    """Identity of each content_eval image (the order of ``_image_ranges(rows, held)[0]``), -1 if unknown."""
    out = [ids.get(p, -1) for p, n in zip(rows["path"], rows["n_images"]) if p in held for _ in range(int(n))]
    return np.asarray(out, dtype=np.int64)


def load_eval_identities(out_root: str | Path) -> np.ndarray | None:
    """Identity of each ``content_eval`` image (int64, aligned with the rows of content_eval.npy, -1 = unknown),
    or None when no identity is known (split by file, or sets written before identities were recorded)."""
    path = Path(out_root) / "sets" / EVAL_IDENTITY_FILE
    if not path.is_file():
        return None
    ids = np.load(path)
    return ids if (ids >= 0).any() else None


# ---------------- the mixed set's proportions (SPEC.md §4: 193,800 CelebA + 14,490 anime + 196,371 ImageNet) ----
def _cap(n_celeba_train: int, ratio: float) -> int | None:
    """round(n_celeba_train x ratio), or None (no cap) when ratio is 0."""
    return None if ratio == 0 else round(n_celeba_train * ratio)


def select_anime(rows, n_celeba_train: int, cfg: PrepConfig) -> np.ndarray:
    """Image indices of the AnimeFace images in the mixed set: at most round(n_celeba_train x mixed_anime_ratio)
    (the paper's 14,490 : 193,800), chosen by seeded hash; every image when the ratio is 0."""
    if rows is None:
        return np.zeros(0, np.int64)
    labels = list(rows["path"])
    cap = _cap(n_celeba_train, cfg.mixed_anime_ratio)
    chosen = set(labels) if cap is None or cap >= len(labels) else _held_out(labels, cap, cfg.seed, "mixed_anime")
    return _image_ranges(rows, chosen)[0]


def select_imagenet(rows, exclude: set[str], n_celeba_train: int, cfg: PrepConfig) -> np.ndarray:
    """Image indices of the ImageNet crops in the mixed set, leaving out every crop of the files in ``exclude``
    (natural_eval): at most round(n_celeba_train x mixed_imagenet_ratio) (the paper's 196,371 : 193,800); the
    central crops (the paper's crop) first, then the extra crops, each group in seeded-hash order; every crop
    when the ratio is 0 or fewer crops exist."""
    pool = _image_ranges(rows, exclude)[1]
    cap = _cap(n_celeba_train, cfg.mixed_imagenet_ratio)
    if cap is None or cap >= len(pool):
        return pool
    central, extra = [], []
    for path, idx, n in zip(rows["path"], rows["index"], rows["n_images"]):
        if path not in exclude:
            central.append((path, int(idx)))
            extra.extend((f"{path}#{k}", int(idx) + k) for k in range(1, int(n)))
    ranked = [*_hash_rank(central, cfg.seed, "mixed_imagenet", key=lambda t: t[0]),
              *_hash_rank(extra, cfg.seed, "mixed_imagenet", key=lambda t: t[0])]
    return np.sort(np.asarray([i for _, i in ranked[:cap]], dtype=np.int64))


def mixed_rule(cfg: PrepConfig, n_celeba_train: int) -> str:
    """The rule that sets the mixed set's composition, in words, with this run's numbers."""
    def part(name: str, field: str, paper: str, what: str, order: str = "") -> str:
        ratio = getattr(cfg, field)
        if ratio == 0:
            return f"{name}: every {what} ({field}=0)"
        return (f"{name}: at most round({n_celeba_train:,} x {field}={ratio:.5f}) = "
                f"{_cap(n_celeba_train, ratio):,} {what} (the paper's {paper}), {order}seeded-hash choice")

    return "; ".join([f"CelebA: every training face ({n_celeba_train:,})",
                      part("AnimeFace", "mixed_anime_ratio", "14,490/193,800", "images"),
                      part("ImageNet", "mixed_imagenet_ratio", "196,371/193,800", "crops",
                           "central crops first, then extra crops, ")])


def _mixed_counts(available: dict[str, int], used: dict[str, int]) -> dict[str, dict[str, Any]]:
    total = sum(used.values())
    return {s: {"available": available[s], "used": used[s], "share": used[s] / total if total else 0.0,
                "paper_share": PAPER_MIXED_SHARES[s]} for s in ("celeba", "anime", "imagenet")}


def format_mixed(info: dict[str, Any]) -> str:
    """The mixed set's composition next to the paper's shares, and the rule that set it."""
    lines = [f"mixed set ({info['sets']['mixed']['count']:,} images). Rule: {info['mixed_rule']}",
             f"    {'source':<10}{'available':>11}{'used':>9}{'share':>9}{'paper share':>13}"]
    for s, c in info["mixed_counts"].items():
        lines.append(f"    {s:<10}{c['available']:>11,}{c['used']:>9,}{c['share']:>9.1%}{c['paper_share']:>13.1%}")
    return "\n".join(lines)


def format_split(info: dict[str, Any]) -> str:
    """How content_eval was held out, in one or two lines."""
    c = info["content_split"]
    if c["split"] == "file":
        return f"content_eval: {c['held_out_faces']} faces held out by file. {c['rule']}"
    return (f"content_eval: {c['held_out_faces']} faces of {c['held_out_identities']} identities held out; "
            f"training keeps {c['train_faces']} faces of {c['train_identities']} identities "
            f"({c['faces_without_identity']} without identity); no identity is in both.\n    Rule: {c['rule']}")


def _file_digest(path: Path | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_sets(prepared_root: str | Path, sets_dir: str | Path, cfg: PrepConfig | None = None, *,
               source_label: str = "unknown", natural_eval_paths: Sequence[str] | None = None,
               identity_file: str | Path | None = None) -> dict[str, Any]:
    """The paper's two training sets and the evaluation sets, from ``prepared_root/<source>`` folders.

    * ``content_eval``: held-out CelebA faces, removed from both training sets (our addition: the paper holds
      nothing out). With ``identity_file`` (see read_identities) whole identities are held out (identity_split);
      without, ``eval_fraction`` of the files (file_split). ``sets/content_eval_identity.npy`` gives each
      image's identity (load_eval_identities).
    * ``natural_eval``: ``natural_eval_count`` ImageNet files (or ``natural_eval_paths``), their first (central)
      crop; all their crops are removed from the mixed set.
    * ``celeba`` = CelebA minus content_eval; ``mixed`` = that + AnimeFace + ImageNet capped to the paper's
      proportions (select_anime, select_imagenet), concatenated in that order (``info["mixed_composition"]``
      gives each source's index range, ``info["mixed_counts"]`` the counts and shares).
    * ``style_eval``: every style image.
    """
    cfg = cfg or PrepConfig()
    prepared_root, sets_dir = Path(prepared_root), Path(sets_dir)
    identity_file = Path(identity_file) if identity_file is not None else None
    sets_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(sets_dir)
    states = {s: _load_state(prepared_root / s) for s in SOURCES}
    missing = [s for s in ("celeba", "styles") if states[s] is None]
    if missing:
        raise FileNotFoundError(f"build_sets: {prepared_root} has no prepared {missing}; run prepare_* first")
    changed = [s for s, st in states.items() if st is not None and not outputs_intact(prepared_root / s, st)]
    if changed:
        raise RuntimeError(f"build_sets: {[str(prepared_root / s) for s in changed]} no longer match their "
                           f"{STATE} (a file was changed or truncated); prepare them again")
    if identity_file is not None and not identity_file.is_file():
        raise FileNotFoundError(f"build_sets: identity file {identity_file} does not exist")
    # the prepared outputs' content digests, not their inputs' fingerprints: a prep rerun that rewrote identical
    # bytes (inputs touched) leaves the sets, and so every trained model, as they are
    fingerprint = _digest({"outputs": {s: (st or {}).get("outputs") for s, st in states.items()},
                           "split": {k: getattr(cfg, k) for k in _SPLIT_FIELDS}, "label": source_label,
                           "nat": list(natural_eval_paths or []), "identity": _file_digest(identity_file),
                           "format": 3})
    info_path = sets_dir / "info.json"
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(info_path.read_text())
        if info.get("fingerprint") == fingerprint and _sets_intact(sets_dir, info):
            return info
    remove_durably(info_path)  # the sets' state record goes first; written again last

    def load(source: str) -> tuple[np.ndarray, Any]:
        if states[source] is None:
            return np.zeros((0, OUT_SIZE, OUT_SIZE, 3), np.uint8), None
        return np.load(prepared_root / source / "images.npy", mmap_mode="r"), _kept_rows(prepared_root / source)

    celeba, celeba_rows = load("celeba")
    eval_faces, identities, split = _content_split(list(celeba_rows["path"]), identity_file, cfg)
    content_idx, celeba_idx = _image_ranges(celeba_rows, eval_faces)
    content_ids = _eval_identities(celeba_rows, eval_faces, identities)

    anime, anime_rows = load("anime")
    anime_idx = select_anime(anime_rows, len(celeba_idx), cfg)

    imagenet, imagenet_rows = load("imagenet")
    held: set[str] = set()
    natural_idx = imagenet_idx = np.zeros(0, np.int64)
    n_imagenet_pool = 0
    if imagenet_rows is not None:
        labels = list(imagenet_rows["path"])
        if natural_eval_paths is not None:
            unknown = set(natural_eval_paths) - set(labels)
            if unknown:
                raise ValueError(f"build_sets: natural_eval_paths {sorted(unknown)} are not kept ImageNet rows")
            held = set(natural_eval_paths)
            natural_idx = _image_ranges(imagenet_rows, held)[0]
        else:
            held = _held_out(labels, min(cfg.natural_eval_count, len(labels) // 2), cfg.seed, "natural_eval")
            natural_idx = _image_ranges(imagenet_rows, held, first_only=True)[0]
        imagenet_idx = select_imagenet(imagenet_rows, held, len(celeba_idx), cfg)
        n_imagenet_pool = len(_image_ranges(imagenet_rows, held)[1])

    styles, _ = load("styles")
    style_idx = np.arange(len(styles), dtype=np.int64)

    digests: dict[str, str] = {}

    def write(name: str, pieces: Sequence[tuple[np.ndarray, np.ndarray]]) -> int:
        n = sum(len(idx) for _, idx in pieces)
        digests[SET_FILES[name]] = _write_npy_atomic(sets_dir / SET_FILES[name],
                                                     (blk for arr, idx in pieces for blk in _take(arr, idx)), n)
        return n

    counts = {
        "celeba": write("celeba", [(celeba, celeba_idx)]),
        "mixed": write("mixed", [(celeba, celeba_idx), (anime, anime_idx), (imagenet, imagenet_idx)]),
        "content_eval": write("content_eval", [(celeba, content_idx)]),
        "style_eval": write("style_eval", [(styles, style_idx)]),
        "natural_eval": write("natural_eval", [(imagenet, natural_idx)]),
    }
    with atomic_open(sets_dir / EVAL_IDENTITY_FILE, "wb", keep_identical=True) as f:
        np.save(f, content_ids)
    digests[EVAL_IDENTITY_FILE] = file_sha256(sets_dir / EVAL_IDENTITY_FILE)
    a, b = len(celeba_idx), len(celeba_idx) + len(anime_idx)
    converted = 0 if imagenet_rows is None else int((imagenet_rows["mode"] != "RGB").sum())
    info = {
        "source": source_label,
        "is_sample": source_label == SAMPLE_SOURCE_LABEL,
        "sets": {name: {"file": SET_FILES[name], "count": counts[name], "paper_count": PAPER_SET_COUNTS[name],
                        "role": SET_ROLES[name]} for name in SET_FILES},
        "split": split["split"],
        "content_split": split,
        "content_eval_identity_file": EVAL_IDENTITY_FILE,
        "mixed_composition": {"celeba": [0, a], "anime": [a, b], "imagenet": [b, counts["mixed"]]},
        "mixed_counts": _mixed_counts({"celeba": a, "anime": len(anime), "imagenet": n_imagenet_pool},
                                      {"celeba": a, "anime": b - a, "imagenet": counts["mixed"] - b}),
        "mixed_rule": mixed_rule(cfg, a),
        "imagenet_converted_to_rgb": converted,
        "held_out": {"content_eval": sorted(eval_faces), "natural_eval": sorted(held)},
        "prepared": {s: (st or {}).get("summary") for s, st in states.items()},
        "paper_counts": PAPER_COUNTS,
        "paper_mixed_shares": PAPER_MIXED_SHARES,
        "prep_config": asdict(cfg),
        "departures": departures(cfg, source_label, split=split["split"], n_converted=converted),
        "fingerprint": fingerprint,
        "sha256": digests,
    }
    atomic_write_text(info_path, json.dumps(info, indent=2, default=str))
    return info


def _sets_intact(sets_dir: Path, info: dict) -> bool:
    """Every set file is the one info.json recorded: count (from the .npy header) and content digest."""
    digests = info.get("sha256") or {}
    for name, meta in (info.get("sets") or {}).items():
        shape = npy_shape(sets_dir / SET_FILES[name])
        if shape is None or shape[0] != meta.get("count"):
            return False
    try:
        return set(digests) == {*SET_FILES.values(), EVAL_IDENTITY_FILE} and all(
            file_sha256(sets_dir / f) == d for f, d in digests.items())
    except OSError:
        return False


def departures(cfg: PrepConfig, source_label: str, *, split: str | None = None,
               n_converted: int | None = None) -> list[str]:
    """Where the prepared data differs from the paper's (recorded in info.json; docs/DEPARTURES.md "Data")."""
    out = []
    if source_label == SAMPLE_SOURCE_LABEL:
        out.append("sample set: images bundled with scikit-image/matplotlib, not CelebA/AnimeFace/ImageNet; "
                   "faces are jittered crops of 2 photos (content_eval crops are of the same 2 people); "
                   "no anime source; natural images are random crops with flips")
    if cfg.eval_fraction > 0 and cfg.eval_max > 0:
        if split == "identity":
            out.append(f"content_eval: whole identities held out of training (identity file): faces up to "
                       f"max({cfg.eval_min}, {cfg.eval_fraction:.0%} of kept CelebA files), at most {cfg.eval_max}; "
                       f"no person is in both (the paper trains on all kept images)")
        else:
            out.append(f"content_eval: {cfg.eval_fraction:.0%} of kept CelebA files (at most {cfg.eval_max}) held "
                       f"out of training by file, without an identity file, so a person may be in both (the paper "
                       f"trains on all kept images)")
    if cfg.natural_eval_count > 0:
        out.append(f"natural_eval: up to {cfg.natural_eval_count} ImageNet files held out of the mixed set")
    if cfg.mixed_anime_ratio or cfg.mixed_imagenet_ratio:
        out.append(f"mixed set: AnimeFace capped at round(n_celeba_train x {cfg.mixed_anime_ratio:.5f}) and ImageNet "
                   f"crops at round(n_celeba_train x {cfg.mixed_imagenet_ratio:.5f}) (0 = no cap), the paper's "
                   f"proportions; the paper uses every image (the same proportions on its full data)")
    if cfg.imagenet_extra_crops:
        out.append(f"imagenet_extra_crops={cfg.imagenet_extra_crops}: extra random 64x64 crops per ImageNet file "
                   f"(the paper takes the central crop only), used as far as mixed_imagenet_ratio asks")
    if cfg.imagenet_resize_first:
        out.append("imagenet_resize_first: short side resized to 64 before the central crop (paper: literal crop)")
    if not cfg.imagenet_require_rgb:
        n = "" if n_converted is None else f" ({n_converted} file{'' if n_converted == 1 else 's'})"
        out.append(f"imagenet_require_rgb=False: greyscale/CMYK/RGBA/palette ImageNet files converted to RGB{n} "
                   f"instead of dropped (the paper keeps 3-channel images only)")
    return out


# --------------------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------------------
# Folder names accepted under data_dir for each source (the first that exists is used).
DATA_DIR_LAYOUT = {
    "celeba": ("faces", "img_align_celeba", "celeba/img_align_celeba", "celeba"),
    "anime": ("anime", "animeface-character-dataset", "animeface"),
    "imagenet": ("natural", "imagenet", "ILSVRC/Data/CLS-LOC/train"),
    "styles": ("styles",),
}


def _find_source(data_dir: Path, source: str) -> Path | None:
    for name in DATA_DIR_LAYOUT[source]:
        if (data_dir / name).is_dir():
            return data_dir / name
    return None


def prepare_all(data_dir: str | Path | None, out_root: str | Path, cfg: PrepConfig | None = None, *,
                progress: bool = True, verbose: bool = True) -> dict[str, Any]:
    """Prepare every source and build the sets under ``out_root`` (``prepared/<source>``, ``sets/``).

    ``data_dir=None``: the embedded sample set (not the paper's data). Otherwise a folder laid out like
    ``faces/ anime/ natural/ styles/`` (see DATA_DIR_LAYOUT for accepted alternatives); faces and styles are
    required, anime and natural may be missing (their sets are then empty). An ``identity.csv`` beside or inside
    the faces folder makes the held-out faces whole identities (build_sets). Returns ``sets/info.json``."""
    cfg = cfg or PrepConfig()
    t0 = time.perf_counter()
    out_root = Path(out_root)
    prepared = out_root / "prepared"
    say = print if verbose else (lambda *a, **k: None)
    natural_eval_paths = identity_file = None
    if data_dir is None:
        label = SAMPLE_SOURCE_LABEL
        say(f"Building the {label}: images bundled with scikit-image and matplotlib. Results on it say nothing "
            f"about the paper; pass a data folder (DATA_DIR) for real data.")
        summaries = build_sample_prepared(prepared, cfg)
        natural_eval_paths = list(SAMPLE_NATURAL_EVAL)
    else:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"prepare_all: data_dir {str(data_dir)!r} is not a folder (expected faces/, "
                                    f"anime/, natural/, styles/ inside)")
        label = f"DATA_DIR={data_dir}"
        summaries = {}
        for source in SOURCES:
            folder = _find_source(data_dir, source)
            if folder is None:
                if source in ("celeba", "styles"):
                    raise FileNotFoundError(f"prepare_all: {data_dir} has none of {DATA_DIR_LAYOUT[source]} "
                                            f"(needed for {source})")
                say(f"{source}: no {'/'.join(DATA_DIR_LAYOUT[source])} folder in {data_dir}; its set stays empty")
                shutil.rmtree(prepared / source, ignore_errors=True)
                continue
            summaries[source] = PREPARERS[source](folder, prepared / source, cfg, progress=progress)
        identity_file = find_identity_file(_find_source(data_dir, "celeba"))
        say(f"identities: {identity_file or f'no {IDENTITY_FILE} beside or inside the faces folder'}")
    for s in summaries.values():
        say(format_summary(s))
    info = build_sets(prepared, out_root / "sets", cfg, source_label=label, natural_eval_paths=natural_eval_paths,
                      identity_file=identity_file)
    say(format_split(info))
    say(format_mixed(info))
    if info["imagenet_converted_to_rgb"]:
        say(f"imagenet: {info['imagenet_converted_to_rgb']} non-RGB files (greyscale, CMYK, ...) converted to RGB")
    if verbose:
        stage_done("data", f"sets ({label}) in {out_root / 'sets'}: " +
                   ", ".join(f"{name} {v['count']}" for name, v in info["sets"].items()), t0, file=sys.stdout)
    return info


def counts_table(info: dict[str, Any]):
    """Per-source counts (kept, rejected by reason) next to the paper's, as a pandas DataFrame."""
    import pandas as pd

    records = []
    for source in SOURCES:
        s = (info.get("prepared") or {}).get(source)
        if not s:
            continue
        rec = {"source": source, "files": s["files"], "kept": s["kept"], "images": s["images"],
               "rejected": s["rejected"], "paper kept": s.get("paper_kept"), "paper files": s.get("paper_files")}
        rec.update({f"rejected: {r}": n for r, n in s["by_reason"].items() if r != OK})
        records.append(rec)
    table = pd.DataFrame.from_records(records).set_index("source")
    reasons = [c for c in table.columns if c.startswith("rejected: ")]
    table[reasons] = table[reasons].fillna(0).astype(int)
    for col in ("paper kept", "paper files"):
        table[col] = table[col].astype("Int64")
    return table


def image_grid(images: np.ndarray | Sequence[np.ndarray], ncols: int = 12, pad: int = 2,
               fill: int = 255) -> np.ndarray:
    """Equal-size H x W x 3 uint8 images tiled row by row with ``pad`` px of ``fill`` between them."""
    images = list(images)
    if not images:
        return np.full((8, 8, 3), fill, np.uint8)
    h, w = images[0].shape[:2]
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), fill, np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, ncols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return grid


def spread(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (a deterministic, representative selection)."""
    return np.unique(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int)) if n_total else np.zeros(0, int)


def rejected_examples(prepared_root: str | Path, per_reason: int = 6) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_reason`` rejected files per reason over all prepared sources: manifest row + absolute path."""
    out: dict[str, list[dict[str, Any]]] = {}
    for source in SOURCES:
        folder = Path(prepared_root) / source
        state = _load_state(folder)
        if state is None:
            continue
        m = read_manifest(folder)
        for reason, rows in m[m["status"] == "rejected"].groupby("reason", sort=True):
            for _, row in rows.iloc[spread(len(rows), per_reason)].iterrows():
                if len(out.setdefault(reason, [])) < per_reason:
                    out[reason].append({**row.to_dict(), "source": source, "file": Path(state["src"]) / row["path"]})
    return out


def preview_image(path: str | Path, size: int = 96) -> np.ndarray | None:
    """A thumbnail (``size`` x ``size``, square centre crop) of any file, or None if it cannot be decoded."""
    try:
        d = decode_image(Path(path), draft_min_side=size)
    except Rejected:
        return None
    return crop_resize(d.rgb, *centre_square(d.rgb), out=size)


# --------------------------------------------------------------------------------------------------
# training-time loading
# --------------------------------------------------------------------------------------------------
def _check_packed(arr: np.ndarray, name: str) -> None:
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (OUT_SIZE, OUT_SIZE, 3):
        raise ValueError(f"{name}: expected a uint8 array N x {OUT_SIZE} x {OUT_SIZE} x 3 (wae_lib.data output), "
                         f"got {arr.dtype} {arr.shape}")


class PackedImages:
    """A packed set held in memory as uint8 ``N x 3 x 64 x 64``, served as float32 [0, 1] batches.

    The file is read once. On CUDA the tensor lives on the GPU when it takes at most ``max_device_fraction``
    of the free memory (a full CelebA set is 2.4 GB), otherwise in pinned CPU memory with a double-buffered
    asynchronous copy per batch. No file I/O happens during training."""

    def __init__(self, source: str | Path | np.ndarray, device: str | Any = "cpu", *,
                 max_device_fraction: float = 0.5):
        import torch

        if isinstance(source, np.ndarray):
            arr, name = source, "array"
        else:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"PackedImages: {path} does not exist (prepare it with `python -m "
                                        f"wae_lib.data all --out DIR`)")
            arr, name = np.load(path), str(path)
        _check_packed(arr, name)
        self.device = torch.device(device)
        self.on_device = True
        target = self.device
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if arr.nbytes > max_device_fraction * free:
                target, self.on_device = torch.device("cpu"), False
        self.data = torch.empty((len(arr), 3, OUT_SIZE, OUT_SIZE), dtype=torch.uint8, device=target,
                                pin_memory=not self.on_device)
        for i in range(0, len(arr), 8192):  # NHWC -> NCHW in blocks: no second full-size copy
            blk = torch.from_numpy(np.ascontiguousarray(arr[i:i + 8192]))
            self.data[i:i + len(blk)] = blk.to(target).permute(0, 3, 1, 2)
        self._staging: list[Any] = []
        self._events: list[Any] = []
        self._turn = 0

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        where = "device" if self.on_device else "pinned CPU"
        return f"PackedImages({len(self)} images, {where}, serving {self.device})"

    def _gather_pinned(self, idx):
        """Index on the CPU into a pinned staging buffer and copy asynchronously; two buffers alternate, each
        reused only after its previous copy finished."""
        import torch

        n = len(idx)
        k = self._turn = (self._turn + 1) % 2
        if len(self._staging) < 2 or self._staging[k].shape[0] < n:
            self._staging = [torch.empty((n, 3, OUT_SIZE, OUT_SIZE), dtype=torch.uint8, pin_memory=True)
                             for _ in range(2)]
            self._events = [None, None]
        if self._events[k] is not None:
            self._events[k].synchronize()
        buf = self._staging[k][:n]
        torch.index_select(self.data, 0, idx, out=buf)
        out = buf.to(self.device, non_blocking=True)
        ev = torch.cuda.Event()
        ev.record()
        self._events[k] = ev
        return out

    def batch(self, indices) -> Any:
        """float32 [0, 1] images ``B x 3 x 64 x 64`` on the device, for these indices."""
        import torch

        idx = torch.as_tensor(indices, dtype=torch.long)
        if self.on_device:
            x = self.data.index_select(0, idx.to(self.data.device))
        else:
            x = self._gather_pinned(idx.cpu())
        return x.float().div_(255.0)

    def sample(self, batch_size: int, generator: Any = None, *, hflip: bool = False) -> tuple[Any, Any]:
        """(indices, images): ``batch_size`` uniform draws with replacement; ``hflip`` flips each image with p=0.5."""
        import torch

        gdev = generator.device if generator is not None else torch.device("cpu")
        idx = torch.randint(len(self), (batch_size,), generator=generator, device=gdev)
        x = self.batch(idx)
        if hflip:
            flip = (torch.rand(batch_size, generator=generator, device=gdev) < 0.5).to(x.device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        return idx, x

    def epoch(self, batch_size: int, generator: Any = None, *, drop_last: bool = True) -> Iterator[tuple[Any, Any]]:
        """One pass in a random order: (indices, images) per batch."""
        import torch

        perm = torch.randperm(len(self), generator=generator)
        stop = len(perm) - (len(perm) % batch_size if drop_last else 0)
        for i in range(0, stop, batch_size):
            idx = perm[i:i + batch_size]
            yield idx, self.batch(idx)


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------
def _config_from_args(args: argparse.Namespace) -> PrepConfig:
    changes = {f.name: getattr(args, f.name) for f in fields(PrepConfig) if getattr(args, f.name, None) is not None}
    return PrepConfig(**changes)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("preprocessing parameters (PrepConfig; defaults in wae_lib/data.py)")
    for f in fields(PrepConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            g.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction)
        else:
            typ = {"int": int, "float": float, "str": str}[str(f.type)]
            g.add_argument(flag, dest=f.name, type=typ, default=None, metavar=f.name.upper())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wae_lib.data", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for source in SOURCES:
        sp = sub.add_parser(source, help=(PREPARERS[source].__doc__ or "").split("\n")[0])
        sp.add_argument("src", help="source folder")
        sp.add_argument("out", help="output folder (images.npy, manifest.csv)")
        if source == "celeba":
            sp.add_argument("--download", action="store_true",
                            help="download CelebA with torchvision into SRC first (needs internet)")
        _add_config_args(sp)
    sp = sub.add_parser("all", help="every source + the sets (sample set without --data-dir)")
    sp.add_argument("--data-dir", default=None, help="folder with faces/ anime/ natural/ styles/ (default: the "
                    "embedded sample set, not the paper's data)")
    sp.add_argument("--out", required=True, help="output root (prepared/, sets/)")
    _add_config_args(sp)
    sp = sub.add_parser("download", help="download CelebA and Imagenette with torchvision (md5-checked) into a "
                        "DATA_DIR: faces/, identity.csv, natural/ (needs internet; CelebA needs `pip install gdown`)")
    sp.add_argument("--out", required=True, help="the data folder (DATA_DIR); archives go to OUT/" + DOWNLOAD_CACHE)
    sp.add_argument("--imagenette-size", choices=IMAGENETTE_SIZES, default=IMAGENETTE_SIZES[0],
                    help="short side of the Imagenette photos (320px: ~330 MB, 160px: ~100 MB)")
    args = p.parse_args(argv)
    try:
        if args.cmd == "download":
            download_data(args.out, args.imagenette_size)
            return 0
        cfg = _config_from_args(args)
        if args.cmd == "all":
            prepare_all(args.data_dir, Path(args.out), cfg)
            return 0
        src = args.src
        if args.cmd == "celeba" and args.download:
            src = download_celeba(src)
        print(format_summary(PREPARERS[args.cmd](src, args.out, cfg)))
    except (ValueError, OSError, RuntimeError) as exc:  # bad parameter, missing folder, full disk: one line, as
        print(f"error: {exc}", file=sys.stderr)  # training and argparse print; the outputs stay consistent
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
