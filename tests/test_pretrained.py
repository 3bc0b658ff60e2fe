"""The model shipped in the package: loads offline with one call, matches its card, is not collapsed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from wae_lib import load_model
from wae_lib.pretrained import PRETRAINED_FILE


@pytest.fixture(scope="module")
def pretrained():
    assert PRETRAINED_FILE.is_file(), f"the repository ships {PRETRAINED_FILE}; it is missing"
    return load_model("pretrained")


def real_faces(test_data_dir, n: int = 6) -> torch.Tensor:
    files = sorted((test_data_dir / "faces").glob("*.jpg"))[:n]
    arr = np.stack([np.asarray(Image.open(f).convert("RGB").crop((25, 45, 153, 173)).resize((64, 64))) for f in files])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255


def test_shipped_file_is_small_and_documented(pretrained):
    assert PRETRAINED_FILE.stat().st_size < 25 * 2**20
    card = (PRETRAINED_FILE.parent / "MODEL_CARD.md").read_text()
    assert pretrained.provenance["run"] in card and "non-commercial" in card
    assert pretrained.config.profile == "reference" and pretrained.checkpoint_info["step"] == pretrained.config.steps


def test_shipped_model_transfers_depend_on_content_and_style(pretrained, test_data_dir):
    """Guards against the collapses seen in training (black or flat outputs; one face for every content)."""
    faces = real_faces(test_data_dir)
    recon = pretrained.reconstruct(faces)
    assert recon.std() > 0.1  # not a flat image
    psnr = 10 * torch.log10(1 / (recon - faces).pow(2).flatten(1).mean(1))
    assert psnr.mean() > 14  # recognisably the input's layout and colours (a flat grey image scores ~12)
    a = pretrained.transfer(faces, faces[:1])
    b = pretrained.transfer(faces, faces[1:2].flip(1))  # another style: the channels swapped
    assert (a - b).abs().mean() > 0.01  # the style latent matters
    assert (a[0] - a[1:]).abs().mean() > 0.01  # the content latent matters
