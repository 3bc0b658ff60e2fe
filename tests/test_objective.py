"""Our training beside the paper's (issue 16): the paper's objective is unchanged, the swapped-pair terms,
the latent cycle, the decoder's style modulation and the content encoder's instance norm do what they say."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_train import smooth_images  # one home for the tests' synthetic images

from wae_lib.config import Config, ConfigError, profile_config
from wae_lib.model import losses
from wae_lib.model import run as RUN
from wae_lib.model.networks import ContentEncoder, Decoder, StyleModulation
from wae_lib.model.wae import WAEStyle
from wae_lib.train import balance
from wae_lib.train import run_folder as TRAIN
from wae_lib.train import trainer as T
from wae_lib.train.distributed import DistInfo

# The first four steps of the smoke profile with the default running balance (HED VGG16) on smooth_images(24) after
# torch.manual_seed(0), recorded with wae_lib at commit 70f47bf, before the swapped-pair objective existed.
# On another CPU the same code gives other float32 rounding (oneDNN picks its kernels by instruction set), and four
# Adam steps amplify it: the code of commit a97cf79 on an AMD EPYC differs from these by up to 5.4e-4 relative
# (measured 2026-12-01). RECORD_REL is that noise with a margin; the modulated decoder moves them by 0.2. The exact
# same-machine check is test_paper_objective_ignores_every_swap_setting.
RECORD_REL = 2e-3
PAPER_STEPS = [
    {"pixel": 0.0657818094, "feature/relu2_1": 6737.9858398, "gram/relu3_1": 33.947086334, "penalty": 0.3271490335,
     "loss": 6.271490097},
    {"pixel": 0.065092437, "feature/relu2_1": 4793.8378906, "gram/relu3_1": 17.523006439, "penalty": 1.003572464,
     "loss": 12.525505066},
    {"pixel": 0.0734372362, "feature/relu2_1": 6222.1435547, "gram/relu3_1": 29.805784225, "penalty": 0.7471003532,
     "loss": 10.74495697},
    {"pixel": 0.0693390742, "feature/relu2_1": 5635.8876953, "gram/relu3_1": 22.772026062, "penalty": 0.8144780397,
     "loss": 10.966619492},
]
SWAP_TERMS = ("swap_gram/relu1_1", "swap_gram/relu2_1", "swap_gram/relu3_1", "swap_content/relu3_1")


def trainer(tmp_path, **overrides) -> T.Trainer:
    path = tmp_path / "d.npy"
    np.save(path, smooth_images(24))
    torch.manual_seed(0)
    cfg = profile_config("smoke", data=str(path), sample_every=0, vgg_source="hed", balance="running", **overrides)
    return T.Trainer(cfg, tmp_path / "run", DistInfo())


def test_paper_objective_gives_the_same_losses_as_before(tmp_path):
    """Config() defaults are the paper's training: the same loss terms, step by step, as before issue 16."""
    cfg = Config()
    assert (cfg.objective, cfg.style_injection, cfg.content_norm, cfg.w_cycle) == ("paper", "concat", "none", 0.0)
    tr = trainer(tmp_path)
    for want in PAPER_STEPS:
        got = tr.train_step()
        assert not any(k.startswith(("swap", "cycle")) for k in got)
        for k, v in want.items():
            assert float(got[k]) == pytest.approx(v, rel=RECORD_REL), k
    assert tr.model.decoder.mods is None and not tr.model.content_encoder.instance_norm


def test_paper_objective_ignores_every_swap_setting(tmp_path):
    """Bit for bit on this machine: under objective="paper" the swapped-pair and cycle settings change nothing."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = trainer(tmp_path / "a")
    tuned = trainer(tmp_path / "b", w_swap_gram=3.0, w_swap_content=5.0, swap_content_layers=("relu1_1",),
                    w_cycle=2.0)
    for _ in range(3):
        a, b = plain.train_step(), tuned.train_step()
        assert set(a) == set(b) and all(float(a[k]) == float(b[k]) for k in a)


def test_swap_terms_score_the_partner_style_and_the_own_structure():
    g = torch.Generator().manual_seed(0)
    feats = {n: torch.rand(4, 6, 8, 8, generator=g) for n in ("a", "b")}
    grams = {n: losses.gram_matrix(f) for n, f in feats.items()}
    same = losses.swap_terms(feats, feats, grams, ("a", "b"), ("b",))
    assert set(same) == {"swap_gram/a", "swap_gram/b", "swap_content/b"}
    assert all(float(v) < 1e-10 for v in same.values())
    # the content term ignores each channel's mean and spread (the style's), not the layout
    recoloured = {n: 3.0 * f + 0.5 for n, f in feats.items()}
    assert float(losses.swap_terms(recoloured, feats, grams, ("a",), ("b",))["swap_content/b"]) < 1e-8
    shuffled = {n: f.flip(-1) for n, f in feats.items()}
    assert float(losses.swap_terms(shuffled, feats, grams, ("a",), ("b",))["swap_content/b"]) > 0.1
    # the Gram term is against the partner's Grams: the rolled batch's
    partner = torch.roll(torch.arange(4), 1)
    terms = losses.swap_terms(feats, feats, {n: g[partner] for n, g in grams.items()}, ("a",), ("b",))
    assert float(terms["swap_gram/a"]) == pytest.approx(float(torch.mean((grams["a"] - grams["a"][partner]) ** 2)))


def test_cycle_terms_do_not_move_the_targets():
    c = torch.randn(3, 4, requires_grad=True)
    s = torch.randn(3, 5, requires_grad=True)
    c2, s2 = torch.randn(3, 4, requires_grad=True), torch.randn(3, 5, requires_grad=True)
    terms = losses.cycle_terms(c2, s2, c, s)
    sum(terms.values()).backward()
    assert c.grad is None and s.grad is None and c2.grad is not None and s2.grad is not None
    assert float(terms["cycle/content"].detach()) == pytest.approx(float(((c2 - c) ** 2).mean().detach()))


def test_term_targets_give_the_swap_terms_their_shares():
    t = losses.term_targets(["a", "b"], gram_layer_weights=(1, 3), swap_gram=2.0, swap_content=1.0,
                            content_layers=("a", "b"), cycle=0.5)
    assert t["swap_gram/a"] == pytest.approx(0.5) and t["swap_gram/b"] == pytest.approx(1.5)
    assert t["swap_content/a"] == t["swap_content/b"] == pytest.approx(0.5)
    assert t["cycle/content"] == t["cycle/style"] == pytest.approx(0.25)
    paper = balance.loss_targets(profile_config("smoke", w_cycle=1.0))  # objective=paper: no swap terms at all
    assert not any(k.startswith(("swap", "cycle")) for k in paper)


def test_style_modulation_starts_as_instance_norm_and_decoder_reads_the_style_at_every_stage():
    mod = StyleModulation(style_dim=5, channels=3)
    h = torch.randn(2, 3, 4, 4)
    assert torch.allclose(mod(h, torch.randn(2, 5)), torch.nn.functional.instance_norm(h), atol=1e-6)
    dec = Decoder(latent_dim=13, width=0.0625, style_dim=5)
    assert len(dec.mods) == 4
    z = torch.randn(2, 13)
    with pytest.raises(ValueError, match="z_style"):
        dec(z)
    for m in dec.mods:  # trained modulations: the style latent alone changes the output's statistics
        torch.nn.init.normal_(m.affine.weight, std=0.5)
    a, b = dec(z, torch.randn(2, 5)), dec(z, torch.randn(2, 5))
    assert a.shape == (2, 3, 64, 64) and (a - b).abs().mean() > 1e-3


def test_instance_norm_content_encoder_normalises_every_conv():
    enc = ContentEncoder(content_dim=8, width=0.125, norm="instance")
    seen = []
    for conv in (enc.conv1, enc.conv2, enc.conv3, enc.conv4, enc.conv5):
        conv.register_forward_hook(lambda m, i, o: seen.append(o))
    mean, _ = enc(torch.rand(2, 3, 64, 64))
    assert len(seen) == 5 and mean.shape == (2, 8)
    # what the next layer reads is normalised per image and channel: the conv outputs are, once IN is applied
    assert enc._norm(seen[1]).mean((2, 3)).abs().max() < 1e-5


def test_config_names_bad_method_values():
    for field, value in (("objective", "cyclegan"), ("style_injection", "adain"), ("content_norm", "batch")):
        with pytest.raises(ConfigError, match=field):
            Config(**{field: value})
    with pytest.raises(ConfigError, match="swap_content_layers"):
        Config(objective="swap", swap_content_layers=("relu4_2",))
    assert Config(style_layers=("relu1_1",)).objective == "paper"  # the paper's objective never reads them
    with pytest.raises(ConfigError, match="w_cycle"):
        Config(w_cycle=-1)


def test_swap_step_adds_the_swap_and_cycle_terms_at_their_shares(tmp_path):
    tr = trainer(tmp_path, objective="swap", style_injection="modulate", content_norm="instance", w_cycle=1.0)
    terms = [tr.train_step() for _ in range(3)][-1]
    for k in (*SWAP_TERMS, "cycle/content", "cycle/style"):
        assert k in terms and torch.isfinite(terms[k]) and float(terms[k]) > 0, k
    tr.balance.sync()
    raw = {k: float(terms[k]) for k in tr.balance.names}
    targets = balance.loss_targets(tr.cfg)
    for k in SWAP_TERMS:  # the running balance holds each at about its share
        assert 0.3 * targets[k] < tr.balance.state.weights[k] * raw[k] < 3 * targets[k], k
    # the modulation's parameters learn (they start at zero)
    assert any(float(m.affine.weight.detach().abs().max()) > 0 for m in tr.model.decoder.mods)


def test_swap_run_trains_resumes_and_transfers(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, smooth_images(24))
    cfg = profile_config("smoke", data=str(path), sample_every=0, objective="swap", style_injection="modulate",
                         content_norm="instance")
    run = TRAIN.train(cfg, tmp_path / "run")
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(k in rows[-1] for k in SWAP_TERMS)
    saved = json.loads((run / "config.json").read_text())
    assert (saved["objective"], saved["style_injection"], saved["content_norm"]) == ("swap", "modulate", "instance")
    model = RUN.load_model(run)
    assert isinstance(model, WAEStyle) and model.decoder.mods is not None
    x = torch.from_numpy(smooth_images(3, seed=5)).permute(0, 3, 1, 2).float() / 255
    y = model.transfer(x, x[:1])
    assert y.shape == (3, 3, 64, 64) and torch.isfinite(y).all()
    assert not torch.allclose(model.transfer(x, x[1:2]), y)  # another style, another output
    longer = cfg.replace(steps=cfg.steps + 2)  # resumes from the checkpoint with the swap objective
    TRAIN.train(longer, run)
    assert RUN.load_model(run).checkpoint_info["step"] == longer.steps


def test_texture_patches_are_crops_of_their_own_image():
    from wae_lib.model.texture_critic import PatchCritic, random_patches, texture_patches

    images = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    crops = random_patches(images, 5, 8, g)
    assert crops.shape == (2, 5, 3, 8, 8)
    for i in range(2):
        for crop in crops[i]:  # each one a window of image i: its top-left value fixes where
            t, s = divmod(int(crop[0, 0, 0] - images[i, 0, 0, 0]), 16)
            assert torch.equal(crop, images[i, :, t:t + 8, s:s + 8])
    with pytest.raises(ValueError, match="larger than"):
        random_patches(images, 1, 17, g)
    fake, real, refs = texture_patches(images, images.flip(0), 8, 3, g)
    assert fake.shape == real.shape == (2, 3, 8, 8) and refs.shape == (2, 3, 3, 8, 8)
    assert PatchCritic(width=4)(fake, refs).shape == (2,)


def test_texture_critic_term_joins_at_its_share_trains_and_resumes(tmp_path):
    assert "texture" not in balance.loss_targets(profile_config("smoke", objective="swap"))
    with pytest.raises(ConfigError, match="texture_patch"):
        Config(texture_patch=65)
    with pytest.raises(ConfigError, match="texture_patch"):
        Config(texture_patch=4)
    tr = trainer(tmp_path, objective="swap", style_injection="modulate", content_norm="instance", w_texture=1.0,
                 texture_patch=8)
    assert balance.loss_targets(tr.cfg)["texture"] == 1.0
    before = [p.detach().clone() for p in tr.texture.parameters()]
    critic_step, seen = tr.texture_step, []

    def grads():
        return [None if p.grad is None else p.grad.clone() for p in tr.texture.parameters()]

    def checked_step(*a):  # the generator's term adds no gradient to the critic: it finds what its last step left
        entry = grads()
        out = critic_step(*a)
        seen.append((entry, grads()))
        return out

    tr.texture_step = checked_step
    terms = [tr.train_step() for _ in range(3)][-1]
    assert all(g is None for g in seen[0][0]) and all(g is not None for g in seen[0][1])
    for (_, left), (entry, _) in zip(seen, seen[1:]):
        assert all(torch.equal(a, b) for a, b in zip(left, entry))
    for k in ("texture", "texture_critic"):  # the generator's term and the critic's own loss, both near log 2
        assert torch.isfinite(terms[k]) and 0.1 < float(terms[k]) < 3, (k, terms[k])
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.texture.parameters()))  # the critic learns
    in_main = {id(p) for g in tr.opt.param_groups for p in g["params"]}
    assert in_main and not in_main & {id(p) for p in tr.texture.parameters()}  # the main optimizer never steps it
    tr.out.mkdir()
    tr.save()
    ckpt = torch.load(tr.out / T.CHECKPOINT, weights_only=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    again = trainer(tmp_path / "b", objective="swap", style_injection="modulate", content_norm="instance",
                    w_texture=1.0, texture_patch=8)
    again.resume(ckpt)
    for a, b in zip(tr.texture.parameters(), again.texture.parameters()):
        assert torch.equal(a, b)
    assert again.texture_opt.state_dict()["state"]  # Adam's moments came back too
    paper = trainer(tmp_path / "c", w_texture=1.0)  # the paper's objective has no swapped output: no critic
    assert paper.texture is None and "texture" not in paper.train_step()
