"""Both trainings side by side (wae_lib.report.both_trainings): the claims of two reports folders, row by row."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from wae_lib.report import both_trainings as B

REFERENCE = Path(__file__).resolve().parents[1] / "reports" / "reference-shared-data-large"


@pytest.fixture
def two_folders(tmp_path):
    """The committed reference report, and a copy whose C3b verdicts are flipped (a stand-in for ours)."""
    paper, ours = tmp_path / "paper", tmp_path / "ours"
    for folder in (paper, ours):
        (folder / "tables").mkdir(parents=True)
        (folder / "figures").mkdir()
        shutil.copy(REFERENCE / "figures" / "fig7_transfer.png", folder / "figures")
        for name in ("transfer_summary.csv", "reconstruction_summary.csv"):
            shutil.copy(REFERENCE / "tables" / name, folder / "tables")
    claims = pd.read_csv(REFERENCE / "tables" / "claims.csv")
    claims.to_csv(paper / "tables" / "claims.csv", index=False)
    flipped = claims.copy()
    c3b = flipped["part"] == "C3b"
    flipped.loc[c3b, "verdict"] = flipped.loc[c3b, "verdict"].map(
        {"supported": "not supported", "not supported": "supported", "inconclusive": "supported"})
    flipped.assign(profile="ours").to_csv(ours / "tables" / "claims.csv", index=False)
    return paper, ours, int(c3b.sum()), len(claims)


def test_claims_and_fig7_side_by_side(two_folders, tmp_path):
    paper, ours, n_flipped, n_parts = two_folders
    out = B.build([paper, ours], ["paper's training", "ours"], tmp_path / "both")
    table = pd.read_csv(out / "claims_both.csv")
    assert len(table) == n_parts and int(table["verdict changed"].sum()) == n_flipped
    assert set(table.loc[table["verdict changed"], "part"]) == {"C3b"}
    md = (out / "claims.md").read_text()
    assert f"{n_flipped} of {n_parts} claim parts change verdict" in md and "profile=ours" in md
    assert md.count("The paper says:") == 4
    fig, one = Image.open(out / "fig7_both.png"), Image.open(paper / "figures" / "fig7_transfer.png")
    assert fig.width > 2 * one.width and fig.height > one.height
    models = pd.read_csv(out / "per_model_both.csv")
    assert len(models) == 21 and (models["training"] == "(no training)").sum() == 1  # 10 + 10 models + the floor
    ref = pd.read_csv(REFERENCE / "tables" / "transfer_summary.csv").set_index("run")
    row = models[(models["run"] == "mixed_c256") & (models["training"] == "ours")].iloc[0]
    assert row["style_retrieval_gram"] == pytest.approx(ref.loc["mixed_c256", "style_retrieval_gram"])
    assert 10 < row["psnr"] < 40 and "| mixed_c256 | ours |" in md and "per_model_both.png" in md
    assert Image.open(out / "per_model_both.png").width > 1000


def test_other_data_or_missing_claims_are_refused(two_folders, tmp_path, capsys):
    paper, ours, _, _ = two_folders
    other = pd.read_csv(ours / "tables" / "claims.csv").assign(data_source="DATA_DIR=elsewhere")
    other.to_csv(ours / "tables" / "claims.csv", index=False)
    with pytest.raises(ValueError, match="different data"):
        B.build([paper, ours], ["a", "b"], tmp_path / "x")
    assert B.main([str(paper), str(tmp_path / "nowhere"), "--labels", "a", "b", "--out", str(tmp_path / "y")]) == 2
    assert "make claims" in capsys.readouterr().err
