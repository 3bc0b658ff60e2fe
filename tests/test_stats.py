"""Verdict statistics (wae_lib.eval.stats, wae_lib.eval.claims): bootstrap over seeds and images, C4 against chance,
sweeps with several seeds, and the "too small to judge the paper" line. Synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wae_lib.config import EvaluationError, profile_config
from wae_lib.eval import claims as C
from wae_lib.eval import runs as R
from wae_lib.eval import stats as S
from wae_lib.eval import tables as T
from wae_lib.report import index_page as IP
from wae_lib.report import markdown as RP

SIZES = (128, 64, 32)
CTX = {"profile": "quick", "data_source": "synthetic", "vgg_source": "none", "scaled_note": "synthetic test"}


def transfer_table(rng, n=29, n_styles=2, seeds=(0,), effect=None, sizes=SIZES) -> pd.DataFrame:
    """Per-pair style / content distances of 2 sets x ``sizes`` models; identical models unless ``effect``
    = ((data, size), shift) makes one better on both. Each content image has its own level (shared by models)."""
    level_s, level_c = rng.normal(0.5, 0.04, n), rng.normal(0.5, 0.04, n)
    rows = []
    for data in ("celeba", "mixed"):
        for cd in sizes:
            for seed in seeds:
                shift = effect[1] if effect and effect[0] == (data, cd) else 0.0
                for i in range(n):
                    for s in range(n_styles):
                        style_d = level_s[i] + rng.normal(0, 0.04) - shift
                        rows.append({"run": f"{data}_c{cd}" + (f"_s{seed}" if seed else ""), "data": data,
                                     "content_dim": cd, "seed": seed, "content_image": i, "style_image": s,
                                     "style_distance": style_d, "style_distance_recon": style_d + 0.1,
                                     "content_distance": level_c[i] + rng.normal(0, 0.04) - shift,
                                     "content_distance_recon": 0.3, "mean_face_mse": 0.02, "mean_face_mse_content": 0.05,
                                     **CTX})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# the panel bootstrap
# --------------------------------------------------------------------------------------------------
def test_single_seed_panel_bootstrap_equals_the_image_bootstrap():
    df = transfer_table(np.random.default_rng(0))
    p = S.panel_from_table(df, "style_distance", "content_image", [("celeba", 128), ("mixed", 128)])
    assert p.n_units == 29 and p.seeds == [[0], [0]] and p.seeds_note() == "1"
    m = p.matrix("style_distance")

    def stat(idx):
        return float((m[idx, 1] - m[idx, 0]).mean())

    expected = S.bootstrap_ci(29, stat, 300, seed=4)
    got = S.bootstrap_panel(p, lambda mm: float((mm["style_distance"][:, 1] - mm["style_distance"][:, 0]).mean()),
                            300, seed=4)
    assert got == pytest.approx(expected)


def test_panel_resamples_seeds_then_images():
    df = transfer_table(np.random.default_rng(1), seeds=(0, 1, 2))
    # seed 2 of mixed_c128 is far worse: with seeds resampled the interval must widen a lot
    bad = (df["data"] == "mixed") & (df["content_dim"] == 128) & (df["seed"] == 2)
    df.loc[bad, "style_distance"] += 0.3
    p = S.panel_from_table(df, "style_distance", "content_image", [("celeba", 128), ("mixed", 128)])
    assert p.seeds == [[0, 1, 2], [0, 1, 2]] and p.several_seeds and p.seeds_note() == "3"
    assert p.values["style_distance"][0].shape == (3, 29)
    est, lo, hi = S.bootstrap_panel(p, lambda m: float((m["style_distance"][:, 1] - m["style_distance"][:, 0]).mean()),
                                    500, seed=0)
    assert est == pytest.approx(0.1, abs=0.03)  # the mean over seeds: 0.3 / 3
    assert lo < 0.02 and hi > 0.18  # seed resamples with 0, 1, 2 or 3 copies of the bad seed
    one = S.panel_from_table(df[df["seed"] == 0], "style_distance", "content_image", [("celeba", 128), ("mixed", 128)])
    _, lo1, hi1 = S.bootstrap_panel(one, lambda m: float((m["style_distance"][:, 1] - m["style_distance"][:, 0]).mean()),
                                    500, seed=0)
    assert hi1 - lo1 < (hi - lo) / 3


def test_rowwise_spearman_matches_the_scalar_version():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(20, 5))
    m[3] = 1.0  # constant row: NaN
    m[4, :2] = m[4, 2]  # ties
    x = [512, 256, 128, 64, 32]
    got = S.rowwise_spearman(x, m)
    expected = np.array([S.spearman(x, row) for row in m])
    assert np.isnan(got[3]) and np.isnan(expected[3])
    assert np.allclose(np.delete(got, 3), np.delete(expected, 3))


# --------------------------------------------------------------------------------------------------
# C4 against chance
# --------------------------------------------------------------------------------------------------
def test_c4_rule_cases():
    cand = np.array([False, False, True, False, False, False])  # chance 1/6
    assert S.c4_chance(cand) == pytest.approx(1 / 6)
    assert S.c4_bar(1 / 6) == pytest.approx(0.7) and S.c4_bar(0.5) == pytest.approx(0.8)
    assert S.c4_verdict(np.array([0, 0, 900, 100, 0, 0]), cand, 2)[0] == S.SUPPORTED
    assert S.c4_verdict(np.array([0, 0, 600, 400, 0, 0]), cand, 2)[0] == S.INCONCLUSIVE  # a win, not a clear one
    assert S.c4_verdict(np.array([0, 0, 900, 100, 0, 0]), cand, 3)[0] == S.INCONCLUSIVE  # point winner elsewhere
    assert S.c4_verdict(np.array([950, 0, 10, 40, 0, 0]), cand, 0)[0] == S.NOT_SUPPORTED
    # candidates never win, but no other model is clearly best either: the models are too alike to rank
    verdict, rule = S.c4_verdict(np.array([300, 250, 0, 200, 150, 100]), cand, 0)
    assert verdict == S.INCONCLUSIVE and "chance = 1/6" in rule


def test_c4_on_identical_models_is_inconclusive_in_most_sweeps():
    """Simulated sweeps of 6 identical models (the quick sweep: mixed c128 is the only candidate, chance 1/6):
    the winner is noise, so the claim must mostly come out inconclusive, rarely either way."""
    rng = np.random.default_rng(0)
    verdicts = [C.claim_c4(transfer_table(rng), n_boot=200, seed=k)[0].verdict for k in range(40)]
    share = {v: verdicts.count(v) / len(verdicts) for v in (S.SUPPORTED, S.NOT_SUPPORTED, S.INCONCLUSIVE)}
    assert share[S.INCONCLUSIVE] >= 0.75, share
    assert share[S.NOT_SUPPORTED] <= 0.15 and share[S.SUPPORTED] <= 0.15, share


def test_c4_decides_when_one_model_is_clearly_better():
    rng = np.random.default_rng(1)
    good = C.claim_c4(transfer_table(rng, effect=(("mixed", 128), 0.05)), n_boot=200)[0]
    assert good.verdict == S.SUPPORTED and good.extra["winner"] == "mixed_c128"
    assert good.extra["chance"] == pytest.approx(1 / 6) and "chance 1/6" in good.statistic
    other = C.claim_c4(transfer_table(rng, effect=(("celeba", 64), 0.05)), n_boot=200)[0]
    assert other.verdict == S.NOT_SUPPORTED and other.extra["winner"] == "celeba_c64"
    paper = C.claim_c4(transfer_table(rng, effect=(("mixed", 256), 0.05), sizes=(256, 128, 64, 32)), n_boot=100)[0]
    assert paper.extra["chance"] == pytest.approx(2 / 8) and paper.verdict == S.SUPPORTED


def test_c4_with_several_seeds_counts_models_not_runs():
    rng = np.random.default_rng(2)
    df = transfer_table(rng, seeds=(0, 1), effect=(("mixed", 128), 0.05))
    c4 = C.claim_c4(df, n_boot=100)[0]
    assert c4.scope == "6 models" and c4.seeds == "2" and c4.verdict == S.SUPPORTED
    assert set(c4.extra["wins"]) == {f"{d}_c{s}" for d in ("celeba", "mixed") for s in SIZES}


def test_reference_rows_never_enter_a_verdict():
    rng = np.random.default_rng(3)
    df = transfer_table(rng, effect=(("mixed", 128), 0.05))
    ref = df[df["run"] == "mixed_c128"].assign(run=T.REFERENCE_RUN, data=T.REFERENCE_DATA, content_dim=0, seed=-1,
                                                 style_distance=0.0, content_distance=0.0)  # would win everything
    both = pd.concat([df, ref], ignore_index=True)
    assert C.claim_c4(both, n_boot=50)[0].extra["winner"] == "mixed_c128"
    assert T.REFERENCE_RUN not in set(T.balance_ranking(both)["run"])
    assert "all 6 models" in C.claim_c3(both, n_boot=20)[0].scope


# --------------------------------------------------------------------------------------------------
# several seeds: discovery, claims table, report
# --------------------------------------------------------------------------------------------------
def write_run(root, folder, data, cd, seed, profile="quick"):
    run = root / folder
    run.mkdir(parents=True)
    profile_config(profile, data=data, content_dim=cd, seed=seed).save(run / "config.json")
    (run / "checkpoint.pt").write_bytes(b"")


def test_discovery_reads_seeds_from_config_and_accepts_both_folder_names(tmp_path):
    write_run(tmp_path, "mixed_c128", "mixed", 128, 0)
    write_run(tmp_path, "mixed_c128_s1", "mixed", 128, 1)
    write_run(tmp_path, "mixed_c128_s7", "mixed", 128, 7)
    write_run(tmp_path, "oddly_named", "celeba", 64, 3)  # set, size and seed come from config.json
    runs = R.discover_runs(tmp_path)
    assert [(r.name, r.data, r.content_dim, r.seed) for r in runs] == [
        ("oddly_named", "celeba", 64, 3), ("mixed_c128", "mixed", 128, 0), ("mixed_c128_s1", "mixed", 128, 1),
        ("mixed_c128_s7", "mixed", 128, 7)]
    assert [r.label for r in runs] == ["CelebA-only c64", "mixed c128", "mixed c128 seed 1", "mixed c128 seed 7"]
    assert R.seeds_of(runs) == {("celeba", 64): [3], ("mixed", 128): [0, 1, 7]}
    write_run(tmp_path, "copy_of_mixed", "mixed", 128, 1)
    with pytest.raises(EvaluationError, match="seed 1"):
        R.discover_runs(tmp_path)


def test_claims_report_states_seeds_and_budget(tmp_path):
    from test_evaluate import synthetic_recon

    rng = np.random.default_rng(4)
    recon = pd.concat([synthetic_recon(seed=0).assign(seed=0),
                       synthetic_recon(seed=1).assign(seed=1, run=lambda d: d["run"] + "_s1")], ignore_index=True)
    transfer = transfer_table(rng, seeds=(0, 1), effect=(("mixed", 128), 0.05))
    tables = tmp_path / "tables"
    T.write_table(recon, tables, "reconstruction")
    T.write_table(transfer, tables, "transfer")
    table = RP.build_claims(tables, tmp_path, n_boot=50)
    assert (table["seeds"].astype(str) == "2").all()
    md = (tmp_path / "claims.md").read_text()
    assert md.splitlines()[0].startswith("> **This run is too small to judge the paper** (profile quick")
    assert "seeds per model: celeba_c128: 2" in md and "| seeds |" in md
    index = IP.write_index(tmp_path).read_text()
    assert "too small to judge the paper" in index


@pytest.mark.parametrize("profile, source, warned", [
    ("quick", "DATA_DIR=x", True), ("smoke", "DATA_DIR=x", True), ("paper", "DATA_DIR=x", False),
    ("paper", "embedded sample set (not the paper's data)", True), ("custom", "DATA_DIR=x", False)])
def test_budget_warning(profile, source, warned):
    text = RP.budget_warning(R.EvalContext(profile, source, "VGG"))
    assert bool(text) == warned
    if "sample" in source:
        assert "embedded sample set" in text


# --------------------------------------------------------------------------------------------------
# the pigeonhole bootstrap of a crossed (faces x styles) table
# --------------------------------------------------------------------------------------------------
def crossed_table(rng, n_rows, n_cols, row_sd, col_sd, noise_sd=0.05):
    return (rng.normal(0, row_sd, (n_rows, 1)) + rng.normal(0, col_sd, (1, n_cols))
            + rng.normal(0, noise_sd, (n_rows, n_cols)))


def test_crossed_mean_ci_point_and_missing_cells():
    v = np.arange(12, dtype=float).reshape(3, 4)
    point, lo, hi = S.crossed_mean_ci(v, n_boot=200)
    assert point == pytest.approx(v.mean()) and lo <= point <= hi
    v[0, 0] = np.nan  # a missing pair is left out, not counted as 0
    assert S.crossed_mean_ci(v, n_boot=10)[0] == pytest.approx(np.nanmean(v))
    assert np.isnan(S.crossed_mean_ci(np.ones((1, 5)))[1])  # one face: nothing to resample over faces
    with pytest.raises(ValueError, match="rows x columns"):
        S.crossed_mean_ci(np.ones(5))


def test_crossed_interval_covers_a_style_effect_a_pair_bootstrap_misses():
    """Style effects shared by every face: resampling pairs as if independent gives a too narrow interval;
    the pigeonhole interval covers the true mean about as often as it claims (Owen 2007)."""
    rng = np.random.default_rng(1)
    covered_crossed = covered_pairs = 0
    trials = 200
    for t in range(trials):
        v = crossed_table(rng, 8, 6, row_sd=0.05, col_sd=0.3)  # true mean 0
        _, lo, hi = S.crossed_mean_ci(v, n_boot=300, seed=t)
        covered_crossed += lo <= 0 <= hi
        _, lo, hi = S.bootstrap_mean_ci(v.ravel(), n_boot=300, seed=t)
        covered_pairs += lo <= 0 <= hi
    assert covered_crossed / trials > 0.85  # nominal 0.95; conservative or a little under at 6 columns
    assert covered_pairs / trials < 0.6  # 48 "independent" pairs: far too sure


def test_crossed_intervals_are_paired_across_methods():
    """Same seed and shape: the same resamples, so a method that is another plus a constant gets the same interval
    shifted by it."""
    v = crossed_table(np.random.default_rng(2), 5, 4, 0.2, 0.2)
    a, b = S.crossed_mean_ci(v, n_boot=100, seed=3), S.crossed_mean_ci(v + 1.0, n_boot=100, seed=3)
    assert np.allclose(np.array(b) - np.array(a), 1.0)


def test_compare_summary_has_pair_intervals_and_no_ratio_of_bounds():
    from wae_lib.report import compare as C

    rng = np.random.default_rng(0)
    rows = []
    for key, shift in (("ours", 0.0), ("other", 0.5)):
        v = crossed_table(rng, 4, 3, 0.1, 0.1) + shift
        for i in range(4):
            for j in range(3):
                rows.append({"method": key, "content_image": i, "style_image": j,
                             **{m: v[i, j] for m in C.SUMMARY_METRICS}})
    per_pair = pd.DataFrame(rows)
    methods = [C.Method(k, k, lambda *a: None, "none") for k in ("ours", "other")]
    fid = pd.DataFrame({"method": ["ours", "other"], "fid": [1.0, 2.0], "kid": [0.1, 0.2],
                        "kid_ci_low": [0.05, 0.1], "kid_ci_high": [0.2, 0.3]})
    summary = C.summary_table(methods, per_pair, fid, {}, n_boot=200).set_index("method")
    for m in C.SUMMARY_METRICS:
        point, lo, hi = summary.loc["other", [m, f"{m}_ci_low", f"{m}_ci_high"]]
        assert point == pytest.approx(per_pair.loc[per_pair["method"] == "other", m].mean()) and lo < point < hi
        assert f"{m}_ci_low_vs_ours" not in summary
    text = C.markdown_summary(summary.reset_index())
    other = next(line for line in text.splitlines() if line.startswith("| other |"))
    assert other.count("[") == 5  # four shares and KID carry their interval; timing and training costs none
    assert "pigeonhole" in text
