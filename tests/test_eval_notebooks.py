"""Notebooks 03, 04 and 06 executed in-process on untrained tiny models and a small synthetic data folder.

The chain test (test_notebooks.py) runs every notebook through papermill after a short training run; this one
needs no training and no kernel, so the evaluation notebooks' code (the new identity, colour, retrieval and
reference columns, the C4 verdict against chance, the claims page) is checked in seconds. ``R.load_sweep`` is
replaced by a function returning untrained models; everything else is the notebooks' own code.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from wae_lib import utils
from wae_lib.data import layout as S
from wae_lib.eval import fid as FID
from wae_lib.eval import runs as R
from wae_lib.eval import tables as T

pytestmark = pytest.mark.slow  # notebooks 03-05 in-process on trained smoke models: make test-fast skips them

matplotlib.use("Agg")
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
N_FACES, N_STYLES = 6, 3


def run_in_process(name: str, **params) -> dict:
    """Execute the code cells of a notebook in one namespace, with ``params`` overriding its parameters cell."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    ns: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        exec(compile("".join(cell["source"]), f"{name}.ipynb", "exec"), ns)  # noqa: S102 (our own notebooks)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            ns.update(params)
    return ns


def smooth(n: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    img = torch.nn.functional.interpolate(low, size=64, mode="bicubic", align_corners=False).clamp(0, 1)
    return utils.to_uint8_hwc(img)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """sets/*.npy + info.json as wae_lib.data.build_sets writes them, with person labels for content_eval."""
    root = tmp_path_factory.mktemp("eval_nb")
    sets = S.sets_dir(root)
    sets.mkdir()
    arrays = {"celeba": smooth(8, 0), "mixed": smooth(8, 1), "content_eval": smooth(N_FACES, 2),
              "style_eval": smooth(N_STYLES, 3), "natural_eval": smooth(2, 4)}
    for name, arr in arrays.items():
        np.save(S.set_path(root, name), arr)
    np.save(sets / S.EVAL_IDENTITY_FILE, np.array([0, 0, 1, 1, 2, -1], dtype=np.int64))
    info = {"source": "synthetic test images", "is_sample": False,
            "sets": {name: {"file": S.SET_FILES[name], "count": len(arr)} for name, arr in arrays.items()}}
    (sets / S.INFO_FILE).write_text(json.dumps(info))
    return root


@pytest.fixture(scope="module")
def fake_sweep(hed_vgg):
    from wae_lib.config import Config
    from wae_lib.model.wae import WAEStyle

    base = Config(content_dim=16, width=0.125, style_hidden=32, style_dim_per_layer=8, vgg_source="hed",
                  profile="smoke")
    runs, models = [], []
    for data in ("celeba", "mixed"):
        for cd in (16, 8):
            cfg = base.replace(data=data, content_dim=cd)
            torch.manual_seed(cd)
            runs.append(R.RunInfo(f"{data}_c{cd}", Path("."), data, cd, "smoke", cfg))
            models.append(WAEStyle(cfg, vgg=hed_vgg, verbose=False).eval())
    ctx = R.EvalContext("smoke", "synthetic test images", models[0].vgg_source.label, "smoke profile (a test)")
    return runs, models, ctx


def test_evaluation_notebooks_in_process(tmp_path, data_root, fake_sweep, monkeypatch):
    monkeypatch.setattr(R, "load_sweep", lambda *a, **k: fake_sweep)
    with FID.torch_threads(1):
        dirs = {"figures_dir": str(tmp_path / "figures"), "tables_dir": str(tmp_path / "tables")}
        common = dict(models_dir="unused", data_root=str(data_root), profile="smoke", device="cpu", n_boot=30,
                      batch_size=8, **dirs)
        nb3 = run_in_process("03_reconstruction", **common, n_figure_images=3, n_styles=N_STYLES)
        nb4 = run_in_process("04_transfer", **common, n_figure_images=3, n_styles=N_STYLES, grid_content=2,
                             strip_content=1, strengths="0, 1", alphas="0, 1", identity_styles=1)
        run_in_process("06_claims", tables_dir=dirs["tables_dir"], reports_dir=str(tmp_path),
                       figures_dir=dirs["figures_dir"], notebooks_dir=str(tmp_path / "nb"), n_boot=30)
    recon = pd.read_csv(tmp_path / "tables" / "reconstruction_per_image.csv")
    faces = recon[recon["eval_set"] == "content_eval"]
    assert {"identity_distance", "identity_match", "identity_match_chance", "identity_model", "seed"} <= set(recon)
    assert faces["identity_gallery"].str.startswith("person (4 people").all()  # 3 people + 1 unknown
    assert np.allclose(faces["identity_match_chance"], 1 / 4)
    assert "identity_match" in set(nb3["summary"].columns)
    transfer = pd.read_csv(tmp_path / "tables" / "transfer_per_pair.csv")
    assert T.REFERENCE_RUN in set(transfer["run"]) and len(transfer) == 5 * N_FACES * N_STYLES
    assert T.REFERENCE_RUN in set(nb4["summary"]["run"]) and T.REFERENCE_RUN not in set(nb4["ranking"]["run"])
    for col in ("color_distance", "style_retrieval_gram", "style_retrieval_color", "content_retrieval"):
        assert transfer[col].notna().all(), col
    assert transfer["identity_distance"].notna().sum() == 5 * N_FACES  # identity_styles=1
    md = (tmp_path / "claims.md").read_text()
    assert md.startswith("> **This run is too small to judge the paper** (profile smoke")
    for header in ("identity match", "style retrieval, Gram", "colour distance (Lab SW2)", "content retrieval",
                   T.REFERENCE_RUN, "chance"):
        assert header in md, header
    claims = pd.read_csv(tmp_path / "tables" / "claims.csv")
    assert {"C1", "C2", "C3", "C4"} <= set(claims["claim"]) and "seeds" in claims
    assert (tmp_path / "index.md").is_file()
