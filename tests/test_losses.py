"""Loss maths against naive reference implementations (SPEC §2, §6)."""

from __future__ import annotations

import math

import pytest
import torch

from wae_lib.model import losses


def naive_gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    out = torch.zeros(n, c, c, dtype=torch.float64)
    for b in range(n):
        for i in range(c):
            for j in range(c):
                out[b, i, j] = (f[b, i].double() * f[b, j].double()).sum() / (c * h * w)
    return out


def naive_mmd_imq(zq: torch.Tensor, zp: torch.Tensor, sigma: float = 1.0) -> float:
    """Line-by-line transcription of tolstikhin/wae mmd_penalty (IMQ, normal prior)."""
    n, d = zq.shape
    total = 0.0
    for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0):
        c = 2.0 * d * sigma**2 * s
        k = lambda a, b, c=c: c / (c + float(((a - b) ** 2).sum()))  # noqa: E731
        within = sum(k(zq[i], zq[j]) + k(zp[i], zp[j]) for i in range(n) for j in range(n) if i != j) / (n * n - n)
        cross = sum(k(zq[i], zp[j]) for i in range(n) for j in range(n)) * 2.0 / (n * n)
        total += within - cross
    return total


def test_gram_matches_naive():
    f = torch.rand(2, 5, 3, 4, dtype=torch.float64)
    assert torch.allclose(losses.gram_matrix(f).double(), naive_gram(f), atol=1e-6)


def test_gram_is_symmetric_and_psd():
    g = losses.gram_matrix(torch.randn(3, 8, 6, 6))
    assert torch.allclose(g, g.transpose(1, 2), atol=1e-6)
    assert torch.linalg.eigvalsh(g.double()).min() > -1e-6


def test_mmd_matches_reference_transcription():
    g = torch.Generator().manual_seed(1)
    zq, zp = torch.randn(7, 3, generator=g, dtype=torch.float64) + 0.5, torch.randn(7, 3, generator=g, dtype=torch.float64)
    assert losses.mmd_imq(zq, zp).item() == pytest.approx(naive_mmd_imq(zq, zp), rel=1e-5, abs=1e-7)


def test_mmd_near_zero_for_prior_samples_and_larger_when_shifted():
    g = torch.Generator().manual_seed(0)
    d, n = 64, 200
    prior_vs_prior = [losses.mmd_imq(torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)).item()
                      for _ in range(5)]
    shifted = [losses.mmd_imq(torch.randn(n, d, generator=g) + 1.0, torch.randn(n, d, generator=g)).item()
               for _ in range(5)]
    assert max(abs(v) for v in prior_vs_prior) < 0.01, prior_vs_prior
    assert min(shifted) > 10 * max(abs(v) for v in prior_vs_prior), (shifted, prior_vs_prior)
    assert min(shifted) > 0.05


def test_mmd_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same shape"):
        losses.mmd_imq(torch.zeros(4, 3), torch.zeros(4, 2))


def test_pixel_feature_gram_mse():
    x, y = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    assert losses.pixel_mse(x, y).item() == pytest.approx(1.0)
    fx = {"a": torch.zeros(1, 2, 2, 2), "b": torch.zeros(1, 2, 2, 2)}
    fy = {"a": torch.ones(1, 2, 2, 2), "b": 3 * torch.ones(1, 2, 2, 2)}
    assert losses.feature_mse(fx, fy, ["a", "b"]).item() == pytest.approx((1 + 9) / 2)
    assert losses.gram_mse(fx, fy, ["a"]).item() == pytest.approx(1.0)


def test_reconstruction_terms_per_layer_and_zero_for_identity():
    feats = {"l1": torch.rand(2, 4, 5, 5), "l2": torch.rand(2, 6, 3, 3)}
    x = torch.rand(2, 3, 8, 8)
    terms = losses.reconstruction_terms(x, x, feats, feats, ["l1", "l2"])
    assert set(terms) == {"pixel", "feature/l1", "feature/l2", "gram/l1", "gram/l2"}
    assert all(v.item() == 0 for v in terms.values())


def test_calibration_makes_contributions_equal_to_targets():
    raw = {"pixel": 0.05, "feature/l1": 12.0, "gram/l1": 300.0}
    targets = {"pixel": 1.0, "feature/l1": 0.5, "gram/l1": 0.5}
    w = losses.calibrate_weights(raw, targets)
    assert {k: w[k] * raw[k] for k in raw} == pytest.approx(targets)
    assert losses.term_targets(["a", "b"]) == {"pixel": 1.0, "feature/a": 0.5, "gram/a": 0.5,
                                                "feature/b": 0.5, "gram/b": 0.5}


def test_gan_losses():
    big = torch.full((4,), 20.0)
    assert losses.gan_discriminator_loss(big, -big).item() < 1e-6  # a perfect discriminator
    assert losses.gan_encoder_penalty(big).item() < 1e-6
    assert losses.gan_encoder_penalty(torch.zeros(4)).item() == pytest.approx(math.log(2))


def test_reparameterize_statistics():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(20000, 1, generator=g)
    s = losses.reparameterize(torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(0.25)), noise)
    assert s.mean().item() == pytest.approx(2.0, abs=0.02)
    assert s.std().item() == pytest.approx(0.5, abs=0.02)


def test_term_targets_shares_layer_weights_and_tv():
    t = losses.term_targets(["a", "b"], pixel=2.0, feature=1.0, gram=1.0, gram_layer_weights=(1, 3), tv=0.5)
    assert t == pytest.approx({"pixel": 2.0, "feature/a": 0.5, "feature/b": 0.5, "gram/a": 0.25, "gram/b": 0.75,
                               "tv": 0.5})
    with pytest.raises(ValueError, match="gram_layer_weights"):
        losses.term_targets(["a", "b"], gram_layer_weights=(1,))


def test_total_variation_is_zero_for_flat_and_largest_for_checkerboard():
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert losses.total_variation(flat).item() == 0
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2).float().expand(1, 3, 8, 8)
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    assert losses.total_variation(checker).item() == pytest.approx(2.0)
    assert losses.total_variation(checker) > 50 * losses.total_variation(ramp)
