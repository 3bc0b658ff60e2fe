"""The preprocessing parameters: ``PrepConfig``, every one with the reading of SPEC.md §4/§6 as its default.

``OUTPUT_FIELDS`` names, per source, the fields that change what ``prepare_<source>`` writes (they are part of its
fingerprint); ``SPLIT_FIELDS`` those that change how build_sets cuts the sets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..params import Invalid, coerce
from .layout import OUT_SIZE, DataError


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
                raise DataError(f"PrepConfig.{f.name} = {getattr(self, f.name)!r} is invalid: expected "
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
                raise DataError(f"PrepConfig.{name} = {getattr(self, name)!r} is invalid: expected {expected}")


# Fields that change what a source's prepare_* writes (workers/chunk size/splits do not).
OUTPUT_FIELDS = {
    "celeba": ("cascade", "scale_factor", "min_neighbors", "detect_scale", "detect_min_size", "min_face",
               "crop_multiple", "crop_offset_y", "max_pad_fraction"),
    "anime": ("min_side", "use_draft"),
    "styles": ("min_side", "use_draft"),
    "imagenet": ("imagenet_min_side", "imagenet_require_rgb", "imagenet_resize_first", "imagenet_extra_crops",
                 "use_draft", "seed"),
}
SPLIT_FIELDS = ("seed", "eval_fraction", "eval_max", "eval_min", "natural_eval_count", "mixed_anime_ratio",
                "mixed_imagenet_ratio")
