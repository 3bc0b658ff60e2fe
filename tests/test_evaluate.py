"""Evaluation metrics, statistics, sweep discovery, figures and claim rules (wae_lib.eval.metrics / stats / runs /
tables / fid / claims / figures).

Fast and CPU only: metrics are checked against naive references; claims are checked on synthetic tables whose
answer is known.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from wae_lib import grids
from wae_lib.config import EvaluationError, profile_config
from wae_lib.data import layout as S
from wae_lib.eval import cache as EC
from wae_lib.eval import claims as C
from wae_lib.eval import fid as FID
from wae_lib.eval import images as E
from wae_lib.eval import metrics as M
from wae_lib.eval import runs as R
from wae_lib.eval import stats as ST
from wae_lib.eval import tables as T
from wae_lib.eval import verdicts as VERDICTS
from wae_lib.report import figures as F
from wae_lib.report import index_page as IP
from wae_lib.report import markdown as RP
from wae_lib.utils import spread


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: one thread avoids OpenMP contention on a shared 2-core runner (up to ~20x faster)."""
    with FID.torch_threads(1):
        yield


def smooth_images(n: int, seed: int = 0, size: int = 64) -> torch.Tensor:
    """Blurry colour fields: natural-ish images whose VGG features are not degenerate."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    return torch.nn.functional.interpolate(low, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


# --------------------------------------------------------------------------------------------------
# pixel metrics
# --------------------------------------------------------------------------------------------------
def test_psnr_of_known_mse():
    assert float(M.psnr_from_mse(0.01)) == pytest.approx(20.0)
    assert float(M.psnr_from_mse(1e-4)) == pytest.approx(40.0)
    x = torch.full((2, 3, 8, 8), 0.5)
    y = x + 0.1  # MSE 0.01 exactly
    assert M.mse_per_image(x, y).tolist() == pytest.approx([0.01, 0.01])
    assert M.psnr_per_image(x, y).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert torch.isinf(M.psnr_from_mse(0.0))


def test_mse_matches_naive_loop():
    x, y = smooth_images(3, 0), smooth_images(3, 1)
    naive = [float(((x[i] - y[i]) ** 2).mean()) for i in range(3)]
    assert M.mse_per_image(x, y).tolist() == pytest.approx(naive, rel=1e-6)


def test_ssim_identical_is_one_and_drops_with_noise():
    x = smooth_images(2)
    assert M.ssim_per_image(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert (M.ssim_per_image(noisy, x) < 0.9).all()


# --------------------------------------------------------------------------------------------------
# feature distances
# --------------------------------------------------------------------------------------------------
def fake_feats(seed: int, n: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.rand(n, 4, 8, 8, generator=g), "b": torch.rand(n, 8, 4, 4, generator=g)}


def test_gram_distance_zero_for_same_image_and_positive_otherwise():
    fa, fb = fake_feats(0), fake_feats(1)
    assert torch.allclose(M.gram_distance(fa, fa, ["a", "b"]), torch.zeros(3))
    assert (M.gram_distance(fa, fb, ["a", "b"]) > 0).all()


def test_gram_distance_matches_naive_reference():
    fa, fb = fake_feats(0, 1), fake_feats(1, 1)
    expected = []
    for n in ("a", "b"):
        a, b = fa[n][0].reshape(fa[n].shape[1], -1), fb[n][0].reshape(fb[n].shape[1], -1)
        ga, gb = a @ a.T / a.numel(), b @ b.T / b.numel()
        expected.append(float(((ga - gb) ** 2).sum() / (gb ** 2).sum()))
    assert float(M.gram_distance(fa, fb, ["a", "b"])[0]) == pytest.approx(np.mean(expected), rel=1e-5)


def test_relative_feature_distance():
    fa = fake_feats(0)
    assert torch.allclose(M.relative_feature_distance(fa, fa, ["a"]), torch.zeros(3))
    doubled = {k: 2 * v for k, v in fa.items()}
    # ||2F - F||^2 / ||F||^2 = 1
    assert M.relative_feature_distance(doubled, fa, ["a", "b"]).tolist() == pytest.approx([1.0] * 3, rel=1e-5)


# --------------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------------
def test_bootstrap_interval_contains_point_estimate_and_is_reproducible():
    values = np.random.default_rng(0).normal(3.0, 1.0, 40)
    mean, lo, hi = ST.bootstrap_mean_ci(values, n_boot=500, seed=1)
    assert mean == pytest.approx(values.mean())
    assert lo < mean < hi
    assert (mean, lo, hi) == ST.bootstrap_mean_ci(values, n_boot=500, seed=1)
    _, lo99, hi99 = ST.bootstrap_mean_ci(values, n_boot=500, level=0.99, seed=1)
    assert lo99 <= lo and hi99 >= hi


def test_bootstrap_of_constant_and_single_unit():
    assert ST.bootstrap_mean_ci([2.0] * 5, n_boot=50) == (2.0, 2.0, 2.0)
    point, lo, hi = ST.bootstrap_mean_ci([1.0], n_boot=50)
    assert point == 1.0 and np.isnan(lo) and np.isnan(hi)


def test_spearman_against_naive_reference():
    assert ST.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert ST.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(ST.spearman([1, 2, 3], [5, 5, 5]))
    x, y = [3, 1, 4, 1, 5], [9, 2, 6, 5, 3]
    rx, ry = ST.rankdata(x), ST.rankdata(y)
    assert rx.tolist() == [3, 1.5, 4, 1.5, 5]  # ties share their average rank
    assert ST.spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1])


def test_balance_scores_prefer_the_middle_model():
    # model 0: most style, least content kept; model 2: the reverse; model 1 is second on both
    style, content = [0.1, 0.2, 0.9], [0.9, 0.3, 0.1]
    score, _ = T.balance_scores(style, content)
    assert score.tolist() == pytest.approx([1.0, 1.0, 1.0])  # equal rank sums: the tie-break decides
    assert T.best_by_balance(style, content) == 1
    assert T.best_by_balance([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == 0


# --------------------------------------------------------------------------------------------------
# FID / KID
# --------------------------------------------------------------------------------------------------
def test_fast_fid_matches_torchmetrics_and_kid_matches_unbiased_mmd():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(30, 16, generator=g, dtype=torch.float64)
    fake = torch.randn(45, 16, generator=g, dtype=torch.float64) * 1.5 + 0.3
    assert FID.frechet_distance(real, fake) == pytest.approx(FID.fid_torchmetrics(real, fake), rel=1e-6)
    # torchmetrics' KID on one subset holding every sample equals the unbiased MMD^2 on all samples
    mean, std = FID.kid_torchmetrics(real, fake[:30], subsets=1, subset_size=30)
    assert mean == pytest.approx(FID.kid_unbiased(real, fake[:30]), rel=1e-6)
    assert std == 0.0


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(50, 8, generator=g, dtype=torch.float64)
    assert FID.frechet_distance(real, real) == pytest.approx(0.0, abs=1e-8)
    assert FID.frechet_distance(real, real + 0.5) == pytest.approx(8 * 0.25, rel=1e-6)  # ||mean shift||^2
    out = FID.fid_kid(real, real + 1.0, n_boot=50, seed=0)
    assert out["fid"] == pytest.approx(8.0, rel=1e-6)
    assert out["fid_ci_low"] <= out["fid_ci_high"] and out["kid_ci_low"] <= out["kid"] <= out["kid_ci_high"]
    assert (out["n_real"], out["n_fake"], out["n_boot"]) == (50, 50, 50)


def test_fid_standin_on_vgg_features(hed_vgg):
    """The offline stand-in (pooled VGG16 features): ~0 for a set with itself, larger for a shifted set."""
    extractor = FID.PooledVGGFeatures("hed")
    assert "STAND-IN" in extractor.label and extractor.kind == "vgg16-standin"
    images = smooth_images(12)
    feats = FID.extract_features(extractor, images)
    assert feats.shape == (12, extractor.num_features)
    brighter = FID.extract_features(extractor, (images * 0.5 + 0.5))
    same = FID.frechet_distance(feats, feats)
    assert abs(same) < 1e-6 * float(feats.pow(2).sum(1).mean())
    assert FID.frechet_distance(feats, brighter) > 100 * max(abs(same), 1e-9)


def test_feature_extractor_choice_is_offline_and_labelled(monkeypatch):
    monkeypatch.setattr(FID, "inception_weights_cached", lambda: None)
    ext = FID.fid_feature_extractor("auto", "hed")
    assert ext.kind == "vgg16-standin"  # no local Inception weights: never downloads
    with pytest.raises(EvaluationError, match="feature_extractor"):
        FID.fid_feature_extractor("bogus", "hed")
    with pytest.raises(FileNotFoundError, match="inception_weights_path"):
        FID.fid_feature_extractor("auto", "hed", inception_weights_path="/nonexistent/weights.pth")
    if not FID.torch_fidelity_available():
        with pytest.raises(EvaluationError, match="torch-fidelity"):
            FID.fid_feature_extractor("inception", "hed")


# --------------------------------------------------------------------------------------------------
# face detector
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def face_crop() -> torch.Tensor:
    """A 64 px face crop made like the CelebA preprocessing, from the astronaut photo bundled with scikit-image."""
    from wae_lib.data import decode as DEC
    from wae_lib.data import faces as FACES
    from wae_lib.data import sample as SAMPLE
    from wae_lib.data.options import PrepConfig

    cfg = PrepConfig()
    rgb = DEC.decode_image(SAMPLE.sample_image_path("skimage:astronaut.png")).rgb
    faces = FACES.detect_faces(rgb, cfg)
    assert faces, "the detector should find the astronaut's face"
    crop = FACES.crop_resize(rgb, *FACES.face_crop_box(faces[0], cfg), max_pad_fraction=0.5)
    return E.uint8_to_float(crop[None])


def test_face_detector_fires_on_a_face_crop_not_on_a_blank(face_crop):
    blank = torch.full((1, 3, 64, 64), 0.5)
    assert M.face_detected(torch.cat([face_crop, blank])).tolist() == [True, False]
    rate = M.face_hallucination_rate(torch.cat([face_crop, blank]), torch.cat([blank, blank]))
    assert rate == {"rate": 0.5, "n_face_free": 2, "rate_on_originals": 0.0}
    # an original that already shows a face does not count as face-free
    assert M.face_hallucination_rate(face_crop, face_crop)["n_face_free"] == 0


# --------------------------------------------------------------------------------------------------
# sweep discovery and data errors
# --------------------------------------------------------------------------------------------------
def write_fake_run(root, data, content_dim, profile="quick"):
    run = root / f"{data}_c{content_dim}"
    run.mkdir(parents=True)
    profile_config(profile, data=data, content_dim=content_dim).save(run / "config.json")
    (run / "checkpoint.pt").write_bytes(b"")
    return run


def test_discover_runs_orders_as_the_paper(tmp_path):
    for data, cd in [("mixed", 32), ("celeba", 64), ("mixed", 512), ("celeba", 512), ("celeba", 32),
                     ("mixed", 128)]:
        write_fake_run(tmp_path, data, cd)
    (tmp_path / "not_a_run").mkdir()
    runs = R.discover_runs(tmp_path)
    assert [r.name for r in runs] == ["celeba_c512", "celeba_c64", "celeba_c32", "mixed_c512", "mixed_c128",
                                      "mixed_c32"]
    assert runs[0].label == "CelebA-only c512" and runs[-1].label == "mixed c32"
    assert R.missing_runs(runs) == ["celeba_c128"]  # the quick sweep: both sets x content 128, 32


def test_discover_runs_errors_name_the_parameter(tmp_path):
    with pytest.raises(FileNotFoundError, match="models_dir"):
        R.discover_runs(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="models_dir .* holds no run"):
        R.discover_runs(tmp_path)
    write_fake_run(tmp_path, "celeba", 32, "quick")
    write_fake_run(tmp_path / "other", "celeba", 16, "smoke")
    with pytest.raises(EvaluationError, match="profile = 'bogus' is unknown"):
        R.discover_runs(tmp_path, "bogus")
    with pytest.raises(EvaluationError, match="profile = 'paper'"):
        R.discover_runs(tmp_path, "paper")
    write_fake_run(tmp_path, "mixed", 16, "smoke")
    with pytest.raises(EvaluationError, match="several profiles"):
        R.discover_runs(tmp_path)
    assert [r.name for r in R.discover_runs(tmp_path, "smoke")] == ["mixed_c16"]


def test_data_errors_name_data_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_root"):
        S.load_set_info(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_root"):
        E.load_set(tmp_path, "content_eval")
    with pytest.raises(EvaluationError, match="strengths"):
        E.parse_floats("0.5", "strengths")
    assert E.parse_floats("0, 0.5,1", "alphas") == [0.0, 0.5, 1.0]


def test_evaluation_refuses_a_data_root_the_runs_did_not_train_on(tmp_path):
    """Issue 20 item 3: another root's held-out people may be in a run's training set."""
    root = tmp_path / "data"
    (root / "sets").mkdir(parents=True)
    (root / "sets" / "info.json").write_text(json.dumps({"source": "x", "sha256": {"mixed_train.npy": "a" * 64}}))
    same, other, own_file, unrecorded = (write_fake_run(tmp_path / "m", "mixed", c) for c in (16, 32, 64, 128))
    for run, path, digest in [(same, "elsewhere/sets/mixed_train.npy", "a" * 64),  # moved root, same bytes
                              (other, "data2/sets/mixed_train.npy", "b" * 64),
                              (own_file, "mine/faces.npy", "c" * 64)]:
        (run / "metadata.json").write_text(json.dumps({"data_path": path, "data_fingerprint": f"sha256:{digest}"}))
    R.check_trained_on([same, own_file, unrecorded], root)  # same digest, a user's file, no record: not refused
    with pytest.raises(EvaluationError, match=r"data_root = .*mixed_c32 trained on another mixed_train.npy "
                                              r"\(data2/sets/mixed_train.npy"):
        R.check_trained_on([same, other], root)
    with pytest.raises(EvaluationError, match="trained on another"):
        R.load_sweep(tmp_path / "m", root)  # before any checkpoint is read


def test_mean_training_image_and_load_set(tmp_path):
    S.sets_dir(tmp_path).mkdir()
    arr = np.stack([np.full((64, 64, 3), v, np.uint8) for v in (0, 100, 200)])
    np.save(S.set_path(tmp_path, "celeba"), arr)
    mean = E.mean_training_image(tmp_path, "celeba", chunk=2)
    assert mean.shape == (3, 64, 64)
    assert torch.allclose(mean, torch.full_like(mean, 100 / 255))
    loaded = E.load_set(tmp_path, "celeba", limit=2)  # spread evenly: first and last
    assert loaded.shape == (2, 3, 64, 64) and loaded[1].max() == pytest.approx(200 / 255)


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------
def cell_std(png, meta, row: int) -> float:
    """Pixel std of one row of cells of a saved grid."""
    geo, cell, pad = meta["geometry"], meta["cell"], meta["pad"]
    arr = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    y = geo["top"] + pad + row * (cell + pad)
    return float(arr[y:y + cell, geo["left"] + pad:geo["left"] + pad + meta["n_cols"] * (cell + pad)].std())


def test_reconstruction_and_transfer_figures_layout(tmp_path, tiny_config, hed_vgg):
    from wae_lib.model.wae import WAEStyle

    runs, models = [], []
    for data, cd in [("celeba", 16), ("mixed", 16)]:
        cfg = tiny_config.replace(data=data, content_dim=cd)
        runs.append(R.RunInfo(f"{data}_c{cd}", tmp_path, data, cd, "custom", cfg))
        models.append(WAEStyle(cfg, vgg=hed_vgg, verbose=False).eval())
    originals = smooth_images(3)
    ctx = R.EvalContext("custom", "test images", "HED", "a test")
    meta = F.reconstruction_figure(tmp_path / "fig6.png", runs, models, originals, ctx.caption("Fig. 6"))
    assert (meta["n_rows"], meta["n_cols"]) == (3, 3)
    assert meta["row_labels"] == ["original", "CelebA-only c16", "mixed c16"]
    size = Image.open(tmp_path / "fig6.png").size
    geo = grids.grid_geometry(meta["n_rows"], meta["n_cols"], meta["label_width"], meta["has_col_labels"],
                          meta["caption_lines"])
    assert size == (geo["width"], geo["height"])
    assert json.loads((tmp_path / "fig6.png.json").read_text())["caption"].startswith("profile=custom")
    assert cell_std(tmp_path / "fig6.png", meta, 0) > 10  # the originals row is not blank
    meta7 = F.transfer_figure(tmp_path / "fig7.png", runs, models, originals, originals.flip(0), "c")
    assert (meta7["n_rows"], meta7["n_cols"]) == (4, 3)
    grid = F.transfer_matrix_figure(tmp_path / "grid.png", models[0], originals[:2], originals, ["a", "b", "c"], "c")
    assert (grid["n_rows"], grid["n_cols"]) == (3, 4) and grid["col_labels"] == ["content", "a", "b", "c"]
    strip = F.strength_figure(tmp_path / "s.png", models[0], originals[:2], originals[:1], [0, 0.5, 1], "c")
    assert (strip["n_rows"], strip["n_cols"]) == (2, 5)
    interp = F.interpolation_figure(tmp_path / "i.png", models[0], originals[:2], originals[:1], originals[1:2],
                                    [0, 0.5, 1], "c")
    assert (interp["n_rows"], interp["n_cols"]) == (3, 4)


def test_transfer_pairs_match_model_transfer(tiny_config, hed_vgg):
    from wae_lib.model.wae import WAEStyle

    model = WAEStyle(tiny_config, vgg=hed_vgg, verbose=False).eval()
    content, styles = smooth_images(3, 0), smooth_images(2, 1)
    ci, si = EC.all_pairs(3, 2)
    pairs = EC.transfer_pairs(model, content, styles, ci, si, batch_size=4)
    direct = torch.cat([model.transfer(content[i:i + 1], styles[j:j + 1]) for i, j in zip(ci, si)])
    assert torch.allclose(pairs, direct, atol=1e-5)
    assert torch.allclose(EC.reconstruct_images(model, content, 2), model.reconstruct(content), atol=1e-5)


# --------------------------------------------------------------------------------------------------
# claims on synthetic tables with a known answer
# --------------------------------------------------------------------------------------------------
def test_verdict_rules():
    assert VERDICTS.verdict_direction(0.1, 0.3, +1) == C.SUPPORTED
    assert VERDICTS.verdict_direction(-0.3, -0.1, +1) == C.NOT_SUPPORTED
    assert VERDICTS.verdict_direction(-0.1, 0.3, +1) == C.INCONCLUSIVE
    assert VERDICTS.verdict_direction(-0.3, -0.1, -1) == C.SUPPORTED
    assert VERDICTS.verdict_direction(float("nan"), 1.0, +1) == C.INCONCLUSIVE
    assert VERDICTS.verdict_equivalence(-0.05, 0.05, 0.1) == C.SUPPORTED
    assert VERDICTS.verdict_equivalence(0.2, 0.3, 0.1) == C.NOT_SUPPORTED
    assert VERDICTS.verdict_equivalence(0.05, 0.2, 0.1) == C.INCONCLUSIVE
    assert VERDICTS.combined_verdict([C.SUPPORTED, C.SUPPORTED]) == C.SUPPORTED
    assert VERDICTS.combined_verdict([C.SUPPORTED, C.INCONCLUSIVE]) == "mixed verdicts"


SIZES = (128, 64, 32)
CTX = {"profile": "quick", "data_source": "synthetic", "vgg_source": "none", "scaled_note": "synthetic test"}


def synthetic_recon(n: int = 20, seed: int = 0) -> pd.DataFrame:
    """Error falls with content size, is equal across training sets for faces; CelebA-only is worse on styles
    and hallucinates faces at small sizes."""
    rng = np.random.default_rng(seed)
    rows = []
    base = rng.uniform(0.02, 0.04, n)
    for data in ("celeba", "mixed"):
        for cd in SIZES:
            for i in range(n):
                mse = base[i] * (1 + 32 / cd) + rng.normal(0, 1e-4)
                rows.append({"run": f"{data}_c{cd}", "data": data, "content_dim": cd, "eval_set": "content_eval",
                             "image": i, "mse": mse, "psnr": -10 * np.log10(mse), "ssim": 1 - mse,
                             "perceptual": 10 * mse, **CTX})
                style_mse = base[i] * (2.0 if data == "celeba" else 1.0)
                rows.append({"run": f"{data}_c{cd}", "data": data, "content_dim": cd, "eval_set": "style_eval",
                             "image": i, "mse": style_mse, "psnr": -10 * np.log10(style_mse), "ssim": 1 - style_mse,
                             "perceptual": style_mse, "face_in_original": i == 0,
                             "face_in_reconstruction": data == "celeba" and cd == 32 and i % 2 == 0 or i == 0,
                             **CTX})
    return pd.DataFrame(rows)


def synthetic_transfer(n: int = 15, n_styles: int = 3, seed: int = 0, best=("mixed", 128)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for data in ("celeba", "mixed"):
        for cd in SIZES:
            for i in range(n):
                for s in range(n_styles):
                    style_d = 0.5 + cd / 256 + rng.normal(0, 0.01)  # fewer latents: closer to the style
                    content_d = 0.9 - cd / 256 + rng.normal(0, 0.01)
                    if (data, cd) == best:
                        style_d, content_d = style_d - 0.3, content_d - 0.3
                    rows.append({"run": f"{data}_c{cd}", "data": data, "content_dim": cd, "content_image": i,
                                 "style_image": s, "style_distance": style_d, "style_distance_recon": style_d + 0.2,
                                 "content_distance": content_d, "content_distance_recon": content_d - 0.1,
                                 "mean_face_mse": (0.01 if data == "celeba" else 0.03) + rng.normal(0, 1e-3),
                                 "mean_face_mse_content": 0.05, **CTX})
    return pd.DataFrame(rows)


def test_claims_on_a_synthetic_sweep_that_agrees_with_the_paper():
    parts = {(p.part, p.scope): p for p in C.evaluate_claims(synthetic_recon(), synthetic_transfer(), n_boot=200)}
    verdicts = {k: p.verdict for k, p in parts.items()}
    assert verdicts[("C1a", "CelebA-only")] == C.SUPPORTED and verdicts[("C1a", "mixed")] == C.SUPPORTED
    assert verdicts[("C1b", "sizes [128, 64, 32]")] == C.SUPPORTED
    c2 = {p.part: p.verdict for p in parts.values() if p.claim == "C2"}
    assert c2 == {"C2a": C.SUPPORTED, "C2b": C.SUPPORTED, "C2c": C.SUPPORTED}
    c3 = {(p.part, p.scope): p.verdict for p in parts.values() if p.claim == "C3"}
    assert set(c3.values()) == {C.SUPPORTED}
    c4 = [p for p in parts.values() if p.claim == "C4"][0]
    assert c4.verdict == C.SUPPORTED and c4.extra["winner"] == "mixed_c128" and c4.estimate == 1.0
    c2b = [p for p in parts.values() if p.part == "C2b"][0]
    assert c2b.n == 19  # image 0 shows a face in its original and is left out


def test_claims_that_disagree_or_cannot_be_tested():
    transfer = synthetic_transfer(best=("celeba", 32))
    c4 = C.claim_c4(transfer, n_boot=100)[0]
    assert c4.verdict == C.NOT_SUPPORTED and c4.extra["winner"] == "celeba_c32"
    no_paper_models = transfer[transfer["content_dim"] == 32]
    assert C.claim_c4(no_paper_models, n_boot=20)[0].verdict == C.INCONCLUSIVE
    # models that make no transfer (C3a finds none moving toward the style) have no best transfer
    gated = C.claim_c4(synthetic_transfer(best=("mixed", 128)), n_boot=50, transferring=[])[0]
    assert gated.verdict == C.INCONCLUSIVE and "no model moves its output toward the style" in gated.criterion
    kept = C.claim_c4(synthetic_transfer(best=("mixed", 128)), n_boot=50, transferring=["mixed_c128"])[0]
    assert kept.verdict == C.SUPPORTED
    moved_away = synthetic_transfer().assign(style_distance_recon=lambda d: d["style_distance"] - 0.2)
    c4_all = [p for p in C.evaluate_claims(synthetic_recon(), moved_away, n_boot=50) if p.claim == "C4"][0]
    assert c4_all.verdict == C.INCONCLUSIVE
    recon = synthetic_recon()
    recon.loc[recon["data"] == "mixed", "mse"] *= 1.5  # training set now matters a lot
    c1b = [p for p in C.claim_c1(recon, n_boot=200) if p.part == "C1b"][0]
    assert c1b.verdict == C.NOT_SUPPORTED


def test_build_claims_writes_reports(tmp_path):
    tables = tmp_path / "tables"
    T.write_table(synthetic_recon(), tables, "reconstruction")
    T.write_table(synthetic_transfer(), tables, "transfer")
    table = RP.build_claims(tables, tmp_path, n_boot=50)
    assert {"C1", "C2", "C3", "C4"} <= set(table["claim"])
    assert set(table["verdict"]) <= {C.SUPPORTED, C.NOT_SUPPORTED, C.INCONCLUSIVE}
    assert (table["profile"] == "quick").all() and (table["data_source"] == "synthetic").all()
    md = (tmp_path / "claims.md").read_text()
    assert "profile=quick" in md and "data: synthetic" in md and "VGG16: none" in md and "synthetic test" in md
    assert "FID/KID: not computed" in md
    index = IP.write_index(tmp_path).read_text()
    for claim in ("C1", "C2", "C3", "C4"):
        assert f"**{claim}: " in index
    assert "[claims.md](claims.md)" in index
    assert "What the shipped models do" not in index  # no notebook 07 overview yet
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "compare_overview.png").write_bytes(b"png")
    index = IP.write_index(tmp_path).read_text()
    assert index.index("What the shipped models do") < index.index("## Claims")  # the report opens with it
    assert "![every method on the same held-out pairs](figures/compare_overview.png)" in index


def test_index_states_the_context_once_and_embeds_each_figure_with_one_line(tmp_path):
    """Issue 32: two context strings were repeated eight times each (half the page), figures were links."""
    import json

    tables = tmp_path / "tables"
    T.write_table(synthetic_recon(), tables, "reconstruction")
    T.write_table(synthetic_transfer(), tables, "transfer")
    RP.build_claims(tables, tmp_path, n_boot=20)
    figures = tmp_path / "figures"
    figures.mkdir()
    context = "profile=quick | data: synthetic | VGG16: none | quick profile: 90 steps of 16 images"
    for name, own in (("fig5_styles", "Fig. 5: style images"), ("fig6_content", "Fig. 6 left: reconstructions"),
                      ("fig7_transfer", "Fig. 7: transfers"), ("prep_rejected", ""),
                      ("compare_grid_adain", "AdaIN (10 steps): content x style")):
        (figures / f"{name}.png").write_bytes(b"png")
        caption = context + (f" | {own}" if own else "")
        (figures / f"{name}.png.json").write_text(json.dumps({"caption": caption}))
    index = IP.write_index(tmp_path).read_text()
    assert index.count("90 steps of 16 images") <= 1 and index.count("VGG16: none") == 1
    for name in ("fig5_styles", "fig6_content", "fig7_transfer", "prep_rejected", "compare_grid_adain"):
        assert f"![{name}](figures/{name}.png)" in index
    assert "AdaIN (10 steps): content x style" in index  # the part that is the figure's own
    assert index.index("### 01 · Preprocessing") < index.index("### 03 · Reconstructions")
    assert "_per_pair.csv](" not in index and "_per_image.csv](" not in index  # never committed: no links


def test_build_claims_names_missing_tables(tmp_path):
    with pytest.raises(FileNotFoundError, match="03_reconstruction"):
        RP.build_claims(tmp_path, tmp_path)


# --------------------------------------------------------------------------------------------------
# independent metrics: colour (Lab sliced Wasserstein), Reinhard 2001, retrieval (issue 5)
# --------------------------------------------------------------------------------------------------
def test_reinhard_transfer_matches_the_style_lab_statistics():
    from wae_lib.eval import color as COL

    content, style = smooth_images(2, 0), smooth_images(2, 1) * 0.6 + 0.2  # in gamut after the transfer
    out = COL.reinhard_transfer(content, style)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    lab_out, lab_style = COL.rgb_to_lab(out), COL.rgb_to_lab(style)
    assert np.allclose(lab_out.mean((1, 2)), lab_style.mean((1, 2)), atol=1.5)  # Lab units (clipping aside)
    assert np.allclose(lab_out.std((1, 2)), lab_style.std((1, 2)), rtol=0.15, atol=1.0)
    one = COL.reinhard_transfer(content, style[:1])  # one style for all
    assert torch.allclose(one[0], out[0], atol=1e-6)
    with pytest.raises(ValueError, match="style images"):
        COL.reinhard_transfer(content, smooth_images(3))


def test_color_distance_is_a_sliced_wasserstein_distance_in_lab():
    from wae_lib.eval import color as COL

    x = smooth_images(3)
    sig = COL.color_signature(x)
    assert sig.shape == (3, COL.N_DIRECTIONS * COL.N_QUANTILES)
    d = COL.color_distance_matrix(sig, sig)
    assert np.allclose(np.diag(d), 0, atol=1e-5) and np.allclose(d, d.T, atol=1e-5)
    assert np.allclose(COL.color_distance(sig, sig[[1, 2, 0]]), d[[0, 1, 2], [1, 2, 0]], atol=1e-6)
    # a pixel permutation keeps the colour distribution (distance 0), a brightness shift does not
    perm = x.flatten(2)[:, :, torch.randperm(64 * 64, generator=torch.Generator().manual_seed(0))].view_as(x)
    assert np.allclose(COL.color_distance(COL.color_signature(perm), sig), 0, atol=1e-6)
    darker = COL.color_signature(x * 0.7)
    assert (COL.color_distance(darker, sig) > 3).all()  # well above a just-noticeable difference (~2.3)
    # a uniform shift of L by t moves every L-axis quantile by t: SW2 >= t / sqrt(directions)
    lab = COL.rgb_to_lab(x)
    lab[..., 0] = np.clip(lab[..., 0], 20, 70)
    shifted = lab.copy()
    shifted[..., 0] += 10
    s0, s1 = COL.color_signature(COL.lab_to_rgb(lab)), COL.color_signature(COL.lab_to_rgb(shifted))
    assert (COL.color_distance(s0, s1) > 10 / np.sqrt(COL.N_DIRECTIONS)).all()


def test_retrieval_distance_matrices_and_nearest_is_own():
    from wae_lib.eval import retrieval as R

    fa, fb = fake_feats(0, 4), fake_feats(1, 3)
    g = R.gram_distance_matrix(R.grams(fa, ["a", "b"]), R.grams(fb, ["a", "b"]), ["a", "b"])
    for j in range(3):
        direct = M.gram_distance(fa, M.take(fb, [j] * 4), ["a", "b"]).numpy()
        assert np.allclose(g[:, j], direct, rtol=1e-4)
    f = R.feature_distance_matrix(fa, fa, ["a"])
    assert np.allclose(np.diag(f), 0, atol=1e-9)
    assert R.nearest_is_own(f, np.arange(4)).tolist() == [1.0] * 4
    assert R.nearest_is_own(f, np.array([1, 0, 3, 2])).tolist() == [0.0] * 4
    tie = np.array([[1.0, 1.0], [0.5, np.nan]])
    assert R.nearest_is_own(tie, np.array([0, 0])).tolist()[0] == 0.0  # a tie is not a hit
    assert np.isnan(R.nearest_is_own(tie, np.array([0, 0]))[1])


def test_transfer_table_has_independent_columns_and_the_reinhard_row(tiny_config, hed_vgg):
    from wae_lib.eval import identity as ID
    from wae_lib.model.wae import WAEStyle

    runs, models = [], []
    for data in ("celeba", "mixed"):
        cfg = tiny_config.replace(data=data)
        runs.append(R.RunInfo(f"{data}_c16", None, data, 16, "custom", cfg))
        models.append(WAEStyle(cfg, vgg=hed_vgg, verbose=False).eval())
    content, styles = smooth_images(3, 0), smooth_images(2, 1)
    vgg = M.EvalVGG("hed", tiny_config.style_layers)
    ctx = R.EvalContext("custom", "test", "HED")
    outputs = [EC.ModelOutputs(m, batch_size=4) for m in models]
    t = T.transfer_table(runs, outputs, E.EvalImages.whole("content_eval", content),
                         E.EvalImages.whole("style_eval", styles), vgg, content.mean(0), ctx, batch_size=4,
                         identities=np.array([5, 5, 7]), identity_styles=1)
    assert list(dict.fromkeys(t["run"])) == ["celeba_c16", "mixed_c16", T.REFERENCE_RUN]
    assert len(t) == 3 * 3 * 2
    ref = t[t["run"] == T.REFERENCE_RUN]
    assert (ref["data"] == T.REFERENCE_DATA).all() and (ref["content_dim"] == 0).all() and (ref["seed"] == -1).all()
    assert (ref["content_distance_recon"].abs() < 1e-6).all()  # the reference's "reconstruction" is the face
    # the per-pair distances are the documented ones
    ci, si = EC.all_pairs(3, 2)
    out = EC.transfer_pairs(models[0], content, styles, ci, si)
    fo, fs, fc = vgg(out), vgg(styles), vgg(content)
    first = t[t["run"] == "celeba_c16"]
    assert np.allclose(first["style_distance"], M.gram_distance(fo, M.take(fs, si), vgg.style_layers), rtol=1e-4)
    assert np.allclose(first["content_distance"], M.relative_feature_distance(fo, M.take(fc, ci), vgg.content_layers),
                       rtol=1e-4)
    for col in ("style_retrieval_gram", "style_retrieval_color", "content_retrieval"):
        assert set(t[col].unique()) <= {0.0, 1.0}
    assert (t["style_retrieval_chance"] == 0.5).all() and np.allclose(t["content_retrieval_chance"], 1 / 3)
    assert (t["identity_match_chance"] == 0.5).all() and t["identity_gallery"].str.startswith("person (2").all()
    assert T.chance_levels(t) == {"style_retrieval_gram": 0.5, "style_retrieval_color": 0.5,
                                  "content_retrieval": pytest.approx(1 / 3), "identity_match": 0.5}
    measured = t["style_image"] == spread(2, 1)[0]  # identity_styles=1: one style per face
    if ID.identity_status() is None:
        assert t.loc[measured, "identity_distance"].notna().all()
    assert t.loc[~measured, "identity_distance"].isna().all()
    assert T.identity_pair_mask(3, 2, None).all() and T.identity_pair_mask(3, 2, 1).sum() == 3
    # C4 ranks the models only
    assert list(T.balance_ranking(t)["run"]) == ["celeba_c16", "mixed_c16"]


def test_reconstruction_table_identity_columns_only_for_faces(tiny_config, hed_vgg, monkeypatch):
    from wae_lib.eval import identity as ID
    from wae_lib.model.wae import WAEStyle

    cfg = tiny_config.replace(data="celeba")
    runs = [R.RunInfo("celeba_c16", None, "celeba", 16, "custom", cfg)]
    models = [WAEStyle(cfg, vgg=hed_vgg, verbose=False).eval()]
    sets = [E.EvalImages.whole("content_eval", smooth_images(2, 0)),
            E.EvalImages.whole("style_eval", smooth_images(2, 1))]
    vgg = M.EvalVGG("hed", cfg.style_layers)
    ctx = R.EvalContext("custom", "test", "HED")

    def missing():
        raise ID.IdentityUnavailable(f"dlib is not installed: `pip install {ID.PIP_PACKAGES}`")

    monkeypatch.setattr(ID, "_models", missing)  # no dlib: NaN columns with a label, not a crash
    with pytest.warns(UserWarning, match="dlib-bin"):
        t = T.reconstruction_table(runs, [EC.ModelOutputs(m) for m in models], sets, vgg, ctx, detect_faces_in=())
    faces = t[t["eval_set"] == "content_eval"]
    assert faces["identity_distance"].isna().all() and faces["identity_model"].str.startswith("UNAVAILABLE").all()
    assert t.loc[t["eval_set"] == "style_eval", "identity_model"].isna().all()
    assert (t["seed"] == 0).all()


def test_c3b_is_inconclusive_when_c3a_finds_models_that_transfer_no_style():
    """Issue 19: on the quick run C3b read "supported" (rho 0.5 [0.5, 0.5]) while C3a said no model transfers style."""
    transfer = synthetic_transfer()
    flat = transfer.assign(style_distance=transfer["style_distance_recon"] * 1.2)  # every transfer moves away
    c3 = {(p.part, p.scope): p for p in C.claim_c3(flat, n_boot=50)}
    assert c3[("C3a", "all 6 models")].verdict == C.NOT_SUPPORTED
    for scope in ("CelebA-only", "mixed"):
        assert c3[("C3b", scope)].verdict == C.INCONCLUSIVE and "C3a is not supported" in c3[("C3b", scope)].detail
