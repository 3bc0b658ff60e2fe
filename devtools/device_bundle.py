"""What a lent GPU is sent for a device session (devtools.device): the training images as one JPEG
mosaic (q90, 4:4:4), the small evaluation sets as arrays and HED's convolutions up to relu4_2 as a carried file
(wae_lib.model.vgg), each with its SHA-256 in ``bundle.json``, whose own contents (the counts, the set names) are
covered by a digest of their own. :func:`pack` writes it here (refusing a bundle over the device's 64 MiB),
:func:`read_manifest` checks it there before anything is written, :func:`unbundle` writes the sets as the data stage
does; :func:`log` is the session's log line.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wae_lib.data.layout import EVAL_IDENTITY_FILE, SET_FILES, load_set_info, set_path, sets_dir
from wae_lib.model.vgg import write_carried_hed
from wae_lib.utils import UserError, atomic_write_text, file_sha256

BUNDLE = Path("build/device")  # what travels to the device (ignored by git: it holds images)
CARRY_LIMIT = 64 * 2**20  # the device takes the working tree and the carried paths within 64 MiB


CELL = 64
MOSAIC = "train_mosaic.jpg"
EVAL_SETS = "eval_sets.npz"
CARRIED_UP_TO = "relu4_2"  # the deepest layer used there: EvalVGG's content distance (training stops at relu3_1)
VGG_FILE = f"hed_to_{CARRIED_UP_TO}.pth"
TRAIN_SET = "mixed"  # the mosaic holds mixed_train; celeba_train is its first rows (checked at pack)
FORMAT = 2  # 2: bundle.json carries "digest" (format 1 had none, and its counts were trusted as they stood)
# what run reads from bundle.json, and the types it needs (bool is no count: isinstance(True, int) holds)
MANIFEST_KEYS = {"format": int, "data_root": str, "info": dict, "n_train": int, "n_celeba": int, "jpeg_quality": int,
                 "jpeg_mean_abs_error": (int, float), "files": dict, "digest": str}


T0 = time.time()


class DeviceSessionError(UserError, RuntimeError):
    """A bundle or returned part is missing, damaged or too large; the message names the file."""


def log(*parts: Any) -> None:
    print(f"[device {time.time() - T0:6.1f}s]", *parts, flush=True)


def to_mosaic(images: np.ndarray) -> Image.Image:
    """N x 64 x 64 x 3 uint8 -> one image of ceil(N / cols) rows (cols chosen near-square; unused cells black)."""
    n = len(images)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * cols, CELL, CELL, 3), np.uint8)
    canvas[:n] = images
    grid = canvas.reshape(rows, cols, CELL, CELL, 3).transpose(0, 2, 1, 3, 4).reshape(rows * CELL, cols * CELL, 3)
    return Image.fromarray(grid)


def from_mosaic(image: Image.Image, n: int) -> np.ndarray:
    a = np.asarray(image.convert("RGB"))
    rows, cols = a.shape[0] // CELL, a.shape[1] // CELL
    return np.ascontiguousarray(a.reshape(rows, CELL, cols, CELL, 3).transpose(0, 2, 1, 3, 4)
                                .reshape(rows * cols, CELL, CELL, 3)[:n])


def pack(data_root: str | Path, out: str | Path = BUNDLE, quality: int = 90) -> Path:
    """Write the bundle (mosaic, evaluation sets, carried VGG16, bundle.json) into ``out``; refuse one over the
    carry limit. The mosaic's mean absolute error is recorded: the device trains on the decoded images."""
    data_root, out = Path(data_root), Path(out)
    info = load_set_info(data_root)
    train = np.load(set_path(data_root, TRAIN_SET))
    celeba = np.load(set_path(data_root, "celeba"), mmap_mode="r")
    if not np.array_equal(train[:len(celeba)], celeba):
        raise DeviceSessionError(f"{set_path(data_root, 'celeba')} is not the first rows of "
                                 f"{set_path(data_root, TRAIN_SET)}: the bundle carries one mosaic for both")
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    to_mosaic(train).save(buf, "JPEG", quality=quality, subsampling=0)
    (out / MOSAIC).write_bytes(buf.getvalue())
    decoded = from_mosaic(Image.open(io.BytesIO(buf.getvalue())), len(train))
    error = float(np.abs(decoded.astype(np.int16) - train).mean())
    evals = {name: np.load(set_path(data_root, name)) for name in SET_FILES if name not in ("celeba", "mixed")
             and set_path(data_root, name).is_file()}
    if (sets_dir(data_root) / EVAL_IDENTITY_FILE).is_file():
        evals["identities"] = np.load(sets_dir(data_root) / EVAL_IDENTITY_FILE)
    np.savez_compressed(out / EVAL_SETS, **evals)
    for old in out.glob("hed_to_*.pth"):  # an earlier bundle's VGG16 part would travel too, unused
        if old.name != VGG_FILE:
            old.unlink()
    write_carried_hed(out / VGG_FILE, CARRIED_UP_TO)
    files = {name: file_sha256(out / name) for name in (MOSAIC, EVAL_SETS, VGG_FILE)}
    from wae_lib.eval.images import style_names

    info = dict(info, style_names=style_names(data_root))  # the figures' labels, without the prepared manifests
    manifest = {"format": FORMAT, "data_root": str(data_root), "info": info, "n_train": len(train),
                "n_celeba": len(celeba), "jpeg_quality": quality, "jpeg_mean_abs_error": round(error, 3),
                "files": files}
    manifest["digest"] = manifest_digest(manifest)
    atomic_write_text(out / "bundle.json", json.dumps(manifest, indent=2))
    size = sum((out / n).stat().st_size for n in (*files, "bundle.json"))
    if size > CARRY_LIMIT:
        raise DeviceSessionError(f"the bundle {out} is {size / 2**20:.1f} MiB, over the device's {CARRY_LIMIT >> 20} "
                                 f"MiB; lower --quality")
    log(f"bundle {out}: {len(train)} training images (JPEG q{quality}, mean abs error {error:.2f} grey levels), "
        f"{sum(len(v) for v in evals.values())} evaluation images, HED to {CARRIED_UP_TO}; {size / 2**20:.1f} MiB")
    return out


def manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of bundle.json's contents but its "digest" (canonical JSON: sorted keys, no spaces)."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_manifest(bundle: Path) -> dict[str, Any]:
    """bundle.json, checked before any of it is used: complete, of this format, its contents those its digest
    covers (a count edited by hand would decode black padding as training images), and every file it names the
    file it recorded. Anything else raises DeviceSessionError naming the file and saying to pack again."""
    path = Path(bundle) / "bundle.json"
    if not path.is_file():
        raise DeviceSessionError(f"{path} does not exist: run `python -m devtools device pack` and carry {bundle}")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # a copy cut short, or not the file pack wrote
        raise DeviceSessionError(f"{path} is not complete JSON ({exc}); pack again") from None
    if not isinstance(manifest, dict):
        raise DeviceSessionError(f"{path} holds a {type(manifest).__name__}, not the object pack writes; pack again")
    if manifest.get("format") != FORMAT:
        raise DeviceSessionError(f"{path} is of format {manifest.get('format')!r}, not {FORMAT} (bundle.json with its "
                                 f"digest); pack again")
    wrong = [k for k, kind in MANIFEST_KEYS.items() if not isinstance(manifest.get(k), kind)
             or isinstance(manifest.get(k), bool)]
    if wrong:
        raise DeviceSessionError(f"{path} lacks {wrong} (or they are not of the types pack writes); pack again")
    if manifest["digest"] != manifest_digest(manifest):
        raise DeviceSessionError(f"{path} was changed after pack: its contents (counts, set names, file digests) do "
                                 f"not match its digest; pack again")
    if not 0 < manifest["n_celeba"] <= manifest["n_train"] or set(manifest["files"]) != {MOSAIC, EVAL_SETS, VGG_FILE}:
        raise DeviceSessionError(f"{path}: n_train {manifest['n_train']}, n_celeba {manifest['n_celeba']} and files "
                                 f"{sorted(manifest['files'])} are not what this version packs; pack again")
    for name, digest in manifest["files"].items():
        if not (bundle / name).is_file() or file_sha256(bundle / name) != digest:
            raise DeviceSessionError(f"{bundle / name} is missing or not the file bundle.json recorded; pack again")
    return manifest


def unbundle(bundle: Path, data_root: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the bundle's sets as wae_lib.data does (``manifest``: bundle.json as read_manifest returned it)."""
    manifest = manifest or read_manifest(bundle)
    mosaic = Image.open(bundle / MOSAIC)
    cols = math.ceil(math.sqrt(manifest["n_train"]))
    grid = (cols * CELL, math.ceil(manifest["n_train"] / cols) * CELL)
    if mosaic.size != grid:  # the digests matched: a mosaic pack did not make for this count
        raise DeviceSessionError(f"{bundle / MOSAIC} is {mosaic.size[0]}x{mosaic.size[1]} px, not the "
                                 f"{grid[0]}x{grid[1]} of {manifest['n_train']} images; pack again")
    sets = data_root / "sets"
    sets.mkdir(parents=True, exist_ok=True)
    train = from_mosaic(mosaic, manifest["n_train"])
    np.save(set_path(data_root, TRAIN_SET), train)
    np.save(set_path(data_root, "celeba"), train[:manifest["n_celeba"]])
    with np.load(bundle / EVAL_SETS) as evals:
        for name in evals.files:
            np.save(sets / EVAL_IDENTITY_FILE if name == "identities" else set_path(data_root, name), evals[name])
    info = dict(manifest["info"], device_note=f"training sets decoded from a JPEG mosaic (q{manifest['jpeg_quality']}"
                f", 4:4:4, mean abs error {manifest['jpeg_mean_abs_error']} grey levels)")
    # the files here are the decoded ones: their digests (checked by training), the originals' kept beside
    info["sha256_before_jpeg"] = info.get("sha256", {})
    info["sha256"] = {p.name: file_sha256(p) for p in sorted(sets.glob("*.npy"))}
    (sets / "info.json").write_text(json.dumps(info, indent=2))
    log(f"data: {manifest['n_train']} training images decoded into {data_root}")
    return manifest
