"""Face detection and crop geometry: the OpenCV Haar cascade that finds a face (SPEC.md §4: "OpenCV finds the
face centre"), the square crop around its box, and crops resized to the networks' 64x64.

The detector's parameters are PrepConfig's; evaluation uses the same detector on 64 px images (claim C2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .layout import OUT_SIZE, DataError
from .options import PrepConfig

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
            raise DataError(f"PrepConfig.cascade = {name!r}: OpenCV could not load it as a cascade classifier")
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
