"""``python -m wae_lib scorecard``: the held-out scorecard of shipped models without shipping anything (issue 33)."""

from __future__ import annotations

import pandas as pd
import pytest

from wae_lib.__main__ import main


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    from wae_lib.data.build_sets import prepare_all
    from wae_lib.data.options import PrepConfig

    root = tmp_path_factory.mktemp("sample")
    prepare_all(None, root, PrepConfig(workers=1), progress=False)
    return root


def test_scores_the_shipped_model_beside_the_floor_and_keeps_an_existing_table(sample_root, tmp_path, capsys):
    out = tmp_path / "card.csv"
    assert main(["scorecard", "pretrained", "--data-root", str(sample_root), "--n-content", "4", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["run"]) == ["Reinhard colour transfer (floor)", "pretrained"]
    assert (table["size"] == 64).all()
    row = table.iloc[1]
    assert 0 <= row["style_retrieval_gram"] <= 1 and 0 <= row["content_retrieval"] <= 1 and row["psnr"] > 10
    # the frontier's intervals: crossed bootstrap over faces x paintings, around the point value
    assert row["style_carried"] == pytest.approx((row["style_retrieval_gram"] + row["style_retrieval_color"]) / 2)
    assert row["style_carried_lo"] <= row["style_carried"] <= row["style_carried_hi"]
    assert out.with_suffix(".md").read_text().startswith("Held-out scorecard")
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["scorecard", "pretrained", "--data-root", str(sample_root), "--out", str(out)]) == 1
    assert "exists: give --replace" in capsys.readouterr().err and out.read_bytes() == before


@pytest.mark.parametrize("args, says", [
    (["--size", "32"], "--size 32: expected 64 or more"),
    (["--out", "x.txt"], "expected a .csv file"),
])
def test_bad_input_is_one_line(sample_root, tmp_path, capsys, args, says):
    argv = ["scorecard", "pretrained", "--data-root", str(sample_root), "--out", str(tmp_path / "t.csv"), *args]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err


def test_a_missing_data_root_is_one_line(tmp_path, capsys):
    assert main(["scorecard", "pretrained", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "t.csv")]) == 1
    assert "no sets/info.json" in capsys.readouterr().err


def test_a_baseline_is_scored_like_a_model_without_a_reconstruction(sample_root, tmp_path):
    out = tmp_path / "adain.csv"
    assert main(["scorecard", "adain", "--data-root", str(sample_root), "--n-content", "3", "--out", str(out)]) == 0
    row = pd.read_csv(out).set_index("run").loc["adain"]
    assert pd.isna(row["psnr"]) and 0 <= row["style_retrieval_color"] <= 1 and 0 <= row["content_retrieval"] <= 1


def _table(path, floor_identity=1.0, rows=(("m", 0.5, 0.6, 0.7),), group=None):
    head = {"run": "Reinhard colour transfer (floor)", "style_retrieval_gram": 0.4, "style_retrieval_color": 0.9,
            "content_retrieval": 0.7, "identity_match": floor_identity}
    body = [{"run": r, "style_retrieval_gram": g, "style_retrieval_color": c, "content_retrieval": 0.8,
             "identity_match": i, "identity_match_lo": i - 0.1, "identity_match_hi": i + 0.1,
             **({"group": group} if group else {})} for r, g, c, i in rows]
    pd.DataFrame([head, *body]).to_csv(path, index=False)
    return path


def test_the_frontier_joins_tables_of_the_same_pairs_and_refuses_others(tmp_path, capsys):
    a = _table(tmp_path / "a.csv", rows=(("pretrained", 0.9, 0.95, 0.9), ("adain", 0.9, 0.6, 0.2)))
    b = _table(tmp_path / "b.csv", rows=(("map16x8", 0.8, 0.9, 0.6), ("vector256", 0.9, 0.9, 0.1)))
    out = tmp_path / "frontier.png"
    assert main(["frontier", str(a), f"{b}=ablation", "--out", str(out)]) == 0
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table["run"]) == ["Reinhard colour transfer (floor)", "pretrained", "adain", "map16x8", "vector256"]
    assert list(table["group"]) == ["floor", "shipped", "baseline", "ablation", "ablation"]
    assert table["style_carried"].iloc[1] == pytest.approx(0.925) and out.stat().st_size > 10_000
    other = _table(tmp_path / "c.csv", floor_identity=0.98)  # another size or other held-out sets
    capsys.readouterr()
    assert main(["frontier", str(a), str(other), "--out", str(tmp_path / "g.png")]) == 1
    err = capsys.readouterr().err
    assert "floor row differs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.png").exists()
    assert main(["frontier", str(a), "--out", str(out)]) == 1  # nothing replaced unless asked
    assert "exists: give --replace" in capsys.readouterr().err


def test_grid_shows_the_chosen_held_out_faces_and_paintings_per_model(sample_root, tmp_path, capsys):
    """``python -m wae_lib grid``: one row of faces, then one row per model x painting, each opening with its
    painting; bad indices and an existing grid are one line, nothing drawn."""
    import json

    import numpy as np
    from PIL import Image

    from wae_lib.eval.images import load_set

    out = tmp_path / "g.png"
    argv = ["grid", "pretrained", "pretrained-paper", "--data-root", str(sample_root), "--faces", "0,2",
            "--paintings", "1", "--out", str(out)]
    assert main(argv) == 0
    layout = json.loads(out.with_suffix(".png.json").read_text())
    assert (layout["n_rows"], layout["n_cols"]) == (3, 3)
    assert layout["row_labels"][0] == "faces" and [r.split(":")[0] for r in layout["row_labels"][1:]] == [
        "pretrained", "pretrained-paper"]
    assert "content_eval 0 2" in layout["caption"] and "style_eval 1," in layout["caption"]
    cell, pad, geo = layout["cell"], layout["pad"], layout["geometry"]
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    painting = (load_set(sample_root, "style_eval")[1].permute(1, 2, 0) * 255).round().int().numpy()
    x, y = geo["left"] + pad, geo["top"] + pad + (cell + pad)  # row 1, column 0: the painting itself
    assert np.abs(img[y:y + cell, x:x + cell] - painting).max() <= 1
    before = out.read_bytes()
    capsys.readouterr()
    assert main(argv) == 1 and "exists: give --replace" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*argv[:-1], str(tmp_path / "h.png"), "--faces", "0,999"]) == 1
    assert "--faces = '0,999' is invalid: expected comma-separated indices from 0 to" in capsys.readouterr().err
