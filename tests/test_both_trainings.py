"""Both trainings side by side (wae_lib.report.both_trainings): the claims of two reports folders, row by row."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from commands import command
from PIL import Image

from wae_lib.report import both_trainings as B

BOTH_TRAININGS_CMD = command("both-trainings")

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
    assert BOTH_TRAININGS_CMD([str(paper), str(tmp_path / "nowhere"), "--labels", "a", "b", "--out", str(tmp_path / "y")]) == 1
    assert "make claims" in capsys.readouterr().err


# issue 35: the comparison never writes into an input folder, replaces its own files only when asked, and bad
# labels or tables are one line each
def err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_no_input_or_earlier_comparison_is_overwritten(two_folders, tmp_path, capsys):
    paper, ours, _, _ = two_folders
    (ours / "claims.md").write_text("ours: the claims report of notebook 06\n")
    assert BOTH_TRAININGS_CMD([str(paper), str(ours), "--labels", "a", "b", "--out", str(ours)]) == 1
    line = err_line(capsys)
    assert f"--out {ours} is the input folder" in line and "claims.md" in line
    assert BOTH_TRAININGS_CMD([str(paper), str(ours), "--labels", "a", "b", "--out", str(ours), "--replace"]) == 1  # never
    err_line(capsys)
    assert (ours / "claims.md").read_text() == "ours: the claims report of notebook 06\n"
    assert sorted(p.name for p in ours.iterdir()) == ["claims.md", "figures", "tables"]
    out = tmp_path / "both"
    assert BOTH_TRAININGS_CMD([str(paper), str(ours), "--labels", "a", "b", "--out", str(out)]) == 0
    first = (out / "claims.md").read_text()
    (out / "claims.md").write_text("edited by hand\n")
    assert BOTH_TRAININGS_CMD([str(paper), str(ours), "--labels", "x", "y", "--out", str(out)]) == 1
    assert "already holds claims.md, claims_both.csv, fig7_both.png" in err_line(capsys)
    assert (out / "claims.md").read_text() == "edited by hand\n"
    assert BOTH_TRAININGS_CMD([str(paper), str(ours), "--labels", "a", "b", "--out", str(out), "--replace"]) == 0
    assert (out / "claims.md").read_text() == first


def test_a_label_twice_or_missing_columns_are_one_line(two_folders, tmp_path, capsys):
    paper, ours, _, _ = two_folders
    out = tmp_path / "both"
    assert BOTH_TRAININGS_CMD([str(paper), str(ours), "--labels", "a", "a", "--out", str(out)]) == 1
    assert "--labels: 'a' is given twice" in err_line(capsys)
    claims = pd.read_csv(ours / "tables" / "claims.csv")
    claims.drop(columns=["verdict", "data_source"]).to_csv(ours / "tables" / "claims.csv", index=False)
    assert BOTH_TRAININGS_CMD([str(paper), str(ours), "--labels", "a", "b", "--out", str(out)]) == 1
    line = err_line(capsys)
    assert f"{ours / 'tables' / 'claims.csv'} lacks the column(s) verdict, data_source" in line
    claims.to_csv(ours / "tables" / "claims.csv", index=False)
    transfer = pd.read_csv(ours / "tables" / "transfer_summary.csv")
    transfer.drop(columns=["data"]).to_csv(ours / "tables" / "transfer_summary.csv", index=False)
    assert BOTH_TRAININGS_CMD([str(paper), str(ours), "--labels", "a", "b", "--out", str(out)]) == 1
    assert f"{ours / 'tables' / 'transfer_summary.csv'} lacks the column(s) data" in err_line(capsys)
    assert not out.exists()  # nothing half-written
