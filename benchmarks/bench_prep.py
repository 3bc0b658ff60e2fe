"""Preprocessing throughput per source, and where the time goes (ISSUE 3, item 3).

For each source folder this reports:
  * stage costs per image, measured in one process: decode (PIL, draft where allowed), face detection
    (CelebA only), crop + resize, write (pickling the chunk part + assembling images.npy, amortised);
  * images/s per core from those costs, and the wall-clock images/s of the real multi-process run
    (prepare_*) divided by the number of workers;
  * for CelebA, the detector's share of the time and whether decode + crop + write stays under 25% of it.
Figures are printed, never asserted.

    python benchmarks/bench_prep.py --data-dir ../shared/data [--workers 2] [--limit 600]
    (default data dir: $WAE_TEST_DATA)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from wae_lib.data import decode as DEC
from wae_lib.data import faces as FACES
from wae_lib.data import layout as S
from wae_lib.data import packed as PR
from wae_lib.data import prepare as P
from wae_lib.data.options import PrepConfig

FOLDERS = {"celeba": "faces", "anime": "anime", "imagenet": "natural", "styles": "styles"}


def stage_costs(source: str, files: list[tuple[str, Path]], cfg: PrepConfig) -> dict[str, float]:
    """Seconds per input file for each stage, single process, single OpenCV thread."""
    cv2.setNumThreads(1)
    t = dict.fromkeys(("decode", "detect", "crop", "write"), 0.0)
    crops: list[np.ndarray] = []
    for _, path in files:
        t0 = time.perf_counter()
        try:
            if source == "celeba":
                d = DEC.decode_image(path, min_side=cfg.min_face)
            elif source == "imagenet":
                rf = cfg.imagenet_resize_first
                d = DEC.decode_image(path, draft_min_side=S.OUT_SIZE if rf and cfg.use_draft else None,
                                   require_rgb=cfg.imagenet_require_rgb, min_side=cfg.imagenet_min_side)
            else:
                d = DEC.decode_image(path, draft_min_side=S.OUT_SIZE if cfg.use_draft else None, min_side=cfg.min_side)
        except DEC.Rejected:
            t["decode"] += time.perf_counter() - t0
            continue
        t1 = time.perf_counter()
        t["decode"] += t1 - t0
        if source == "celeba":
            faces = FACES.detect_faces(d.rgb, cfg)
            t2 = time.perf_counter()
            t["detect"] += t2 - t1
            if faces:
                img = FACES.crop_resize(d.rgb, *FACES.face_crop_box(faces[0], cfg), max_pad_fraction=cfg.max_pad_fraction)
                if img is not None:
                    crops.append(img)
            t["crop"] += time.perf_counter() - t2
        elif source == "imagenet":
            h, w = d.rgb.shape[:2]
            x0, y0 = (w - 64) // 2, (h - 64) // 2
            crops.append(np.ascontiguousarray(d.rgb[y0:y0 + 64, x0:x0 + 64]))
            t["crop"] += time.perf_counter() - t1
        else:
            crops.append(FACES.crop_resize(d.rgb, *FACES.centre_square(d.rgb)))
            t["crop"] += time.perf_counter() - t1
    t0 = time.perf_counter()
    arr = np.stack(crops) if crops else np.zeros((0, 64, 64, 3), np.uint8)
    with tempfile.TemporaryDirectory() as tmp:  # what the runner does: save a part (.npz), then copy into images.npy
        P._save_part(Path(tmp, "part.npz"), [], arr)
        PR.write_npy_atomic(Path(tmp, "images.npy"), [arr], len(arr))
    t["write"] = time.perf_counter() - t0
    return {k: v / max(1, len(files)) for k, v in t.items()}


def wall_rate(source: str, folder: Path, cfg: PrepConfig) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = P.PREPARERS[source](folder, Path(tmp) / source, cfg, progress=False)
        return time.perf_counter() - t0, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=os.environ.get("WAE_TEST_DATA"),
                   help="folder with faces/ anime/ natural/ styles/ (default: $WAE_TEST_DATA)")
    p.add_argument("--workers", type=int, default=0, help="processes for the wall-clock run (0 = all cores)")
    p.add_argument("--limit", type=int, default=0, help="files per source for the stage timing (0 = all)")
    args = p.parse_args(argv)
    if not args.data_dir:
        print("bench_prep: pass --data-dir or set WAE_TEST_DATA (a folder with faces/ anime/ natural/ styles/)")
        return 2
    cfg = PrepConfig(workers=args.workers)
    workers = P.n_workers(cfg)
    root = Path(args.data_dir)
    print(f"data: {root}   workers: {workers}   cores: {os.cpu_count()}   opencv {cv2.__version__}")
    print(f"{'source':<9} {'files':>6} {'decode':>8} {'detect':>8} {'crop':>8} {'write':>8}   "
          f"{'img/s/core (stages)':>19} {'img/s/core (run)':>17} {'run wall s':>10}")
    for source, folder in FOLDERS.items():
        folder = root / folder
        if not folder.is_dir():
            print(f"{source:<9} (no folder {folder})")
            continue
        files = P.list_files(folder)
        sample = files[: args.limit] if args.limit else files
        FACES.face_detector(cfg.cascade)  # load outside the timing
        stage_costs(source, sample, cfg)  # warm-up pass: page cache and allocators, so the timing is CPU cost
        c = stage_costs(source, sample, cfg)
        total = sum(c.values())
        wall, summary = wall_rate(source, folder, cfg)
        ms = {k: 1000 * v for k, v in c.items()}
        print(f"{source:<9} {len(sample):>6} {ms['decode']:>6.2f}ms {ms['detect']:>6.2f}ms {ms['crop']:>6.2f}ms "
              f"{ms['write']:>6.3f}ms   {1 / total:>19.0f} {summary['files'] / wall / workers:>17.0f} {wall:>10.2f}")
        if source == "celeba":
            other = c["decode"] + c["crop"] + c["write"]
            share = c["detect"] / total
            ratio = other / c["detect"] if c["detect"] else float("inf")
            verdict = "meets" if ratio < 0.25 else "MISSES"
            print(f"          detector share of time: {share:.0%}; decode + crop + write = {ratio:.0%} of the "
                  f"detector cost ({verdict} the < 25% target)")
    print("run = prepare_* end to end (process start-up, listing, manifest, atomic writes included), "
          "divided by the number of workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
