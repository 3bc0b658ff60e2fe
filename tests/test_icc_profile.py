"""Embedded ICC profiles are converted to sRGB in the one image decoder (issue 35): an Adobe RGB photo read as if it
were sRGB came out desaturated by up to 13 levels on the probe (141 on data-large's). The data stage, the transfer
CLI and the explorer's uploads all decode through wae_lib.data.decode, so each is checked here."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from wae_lib.commands import transfer as transfer_io
from wae_lib.data import decode as D
from wae_lib.data import prepare as P
from wae_lib.data.options import PrepConfig
from wae_lib.report import explore as X

SRGB = ImageCms.createProfile("sRGB")
# Adobe RGB (1998) primaries, D50-adapted, as its profile stores them
ADOBE_PRIMARIES = {"rXYZ": (0.6097, 0.3111, 0.0195), "gXYZ": (0.2053, 0.6257, 0.0609), "bXYZ": (0.1492, 0.0632, 0.7446)}


def adobe_like_profile() -> bytes:
    """LittleCMS's sRGB profile with Adobe RGB's wider primaries written into its colorant tags: an RGB profile that
    is not sRGB, built without any file on disk. Its description still says "sRGB built-in", so a decoder that
    trusted the name instead of the profile would fail here too."""
    data = bytearray(ImageCms.ImageCmsProfile(SRGB).tobytes())
    count = struct.unpack(">I", data[128:132])[0]
    table = {bytes(data[132 + 12 * i:136 + 12 * i]).decode(): struct.unpack(">II", data[136 + 12 * i:144 + 12 * i])
             for i in range(count)}
    for tag, xyz in ADOBE_PRIMARIES.items():
        offset = table[tag][0]
        assert bytes(data[offset:offset + 4]) == b"XYZ "
        data[offset + 8:offset + 20] = struct.pack(">3i", *(round(v * 65536) for v in xyz))
    return bytes(data)


def colours(h: int = 96, w: int = 128) -> np.ndarray:
    """Saturated ramps (where a wider gamut shows most) over a mid-grey background."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), 255 - x * 255 // (w - 1)], -1).astype(np.uint8)


def as_srgb(im: Image.Image, icc: bytes) -> np.ndarray:
    """What LittleCMS makes of ``im`` under ``icc``, converted to sRGB: the reference."""
    return np.asarray(ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), SRGB, outputMode="RGB"))


@pytest.fixture
def tagged(tmp_path):
    """The same pixels three ways: with the Adobe-like profile, already converted to sRGB, and without a profile."""
    icc = adobe_like_profile()
    raw = colours()
    paths = {"tagged": tmp_path / "tagged.png", "converted": tmp_path / "converted.png", "raw": tmp_path / "raw.png"}
    Image.fromarray(raw).save(paths["tagged"], icc_profile=icc)
    converted = as_srgb(Image.fromarray(raw), icc)
    Image.fromarray(converted).save(paths["converted"])
    Image.fromarray(raw).save(paths["raw"])
    return paths, raw, converted, icc


def test_the_decoder_converts_an_embedded_profile_to_srgb(tagged):
    paths, raw, converted, _ = tagged
    assert np.abs(converted.astype(int) - raw).max() > 40, "the test profile must differ from sRGB"
    decoded = D.decode_image(paths["tagged"]).rgb
    assert np.array_equal(decoded, converted)
    assert np.array_equal(D.decode_image(paths["tagged"].read_bytes()).rgb, converted)  # an upload's bytes
    assert np.array_equal(D.decode_image(paths["raw"]).rgb, raw)  # no profile: the pixels as stored


def test_a_jpeg_with_a_real_adobe_rgb_profile(test_data_dir):
    """A photo of the test data that embeds Adobe RGB (1998) decodes as LittleCMS converts it."""
    for path in sorted((test_data_dir / "natural").iterdir()):
        with Image.open(path) as im:
            icc = im.info.get("icc_profile")
            if icc and "Adobe RGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))):
                reference, stored = as_srgb(im, icc), np.asarray(im.convert("RGB"))
                break
    else:
        pytest.fail(f"no Adobe RGB photo in {test_data_dir / 'natural'}")
    decoded = D.decode_image(path).rgb
    assert np.array_equal(decoded, reference) and np.abs(decoded.astype(int) - stored).max() > 10


def test_every_entry_point_gets_the_converted_pixels(tagged, tmp_path):
    """The transfer CLI, the explorer's upload and the data stage give the tagged file the pixels of its sRGB
    conversion, not of its stored values."""
    paths, _, _, _ = tagged
    from_cli = transfer_io.load_image(paths["tagged"], "content")
    assert torch.equal(from_cli, transfer_io.load_image(paths["converted"], "content"))
    assert not torch.equal(from_cli, transfer_io.load_image(paths["raw"], "content"))
    assert torch.equal(X.image_from_bytes(paths["tagged"].read_bytes(), "tagged.png"), from_cli)

    prepared = {}
    for name in ("tagged", "converted"):
        (tmp_path / f"styles-{name}").mkdir()
        (tmp_path / f"styles-{name}" / "a.png").symlink_to(paths[name])
        P.prepare_styles(tmp_path / f"styles-{name}", tmp_path / f"out-{name}", PrepConfig(workers=1), progress=False)
        prepared[name] = np.load(tmp_path / f"out-{name}" / "images.npy")
    assert np.array_equal(prepared["tagged"], prepared["converted"])


def test_alpha_is_kept_and_a_profile_that_does_not_fit_is_ignored(tmp_path):
    icc = adobe_like_profile()
    raw = colours()
    rgba = np.dstack([raw, np.full(raw.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png", icc_profile=icc)
    converted = as_srgb(Image.fromarray(raw), icc).astype(np.float64)
    over_white = np.rint(converted * 128 / 255 + 255 * (1 - 128 / 255))  # alpha 128 composited on white
    assert np.abs(D.decode_image(tmp_path / "rgba.png").rgb - over_white).max() <= 1
    grey = raw[..., 0]
    Image.fromarray(grey, "L").save(tmp_path / "grey.png", icc_profile=icc)  # an RGB profile on a greyscale image
    assert np.array_equal(D.decode_image(tmp_path / "grey.png").rgb, np.repeat(grey[..., None], 3, -1))
    Image.fromarray(raw).save(tmp_path / "broken.png", icc_profile=b"not a profile" * 10)
    assert np.array_equal(D.decode_image(tmp_path / "broken.png").rgb, raw)
