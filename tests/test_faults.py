"""Faults and bad input on the data, training and notebook paths (issue 11): one test (or a few) per case.

1. data prep: images.npy and manifest.csv never disagree and are then called up to date (non-UTF-8 names,
   kill -9 at every write, truncated outputs); 2. a touched training set does not retrain a finished model;
3. YAML configs are validated like flags; 4. a full disk while checkpointing is one line and leaves no
   temporaries; 5. kill -9 during training resumes without duplicate log rows, and a second run on the same
   folder refuses; 6. config.json and the checkpoint are compared; 7. nothing in ``.parts`` is unpickled;
8. notebooks check their parameters right after the parameters cell; 9. smaller: impossible values refused,
   no false "last good checkpoint", data-prep CLI errors in one line, "resuming from step N".

Kill points: a subprocess installs an audit hook (sys.addaudithook) that counts the writes, renames and
removals under the output folder and sends itself SIGKILL at the N-th: independent of how the code writes, and
deterministic. Data prep is killed at every such point, training at the points listed in TRAIN_KILLS.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from commands import command
from PIL import Image
from test_train import smooth_images  # one home for the tests' synthetic images

from wae_lib.config import ConfigError, profile_config
from wae_lib.data import build_sets as MS
from wae_lib.data import layout as S
from wae_lib.data import packed as PR
from wae_lib.data import prepare as P
from wae_lib.data.options import PrepConfig
from wae_lib.model.checkpoint import CHECKPOINT
from wae_lib.model.run import load_model
from wae_lib.train import run_folder as TRAIN
from wae_lib.train import trainer as T

DATA_CMD = command("data")
TRAIN_CMD = command("train")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

# Prepended to every subprocess script: argv[1] is the folder watched, argv[2] the write at which to die (0: never;
# the count is printed at exit).
KILL_HOOK = r"""
import atexit, os, signal, sys
_ROOT, _KILL_AT, _COUNT = os.path.realpath(sys.argv[1]), int(sys.argv[2]), [0]
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int) or not ((isinstance(flags, int) and flags & _WRITE) or set(str(mode)) & set("wax+")):
            return
        paths = [path]
    elif event in ("os.rename", "os.remove", "os.truncate"):
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    else:
        return
    if any(os.path.realpath(os.fsdecode(p)).startswith(_ROOT) for p in paths):
        _COUNT[0] += 1
        if _COUNT[0] == _KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(_hook)
atexit.register(lambda: print("WRITES", _COUNT[0]))
"""


def run_script(script: str, *args, fsize: int | None = None, timeout: int = 300, **env: str
               ) -> subprocess.CompletedProcess:
    def limit():  # RLIMIT_FSIZE: writing past it fails with EFBIG (Python ignores SIGXFSZ), like a full disk
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-c", script, *map(str, args)], env={**ENV, **env}, capture_output=True,
                          text=True,
                          timeout=timeout, preexec_fn=limit, cwd=REPO)


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def photo(seed: int, size: int = 72) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(low).resize((size + seed, size), Image.BICUBIC)


def make_src(root: Path, n: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        photo(i).save(root / f"img{i:02d}.png")
    return root


def outputs(out: Path) -> dict[str, str]:
    return {f: sha(out / f) for f in ("images.npy", "manifest.csv")}


def assert_consistent(out: Path) -> None:
    """images.npy holds exactly the images the manifest's kept rows point at."""
    m = PR.read_manifest(out)
    kept = m[m["status"] == "kept"]
    images = np.load(out / "images.npy")
    assert len(images) == int(kept["n_images"].sum())
    assert list(kept["index"]) == list(np.cumsum([0, *kept["n_images"]])[:-1])


def no_temporaries(folder: Path) -> list[str]:
    return [str(p) for p in Path(folder).rglob("*") if ".tmp" in p.name]


PREP = KILL_HOOK + r"""
from wae_lib.data import prepare as P
from wae_lib.data.options import PrepConfig
P.prepare_anime(sys.argv[3], sys.argv[1], PrepConfig(workers=1, chunk_size=2), progress=False)
"""
CFG = PrepConfig(workers=1, chunk_size=2)


# --------------------------------------------------------------------------------------------------
# case 1: images.npy and manifest.csv never disagree, and are never then called up to date
# --------------------------------------------------------------------------------------------------
def test_case1_non_utf8_file_name_is_kept_escaped_and_removing_it_restores_the_old_output(tmp_path):
    src = make_src(tmp_path / "src", 3)
    out = tmp_path / "out"
    P.prepare_anime(src, out, CFG, progress=False)
    clean = outputs(out)
    bad = os.path.join(os.fsencode(src), b"caf\xe9.png")  # Latin-1 "café.png": not valid UTF-8
    with open(bad, "wb") as f:
        photo(7).save(f, format="PNG")
    summary = P.prepare_anime(src, out, CFG, progress=False)  # was: UnicodeEncodeError after images.npy moved
    assert summary["kept"] == 4 and not summary["up_to_date"]
    assert_consistent(out)
    row = PR.read_manifest(out).set_index("path").loc["caf\\xe9.png"]
    assert row["status"] == "kept" and "not valid UTF-8" in row["detail"]
    os.remove(bad)
    again = P.prepare_anime(src, out, CFG, progress=False)
    assert not again["up_to_date"] and again["images"] == 3
    assert outputs(out) == clean
    assert_consistent(out)


def test_case1_truncated_or_edited_outputs_are_not_trusted_as_up_to_date(tmp_path):
    src = make_src(tmp_path / "src", 3)
    out = tmp_path / "out"
    P.prepare_anime(src, out, CFG, progress=False)
    clean = outputs(out)
    data = (out / "images.npy").read_bytes()
    (out / "images.npy").write_bytes(data[: len(data) // 2])
    assert not P.prepare_anime(src, out, CFG, progress=False)["up_to_date"]
    assert outputs(out) == clean
    with open(out / "manifest.csv", "a") as f:  # an edited manifest
        f.write("extra.png,kept,ok,,RGB,1,1,,,,,,,,,3,1\n")
    assert not P.prepare_anime(src, out, CFG, progress=False)["up_to_date"]
    assert outputs(out) == clean
    assert P.prepare_anime(src, out, CFG, progress=False)["up_to_date"]


def test_case1_truncated_set_file_is_rebuilt(tmp_path):
    info = MS.prepare_all(None, tmp_path / "prep", verbose=False, progress=False)
    path = S.set_path(tmp_path / "prep", "celeba")
    before = sha(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 12288])  # one image short: np.load would still read the header
    again = MS.prepare_all(None, tmp_path / "prep", verbose=False, progress=False)
    assert sha(path) == before and again["sets"]["celeba"]["count"] == info["sets"]["celeba"]["count"]


def test_case1_training_refuses_a_truncated_or_changed_set(tmp_path, capsys):
    prep = tmp_path / "prep"
    MS.prepare_all(None, prep, verbose=False, progress=False)
    path = S.set_path(prep, "celeba")
    args = ["--out", str(tmp_path / "run"), "--profile", "smoke", "--data", "celeba", "--data-root", str(prep)]
    images = np.load(path)
    np.save(path, images[::-1])  # same shape, other content: not the file data prep recorded
    assert TRAIN_CMD(args) == 1
    assert "is not the file recorded in" in capsys.readouterr().err
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert TRAIN_CMD(args) == 1
    assert "is not a complete uint8 N x 64 x 64 x 3 array" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_case1_kill9_at_every_write_of_data_prep_then_rerun_matches_clean_runs(tmp_path):
    """Prepared from 3 files (state A), then a 4th file is added and the run (to state B) is killed at the N-th
    write, for every N. Then: with the 4th file removed again the output must be A's, with it B's."""
    src = make_src(tmp_path / "src", 3)
    extra, aside = src / "zz_extra.png", tmp_path / "aside.png"
    photo(9).save(aside)
    clean_a, clean_b = tmp_path / "clean_a", tmp_path / "clean_b"
    P.prepare_anime(src, clean_a, CFG, progress=False)
    shutil.copy2(aside, extra)
    P.prepare_anime(src, clean_b, CFG, progress=False)
    os.remove(extra)
    want_a, want_b = outputs(clean_a), outputs(clean_b)

    def killed_run(n: int) -> tuple[Path, subprocess.CompletedProcess]:
        out = tmp_path / f"out{n}"
        P.prepare_anime(src, out, CFG, progress=False)  # state A
        shutil.copy2(aside, extra)
        proc = run_script(PREP, out, n, src)
        os.remove(extra)
        return out, proc

    _, counting = killed_run(0)
    assert counting.returncode == 0, counting.stderr
    total = int(counting.stdout.split("WRITES")[-1])
    assert total >= 6
    for n in range(1, total + 1):
        out, proc = killed_run(n)
        assert proc.returncode == -signal.SIGKILL, (n, proc.stderr[-2000:])
        P.prepare_anime(src, out, CFG, progress=False)
        assert outputs(out) == want_a, f"killed at write {n} of {total}, then rerun on the old files"
        assert_consistent(out)
        shutil.copy2(aside, extra)
        P.prepare_anime(src, out, CFG, progress=False)
        os.remove(extra)
        assert outputs(out) == want_b, f"killed at write {n} of {total}, then rerun on the new files"
        assert not no_temporaries(out) and not (out / ".parts").exists()


def test_case1_disk_full_during_data_prep_is_one_line_and_leaves_no_temporaries(tmp_path):
    src = make_src(tmp_path / "src", 3)
    out = tmp_path / "out"
    P.prepare_anime(src, out, CFG, progress=False)
    clean = outputs(out)
    for i in range(3, 9):
        photo(i).save(src / f"img{i:02d}.png")
    cli = ("import sys; from wae_lib.__main__ import main; "
           "sys.exit(main(['data', 'anime', sys.argv[1], sys.argv[2], '--workers', '1', '--chunk-size', '2']))")
    proc = run_script(cli, src, out, fsize=64 * 1024)  # parts (2 images) fit, the new images.npy (9) does not
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("error:") and "images.npy" in last and "File too large" in last, last
    assert not no_temporaries(out)
    for i in range(3, 9):
        os.remove(src / f"img{i:02d}.png")
    P.prepare_anime(src, out, CFG, progress=False)
    assert outputs(out) == clean
    assert_consistent(out)


# --------------------------------------------------------------------------------------------------
# training fixtures
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def npy(tmp_path) -> Path:
    path = tmp_path / "synthetic.npy"
    np.save(path, smooth_images(24))
    return path


@pytest.fixture
def one_thread():
    """Bit-for-bit comparisons with runs in subprocesses (one thread there too)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def smoke(data: Path, **kw):
    return profile_config("smoke", data=str(data), sample_every=0, **kw)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / CHECKPOINT, weights_only=True)["model"]


def log_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


def cli_args(out: Path, data: Path, *extra) -> list[str]:
    return ["--out", str(out), "--profile", "smoke", "--data", str(data), "--sample-every", "0", *map(str, extra)]


# --------------------------------------------------------------------------------------------------
# case 2: the training set's content, not its modification time, decides whether a run is reused
# --------------------------------------------------------------------------------------------------
def test_case2_touched_or_rewritten_identical_training_data_reuses_the_finished_run(npy, tmp_path, capsys):
    cfg = smoke(npy, steps=2)
    run = TRAIN.train(cfg, tmp_path / "run")
    before = (sha(run / CHECKPOINT), (run / CHECKPOINT).stat().st_mtime_ns)
    st = npy.stat()
    os.utime(npy, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touch
    TRAIN.train(cfg, run)
    copy = tmp_path / "copy.npy"
    shutil.copyfile(npy, copy)  # cp without -p / a restore / data prep rewriting the same bytes
    os.replace(copy, npy)
    TRAIN.train(cfg, run)
    assert (sha(run / CHECKPOINT), (run / CHECKPOINT).stat().st_mtime_ns) == before
    assert capsys.readouterr().err.count("finished run found") == 2


def test_case2_data_prep_recomputing_identical_bytes_leaves_its_outputs_untouched(tmp_path):
    src = make_src(tmp_path / "src", 3)
    out = tmp_path / "out"
    P.prepare_anime(src, out, CFG, progress=False)
    stamps = {f: (out / f).stat().st_mtime_ns for f in ("images.npy", "manifest.csv")}
    for f in src.iterdir():  # touched inputs: data prep recomputes, and gets the same bytes
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5_000_000_000))
    assert not P.prepare_anime(src, out, CFG, progress=False)["up_to_date"]
    assert {f: (out / f).stat().st_mtime_ns for f in stamps} == stamps


# --------------------------------------------------------------------------------------------------
# case 3: YAML configs take the same validation path as flags and Python
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("yaml_text, field, value", [
    ("lr: 1e-3\n", "lr", 0.001),  # YAML 1.1 reads 1e-3 as a string
    ("style_layers: relu1_1\n", "style_layers", ["relu1_1"]),  # one layer, not seven letters
    ("gram_layer_weights: 0.2, 1, 1\n", "gram_layer_weights", [0.2, 1.0, 1.0]),
])
def test_case3_yaml_values_are_coerced_like_flags(npy, tmp_path, yaml_text, field, value):
    (tmp_path / "c.yaml").write_text(yaml_text)
    rc = TRAIN_CMD(cli_args(tmp_path / "run", npy, "--steps", 1, "--config", tmp_path / "c.yaml"))
    assert rc == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())[field] == pytest.approx(value)


@pytest.mark.parametrize("yaml_text, needle", [
    ("batch_size: 8.5\n", "'batch_size' = 8.5 is invalid: expected an integer"),
    ("unknown_field: 1\n", "unknown config field(s) ['unknown_field'] in "),
    ("lr: fast\n", "'lr' = 'fast' is invalid: expected a finite number"),
    ("- lr\n- 1\n", "expected a mapping of config fields"),
    ("lr: [1\n", "not valid YAML"),
])
def test_case3_bad_yaml_is_one_line_naming_the_field_before_anything_is_written(npy, tmp_path, capsys, yaml_text,
                                                                                needle):
    (tmp_path / "c.yaml").write_text(yaml_text)
    rc = TRAIN_CMD(cli_args(tmp_path / "run", npy, "--config", tmp_path / "c.yaml"))
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "run").exists()


def test_case3_python_configs_are_coerced_and_checked_the_same_way(tmp_path):
    cfg = profile_config("smoke", lr="1e-3", style_layers="relu1_1, relu2_1", batch_size=8.0)
    assert (cfg.lr, cfg.style_layers, cfg.batch_size) == (0.001, ("relu1_1", "relu2_1"), 8)
    with pytest.raises(ConfigError, match=r"'batch_size' = 8.5 is invalid: expected an integer"):
        profile_config("smoke", batch_size=8.5)
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['bacth_size'\]"):
        profile_config("smoke", bacth_size=8)
    cfg.batch_size = "eight"  # changed after construction: train() checks again before writing
    with pytest.raises(ConfigError, match="'batch_size' = 'eight'"):
        TRAIN.train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------------
# case 4: a failed checkpoint write (disk full, ulimit -f)
# --------------------------------------------------------------------------------------------------
TRAIN_CLI = KILL_HOOK + r"""
from wae_lib.train import trainer as T
from wae_lib.__main__ import main
sys.exit(main(["train", *sys.argv[3:]]))
"""


def test_case4_disk_full_while_checkpointing_is_one_line_and_leaves_no_temporaries(npy, tmp_path):
    run = tmp_path / "run"
    proc = run_script(TRAIN_CLI, run, 0, *cli_args(run, npy, "--steps", 6, "--ckpt-every", 3), fsize=256 * 1024)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "checkpoint.pt" in last and "File too large" in last, last
    assert "no checkpoint was written yet" in last and "last good" not in last
    assert not no_temporaries(run) and not (run / CHECKPOINT).exists()
    assert TRAIN_CMD(cli_args(run, npy, "--steps", 6, "--ckpt-every", 3)) == 0  # space again: the run completes
    assert log_steps(run) == list(range(1, 7))


# --------------------------------------------------------------------------------------------------
# case 5: kill -9 during training, then resume; two runs on one folder
# --------------------------------------------------------------------------------------------------
KILL_AT_STEP = TRAIN_CLI.replace("from wae_lib.train import trainer as T\n", r"""from wae_lib.train import trainer as T
_step = T.Trainer.train_step
def _train_step(self):  # die before step KILL_STEP+1, i.e. after logging steps past the last checkpoint
    if self.step == int(os.environ["KILL_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return _step(self)
T.Trainer.train_step = _train_step
""")
# ("step", 5): the case (rows 4 and 5 logged after the checkpoint at 3); ("write", N): the N-th write,
# rename or removal in the run folder (about 25 in a clean run: lock, config, metadata, log rows, calibration,
# 3 checkpoints), one drawn at random in each third (seeded, so the same points every time)
TRAIN_KILLS = [("step", 5)] + [("write", random.Random(11).randint(lo, hi)) for lo, hi in ((1, 8), (9, 16), (17, 24))]
KILL_ARGS = ("--steps", 8, "--ckpt-every", 3, "--log-every", 1)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> tuple[Path, Path]:
    """(training set, run folder) of the uninterrupted run every killed run is compared with."""
    root = tmp_path_factory.mktemp("straight")
    npy = root / "synthetic.npy"
    np.save(npy, smooth_images(24))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert TRAIN_CMD(cli_args(root / "run", npy, *KILL_ARGS)) == 0
    finally:
        torch.set_num_threads(before)
    return npy, root / "run"


@pytest.mark.parametrize("kind, point", TRAIN_KILLS)
def test_case5_kill9_during_training_then_resume_matches_straight_run(straight_run, tmp_path, one_thread, capsys,
                                                                     kind, point):
    npy, straight = straight_run
    args = KILL_ARGS
    run = tmp_path / "run"
    if kind == "step":
        proc = run_script(KILL_AT_STEP, run, 0, *cli_args(run, npy, *args), KILL_STEP=str(point))
    else:
        proc = run_script(TRAIN_CLI, run, point, *cli_args(run, npy, *args))
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    ckpt = torch.load(run / CHECKPOINT, weights_only=True) if (run / CHECKPOINT).is_file() else None
    capsys.readouterr()
    assert TRAIN_CMD(cli_args(run, npy, *args)) == 0
    err = capsys.readouterr().err
    if ckpt is not None and not ckpt["finished"]:
        assert f"resuming from step {ckpt['step']}" in err
    assert log_steps(run) == list(range(1, 9)), "each step logged once"
    a, b = weights(straight), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not no_temporaries(run)


WAIT_AT_STEP_2 = TRAIN_CLI.replace("from wae_lib.train import trainer as T\n", r"""from wae_lib.train import trainer as T
import time
from pathlib import Path
_step = T.Trainer.train_step
def _train_step(self):  # hold the run at step 2 until the test says go
    if self.step == 2:
        Path(os.environ["READY"]).touch()
        for _ in range(600):
            if Path(os.environ["GO"]).exists():
                break
            time.sleep(0.1)
    return _step(self)
T.Trainer.train_step = _train_step
""")


def test_case5_a_second_run_on_the_same_folder_refuses(npy, tmp_path, capsys):
    run, ready, go = tmp_path / "run", tmp_path / "ready", tmp_path / "go"
    args = cli_args(run, npy, "--steps", 4, "--log-every", 1)
    env = {**ENV, "READY": str(ready), "GO": str(go)}
    first = subprocess.Popen([sys.executable, "-c", WAIT_AT_STEP_2, run, "0", *args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        for _ in range(1200):
            if ready.exists() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), first.communicate()[1][-3000:]
        rc = TRAIN_CMD(args)
        err = capsys.readouterr().err.strip()
        assert rc == 1 and "is in use by another training run" in err and f"pid {first.pid}" in err, err
        assert len(err.splitlines()) == 1
    finally:
        go.touch()
        _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-3000:]
    assert log_steps(run) == [1, 2, 3, 4]
    assert TRAIN_CMD(args) == 0  # the lock went with the process: the folder is free again (finished run reused)


# --------------------------------------------------------------------------------------------------
# case 6: config.json and the checkpoint's config are compared
# --------------------------------------------------------------------------------------------------
def test_case6_load_model_refuses_a_config_json_that_disagrees_with_the_checkpoint(npy, tmp_path):
    run = TRAIN.train(smoke(npy, steps=2), tmp_path / "run")
    load_model(run)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "content_dim": 64, "data": "mixed", "device": "cpu"}))
    with pytest.raises(Exception, match=r"config.json disagrees with checkpoint.pt on \['content_dim', 'data'\]"):
        load_model(run)


# --------------------------------------------------------------------------------------------------
# case 7: resuming data prep never unpickles what is in OUT/.parts
# --------------------------------------------------------------------------------------------------
class Planted:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_case7_planted_pickle_in_parts_is_never_executed(tmp_path, monkeypatch, interrupted_prepare):
    src = make_src(tmp_path / "src", 6)
    clean = tmp_path / "clean"
    P.prepare_anime(src, clean, CFG, progress=False)
    out = tmp_path / "out"
    interrupted_prepare(src, out, CFG)
    marker = tmp_path / "code_ran"
    parts = sorted((out / ".parts").iterdir())
    assert len(parts) == 2
    for part in parts:  # same names as the real parts: the resume would pick them up
        part.write_bytes(pickle.dumps(Planted(marker)))
    P.prepare_anime(src, out, CFG, progress=False)
    assert not marker.exists(), "a file planted in .parts ran as code"
    assert outputs(out) == outputs(clean)


# --------------------------------------------------------------------------------------------------
# case 8: notebooks check their parameters in the cell after the parameters cell
# --------------------------------------------------------------------------------------------------
NOTEBOOK_NAMES = ["01_preprocess", "02_train", "03_reconstruction", "04_transfer", "05_fid", "06_claims"]


def parameter_cells(name: str) -> tuple[str, str]:
    """Sources of the parameters cell and of the code cell right after it."""
    cells = [c for c in json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())["cells"] if c["cell_type"] == "code"]
    i = next(k for k, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    return "".join(cells[i]["source"]), "".join(cells[i + 1]["source"])


def run_check(name: str, **overrides) -> dict:
    """Like papermill: the parameters cell, the injected values, then the next cell. That cell resolves data_root
    (layout.resolve_data_root refuses a root without sets/info.json), so it runs beside a stub of `make data`'s."""
    import tempfile

    from wae_lib.config import DEFAULT_DATA_ROOT

    params, check = parameter_cells(name)
    ns: dict = {}
    exec(compile(params, f"{name}:parameters", "exec"), ns)  # noqa: S102 (our own notebooks)
    ns.update(overrides)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / DEFAULT_DATA_ROOT / "sets").mkdir(parents=True)
        (Path(tmp) / DEFAULT_DATA_ROOT / "sets" / "info.json").write_text("{}")
        os.chdir(tmp)
        try:
            exec(compile(check, f"{name}:check", "exec"), ns)  # noqa: S102
        finally:
            os.chdir(cwd)
    return ns


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_case8_every_notebook_checks_all_its_parameters_right_after_the_parameters_cell(name, monkeypatch,
                                                                                       recwarn):
    monkeypatch.setenv("WAE_STRICT_PARAMS", "1")
    assert "check_notebook_parameters(globals()" in parameter_cells(name)[1]
    run_check(name)  # the defaults pass, strictly: the check lists every parameter, nothing else
    assert not [w for w in recwarn if "parameter" in str(w.message)]


@pytest.mark.parametrize("name, param, value, needle", [
    ("03_reconstruction", "batch_size", 0, "parameter batch_size = 0 is invalid: expected an integer >= 1"),
    ("03_reconstruction", "n_figure_images", "eight", "parameter n_figure_images = 'eight' is invalid"),
    ("04_transfer", "n_styles", 2.5, "parameter n_styles = 2.5 is invalid"),
    ("05_fid", "profile", "bogus", "parameter profile = 'bogus' is invalid"),
    ("02_train", "run", 5, "parameter run = 5 is invalid: expected a string"),
    ("01_preprocess", "grid_count", 0, "parameter grid_count = 0 is invalid"),
    ("06_claims", "n_boot", "many", "parameter n_boot = 'many' is invalid: expected an integer >= 1"),
])
def test_case8_bad_values_fail_in_that_cell_naming_the_parameter(name, param, value, needle):
    with pytest.raises(ValueError) as err:
        run_check(name, **{param: value})
    assert needle in str(err.value)


def test_case8_the_parameters_cell_is_the_one_declaration(tmp_path):
    """Issue 20 item 4: names and types come from the parameters cell's defaults; the check adds only bounds."""
    from wae_lib.params import Param, ParameterError, check_notebook_parameters, notebook_spec

    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]},
                                         "source": ["n = 4  # images\n", "rate = 1\n", "name = 'a'\n"]}]}))
    spec = notebook_spec(nb, {"n": Param(min=1), "rate": float})
    assert [(k, p.kind, p.min) for k, p in spec.items()] == [("n", int, 1), ("rate", float, None), ("name", str, None)]
    ns = {"n": "3", "rate": "0.5", "name": "b"}
    check_notebook_parameters(ns, nb, {"n": Param(min=1), "rate": float})
    assert (ns["n"], ns["rate"]) == (3, 0.5)
    with pytest.raises(ParameterError, match=r"parameter n = 0 is invalid: expected an integer >= 1"):
        check_notebook_parameters({**ns, "n": 0}, nb, {"n": Param(min=1)})
    with pytest.raises(ParameterError, match=r"the check names \['m'\], which the parameters cell"):
        notebook_spec(nb, {"m": Param(min=1)})
    for name in NOTEBOOK_NAMES:  # every project notebook names itself in its check
        assert f'check_notebook_parameters(globals(), "{name}"' in parameter_cells(name)[1]


def test_case8_values_are_coerced_and_written_back():
    ns = run_check("03_reconstruction", n_styles="4", identity_metrics="false")
    assert ns["n_styles"] == 4 and ns["identity_metrics"] is False


def test_case8_unknown_parameter_is_an_error_under_make_and_a_warning_otherwise(monkeypatch):
    monkeypatch.setenv("WAE_STRICT_PARAMS", "1")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['figure_dir'\]"):
        run_check("03_reconstruction", figure_dir="X")
    run_check("03_reconstruction", run="celeba_c32")  # notebook 02's: make passes one PARAMS to every notebook
    monkeypatch.delenv("WAE_STRICT_PARAMS")
    with pytest.warns(UserWarning, match=r"unknown parameter\(s\) \['figure_dir'\]"):
        run_check("03_reconstruction", figure_dir="X")
    makefile = (REPO / "Makefile").read_text()
    assert "WAE_STRICT_PARAMS=1 " in next(line for line in makefile.splitlines() if line.startswith("PAPERMILL :="))


def test_case8_papermill_run_with_a_misspelled_parameter_stops_before_writing(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("WAE_STRICT_PARAMS", "1")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(NOTEBOOKS / "06_claims.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"tables_dir": str(tmp_path / "t"), "reports_dir": str(tmp_path / "r"),
                                               "figure_dir": str(tmp_path / "f")},
                                   kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    assert "unknown parameter(s) ['figure_dir']" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ipynb"]


# --------------------------------------------------------------------------------------------------
# case 9: impossible values, honest failure messages, one-line data-prep errors, "resuming from step N"
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag, value, needle", [
    ("--prior-sigma", "0", "'prior_sigma' = 0.0 is invalid: expected a positive number"),
    ("--lr", "inf", "'lr' = inf is invalid: expected a finite number"),
    ("--lr", "nan", "'lr' = nan is invalid: expected a finite number"),
])
def test_case9_impossible_values_are_refused_before_anything_is_written(npy, tmp_path, capsys, flag, value, needle):
    rc = TRAIN_CMD(cli_args(tmp_path / "run", npy, flag, value))
    err = capsys.readouterr().err.strip()
    assert rc == 1 and needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_case9_divergence_before_the_first_checkpoint_claims_no_checkpoint(npy, tmp_path, monkeypatch):
    original = T.reconstruction_terms

    def poisoned(*args, **kwargs):
        terms = original(*args, **kwargs)
        poisoned.calls += 1
        if poisoned.calls == 2:
            terms["pixel"] = terms["pixel"] * float("nan")
        return terms

    poisoned.calls = 0
    monkeypatch.setattr(T, "reconstruction_terms", poisoned)
    with pytest.raises(T.TrainingDiverged) as err:
        TRAIN.train(smoke(npy, steps=8, ckpt_every=3), tmp_path / "run")
    assert "at step 2" in str(err.value) and "no checkpoint was written yet" in str(err.value)
    assert "last good checkpoint" not in str(err.value) and not (tmp_path / "run" / CHECKPOINT).exists()


@pytest.mark.parametrize("argv, needle", [
    (["anime", "{tmp}/missing", "{tmp}/out"], "missing"),
    (["all", "--data-root", "{tmp}/out", "--crop-multiple", "0"], "PrepConfig.crop_multiple = 0.0 is invalid"),
    (["all", "--data-root", "{tmp}/out", "--detect-scale", "nan"], "PrepConfig.detect_scale"),
    (["all", "--data-dir", "{tmp}/missing", "--data-root", "{tmp}/out"], "data_dir"),
])
def test_case9_data_prep_cli_errors_are_one_line(tmp_path, capsys, argv, needle):
    rc = DATA_CMD([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("error:") and needle in err and len(err.splitlines()) == 1, err


def test_case9_a_resumed_run_says_resuming_from_step_n(npy, tmp_path, interrupted_training, capsys):
    cfg = smoke(npy, steps=6, ckpt_every=10)
    interrupted_training(cfg, tmp_path / "run", 4)
    capsys.readouterr()
    TRAIN.train(cfg, tmp_path / "run")
    assert "resuming from step 4 of 6" in capsys.readouterr().err


def test_one_default_data_root_everywhere():
    """issue 20 item 3: the Makefile's data root for the sample set, the notebooks' data_root, Config's and the
    baselines' defaults are one value (wae_lib.config.DEFAULT_DATA_ROOT)."""
    import re

    from wae_lib.baselines.train_config import BaselineTrainConfig
    from wae_lib.config import DEFAULT_DATA_ROOT, Config

    makefile = (NOTEBOOKS.parent / "Makefile").read_text()
    tag = re.search(r"^DATA_TAG := .*,sample\)$", makefile, re.M)
    root = re.search(r"^DATA_ROOT \?= (\S+)/\$\(DATA_TAG\)", makefile, re.M)
    assert tag and root and f"{root.group(1)}/sample" == DEFAULT_DATA_ROOT
    assert Config().data_root == BaselineTrainConfig().data_root == DEFAULT_DATA_ROOT
    # issue 36 item 3: the notebooks hold no copy of it; their empty data_root is resolved by layout.resolve_data_root
    for name in ("01_preprocess", *[n for n in NOTEBOOK_NAMES if n != "06_claims"], "00_explore", "07_compare"):
        params, after = parameter_cells(name)[:2]
        assert re.search(r'^data_root = ""  #', params, re.M), f"{name}: data_root is not the empty default"
        assert re.search(r"^data_root = resolve_data_root\(data_root\)", after, re.M), f"{name}: data_root unresolved"
        assert DEFAULT_DATA_ROOT not in params + after, f"{name}: repeats {DEFAULT_DATA_ROOT}"


def test_resolve_data_root_defaults_once_and_refuses_an_unprepared_root(tmp_path, monkeypatch):
    from wae_lib.config import DEFAULT_DATA_ROOT
    from wae_lib.data import layout

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"data_root = 'data/processed/sample': .*info.json does not exist"):
        layout.resolve_data_root("")
    (tmp_path / DEFAULT_DATA_ROOT / "sets").mkdir(parents=True)
    (tmp_path / DEFAULT_DATA_ROOT / "sets" / "info.json").write_text("{}")
    assert layout.resolve_data_root("") == DEFAULT_DATA_ROOT
    other = tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        layout.resolve_data_root(other)
    (other / "sets").mkdir(parents=True)
    (other / "sets" / "info.json").write_text("{}")
    assert layout.resolve_data_root(other) == str(other)
