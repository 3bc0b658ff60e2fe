"""Decoding: any file -> an sRGB uint8 array (EXIF orientation and ICC profile applied), or a reason why not.

``decode_image`` never lets a bad file escape as an arbitrary exception: a truncated JPEG, zero bytes, text, a
dangling link, a FIFO, a decompression bomb, a 16-bit PNG or CMYK each end as ``Rejected(reason)`` (a key of
wae_lib.data.packed.REASONS) or as RGB. JPEGs can be decoded at reduced size (PIL draft) where the caller allows it.
An embedded ICC profile (Adobe RGB, a camera's or a display's) is converted to sRGB, the space every other image and
the networks assume: read as sRGB, an Adobe RGB photo comes out desaturated (up to 141 levels off on data-large's).
This is the one decoder: the data stage, the transfer CLI and the explorer's uploads all call it (model_input).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError


class Rejected(Exception):
    """A file that yields no image; ``reason`` is a key of wae_lib.data.packed.REASONS."""

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


# Decoded pixels at most (after JPEG draft): bounds the memory of one decode to ~1 GB whatever the file says
# (a 0.7 MB PNG can declare 13300 x 13300; PIL only warns below 89 M pixels, and RGBA plus its conversions took
# 3-4.5 GB). 60 M pixels keep a 48-megapixel phone photo.
MAX_PIXELS = 60_000_000


def open_image(source: Path | bytes) -> Image.Image:
    """``Image.open`` of a file or of a file's bytes (an upload) with every failure mapped to a Rejected reason."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise Rejected("empty_file", "0 bytes")
        fp: Any = io.BytesIO(source)
    else:
        try:
            st = os.stat(source)  # follows links: a dangling link fails here
        except OSError as e:
            raise Rejected("unreadable", f"{type(e).__name__}: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):  # opening a FIFO would block forever
            raise Rejected("not_a_file", "not a regular file")
        if st.st_size == 0:
            raise Rejected("empty_file", "0 bytes")
        fp = source
    try:
        with warnings.catch_warnings():  # PIL's DecompressionBombWarning: the cap below says it in one line
            warnings.simplefilter("ignore")
            return Image.open(fp)
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


_SRGB = ImageCms.createProfile("sRGB")


@functools.lru_cache(maxsize=16)
def _srgb_transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    """The transform from an embedded profile to sRGB, built once per profile and mode (a folder of camera photos
    repeats a handful of profiles)."""
    return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB, mode, "RGB")


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """``im`` with its embedded profile ``icc`` converted to sRGB (an RGB image, RGBA when it has alpha); unchanged
    without a profile. An sRGB profile converts exactly (no level changes on data-large's 178 sRGB photos). A profile
    that does not fit the image (an RGB profile on a greyscale JPEG, a broken one) or a mode that colour management
    does not take (16-bit, float) is ignored: the pixels are then read as sRGB, as they were before."""
    if not icc:
        return im
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    alpha = im.getchannel("A") if im.mode in ("RGBA", "LA") else None
    colour = im.convert({"RGBA": "RGB", "LA": "L"}[im.mode]) if alpha is not None else im
    if colour.mode not in ("RGB", "L", "CMYK"):
        return im
    try:
        out = ImageCms.applyTransform(colour, _srgb_transform(bytes(icc), colour.mode))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im
    if alpha is not None:
        out.putalpha(alpha)
    return out


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


def decode_image(path: Path | bytes, *, draft_min_side: int | None = None, require_rgb: bool = False,
                 min_side: int = 1) -> Decoded:
    """Decode ``path`` (a file, or a file's bytes) to sRGB (EXIF orientation and ICC profile applied) or raise
    Rejected; more than MAX_PIXELS decoded pixels are refused (``too_large``) before any is decoded.

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
        if im.size[0] * im.size[1] > MAX_PIXELS:
            raise Rejected("too_large", f"{width}x{height} is {width * height / 1e6:.0f} M pixels, more than the "
                           f"{MAX_PIXELS / 1e6:.0f} M this decoder takes (shrink it first)", **info)
        try:
            im.load()
            icc = im.info.get("icc_profile")
            if orientation != 1:
                with contextlib.suppress(Exception):  # a broken EXIF block only loses the orientation
                    im = ImageOps.exif_transpose(im)
            rgb = _to_rgb(_to_srgb(im, icc))
        except Image.DecompressionBombError as e:
            raise Rejected("too_large", str(e)[:120], **info) from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
            reason = "unreadable" if getattr(e, "errno", None) is not None else "corrupt"
            raise Rejected(reason, f"{type(e).__name__}: {e}"[:120], **info) from None
    scale = rgb.shape[1] / width if width else 1.0
    return Decoded(np.ascontiguousarray(rgb), mode, width, height, scale)


def model_input(source: Path | bytes, size: int) -> np.ndarray:
    """What a model is given for a file or an upload: decoded as above (JPEG draft down to twice ``size``), the
    centre square, resized to ``size`` (area filter when shrinking, bicubic when enlarging): size x size x 3 uint8.
    The CLI and the explorer both call this, so they give a model the same pixels."""
    from .faces import centre_square, crop_resize

    rgb = decode_image(source, draft_min_side=2 * size).rgb
    return crop_resize(rgb, *centre_square(rgb), out=size)
