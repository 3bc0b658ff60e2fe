"""`python -m wae_lib export` under bad input (issue 35): no default output inside the package, nothing replaced
unless asked and then only by a model that scores at least as well and trained as long, no unfinished run shipped,
one line for a bad table or a missing folder.

Tiny untrained models saved as run folders (as tests/test_cli.py does) and a planted scorecard (the scorecard
itself is tested in test_evaluate.py; scoring for real costs ~15 s a model here): each model's figures are
PLANTED by its config's seed. Every test writes under tmp_path; the package's weights are checked untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from commands import command

from wae_lib.config import Config
from wae_lib.eval import scorecard
from wae_lib.model.checkpoint import CHECKPOINT
from wae_lib.model.pretrained import WEIGHTS_DIR, card_file, export_pretrained, scorecard_file
from wae_lib.model.wae import WAEStyle

EXPORT_CMD = command("export")

# seed -> (style retrieval, identity kept): balance = sqrt(style x identity)
PLANTED = {1: (0.98, 0.93), 2: (0.33, 0.11), 3: (0.99, 0.95)}
FLOOR = {"run": scorecard.FLOOR_RUN, "psnr": float("nan"), "ssim": float("nan"), "recon_identity_match": float("nan"),
         "style_retrieval_gram": 0.41, "style_retrieval_color": 0.95, "content_retrieval": 0.74, "identity_match": 1.0,
         "identity_distance": 0.2, "style_gram_distance": 0.42, "style_color_distance": 6.38, "face_found": 0.99}


@pytest.fixture(autouse=True)
def package_weights_untouched():
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in WEIGHTS_DIR.iterdir()}
    yield
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in WEIGHTS_DIR.iterdir()} == before


@pytest.fixture
def scored(monkeypatch) -> list[int]:
    """The scorecard planted: HeldOut.load, the floor and each model's row; returns the seeds scored, in order."""
    calls: list[int] = []
    held_out = SimpleNamespace(faces=torch.zeros(6, 3, 64, 64), identities=None, content_index=np.arange(6),
                               styles=torch.zeros(3, 3, 64, 64), vgg=SimpleNamespace(label="planted VGG"))

    def score_model(model, evalset):
        calls.append(model.config.seed)
        style, identity = PLANTED[model.config.seed]
        return {**{k: v for k, v in FLOOR.items() if k != "run"}, "psnr": 20.0, "ssim": 0.6,
                "style_retrieval_gram": style, "style_retrieval_color": style, "identity_match": identity}

    monkeypatch.setattr(scorecard.HeldOut, "load", classmethod(lambda cls, root, **kw: held_out))
    monkeypatch.setattr(scorecard, "score_reinhard", lambda evalset: dict(FLOOR))
    monkeypatch.setattr(scorecard, "score_model", score_model)
    return calls


@pytest.fixture
def data_root(tmp_path) -> Path:
    sets = tmp_path / "data" / "sets"
    sets.mkdir(parents=True)
    (sets / "info.json").write_text(json.dumps({"source": "planted", "sets": {}}))
    return tmp_path / "data"


def make_run(models: Path, name: str, *, seed: int, step: int, planned: int, finished: bool = True,
             hed_vgg=None) -> Path:
    """A tiny untrained model saved as a run folder whose checkpoint is at ``step`` of ``planned`` (batch 8)."""
    torch.manual_seed(seed)
    cfg = Config(content_dim=16, width=0.125, style_hidden=32, style_dim_per_layer=8, vgg_source="hed",
                 steps=planned, batch_size=8, seed=seed)
    model = WAEStyle(cfg, vgg=hed_vgg, verbose=False)
    run = models / name
    run.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "config": model.config.to_dict(), "step": step, "finished": finished},
               run / CHECKPOINT)
    (run / "metadata.json").write_text(json.dumps({"n_images": 24}))
    return run


def run_export(*args) -> int:
    return EXPORT_CMD([str(a) for a in args])


def error_line(capsys) -> str:
    """The command's one error line (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (out, card_file(out), scorecard_file(out)) if p.exists()}


@pytest.fixture
def shipped(tmp_path, data_root, scored, hed_vgg, capsys) -> Path:
    """A model exported to tmp_path/ship/pretrained.pt: seed 1 (balance 0.955), 400 steps x 8 = 3,200 images."""
    make_run(tmp_path / "old", "good", seed=1, step=400, planned=400, hed_vgg=hed_vgg)
    out = tmp_path / "ship" / "pretrained.pt"
    assert run_export(tmp_path / "old", "--data-root", data_root, "--out", out) == 0
    capsys.readouterr()
    return out


# --------------------------------------------------------------------------------------------------
# no default output inside the package
# --------------------------------------------------------------------------------------------------
def test_out_is_required(tmp_path, data_root, scored, hed_vgg, monkeypatch, capsys):
    # the command once wrote wae_lib/weights/pretrained.pt when --out was left out (the autouse fixture checks that
    # the package's weights stay as they are)
    make_run(tmp_path / "models", "a", seed=1, step=40, planned=40, hed_vgg=hed_vgg)
    assert run_export(tmp_path / "models", "--data-root", data_root) == 1
    assert "--out is required" in error_line(capsys)
    assert scored == []  # refused before scoring


# --------------------------------------------------------------------------------------------------
# nothing replaced unless asked, and then only by a model as good and trained as long
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", [lambda p: p, card_file, scorecard_file], ids=["pt", "card", "scorecard"])
def test_an_existing_file_is_not_replaced_without_replace(which, tmp_path, data_root, scored, hed_vgg, capsys):
    out = tmp_path / "ship" / "pretrained.pt"
    out.parent.mkdir()
    which(out).write_text("an earlier export's file")
    make_run(tmp_path / "models", "better", seed=3, step=800, planned=800, hed_vgg=hed_vgg)
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", out) == 1
    line = error_line(capsys)
    assert f"{which(out)} exists" in line and "--replace" in line
    assert which(out).read_text() == "an earlier export's file" and len(list(out.parent.iterdir())) == 1
    assert scored == []  # said before minutes of scoring


def test_replace_refuses_a_model_that_scores_worse(shipped, tmp_path, data_root, scored, hed_vgg, capsys):
    before = snapshot(shipped)
    make_run(tmp_path / "models", "worse", seed=2, step=800, planned=800, hed_vgg=hed_vgg)
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", shipped, "--replace") == 1
    line = error_line(capsys)
    assert f"refusing to replace {shipped}: it scores better on the held-out scorecard" in line
    assert "balance = sqrt(style retrieval x identity kept) 0.955 > new 0.191 for worse" in line
    assert "identity kept 0.93 vs 0.11" in line
    assert snapshot(shipped) == before


def test_replace_refuses_a_model_that_trained_on_fewer_images(shipped, tmp_path, data_root, scored, hed_vgg, capsys):
    before = snapshot(shipped)
    make_run(tmp_path / "models", "short", seed=3, step=40, planned=40, hed_vgg=hed_vgg)  # scores better
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", shipped, "--replace") == 1
    line = error_line(capsys)
    assert (f"refusing to replace {shipped}: it trained on more images: 3,200 images (400 steps x 8) > new 320 "
            f"images (40 steps x 8) for short") in line
    assert snapshot(shipped) == before and scored == [1]  # the new one was refused before it was scored


def test_the_best_of_a_sweep_is_held_to_the_same_rules(shipped, tmp_path, data_root, scored, hed_vgg, capsys):
    make_run(tmp_path / "models", "long-worse", seed=2, step=800, planned=800, hed_vgg=hed_vgg)
    make_run(tmp_path / "models", "short-best", seed=3, step=40, planned=40, hed_vgg=hed_vgg)
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", shipped, "--replace") == 1
    assert "3,200 images (400 steps x 8) > new 320 images (40 steps x 8) for short-best" in error_line(capsys)
    make_run(tmp_path / "models", "stopped", seed=3, step=53, planned=400, finished=False, hed_vgg=hed_vgg)
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", tmp_path / "new.pt") == 1
    assert "stopped: unfinished run (its checkpoint is at step 53 of a planned 400)" in error_line(capsys)
    assert not (tmp_path / "new.pt").exists()


def test_replace_ships_a_model_that_scores_better_and_trained_longer(shipped, tmp_path, data_root, scored, hed_vgg,
                                                                     capsys):
    make_run(tmp_path / "models", "better", seed=3, step=800, planned=800, hed_vgg=hed_vgg)
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", shipped, "--replace") == 0
    assert torch.load(shipped, weights_only=True)["provenance"]["run"] == "better"
    assert "| schedule | 800 steps of 8 images (6400 images seen)" in card_file(shipped).read_text()
    assert "better" in pd.read_csv(scorecard_file(shipped))["run"].tolist()


def test_replace_without_a_scorecard_to_compare_says_so(shipped, tmp_path, data_root, scored, hed_vgg, capsys):
    scorecard_file(shipped).unlink()
    make_run(tmp_path / "models", "worse", seed=2, step=800, planned=800, hed_vgg=hed_vgg)
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", shipped, "--replace") == 0
    assert f"{shipped} has no scorecard (pretrained.scorecard.csv) to compare with" in capsys.readouterr().err
    assert torch.load(shipped, weights_only=True)["provenance"]["run"] == "worse"


def test_a_scorecard_of_other_held_out_sets_is_not_compared_the_old_model_is_scored_again(
        shipped, tmp_path, data_root, scored, hed_vgg, capsys):
    card = pd.read_csv(scorecard_file(shipped))
    card.loc[card["run"] == scorecard.FLOOR_RUN, "style_color_distance"] = 9.9  # scored on other sets...
    card.loc[card["run"] == "good", "identity_match"] = 0.01  # ...where it did worse: not a figure to compare
    card.to_csv(scorecard_file(shipped), index=False)
    before = snapshot(shipped)
    make_run(tmp_path / "models", "worse", seed=2, step=800, planned=800, hed_vgg=hed_vgg)
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", shipped, "--replace") == 1
    assert "0.955 > new 0.191 for worse" in error_line(capsys)
    assert snapshot(shipped) == before and scored == [1, 2, 1]  # the old model (seed 1) scored again on these sets


# --------------------------------------------------------------------------------------------------
# unfinished runs; the card states the steps trained
# --------------------------------------------------------------------------------------------------
def test_an_unfinished_run_is_refused(tmp_path, data_root, scored, hed_vgg, capsys):
    make_run(tmp_path / "models", "stopped", seed=1, step=53, planned=400, finished=False, hed_vgg=hed_vgg)
    out = tmp_path / "ship" / "p.pt"
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", out) == 1
    line = error_line(capsys)
    assert "stopped: unfinished run (its checkpoint is at step 53 of a planned 400)" in line
    assert not out.parent.exists() and scored == []


def test_an_unfinished_exported_file_is_refused(tmp_path, data_root, scored, hed_vgg, capsys):
    from wae_lib.model.run import load_model

    run = make_run(tmp_path / "models", "stopped", seed=1, step=53, planned=400, finished=False, hed_vgg=hed_vgg)
    pt = export_pretrained(load_model(run), tmp_path / "device" / "model.pt", run="device-stopped", step=53,
                           finished=False, batch_size=8)  # a lent GPU's ship stage stopped at its deadline
    out = tmp_path / "ship" / "p.pt"
    assert run_export(pt, "--data-root", data_root, "--out", out) == 1
    assert "model.pt: unfinished run (its checkpoint is at step 53 of a planned 400)" in error_line(capsys)
    assert not out.parent.exists()


def test_the_card_states_the_steps_its_checkpoint_trained_not_the_plan(tmp_path, data_root, scored, hed_vgg):
    make_run(tmp_path / "models", "longer", seed=1, step=450, planned=400, hed_vgg=hed_vgg)
    out = tmp_path / "ship" / "p.pt"
    assert run_export(tmp_path / "models", "--data-root", data_root, "--out", out) == 0
    assert "| schedule | 450 steps of 8 images (3600 images seen)" in card_file(out).read_text()


# --------------------------------------------------------------------------------------------------
# one line, not a traceback
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["summary without run", "summary without identity_match", "missing summary",
                                  "compare without run", "missing models folder", "data root without sets"])
def test_bad_tables_and_missing_folders_are_one_line(case, tmp_path, data_root, scored, hed_vgg, capsys):
    models = tmp_path / "models"
    make_run(models, "a", seed=1, step=40, planned=40, hed_vgg=hed_vgg)
    table = tmp_path / "table.csv"
    columns = {"run": ["a"], "style_retrieval_color": [0.5], "style_retrieval_gram": [0.5], "identity_match": [0.5]}
    extra, named = [], table
    if case.startswith("summary without"):
        pd.DataFrame({k: v for k, v in columns.items() if k != case.split()[-1]}).to_csv(table, index=False)
        extra = ["--summary", table]
    elif case == "missing summary":
        extra = ["--summary", table]
    elif case == "compare without run":
        pd.DataFrame({"model": ["a"], "psnr": [20.0]}).to_csv(table, index=False)
        extra = ["--compare", f"{table}=earlier"]
    elif case == "missing models folder":
        models = named = tmp_path / "no-such-sweep"
    else:
        data_root = named = tmp_path / "empty"
    out = tmp_path / "ship" / "p.pt"
    assert run_export(models, "--data-root", data_root, "--out", out, *extra) == 1
    line = error_line(capsys)
    assert str(named) in line, line
    if "without" in case and case != "data root without sets":
        assert f"no column {case.split()[-1]}" in line
    assert not out.parent.exists()
