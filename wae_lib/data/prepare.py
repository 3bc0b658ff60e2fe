"""Preparation: the paper's sources as SPEC.md §4 describes, one folder of 64x64 crops per source.

Every ``prepare_<source>(src, out_dir, cfg)`` walks a folder, turns each file into zero or more 64x64 RGB crops and
writes ``images.npy``, ``manifest.csv`` and ``prep_state.json`` under ``out_dir`` (wae_lib.data.packed describes them).

Sources (SPEC.md §4):

* CelebA (``prepare_celeba``): an OpenCV Haar cascade finds the face; the crop is a square of
  ``crop_multiple`` x the face box, centred on the box (plus ``crop_offset_y``), resized to 64x64, so faces
  come out about the same size (wae_lib.data.faces). No face -> ``no_face``; a face box under ``min_face`` px ->
  ``face_too_small``.
* AnimeFace (``prepare_anime``) and style artworks (``prepare_styles``): square centre crop of the short side,
  resized to 64x64.
* ImageNet (``prepare_imagenet``): keep images with width and height >= 64 and cut the central 64x64 region
  (literal reading, SPEC.md §6); ``imagenet_resize_first`` resizes the short side to 64 first. Greyscale (and
  CMYK, ...) files are converted to RGB; ``imagenet_require_rgb=True`` drops them as the paper does.

Every kept row also carries the decoded file's fingerprints (``pixel_digest``, ``perceptual_hash``), from which
build_sets finds duplicates across all sources before it splits (wae_lib.data.duplicates).

Robustness: any file (truncated JPEG, zero bytes, text, dangling link, FIFO, 16-bit PNG, CMYK, ...) ends as a
manifest row with a reason (wae_lib.data.decode); nothing raises. A file name that is not valid UTF-8 is kept under an
escaped name (``\\xff``, ``safe_label``), with a note in the detail column. Speed: files are processed in chunks by
a process pool (one process per core, started once), JPEGs are decoded at reduced size where the geometry allows
(PIL draft). Resuming: each finished chunk is saved under ``out_dir/.parts`` (``.npz``, read with
``allow_pickle=False``: a planted file cannot run as code; one that does not read back is recomputed); an
interrupted run continues from there, and a run whose inputs, parameters and code are unchanged, and whose outputs
still match their recorded digests, does nothing. Output is a pure function of the sorted file list and the
parameters, so a re-run is byte-identical. Every output is written atomically (wae_lib.utils.atomic_open), the
state record last.

The workers import this module (forkserver preload): it and what it imports stay free of torch.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import PIL

from .. import staleness
from ..utils import atomic_open, json_digest, remove_stale_temporaries
from ..utils import progress as progress_bar  # here `progress` is the preparers' on/off flag
from .decode import Decoded, Rejected, decode_image
from .duplicates import fingerprints
from .faces import centre_square, crop_resize, detect_faces, face_crop_box, face_detector
from .layout import IDENTITY_FILE, OUT_SIZE, DataError
from .options import OUTPUT_FIELDS, PrepConfig
from .packed import manifest_row, safe_label, up_to_date_state, write_prepared


def n_workers(cfg: PrepConfig) -> int:
    if cfg.workers:
        return cfg.workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def file_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the seed and the file's path: crops do not depend on file order."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


# --------------------------------------------------------------------------------------------------
# per-source processing of one file -> (manifest row, images)
# --------------------------------------------------------------------------------------------------
def _fingerprints(path: Path, d: Decoded) -> dict[str, str]:
    """The duplicate check's columns, from the full-resolution pixels: a JPEG decoded at reduced size (draft) is
    decoded again for them, else its PNG copy would not be found as exact. Past the pixel cap, the draft's."""
    if d.scale != 1.0:
        with contextlib.suppress(Rejected):
            return fingerprints(decode_image(path).rgb)
    return fingerprints(d.rgb)


def _process_celeba(path: Path, label: str, cfg: PrepConfig) -> tuple[dict, list[np.ndarray]]:
    """SPEC.md §4: OpenCV finds the face; crop = crop_multiple x face box centred on it; drop small faces."""
    d = decode_image(path, min_side=cfg.min_face)
    row = manifest_row(label, mode=d.mode, width=d.width, height=d.height)
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
    return dict(row, **_fingerprints(path, d)), [img]


def _process_square(path: Path, label: str, cfg: PrepConfig) -> tuple[dict, list[np.ndarray]]:
    """SPEC.md §4 (AnimeFace; also the style images): square of the short side, resized to 64x64."""
    d = decode_image(path, draft_min_side=OUT_SIZE if cfg.use_draft else None, min_side=cfg.min_side)
    left, top, side = centre_square(d.rgb)
    row = manifest_row(label, mode=d.mode, width=d.width, height=d.height, **_fingerprints(path, d),
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
    rng = file_rng(cfg.seed, label)
    for _ in range(cfg.imagenet_extra_crops):
        x, y = int(rng.integers(0, w - OUT_SIZE + 1)), int(rng.integers(0, h - OUT_SIZE + 1))
        images.append(np.ascontiguousarray(rgb[y:y + OUT_SIZE, x:x + OUT_SIZE]))
    unit = 1.0 if resize_first else d.scale  # crop box in full-resolution pixels of the file
    row = manifest_row(label, mode=d.mode, width=d.width, height=d.height, **_fingerprints(path, d),
                       crop_x=round(x0 / unit, 1), crop_y=round(y0 / unit, 1), crop_side=round(OUT_SIZE / unit, 1))
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
        row = manifest_row(label)
        row.update(r.info)
        row.update(path=label, status="rejected", reason=r.reason, detail=r.detail, n_images=0)
        return row, []
    except Exception as e:  # an unforeseen failure of one file must not end a 200k-file run
        row = manifest_row(label, status="rejected", reason="error", detail=f"{type(e).__name__}: {e}"[:200], n_images=0)
        return row, []


# --------------------------------------------------------------------------------------------------
# chunked, parallel, resumable runner
# --------------------------------------------------------------------------------------------------
NON_UTF8_NOTE = "file name is not valid UTF-8: the path column shows its bytes as \\x escapes"


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


def code_versions(*more_code: str | Path) -> dict[str, str]:
    """Library versions and a digest of the code that shapes the outputs (every module this one imports, and
    ``more_code``'s: wae_lib.staleness): outputs are recomputed when any of it changes."""
    return {"opencv": cv2.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
            "code": staleness.code_digest(__file__, *more_code)}


def output_params(source: str, cfg: PrepConfig) -> dict[str, Any]:
    return {"source": source, "format": 1, **{k: getattr(cfg, k) for k in OUTPUT_FIELDS[source]}, **code_versions()}


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


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe


def _pool_context() -> mp.context.BaseContext:
    """forkserver on Linux (no fork of a parent that may hold torch/CUDA threads), spawn elsewhere."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["wae_lib.data.prepare"])  # imported once in the server, inherited by workers
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
        raise DataError(f"source = {source!r}: expected one of {sorted(_PROCESSORS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # of a run killed while writing
    listing = [(label, *_stat_key(p)) for label, p in files]
    params = output_params(source, cfg)
    fingerprint = json_digest({"params": params, "listing": listing})
    state = up_to_date_state(out_dir, fingerprint)
    if state:
        summary = dict(state["summary"], up_to_date=True, out_dir=str(out_dir))
        return summary

    parts_dir = out_dir / ".parts"
    parts_dir.mkdir(exist_ok=True)
    cs = cfg.chunk_size
    chunks = [files[i:i + cs] for i in range(0, len(files), cs)]
    # A part's name holds the digest of its inputs: after any change only the affected chunks are redone.
    part_paths = [parts_dir / f"{k:06d}-{json_digest({'p': params, 'l': listing[k * cs:(k + 1) * cs]})[:20]}.npz"
                  for k in range(len(chunks))]
    _clear_stale_parts(parts_dir, {p.name for p in part_paths})
    todo = [k for k, p in enumerate(part_paths) if _load_part(p, len(chunks[k])) is None]
    done_files = len(files) - sum(len(chunks[k]) for k in todo)
    tasks = [(source, [(label, str(p)) for label, p in chunks[k]], str(part_paths[k]), cfg) for k in todo]
    _run_chunks(tasks, n_workers(cfg), f"{source} ({out_dir.name})", len(files), done_files, progress)

    def load(k: int) -> tuple[list[dict], np.ndarray]:
        part = _load_part(part_paths[k], len(chunks[k]))
        if part is None:
            raise DataError(f"{part_paths[k]}: the part just written does not read back (disk trouble?)")
        return part

    rows: list[dict] = []
    n_images = 0
    for k in range(len(chunks)):
        part_rows, part_images = load(k)
        rows.extend(part_rows)
        n_images += len(part_images)
    summary = write_prepared(out_dir, source, src, fingerprint, rows, (load(k)[1] for k in range(len(chunks))), n_images)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return summary


# --------------------------------------------------------------------------------------------------
# the four sources
# --------------------------------------------------------------------------------------------------
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
