"""One image decoder for every entry point (issue 18, item 7): the explorer's uploads get the CLI's pixels, and
a pixel-count cap refuses images that would take gigabytes to decode, in one line and without PIL's warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from wae_lib import utils
from wae_lib.commands import transfer as transfer_io
from wae_lib.data import decode as D
from wae_lib.report import explore as X


def gradient(h: int = 80, w: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (x / (w - 1) * 0.6 + y / (h - 1) * 0.4)  # in [0, 1], mean 0.5


def write(path, kind: str):
    g = gradient()
    if kind == "16-bit grey PNG":
        Image.fromarray((g * 65535).astype(np.uint16)).save(path)
    elif kind == "float TIFF":
        Image.fromarray(g.astype(np.float32), mode="F").save(path)
    else:  # RGBA, half transparent: composited on white
        rgba = np.dstack([(g * 255).astype(np.uint8)] * 3 + [np.full(g.shape, 128, np.uint8)])
        Image.fromarray(rgba, mode="RGBA").save(path)
    return path


@pytest.mark.parametrize(("kind", "suffix"), [("16-bit grey PNG", ".png"), ("float TIFF", ".tif"),
                                              ("RGBA PNG", ".png")])
def test_the_explorer_gives_the_model_the_clis_pixels(tmp_path, kind, suffix):
    path = write(tmp_path / f"image{suffix}", kind)
    from_cli = transfer_io.load_image(path, "content")
    from_upload = X.image_from_bytes(path.read_bytes(), path.name)
    assert torch.equal(from_cli, from_upload)
    expected = 0.5 if kind != "RGBA PNG" else 0.5 * 128 / 255 + (1 - 128 / 255)  # alpha over white
    assert from_upload.mean().item() == pytest.approx(expected, abs=0.03), kind  # not white, not black


def test_images_over_the_pixel_cap_are_refused_in_one_line(tmp_path, capsys):
    side = 9500  # 90 M pixels: above PIL's warning threshold, below its error
    path = tmp_path / "huge.png"
    Image.new("L", (side, side)).save(path, optimize=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no PIL DecompressionBombWarning may escape
        with pytest.raises(D.Rejected, match="90 M pixels"):
            D.decode_image(path)
        with pytest.raises(utils.UserError, match="huge.png cannot be read: too large"):
            transfer_io.load_image(path, "content")
        with pytest.raises(ValueError, match="huge.png: cannot be read: too large"):
            X.image_from_bytes(path.read_bytes(), "huge.png")
    assert "DecompressionBomb" not in capsys.readouterr().err
    jpeg = tmp_path / "big.jpg"  # a large JPEG is decoded at reduced size (draft): under the cap, accepted
    Image.new("RGB", (9000, 8000), (90, 120, 150)).save(jpeg, quality=80)
    assert transfer_io.load_image(jpeg, "content").shape == (3, 64, 64)
