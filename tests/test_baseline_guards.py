"""Issue 35: shipping and continuing the AdaIN/WCT decoders destroys nothing by accident. ``ship-baselines`` replaces
shipped decoders only with --replace and never with worse or shorter-trained ones (both figures in one line), a
torn log is one line, ``baselines --continue-from`` refuses a folder holding another run's files, and a resumed
run drops a torn log line. Tiny decoders on planted data; nothing is written into wae_lib/weights (every test
ships into a temporary folder: --weights-dir, or WEIGHTS_DIR patched)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from commands import command
from test_baselines import fake_data_root  # the planted data root of the decoder tests

from wae_lib.baselines import common as COMMON
from wae_lib.baselines import shipped as SB

SHIP_BASELINES_CMD = command("ship-baselines")
BASELINES_CMD = command("baselines")

PACKAGE_WEIGHTS = Path(SB.__file__).resolve().parents[1] / "weights"


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A finished 4-step AdaIN run with held-out validations at steps 2 and 4 (the issue's "4-step smoke run"),
    and the command line that trained it."""
    root = tmp_path_factory.mktemp("guards")
    data = fake_data_root(root / "data")
    args = ["--method", "adain", "--data", "mixed", "--data-root", str(data), "--width", "0.125", "--batch-size",
            "2", "--steps", "4", "--val-every", "2", "--val-images", "4", "--log-every", "1"]
    assert BASELINES_CMD([*args, "--out", str(root / "adain")]) == 0
    return root / "adain", args


@pytest.fixture
def package_weights_untouched():
    before = digests(PACKAGE_WEIGHTS)
    yield
    assert digests(PACKAGE_WEIGHTS) == before


def shipped_copy(folder: Path) -> Path:
    """A weights folder holding copies of the package's converged AdaIN decoders (15,750 steps) and their card."""
    folder.mkdir()
    for name in ("baseline-adain.pt", SB.CARD_NAME):
        shutil.copy(PACKAGE_WEIGHTS / name, folder / name)
    return folder


def test_shipped_decoders_are_not_replaced_by_a_smoke_run(smoke, tmp_path, monkeypatch, capsys,
                                                          package_weights_untouched):
    run, _ = smoke
    weights = shipped_copy(tmp_path / "weights")
    monkeypatch.setattr(COMMON, "WEIGHTS_DIR", weights)  # the one home of the shipped decoders' folder
    before = digests(weights)
    assert SHIP_BASELINES_CMD([str(run)]) == 1
    line = one_line(capsys)
    assert "already ships adain decoders" in line and "give --replace" in line
    assert "(15,750 steps, best held-out validation loss 2023; from baseline-adain.pt's record)" in line
    assert f"with {run} (4 steps, best held-out validation loss " in line
    # asked to replace: still refused, for fewer steps and a worse held-out loss, both figures in the line
    assert SHIP_BASELINES_CMD([str(run), "--replace"]) == 1
    line = one_line(capsys)
    assert line.startswith("error: refusing to replace") and "(15,750 steps, best held-out validation loss 2023;" in line
    assert f"with {run} (4 steps, best held-out validation loss " in line
    assert line.endswith("it trained fewer steps and scores a higher best held-out validation loss (lower is better)")
    assert digests(weights) == before


def test_a_better_run_replaces_only_when_asked_and_the_card_follows(smoke, tmp_path, capsys,
                                                                    package_weights_untouched):
    run, _ = smoke
    weights = tmp_path / "weights"
    weights.mkdir()
    worse = SB.export_baseline(run, weights / "baseline-adain.pt")  # shipped earlier: fewer steps, a higher loss
    ckpt = torch.load(worse, weights_only=True)
    ckpt["shipped"].update(steps=2, best_val_loss=1e12)
    torch.save(ckpt, worse)
    SB.write_card(weights)
    assert "| 2 steps of 2" in (weights / SB.CARD_NAME).read_text()
    assert SHIP_BASELINES_CMD([str(run), "--weights-dir", str(weights)]) == 1
    assert "give --replace" in one_line(capsys)
    assert SHIP_BASELINES_CMD([str(run), "--weights-dir", str(weights), "--replace"]) == 0
    out = capsys.readouterr()
    assert "replaced (2 steps, best held-out validation loss 1e+12;" in out.err and str(weights / "baseline-adain.pt") in out.out
    assert torch.load(worse, weights_only=True)["shipped"]["steps"] == 4
    assert "| 4 steps of 2 (8 images)" in (weights / SB.CARD_NAME).read_text()


def test_the_card_says_what_is_shipped_when_the_file_does_not(smoke, tmp_path, monkeypatch, capsys):
    """A shipped file without its record (or missing from the checkout) is held to its card line."""
    run, _ = smoke
    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(PACKAGE_WEIGHTS / SB.CARD_NAME, weights)
    card = (weights / SB.CARD_NAME).read_text()
    monkeypatch.setattr(COMMON, "WEIGHTS_DIR", weights)  # the one home of the shipped decoders' folder
    assert SHIP_BASELINES_CMD([str(run)]) == 1  # no file, but the card has an AdaIN line: it is shipped
    assert "already ships adain decoders" in one_line(capsys)
    bare = torch.load(SB.export_baseline(run, tmp_path / "bare.pt"), weights_only=True)
    del bare["shipped"]
    torch.save(bare, weights / "baseline-adain.pt")
    assert SHIP_BASELINES_CMD([str(run), "--replace"]) == 1
    line = one_line(capsys)
    assert "(15,750 steps, best held-out validation loss 2023; from baselines.card.md, adain line)" in line
    assert "it trained fewer steps and scores a higher" in line
    assert (weights / SB.CARD_NAME).read_text() == card


def test_a_torn_log_an_existing_figure_and_one_method_twice_are_one_line(smoke, tmp_path, monkeypatch, capsys):
    run, _ = smoke
    weights = tmp_path / "weights"
    monkeypatch.setattr(COMMON, "WEIGHTS_DIR", weights)  # the one home of the shipped decoders' folder
    torn = tmp_path / "torn"
    shutil.copytree(run, torn)
    log = (torn / "log.jsonl").read_text().splitlines()
    (torn / "log.jsonl").write_text("\n".join(log[:-1] + [log[-1][: len(log[-1]) // 2]]))  # a kill mid-write
    assert SHIP_BASELINES_CMD([str(torn)]) == 1
    line = one_line(capsys)
    assert f"log.jsonl, line {len(log)} of {len(log)}, is not a JSON row (cut short" in line
    assert not weights.exists()
    figure = tmp_path / "curves.png"
    figure.write_bytes(b"an earlier figure")
    assert SHIP_BASELINES_CMD([str(run), "--figure", str(figure)]) == 1
    assert "--figure" in one_line(capsys) and figure.read_bytes() == b"an earlier figure"
    assert SHIP_BASELINES_CMD([str(run), str(run)]) == 1  # two adain runs: the second would silently replace the first
    assert "both hold adain decoders" in one_line(capsys)
    assert not weights.exists()


def test_continue_from_refuses_a_folder_of_another_run(smoke, tmp_path, monkeypatch, capsys):
    run, args = smoke
    weights = tmp_path / "weights"
    weights.mkdir()
    SB.export_baseline(run, weights / "baseline-adain.pt")  # unconverged: it carries its training state
    monkeypatch.setattr(COMMON, "WEIGHTS_DIR", weights)  # the one home of the shipped decoders' folder
    other = tmp_path / "other"  # a WCT run's start: its log and its lr probe
    other.mkdir()
    (other / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    probe = json.dumps({"method": "wct", "probe_steps": 3, "loss": {"0.001": 0.1}, "chosen": 0.001})
    (other / "lr_probe.json").write_text(probe)
    assert BASELINES_CMD([*args, "--steps", "6", "--out", str(other), "--continue-from", "shipped"]) == 1
    line = one_line(capsys)
    assert "holds log.jsonl, lr_probe.json, not files of this adain run" in line and "another --out" in line
    assert (other / "log.jsonl").read_text() == '{"step": 1, "loss": 0.5}\n' and (other / "lr_probe.json").read_text() == probe
    assert sorted(p.name for p in other.iterdir()) == ["log.jsonl", "lr_probe.json"]
    # an earlier start of this same run (its config.json, its log; no checkpoint yet) carries on from the shipped file
    same = tmp_path / "same"
    same.mkdir()
    shutil.copy(run / "config.json", same)
    (same / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    assert BASELINES_CMD([*args, "--steps", "6", "--out", str(same), "--continue-from", "shipped"]) == 0
    assert "continuing the shipped adain decoders" in capsys.readouterr().err
    assert torch.load(same / "checkpoint.pt", weights_only=True)["step"] == 6


def test_a_resumed_run_drops_a_torn_log_line(smoke, tmp_path, capsys):
    run, args = smoke
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with open(copy / "log.jsonl", "a") as f:
        f.write('{"step": 5, "lr": 0.0001, "lo')  # killed while writing a row past the checkpoint
    assert BASELINES_CMD([*args, "--steps", "6", "--out", str(copy)]) == 0
    steps = [json.loads(r)["step"] for r in (copy / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6 and 5 in steps
