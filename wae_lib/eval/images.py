"""The evaluation's images (SPEC.md §5): the sets notebooks 03-05 and 07 measure and show, read from a data root.

The images are one of the evaluation's modules (wae_lib.eval lists them all).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import EvaluationError, check
from ..data.layout import SET_FILES, load_eval_identities, load_set_info, prepared_dir, set_path
from ..data.packed import MANIFEST_FILE, read_manifest
from ..utils import spread

EVAL_SETS = ("content_eval", "style_eval", "natural_eval")  # the held-out sets every model is evaluated on
FACE_FREE = "style_eval+natural_eval"  # the face-free images (style and natural, one after the other): C2, FID


@dataclass(frozen=True)
class EvalImages:
    """Images of an evaluation set with the rows of the set file they are (so that model outputs cached for the
    whole set can be matched to them). ``set_name``: a set name, or ``a+b`` for sets ``a`` and ``b`` one after
    the other (rows then count through both)."""

    set_name: str
    rows: np.ndarray
    images: torch.Tensor  # float N x 3 x 64 x 64 in [0, 1]

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def whole(cls, set_name: str, images: torch.Tensor) -> EvalImages:
        """All of ``images`` as the rows 0..N-1 of ``set_name``."""
        return cls(set_name, np.arange(len(images)), images)


def eval_images(data_root: str | Path, name: str, limit: int | None = None) -> EvalImages:
    """The images of a named set (or ``a+b``, e.g. FACE_FREE) as :class:`EvalImages`; ``limit`` keeps that many,
    spread evenly over the set (wae_lib.utils.spread: deterministic, the same in every notebook)."""
    parts = name.split("+")
    if len(parts) > 1:
        whole = torch.cat([load_set(data_root, p) for p in parts])
        rows = spread(len(whole), limit) if limit else np.arange(len(whole))
        return EvalImages(name, rows, whole[torch.from_numpy(rows)] if limit else whole)
    if name not in SET_FILES:
        raise EvaluationError(f"set name {name!r}: expected one of {tuple(SET_FILES)}")
    path = set_path(data_root, name)
    if not path.is_file():
        raise FileNotFoundError(f"parameter data_root = {str(data_root)!r}: set file {path} does not exist; run "
                                f"`python -m wae_lib data all --data-root {data_root}`")
    arr = np.load(path, mmap_mode="r")
    rows = spread(len(arr), limit) if limit else np.arange(len(arr))
    return EvalImages(name, rows, uint8_to_float(np.asarray(arr[rows])))


def load_set(data_root: str | Path, name: str, limit: int | None = None) -> torch.Tensor:
    """Images of a named set as float N x 3 x 64 x 64 in [0, 1]; ``limit`` keeps that many, spread evenly."""
    return eval_images(data_root, name, limit).images


def uint8_to_float(arr: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float in [0, 1] (the inverse: wae_lib.utils.to_uint8_hwc)."""
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255)


def content_identities(data_root: str | Path, limit: int | None = None) -> np.ndarray | None:
    """The person of each ``content_eval`` image (int64, aligned with :func:`load_set` with the same ``limit``),
    or None when the data do not say (no identity file, or every entry -1 = unknown).

    Read with ``wae_lib.data.layout.load_eval_identities`` (``sets/content_eval_identity.npy``); without identities the
    identity match falls back to "own content image" (:func:`wae_lib.eval.identity.identity_match`).
    """
    ids = load_eval_identities(data_root)
    if ids is None:
        return None
    ids = np.asarray(ids, dtype=np.int64)
    count = load_set_info(data_root)["sets"]["content_eval"]["count"]
    if len(ids) != count:
        warnings.warn(f"{len(ids)} content_eval identities for {count} images: ignored (identity match falls back "
                      f"to the own content image)", stacklevel=2)
        return None
    ids = ids[spread(len(ids), limit)] if limit else ids
    return ids if (ids >= 0).any() else None


def mean_training_image(data_root: str | Path, name: str = "celeba", chunk: int = 4096) -> torch.Tensor:
    """The mean image (3 x 64 x 64 in [0, 1]) of a training set: SPEC §5 C3's "average CelebA face"."""
    path = set_path(data_root, name)
    if not path.is_file():
        raise FileNotFoundError(f"parameter data_root = {str(data_root)!r}: {path} does not exist")
    arr = np.load(path, mmap_mode="r")
    if len(arr) == 0:
        raise EvaluationError(f"{path} is empty: no mean image")
    total = np.zeros(arr.shape[1:], np.float64)
    for i in range(0, len(arr), chunk):
        total += np.asarray(arr[i:i + chunk], dtype=np.float64).sum(0)
    return torch.from_numpy(total / len(arr) / 255).permute(2, 0, 1).float()


# --------------------------------------------------------------------------------------------------
# what the figures show (the same images in every notebook)
# --------------------------------------------------------------------------------------------------
def style_names(data_root: str | Path) -> list[str]:
    """Names of the style_eval images (file stems from the styles manifest), in set order; ``style i`` when
    the manifest is not there."""
    info = load_set_info(data_root)
    count = info["sets"]["style_eval"]["count"]
    names = [f"style {i}" for i in range(count)]
    if len(info.get("style_names") or []) == count:  # recorded where the manifest does not travel (a device bundle)
        return list(info["style_names"])
    folder = prepared_dir(data_root, "styles")
    if (folder / MANIFEST_FILE).is_file():
        m = read_manifest(folder)
        kept = m[m["status"] == "kept"].sort_values("index")
        stems = [Path(str(p).split("#")[0].split(":")[-1]).stem for p in kept["path"]]
        if len(stems) == count:
            names = stems
    return names


def held_out_faces_at(data_root: str | Path, size: int) -> torch.Tensor:
    """The content_eval faces at ``size`` px (issue 33: a fully convolutional model scored above its 64 px training
    size): each cropped again from its source file with the crop its 64 px image was made with (the CelebA
    manifest's crop_x, crop_y, crop_side), so both sizes show the same square of the same photo."""
    from ..data.decode import decode_image
    from ..data.faces import crop_resize

    info = load_set_info(data_root)
    if info.get("is_sample"):
        raise EvaluationError(f"{data_root} is the embedded sample set: its faces have no source files to crop again; "
                              f"score at 64 px, or prepare a data folder (make data DATA_DIR=...)")
    names = (info.get("held_out") or {}).get("content_eval")
    raw = str((info.get("prepared") or {}).get("celeba", {}).get("src", ""))
    src = Path(raw)  # as `make data` recorded it: relative to the folder it ran in (the repository root)
    if not names or not raw or not src.is_dir():
        raise EvaluationError(f"{data_root}: the held-out faces' source files are not known or not here ({src}); "
                              f"held_out_faces_at needs the folder `make data` read (sets/info.json: prepared.celeba.src)")
    m = read_manifest(prepared_dir(data_root, "celeba"))
    geometry = {str(r.path): (float(r.crop_x), float(r.crop_y), float(r.crop_side)) for r in m.itertuples()
                if r.status == "kept"}
    out = []
    for name in names:
        d = decode_image(src / name)
        out.append(crop_resize(d.rgb, *geometry[name], max_pad_fraction=1.0, out=size))
    return uint8_to_float(np.stack(out))


def figure_images(data_root: str | Path, name: str, n: int) -> torch.Tensor:
    """The ``n`` images of a set shown in figures: spread evenly over the set, the same in every notebook."""
    check(n >= 1, f"n ({name} images shown)", n, "an integer >= 1", EvaluationError)
    return load_set(data_root, name, n)


def figure_styles(data_root: str | Path, n: int) -> tuple[torch.Tensor, list[str]]:
    """Fig. 5: the ``n`` style images used in Figures 5-7 and the transfer metrics, with their names (the images
    of ``eval_images(data_root, "style_eval", n)``)."""
    names = style_names(data_root)
    idx = spread(len(names), n)
    return figure_images(data_root, "style_eval", n), [names[i] for i in idx]


def parse_floats(text: str, name: str) -> list[float]:
    """A notebook parameter like ``"0, 0.5, 1"`` -> [0.0, 0.5, 1.0]; the error names the parameter."""
    try:
        values = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        values = []
    check(len(values) >= 2, name, text, "at least 2 comma-separated numbers, e.g. '0, 0.5, 1'", EvaluationError)
    return values


def parse_indices(text: str, name: str, count: int) -> list[int]:
    """``"0,3,7"`` -> [0, 3, 7], each an index of a set of ``count`` images; the error names ``name``."""
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    check(bool(values) and all(0 <= i < count for i in values), name, text,
          f"comma-separated indices from 0 to {count - 1}", EvaluationError)
    return values
