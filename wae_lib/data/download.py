"""Getting the data (needs internet): CelebA and Imagenette through torchvision, laid out as DATA_DIR expects.

``python -m wae_lib data download --data-dir DIR`` (``download_data``) fills ``DIR/faces`` (CelebA's aligned images) with
``DIR/identity.csv`` beside it, and ``DIR/natural`` (Imagenette's training photos). The anime and style folders
are the user's to add (DOWNLOAD_HOWTO). torchvision is imported only here, and only when downloading.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from ..utils import UserError, atomic_write_text, stage_done
from .layout import IDENTITY_FILE, DataError

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


class DownloadError(UserError, RuntimeError):
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
        raise DataError(f"Imagenette size {size!r}: expected one of {IMAGENETTE_SIZES}")
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
        raise DataError(f"Imagenette size {imagenette_size!r}: expected one of {IMAGENETTE_SIZES}")
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
