"""The evaluation cache (wae_lib.eval.cache): written once per sweep, read back bit for bit, skipped when up to
date, refused by the notebooks and recomputed by the CLI when a run's checkpoint or the data change."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from commands import command

from wae_lib.config import EvaluationError, profile_config
from wae_lib.data import layout as S
from wae_lib.eval import cache as EC
from wae_lib.eval import images as E
from wae_lib.eval import runs as R
from wae_lib.eval.fid import torch_threads
from wae_lib.model import run as RUN
from wae_lib.train import run_folder as TRAIN

EVAL_CACHE_CMD = command("eval-cache")

N_STYLES, BATCH = 2, 4  # a batch smaller than the sets: outputs cross batch boundaries


def smooth(n: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=64, mode="bicubic", align_corners=False).clamp(0, 1)
    return (img.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def one_torch_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def sweep(tmp_path):
    """A data root with the evaluation sets and two smoke runs trained for one step on a tiny set."""
    root = tmp_path / "data"
    S.sets_dir(root).mkdir(parents=True)
    arrays = {"content_eval": smooth(6, 1), "style_eval": smooth(3, 2), "natural_eval": smooth(3, 3)}
    for name, arr in arrays.items():
        np.save(S.set_path(root, name), arr)
    info = {"source": "synthetic test images", "sets": {n: {"file": S.SET_FILES[n], "count": len(a)}
                                                        for n, a in arrays.items()}}
    (S.sets_dir(root) / S.INFO_FILE).write_text(json.dumps(info))
    train_npy = tmp_path / "train.npy"
    np.save(train_npy, smooth(16, 0))
    models = tmp_path / "models"
    for cd in (16, 8):
        cfg = profile_config("smoke", data=str(train_npy), content_dim=cd, steps=1, sample_every=0, device="cpu")
        TRAIN.train(cfg, models / f"train_c{cd}")
    return root, models, tmp_path / "cache"


def whole_sets(root):
    return {name: E.eval_images(root, name) for name in (*E.EVAL_SETS, E.FACE_FREE)}


def test_cache_round_trips_bit_for_bit_and_is_skipped_when_up_to_date(sweep, capsys):
    root, models_dir, cache = sweep
    assert EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH) == {"train_c16": "written",
                                                                              "train_c8": "written"}
    runs = R.discover_runs(models_dir)
    models = [RUN.load_model(r.path) for r in runs]
    cached = EC.sweep_outputs(runs, models, cache, root)
    computed = EC.sweep_outputs(runs, models, "", root, BATCH)
    assert all(isinstance(o, EC.CachedOutputs) for o in cached)
    assert all(isinstance(o, EC.ModelOutputs) for o in computed)
    sets = whole_sets(root)
    styles = E.eval_images(root, "style_eval", N_STYLES)
    for c, m in zip(cached, computed):
        for name, images in sets.items():  # whole sets: the very tensors the notebook would compute
            assert torch.equal(c.reconstructions(images), m.reconstructions(images)), name
            if name in E.EVAL_SETS:
                assert all(torch.equal(a, b) for a, b in zip(c.latents(images), m.latents(images))), name
        assert torch.equal(c.transfers(sets["content_eval"], styles), m.transfers(sets["content_eval"], styles))
        subset = E.eval_images(root, "content_eval", 3)  # a subset: the same images, read from the whole set
        assert torch.allclose(c.reconstructions(subset), m.reconstructions(subset), atol=1e-5)
        assert torch.allclose(c.transfers(subset, styles), m.transfers(subset, styles), atol=1e-5)
        with pytest.raises(EvaluationError, match="n_styles = 2"):
            c.transfers(subset, E.eval_images(root, "style_eval", 3))
    manifest = json.loads((cache / "train_c16" / EC.MANIFEST).read_text())
    assert manifest["checkpoint"]["step"] == 1 and manifest["key"]["n_styles"] == N_STYLES
    assert np.load(cache / "train_c16" / f"{EC.TRANSFERS}.npy").dtype == np.float32
    capsys.readouterr()
    assert set(EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH).values()) == {"up to date"}
    lines = capsys.readouterr().err.splitlines()
    assert [ln for ln in lines if "train_c16" in ln] == [
        "[wae_lib] eval cache: train_c16 up to date (checkpoint step 1, arrays verified), skipped"]


def test_a_changed_checkpoint_or_data_is_refused_then_recomputed(sweep):
    root, models_dir, cache = sweep
    EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH)
    runs = R.discover_runs(models_dir)
    changed = runs[0]
    TRAIN.train(changed.config.replace(steps=2), changed.path)  # one more step: another checkpoint
    with pytest.raises(EvaluationError, match=f"cache of run {changed.name} is stale \\(its checkpoint changed\\)"):
        EC.sweep_outputs(runs, [None] * len(runs), cache, root)
    assert EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH) == {changed.name: "written",
                                                                              runs[1].name: "up to date"}
    model = RUN.load_model(changed.path)
    assert model.checkpoint_info["step"] == 2
    faces = E.eval_images(root, "content_eval")
    cached = EC.sweep_outputs(runs, [None] * len(runs), cache, root)[0]
    assert torch.equal(cached.reconstructions(faces), EC.ModelOutputs(model, BATCH).reconstructions(faces))
    # other data (a changed evaluation set): every run's cache is stale
    np.save(S.set_path(root, "content_eval"), smooth(6, 9))
    with pytest.raises(EvaluationError, match="stale \\(its data changed\\)"):
        EC.sweep_outputs(runs, [None] * len(runs), cache, root)
    assert set(EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH).values()) == {"written"}


def test_changed_model_code_makes_every_cache_stale(sweep, monkeypatch):
    root, models_dir, cache = sweep
    EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH)
    runs = R.discover_runs(models_dir)
    EC.sweep_outputs(runs, [None] * len(runs), cache, root)  # up to date
    monkeypatch.setattr(EC, "code_digest", lambda: "another model/networks.py")
    with pytest.raises(EvaluationError, match="stale \\(its model code changed\\)"):
        EC.sweep_outputs(runs, [None] * len(runs), cache, root)
    assert set(EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH).values()) == {"written"}


def test_missing_cache_and_bad_arguments_name_what_to_do(sweep, capsys):
    root, models_dir, cache = sweep
    runs = R.discover_runs(models_dir)
    with pytest.raises(EvaluationError, match="cache_dir = .* holds no complete cache of run .*python -m wae_lib"):
        EC.sweep_outputs(runs, [None] * len(runs), cache, root)
    assert EVAL_CACHE_CMD(["--models-dir", str(root / "nothing"), "--data-root", str(root), "--cache-dir", str(cache)]) == 1
    assert capsys.readouterr().err.startswith("error: parameter models_dir")


# --------------------------------------------------------------------------------------------------
# a damaged cache (issue 18, item 1): refused by the reader in one line, recomputed by the builder
# --------------------------------------------------------------------------------------------------
def _zeros(path):
    np.save(path, np.zeros_like(np.load(path)))


def _garbage(path):
    a = np.load(path)
    np.save(path, np.random.default_rng(0).random(a.shape, dtype=np.float32))


def _nan(path):
    a = np.load(path)
    a.flat[0] = np.nan
    np.save(path, a)


def _float64(path):
    np.save(path, np.load(path).astype(np.float64))


def _empty(path):
    path.write_bytes(b"")


DAMAGE = {"zeros": _zeros, "garbage": _garbage, "nan": _nan, "float64": _float64, "0 bytes": _empty}
RECON = "content_eval.reconstruction.npy"


@pytest.mark.parametrize("damage", [*DAMAGE, "swapped arrays"])
def test_a_damaged_array_is_refused_then_recomputed(sweep, capsys, damage):
    root, models_dir, cache = sweep
    EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH)
    runs = R.discover_runs(models_dir)
    folder = cache / runs[0].name
    good = np.load(folder / RECON)
    if damage == "swapped arrays":  # two arrays of the same shape, each in the other's file
        a, b = folder / "style_eval.reconstruction.npy", folder / "natural_eval.reconstruction.npy"
        a_bytes = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(a_bytes)
    else:
        DAMAGE[damage](folder / RECON)
    with pytest.raises(EvaluationError, match=f"cache of run {runs[0].name} is damaged .*python -m wae_lib"):
        EC.sweep_outputs(runs, [None] * len(runs), cache, root)
    capsys.readouterr()
    assert EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH) == {runs[0].name: "written",
                                                                              runs[1].name: "up to date"}
    assert "recomputing" in capsys.readouterr().err
    assert np.array_equal(np.load(folder / RECON), good)
    EC.sweep_outputs(runs, [None] * len(runs), cache, root)  # accepted again


def test_malformed_manifest_style_rows_edit_and_leftover_temporaries(sweep, capsys):
    root, models_dir, cache = sweep
    EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH)
    runs = R.discover_runs(models_dir)
    folder = cache / runs[0].name
    manifest = json.loads((folder / EC.MANIFEST).read_text())
    (folder / EC.MANIFEST).write_text(json.dumps({k: v for k, v in manifest.items() if k != "key"}))
    with pytest.raises(EvaluationError, match="holds no complete cache"):  # not a raw KeyError
        EC.sweep_outputs(runs, [None] * len(runs), cache, root)
    (folder / EC.MANIFEST).write_text(json.dumps(dict(manifest, style_rows=[0])))  # a hand edit
    (folder / f".transfers.npy.tmp{2**22 + 12345}").write_bytes(b"left by a kill -9")
    assert EC.build_cache(models_dir, root, cache, N_STYLES, "cpu", BATCH)[runs[0].name] == "written"
    assert not [p.name for p in folder.iterdir() if ".tmp" in p.name]
    assert json.loads((folder / EC.MANIFEST).read_text())["style_rows"] == manifest["style_rows"]


def test_interrupted_build_is_one_line(sweep, capsys, monkeypatch):
    root, models_dir, cache = sweep

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(EC, "compute_run_outputs", interrupted)
    code = EVAL_CACHE_CMD(["--models-dir", str(models_dir), "--data-root", str(root), "--cache-dir", str(cache)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and err[-1].startswith("error: interrupted") and "Traceback" not in "".join(err)
