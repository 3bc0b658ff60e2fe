"""The paper's networks: every layer shape of Tables 1-2, parameter counts, and the public API."""

from __future__ import annotations

import pytest
import torch

from wae_lib.config import CONTENT_DIMS_PAPER, Config
from wae_lib.model.networks import ContentEncoder, Decoder, SubPixelConv, count_parameters
from wae_lib.model.wae import WAEStyle

TABLE1_GATED = {  # Table 1 as printed: conv outputs (C, H, W)
    "conv1": (8, 64, 64), "conv2": (32, 32, 32), "conv3": (128, 16, 16), "conv4": (256, 8, 8), "conv5": (512, 4, 4)}
TABLE1_UNGATED = {**TABLE1_GATED}
TABLE2 = {"fc": (4 * 4 * 1024,), "up1": (512, 8, 8), "res": (512, 8, 8), "up2": (256, 16, 16),
          "up3": (128, 32, 32), "up4": (64, 64, 64), "out": (3, 64, 64)}


def record_shapes(module: torch.nn.Module, names) -> tuple[dict, list]:
    shapes, handles = {}, []
    for name in names:
        sub = getattr(module, name)
        handles.append(sub.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))))
    return shapes, handles


@pytest.mark.parametrize("content_dim", CONTENT_DIMS_PAPER)
@pytest.mark.parametrize("gated", [True, False])
def test_table1_layer_shapes(content_dim, gated):
    enc = ContentEncoder(content_dim, gated=gated)
    shapes, _ = record_shapes(enc, list(TABLE1_GATED) + ["fc"])
    mean, logvar = enc(torch.rand(2, 3, 64, 64))
    assert {k: shapes[k] for k in TABLE1_GATED} == TABLE1_GATED
    assert shapes["fc"] == (2 * content_dim,)  # "content x 2": mean and log-variance
    assert mean.shape == logvar.shape == (2, content_dim)
    next_inputs = [enc.conv3.in_channels, enc.conv4.in_channels, enc.conv5.in_channels, enc.fc.in_features]
    if gated:  # Table 1's input column: 32, 64, 128, then 4x4x256
        assert next_inputs == [32, 64, 128, 4 * 4 * 256]
    else:  # the output column taken literally
        assert next_inputs == [32, 128, 256, 4 * 4 * 512]
    print(f"content encoder (gated={gated}, content={content_dim}): {count_parameters(enc):,} parameters")


@pytest.mark.parametrize("content_dim", CONTENT_DIMS_PAPER)
def test_table2_layer_shapes(content_dim):
    dec = Decoder(content_dim + 192)
    shapes, _ = record_shapes(dec, list(TABLE2))
    y = dec(torch.randn(2, content_dim + 192))
    assert shapes == TABLE2
    assert len(dec.res) == 3
    assert y.shape == (2, 3, 64, 64) and 0 <= y.min() and y.max() <= 1  # sigmoid output
    print(f"decoder (latent {content_dim}+192): {count_parameters(dec):,} parameters")


def test_style_encoder_outputs_192_latents(hed_vgg):
    model = WAEStyle(Config(content_dim=32, width=0.25), vgg=hed_vgg, verbose=False)
    mean, logvar = model.encode_style(torch.rand(3, 3, 64, 64))
    assert mean.shape == logvar.shape == (3, 192)  # SPEC §3: 64 per layer x 3 layers
    nets = model.style_encoder.nets
    assert list(nets) == ["relu1_1", "relu2_1", "relu3_1"]
    for name, channels in zip(nets, (64, 128, 256)):
        linears = [m for m in nets[name].net if hasattr(m, "parametrizations")]
        assert len(linears) == 3  # "3 stages"
        assert linears[0].in_features == channels * (channels + 1) // 2  # upper triangle of the Gram
        assert linears[-1].out_features == 64 * 2
    print(f"style encoder: {count_parameters(model.style_encoder):,} parameters")


def test_weight_norm_throughout(tiny_config, hed_vgg):
    model = WAEStyle(tiny_config, vgg=hed_vgg, verbose=False)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and m not in
              set(model.vgg.modules())]
    assert layers and all(hasattr(m, "parametrizations") and "weight" in m.parametrizations for m in layers)


def test_logvar_is_capped():
    enc = ContentEncoder(8, width=0.25, logvar_max=-4.0)
    with torch.no_grad():
        enc.fc.parametrizations.weight.original0.mul_(1000)  # push raw outputs far out
    _, logvar = enc(torch.rand(4, 3, 64, 64))
    assert logvar.max() <= -4.0


def test_icnr_subpixel_starts_as_nearest_neighbour():
    up = SubPixelConv(4, 2)
    y = up(torch.rand(1, 4, 5, 5))
    assert torch.allclose(y[..., 0::2, 0::2], y[..., 1::2, 1::2], atol=1e-6)
    assert torch.allclose(y[..., 0::2, 0::2], y[..., 0::2, 1::2], atol=1e-6)


def test_default_model_builds_offline_and_says_its_vgg_source(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no cached ImageNet weights
    model = WAEStyle()
    assert model.vgg_source.name == "hed" and model.config.vgg_source == model.vgg.source
    assert "HED" in capsys.readouterr().err
    x = torch.rand(2, 3, 64, 64)
    assert model.reconstruct(x).shape == (2, 3, 64, 64)
    print(f"default WAEStyle: {count_parameters(model):,} trainable parameters")


def test_reconstruct_and_transfer_io(tiny_config, hed_vgg, images):
    model = WAEStyle(tiny_config, vgg=hed_vgg, verbose=False).eval()
    rec = model.reconstruct(images)
    out = model.transfer(images, images[:1])
    assert rec.shape == out.shape == images.shape
    assert rec.dtype == out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert model.interpolate_styles(images, images[:1], images[1:2], [0, 0.5, 1]).shape == (3, *images.shape)


def test_content_latent_unchanged_when_only_style_changes(tiny_config, hed_vgg, images):
    model = WAEStyle(tiny_config, vgg=hed_vgg, verbose=False).eval()
    grabbed = []
    model.content_encoder.register_forward_hook(lambda m, i, o: grabbed.append(o[0].clone()))
    a = model.transfer(images, images[:1])
    b = model.transfer(images, torch.rand(1, 3, 64, 64))
    assert torch.equal(grabbed[0], grabbed[1])
    assert not torch.allclose(a, b)  # ... while the output does follow the style image


def test_bad_inputs_are_named(tiny_config, hed_vgg, images):
    model = WAEStyle(tiny_config, vgg=hed_vgg, verbose=False)
    with pytest.raises(ValueError, match="content must be an N x 3 x 64 x 64"):
        model.transfer(torch.rand(2, 3, 32, 32), images[:1])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        model.reconstruct(images * 255)
    with pytest.raises(ValueError, match="style must hold 1 image"):
        model.transfer(images, images[:2])


def test_config_rejects_bad_values():
    from wae_lib.config import ConfigError

    with pytest.raises(ConfigError, match="content_dim"):
        Config(content_dim=0)
    with pytest.raises(ConfigError, match="penalty"):
        Config(penalty="kl")
    with pytest.raises(ValueError, match="unknown config field"):
        Config.from_dict({"nope": 1})
    cfg = Config(content_dim=64)
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_content_latent_varies_across_images_at_init():
    """The content path must carry signal from the start, or the decoder learns to ignore it."""
    torch.manual_seed(0)
    enc = ContentEncoder(128, width=0.25)
    g = torch.Generator().manual_seed(1)
    low = torch.rand(16, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(low, size=64, mode="bilinear", align_corners=False)
    with torch.no_grad():
        mean, _ = enc(x)
    assert mean.std(0).mean() > 0.02, f"content latent std across images at init: {mean.std(0).mean():.5f}"


def test_resize_decoder_has_no_checkerboard_at_init():
    """Nearest-x2 + conv upsampling: a constant latent map gives no 2-px periodic pattern (Odena et al. 2016)."""
    from wae_lib.model.networks import ResizeConv

    torch.manual_seed(0)
    up = ResizeConv(4, 2)
    y = up(torch.ones(1, 4, 6, 6))[..., 2:-2, 2:-2]  # interior: away from zero padding
    assert torch.allclose(y, y[..., :1, :1].expand_as(y), atol=1e-5)
    dec = Decoder(24, width=0.0625, upsample="resize")
    assert dec(torch.randn(2, 24)).shape == (2, 3, 64, 64)


def test_gram_standardization_gives_unit_style_latent(tiny_config, hed_vgg):
    """With standardised Gram inputs and data init, the style latent starts with ~unit std across images."""
    torch.manual_seed(0)
    low = torch.rand(32, 3, 4, 4)
    x = torch.nn.functional.interpolate(low, size=64, mode="bicubic", align_corners=False).clamp(0, 1)
    model = WAEStyle(tiny_config.replace(gram_standardize=True), vgg=hed_vgg, verbose=False)
    model.data_init(x)
    z_style = model.encode_style(x)[0]
    z_content = model.encode_content(x)[0]
    assert z_style.std(0).mean().item() == pytest.approx(1.0, abs=0.15)
    assert z_content.std(0).mean().item() == pytest.approx(1.0, abs=0.15)
    state = model.state_dict()
    assert any(k.endswith("in_std") for k in state)  # the statistics travel with the checkpoint
