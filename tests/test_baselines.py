"""Comparison baselines (issue 9): WCT's transforms, AdaIN's statistics, each method's effect on the style
distance, alpha = 0, decoder training (resume, refusal of a mismatched checkpoint, CLI). CPU, hed VGG16."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from commands import command

from wae_lib.baselines import adain, build, train_config, train_losses, wct
from wae_lib.baselines import common as B
from wae_lib.baselines import train as BT
from wae_lib.config import ConfigError

BASELINES_CMD = command("baselines")


def synthetic_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth content image (gradient + disc) and a high-frequency diagonal-stripe style, uint8-exact."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    disc = (((x - 0.5) ** 2 + (y - 0.45) ** 2) < 0.09).float()
    content = torch.stack([0.3 + 0.5 * x * (1 - disc) + 0.6 * disc, 0.3 + 0.4 * y, 0.5 - 0.2 * disc])
    stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * (x + y) * 8)
    style = torch.stack([stripes, 0.2 + 0 * x, 1 - 0.8 * stripes])
    pair = torch.stack([content, style]).clamp(0, 1)
    pair = (pair * 255).round() / 255  # what a packed uint8 set holds
    return pair[:1], pair[1:]


def write_npy(path, images: torch.Tensor):
    np.save(path, (images.permute(0, 2, 3, 1) * 255).round().byte().numpy())
    return path


@pytest.fixture(scope="module")
def pair():
    return synthetic_pair()


def cov(f: torch.Tensor) -> torch.Tensor:
    f = f.double() - f.double().mean(1, keepdim=True)
    return f @ f.T / (f.shape[1] - 1)


def correlated(c: int, n: int, seed: int, scale: float = 30.0) -> torch.Tensor:
    """C x n features of VGG-like magnitude with correlated channels (a random rotation, spreads 1 to 10)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(c, c, generator=g)).Q
    mix = q * torch.linspace(1, 10, c)
    return scale * (mix @ torch.randn(c, n, generator=g)) + 20 * torch.rand(c, 1, generator=g)


# --------------------------------------------------------------------------------------------------
# WCT maths
# --------------------------------------------------------------------------------------------------
def test_whitening_gives_identity_and_colouring_the_style_covariance():
    content, style = correlated(16, 400, 0), correlated(16, 300, 1)
    w = wct.whiten(content)
    assert torch.allclose(cov(w), torch.eye(16, dtype=torch.float64), atol=1e-3)
    assert w.mean(1).abs().max() < 1e-8
    out = wct.color(w, style)
    cs = cov(style)
    assert (cov(out) - cs).norm() / cs.norm() < 1e-3
    assert torch.allclose(out.mean(1), style.double().mean(1), atol=1e-6)
    assert wct.wct(content, style).dtype == content.dtype


def test_rank_deficient_features_give_no_nan():
    """More channels than positions (relu3_1 at 64 px is 256 x 256) and dead channels: singular covariances."""
    content = correlated(64, 16, 2)
    content[10:20] = 0  # dead ReLU channels
    style = correlated(64, 24, 3)
    style[32:] = style[:32]  # duplicated channels: rank <= 23
    w = wct.whiten(content)
    assert torch.isfinite(w).all()
    ev = torch.linalg.eigvalsh(cov(w))
    assert ev.max() < 1 + 1e-3 and ev.min() > -1e-6  # identity on the span of the features, 0 off it
    assert int((ev > 0.5).sum()) == torch.linalg.matrix_rank(cov(content)).item()
    # colouring full-rank white features reproduces the singular style covariance (+ the eps regulariser)
    white = wct.whiten(correlated(64, 2000, 4))
    out = wct.color(white, style)
    assert torch.isfinite(out).all()
    cs = cov(style)
    assert (cov(out) - cs).norm() / cs.norm() < 2e-3
    mixed = wct.wct(content.view(1, 64, 4, 4), style.view(1, 64, 4, 6), alpha=0.5)
    assert torch.isfinite(mixed).all() and mixed.shape == (1, 64, 4, 4)


def test_wct_on_vgg_features_is_finite_and_matches_style(hed_vgg, pair):
    content, style = pair
    with torch.no_grad():
        fc, fs = hed_vgg(content)["relu3_1"], hed_vgg(style)["relu3_1"]  # 256 channels, 256 positions
    out = wct.wct(fc, fs)
    assert torch.isfinite(out).all()
    flat = lambda f: f[0].reshape(256, -1)  # noqa: E731
    cs = cov(flat(fs))
    assert (cov(flat(out)) - cs).norm() / cs.norm() < 0.01
    assert torch.equal(wct.wct(fc, fs, alpha=0.0), fc)


# --------------------------------------------------------------------------------------------------
# AdaIN maths
# --------------------------------------------------------------------------------------------------
def test_adain_gives_the_style_channel_statistics(hed_vgg, pair):
    content, style = pair
    with torch.no_grad():
        f = hed_vgg(torch.cat([content, content.flip(3)]))["relu3_1"]
        fs = hed_vgg(style)["relu3_1"]
    out = adain.adain(f, fs)  # one style for two content images
    (m_o, s_o), (m_s, s_s) = adain.mean_std(out), adain.mean_std(fs)
    assert torch.allclose(m_o, m_s.expand_as(m_o), atol=1e-3)
    assert torch.allclose(s_o, s_s.expand_as(s_o), rtol=1e-3, atol=1e-2)


# --------------------------------------------------------------------------------------------------
# each method moves the style distance toward the style image; alpha = 0 is the content path
# --------------------------------------------------------------------------------------------------
def test_reinhard_and_gatys_lower_the_style_distance(hed_vgg, pair):
    content, style = pair
    before = B.gram_distance(hed_vgg, content, style).item()
    for name, kw in (("reinhard", {}), ("gatys", {"steps": 20})):
        method = build.build_baseline(name, vgg=hed_vgg, **kw)
        out = method.transfer(content.contiguous(memory_format=torch.channels_last), style)  # any layout
        assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
        assert B.gram_distance(hed_vgg, out, style).item() < 0.5 * before, name
        assert torch.allclose(method.transfer(content, style, alpha=0.0), content, atol=1e-6), name


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pair):
    """AdaIN and WCT decoders briefly trained (train_decoders on a packed set of the two images and their
    flips; a higher lr than the paper's so that 30-40 steps show an effect)."""
    root = tmp_path_factory.mktemp("baselines")
    content, style = pair
    npy = write_npy(root / "pool.npy", torch.cat([content, style, content.flip(2), style.flip(2)]))
    runs = {}
    for method, steps in (("adain", 30), ("wct", 40)):
        cfg = train_config.BaselineTrainConfig(method=method, data=str(npy), width=0.25, batch_size=2, steps=steps, lr=1e-3,
                                     lr_decay=0.0, seed=0, ckpt_every=1000, log_every=10)
        runs[method] = BT.train_decoders(cfg, root / method)
    return runs


@pytest.mark.parametrize("name", ["adain", "wct"])
def test_trained_decoders_lower_the_style_distance(hed_vgg, pair, trained, name):
    """Can fail: untrained decoders give a larger distance than the content image's (measured: AdaIN 1475,
    WCT 5750 vs 1306). The transfer must beat both the content image and the same decoder's alpha = 0 path,
    so the gain comes from AdaIN/WCT, not from the decoder's blur."""
    content, style = pair
    model = build.build_baseline(name, weights=trained[name], vgg=hed_vgg)
    assert model.checkpoint_info["step"] == (30 if name == "adain" else 40)
    out = model.transfer(content, style)
    rec = model.transfer(content, style, alpha=0.0)
    d = lambda x: B.gram_distance(hed_vgg, x, style).item()  # noqa: E731
    assert d(out) < 0.8 * d(content)
    assert d(out) < d(rec)
    assert torch.equal(rec, model.reconstruct(content))  # alpha = 0 is the content path, whatever the style
    assert torch.equal(rec, model.transfer(content, content.flip(3), alpha=0.0))
    two = model.transfer(torch.cat([content, content]), torch.cat([style, content]))
    # pairwise styles; batched convs round differently and whitening amplifies it (WCT: ~1e-3 px)
    assert torch.allclose(two[:1], out, atol=5e-3) and two.shape == (2, 3, 64, 64)


def test_registry_and_untrained_warning(hed_vgg):
    assert set(build.BASELINES) == {"reinhard", "gatys", "adain", "wct"}
    with pytest.raises(ValueError, match="unknown baseline"):
        build.build_baseline("sanet")
    with pytest.warns(UserWarning, match="UNTRAINED"):
        model = build.build_baseline("wct", vgg=hed_vgg)
    assert [m.__class__.__name__ for m in model.decoders["relu1_1"]] == ["FeatureScale", "ReflectionPad2d", "Conv2d"]
    with pytest.raises(ValueError, match="1 content images but 2 style"):
        model.transfer(torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64))


# --------------------------------------------------------------------------------------------------
# training: resume, refusal, CLI
# --------------------------------------------------------------------------------------------------
def test_resume_after_interrupt_matches_straight_run(tmp_path, pair, monkeypatch):
    g = torch.Generator().manual_seed(0)
    npy = write_npy(tmp_path / "set.npy", torch.rand(6, 3, 64, 64, generator=g))
    cfg = train_config.BaselineTrainConfig(method="wct", data=str(npy), width=0.125, batch_size=2, steps=5, ckpt_every=2,
                                 log_every=1)
    straight = BT.train_decoders(cfg, tmp_path / "straight")

    real_step, calls = BT.DecoderTrainer.train_step, []

    def interrupted(self):
        calls.append(self.step)
        if self.step == 3:  # Ctrl-C during step 4: the checkpoint holds step 3
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(BT.DecoderTrainer, "train_step", interrupted)
    with pytest.raises(BT.TrainingInterrupted, match="step 3"):
        BT.train_decoders(cfg, tmp_path / "resumed")
    monkeypatch.setattr(BT.DecoderTrainer, "train_step", real_step)
    resumed = BT.train_decoders(cfg, tmp_path / "resumed")

    a, b = (torch.load(r / "checkpoint.pt", weights_only=True) for r in (straight, resumed))
    assert a["step"] == b["step"] == 5 and a["finished"] and b["finished"]
    assert all(torch.equal(a["decoders"][k], b["decoders"][k]) for k in a["decoders"])
    assert a["config"] == cfg.to_dict() and a["method"] == "wct" and a["vgg_source"] == "hed"
    steps = [json.loads(r)["step"] for r in (resumed / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    meta = json.loads((resumed / "metadata.json").read_text())
    assert meta["resumed_from_step"] == 3 and meta["config"]["method"] == "wct"
    # a finished run is reused; more steps extend it; another config is refused
    assert BT.train_decoders(cfg, resumed) == resumed
    with pytest.raises(ConfigError, match="different config"):
        BT.train_decoders(cfg.replace(lr=1e-3), resumed)


def test_mismatched_checkpoint_is_refused(hed_vgg, trained, tmp_path):
    with pytest.raises(B.BaselineWeightsError, match="holds adain decoders") as err:
        build.load_baseline_weights(wct.WCT(hed_vgg), trained["adain"])
    assert "\n" not in str(err.value)
    ckpt = torch.load(trained["wct"] / "checkpoint.pt", weights_only=True)
    ckpt["vgg_source"] = "imagenet"
    torch.save(ckpt, tmp_path / "other_vgg.pt")
    with pytest.raises(B.BaselineWeightsError, match="VGG source 'imagenet'"):
        build.build_baseline("wct", weights=tmp_path / "other_vgg.pt", vgg=hed_vgg)
    with pytest.raises(B.BaselineWeightsError, match="width"):
        build.load_baseline_weights(wct.WCT(hed_vgg, width=0.5), trained["wct"])
    with pytest.raises(B.BaselineWeightsError, match="do not exist"):
        build.build_baseline("adain", weights=tmp_path / "missing", vgg=hed_vgg)


def test_cli(tmp_path, capsys):
    g = torch.Generator().manual_seed(1)
    npy = write_npy(tmp_path / "set.npy", torch.rand(3, 3, 64, 64, generator=g))
    args = ["--method", "adain", "--data", str(npy), "--out", str(tmp_path / "run"), "--steps", "1", "--width", "0.125",
            "--batch-size", "2", "--no-hflip"]
    assert BASELINES_CMD(args) == 0
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["config"]["hflip"] is False
    args[5] = str(tmp_path / "run2")
    assert BASELINES_CMD([*args[:-3], "--batch-size", "8"]) == 1
    assert "larger than the training set" in capsys.readouterr().err
    assert BASELINES_CMD(["--data", str(tmp_path / "nope.npy"), "--out", str(tmp_path / "x")]) == 1
    assert BASELINES_CMD(["--method", "sanet", "--out", str(tmp_path / "y")]) == 1
    assert "invalid choice: 'sanet'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# issue 18, item 6: a run lock, and unfinished, mismatched or non-finite decoders said in one line
# --------------------------------------------------------------------------------------------------
def test_a_second_run_on_the_same_folder_refuses(tmp_path):
    from wae_lib.model.checkpoint import RunFolderBusy, run_lock

    g = torch.Generator().manual_seed(0)
    npy = write_npy(tmp_path / "set.npy", torch.rand(4, 3, 64, 64, generator=g))
    cfg = train_config.BaselineTrainConfig(method="adain", data=str(npy), width=0.125, batch_size=2, steps=2)
    with run_lock(tmp_path / "run"), pytest.raises(RunFolderBusy, match="in use by another training run"):
        BT.train_decoders(cfg, tmp_path / "run")  # as a second process would, while the first holds the folder
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_unfinished_wrong_width_and_nan_decoders(hed_vgg, trained, tmp_path, capsys):
    ckpt = torch.load(trained["adain"] / "checkpoint.pt", weights_only=True)
    torch.save({**ckpt, "finished": False, "step": 7}, tmp_path / "unfinished.pt")
    build.build_baseline("adain", weights=tmp_path / "unfinished.pt", vgg=hed_vgg)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unfinished (step 7 of 30)" in err[0]
    torch.save({**ckpt, "config": {**ckpt["config"], "width": 0.5}}, tmp_path / "width.pt")  # a hand-edited width
    with pytest.raises(B.BaselineWeightsError, match="do not fit width 0.5") as exc:
        build.build_baseline("adain", weights=tmp_path / "width.pt", vgg=hed_vgg)
    assert "\n" not in str(exc.value)
    nan = {k: v.clone() for k, v in ckpt["decoders"].items()}
    next(v for v in nan.values() if v.is_floating_point()).fill_(float("nan"))
    torch.save({**ckpt, "decoders": nan}, tmp_path / "nan.pt")
    with pytest.raises(B.BaselineWeightsError, match="hold NaN or inf"):
        build.build_baseline("adain", weights=tmp_path / "nan.pt", vgg=hed_vgg)


# --------------------------------------------------------------------------------------------------
# issue 17, item 1: training until the held-out loss stops improving, a measured lr probe, shipped decoders
# --------------------------------------------------------------------------------------------------
def test_plateau_rule():
    falling = [(i, 10.0 / (i + 1)) for i in range(6)]
    assert not train_losses.plateau(falling, patience=2, min_improvement=0.01)
    flat = falling + [(6, falling[-1][1] * 0.999), (7, falling[-1][1] * 1.2)]
    assert train_losses.plateau(flat, patience=2, min_improvement=0.01)  # two validations without a 1 % gain
    assert not train_losses.plateau(flat, patience=0, min_improvement=0.01)  # 0: never stop early
    assert not train_losses.plateau(flat[:2], patience=2, min_improvement=0.01)  # too short to say


def fake_data_root(root, n=6):
    """A data root with a packed mixed set and the two held-out sets the validation reads."""
    from wae_lib.data.layout import set_path

    g = torch.Generator().manual_seed(3)
    for name, k in (("mixed", n), ("content_eval", 4), ("natural_eval", 4)):
        path = set_path(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_npy(path, torch.rand(k, 3, 64, 64, generator=g))
    return root


def test_validation_stops_at_a_plateau_and_resumes_its_history(tmp_path, capsys):
    root = fake_data_root(tmp_path / "data")
    # lr 0: the decoders never change, so the validation loss is flat and the run must stop after `patience`
    cfg = train_config.BaselineTrainConfig(method="adain", data="mixed", data_root=str(root), width=0.125, batch_size=2,
                                 steps=50, lr=1e-12, val_every=2, val_images=4, patience=2, log_every=2)
    out = BT.train_decoders(cfg, tmp_path / "run")
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["converged"] and ckpt["finished"] and ckpt["step"] == 6  # validations at 2, 4, 6: no gain after 2
    assert [s for s, _ in ckpt["val_history"]] == [2, 4, 6]
    assert "converged at step 6" in capsys.readouterr().err
    rows = [json.loads(r) for r in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_loss" in r] == [2, 4, 6]
    BT.train_decoders(cfg, out)  # a converged run is reused, not extended
    assert "converged decoders found (step 6)" in capsys.readouterr().err
    # a real rate keeps improving: the run goes to its step budget, and a resumed run keeps the history
    cfg2 = cfg.replace(lr=1e-3, steps=4, patience=50)
    BT.train_decoders(cfg2, tmp_path / "run2")
    BT.train_decoders(cfg2.replace(steps=8), tmp_path / "run2")
    ckpt = torch.load(tmp_path / "run2" / "checkpoint.pt", weights_only=True)
    assert [s for s, _ in ckpt["val_history"]] == [2, 4, 6, 8] and not ckpt["converged"]
    with pytest.raises(ConfigError, match="val_sets"):
        BT.train_decoders(cfg.replace(val_sets="style_eval"), tmp_path / "run3")
    with pytest.raises(ConfigError, match="patience"):
        cfg.replace(val_every=0).validate()


def test_lr_probe_export_and_shipped_loading(tmp_path, monkeypatch, hed_vgg, capsys):
    from wae_lib.baselines import shipped as SB
    from wae_lib.report import compare as C

    root = fake_data_root(tmp_path / "data")
    args = ["--method", "wct", "--data", "mixed", "--data-root", str(root), "--width", "0.125", "--batch-size", "2",
            "--steps", "4", "--val-every", "2", "--val-images", "4", "--log-every", "1", "--out", str(tmp_path / "wct")]
    assert BASELINES_CMD([*args, "--lr-probe", "1e-5,1e-3", "--probe-steps", "3"]) == 0
    probe = json.loads((tmp_path / "wct" / "lr_probe.json").read_text())
    assert set(probe["loss"]) == {"1e-05", "0.001"} and probe["measure"] == "validation loss"
    chosen = float(min(probe["loss"].items(), key=lambda kv: kv[1])[0])
    assert probe["chosen"] == chosen
    assert torch.load(tmp_path / "wct" / "checkpoint.pt", weights_only=True)["config"]["lr"] == chosen
    assert BASELINES_CMD([*args, "--lr-probe", "1e-5,1e-3", "--steps", "6"]) == 0  # resumed: the probe's choice is reused
    err = capsys.readouterr().err
    assert "from its earlier probe" in err and "baseline wct: 6 steps (of 6)" in err  # where it stopped
    assert BASELINES_CMD([*args, "--lr-probe", "fast"]) == 1
    # shipped into a temporary weights folder: notebook 07's "shipped" resolves there
    monkeypatch.setattr(B, "WEIGHTS_DIR", tmp_path / "weights")  # where it ships and build_baseline looks
    (tmp_path / "weights").mkdir()
    path = SB.export_baseline(tmp_path / "wct")
    assert path == tmp_path / "weights" / "baseline-wct.pt"
    shipped = torch.load(path, weights_only=True)
    assert shipped["shipped"]["steps"] == 6 and shipped["shipped"]["images"] == 12
    assert not shipped["converged"] and "optimizer" in shipped and shipped["resume"]["lr_probe"]  # it can carry on
    assert [s for s, _ in shipped["shipped"]["val_history"]] == [2, 4, 6] and shipped["shipped"]["lr"] == chosen
    model = build.build_baseline("wct", weights="shipped", vgg=hed_vgg)
    method = C.decoder_method("wct", model, "shipped", "WCT")
    assert method.training_steps == 6 and method.training_images == 12 and "shipped (not converged)" == method.weights
    assert method.final_loss == pytest.approx(shipped["shipped"]["final_loss"]) and method.final_loss > 0
    card = SB.write_card(tmp_path / "weights").read_text()
    assert "| WCT (Li et al. 2017) | `mixed` set (6 images) | 6 steps of 2 (12 images)" in card
    assert "NOT converged" in card and "probe of 1e-05, 0.001 x 3 steps" in card
    psnr = shipped["shipped"]["reconstruction_psnr"]  # decoder(encoder(x)) of the validation images, in the card
    assert 0 < psnr < 100 and f"| {psnr:.1f} dB |" in card
    assert SB.plot_curves({"wct": path}, tmp_path / "curves.png").stat().st_size > 1000
    with pytest.raises(B.BaselineWeightsError, match="no shipped adain decoders"):
        build.build_baseline("adain", weights="shipped", vgg=hed_vgg)
    # a new checkout has no run folder: training carries on from the shipped file, exactly as the run itself would
    cont = [a if a != str(tmp_path / "wct") else str(tmp_path / "wct-new") for a in args]
    assert BASELINES_CMD([*cont, "--lr-probe", "1e-5,1e-3", "--steps", "8", "--continue-from", "shipped"]) == 0
    err = capsys.readouterr().err
    assert "continuing the shipped wct decoders" in err and "from its earlier probe" in err  # no second probe
    assert BASELINES_CMD([*args, "--lr-probe", "1e-5,1e-3", "--steps", "8"]) == 0  # the original folder, resumed as far
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in ("wct", "wct-new"))
    assert a["step"] == b["step"] == 8 and all(torch.equal(a["decoders"][k], b["decoders"][k]) for k in a["decoders"])
    assert (tmp_path / "wct" / "log.jsonl").read_text() != ""
    steps = [json.loads(r)["step"] for r in (tmp_path / "wct-new" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 8 and 1 in steps  # the shipped run's log, then its continuation
    assert not SB.restore_run("shipped", tmp_path / "wct-new", "wct")  # a folder with its own checkpoint is kept
    with pytest.raises(B.BaselineWeightsError, match="not adain"):
        SB.restore_run(path, tmp_path / "other", "adain")
    ckpt = torch.load(tmp_path / "wct" / "checkpoint.pt", weights_only=True)
    torch.save({**ckpt, "finished": False}, tmp_path / "wct" / "checkpoint.pt")
    with pytest.raises(B.BaselineWeightsError, match="unfinished"):
        SB.export_baseline(tmp_path / "wct")
    # converged decoders ship without their training state; there is nothing to carry on
    torch.save({**ckpt, "converged": True}, tmp_path / "wct" / "checkpoint.pt")
    slim = torch.load(SB.export_baseline(tmp_path / "wct"), weights_only=True)
    assert "optimizer" not in slim and "rng" not in slim and "resume" not in slim
    assert not SB.restore_run("shipped", tmp_path / "wct-3", "wct") and not (tmp_path / "wct-3").exists()
    assert "converged (step 8) and carry no training state" in capsys.readouterr().err
