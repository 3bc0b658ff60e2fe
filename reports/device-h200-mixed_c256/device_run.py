"""One device session: (1) bench_train on CUDA (issue 4's never-run GPU check), (2) train the shipped model's
architecture (reference profile, width 0.25, mixed, content 256) for a wall-clock budget at a GPU batch size,
(3) export the fp16 weights in parts under $OUT. Run from the repository root:

    python .gpu/run.py --budget 540            # on the device
    python .gpu/run.py --budget 120 --dry      # here, CPU, tiny
"""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

T0 = time.time()
HERE = Path(__file__).resolve().parent
CODE = HERE / "code"
sys.path.insert(0, str(CODE))
VGG = HERE / "vgg16_hed_to_relu3_1.pth"


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def decode_mosaic(dst: Path, limit: int | None) -> Path:
    import numpy as np
    from PIL import Image
    n = int((HERE / "mixed_train_count.txt").read_text())
    m = np.asarray(Image.open(HERE / "mixed_train_q90.jpg").convert("RGB"))
    cols = m.shape[1] // 64
    rows = m.shape[0] // 64
    a = m.reshape(rows, 64, cols, 64, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, 64, 64, 3)[:n]
    if limit:
        a = a[:limit]
    dst.parent.mkdir(parents=True, exist_ok=True)
    np.save(dst, np.ascontiguousarray(a))
    log(f"decoded {len(a)} images -> {dst}")
    return dst


def bench(out: Path, dry: bool, timeout: float) -> None:
    args = ["--devices", "cpu", "--batches", "8", "--cpu-steps", "1", "--width", "0.25"] if dry else \
        ["--devices", "cuda", "--batches", "64", "256", "--steps", "20"]
    cmd = [sys.executable, str(CODE / "benchmarks" / "bench_train.py"), *args, "--vgg-source", str(VGG)]
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    log("bench:", " ".join(cmd))
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        text = r.stdout + ("\n--- stderr (tail) ---\n" + r.stderr[-3000:] if r.returncode else "")
    except subprocess.TimeoutExpired as e:
        text = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        text += f"\n(timed out after {timeout:.0f} s)"
    (out / "bench_train.txt").write_text(text)
    print(text, flush=True)


def base_config(data: Path, dry: bool, batch: int, steps: int):
    from wae_lib.config import profile_config
    return profile_config("reference", data=str(data), content_dim=256, device="cpu" if dry else "cuda",
                          vgg_source=str(VGG), batch_size=batch, steps=steps, log_every=25 if not dry else 1,
                          sample_every=steps, ckpt_every=max(steps // 4, 1), compile=False)


def probe_rate(data: Path, dry: bool, batch: int, tmp: Path) -> float:
    import torch
    from wae_lib.train import DistInfo, Trainer
    from wae_lib.utils import set_seed
    set_seed(0)
    cfg = base_config(data, dry, batch, 10**6)
    tr = Trainer(cfg, tmp / "probe", DistInfo())
    tr.model.train()
    n = 3 if dry else 40
    for _ in range(3):
        tr.train_step()
    sync = torch.cuda.synchronize if not dry else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(n):
        tr.train_step()
    sync()
    rate = n / (time.perf_counter() - t)
    log(f"probe: {rate:.1f} steps/s at batch {batch} ({rate * batch:.0f} img/s)")
    del tr
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=float, default=540, help="seconds for the whole script")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dry", action="store_true")
    a = ap.parse_args()
    out = Path(os.environ.get("OUT", "/tmp/gpu_out"))
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path("/tmp/wae_gpu")
    shutil.rmtree(tmp, ignore_errors=True)
    data = decode_mosaic(tmp / "data" / "mixed_train_q90.npy", 200 if a.dry else None)
    if not a.dry:
        subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"])
    bench(out, a.dry, timeout=25 if a.dry else 170)
    rate = probe_rate(data, a.dry, a.batch, tmp)
    left = a.budget - (time.time() - T0) - (15 if a.dry else 45)  # export + start-up of the training process
    steps = max(int(rate * left * 0.85), 10)
    log(f"training {steps} steps of {a.batch} ({steps * a.batch} images) in ~{left:.0f} s")
    cfg = base_config(data, a.dry, a.batch, steps)
    run_dir = tmp / "mixed_c256_gpu"
    script = ("import sys, json; sys.path.insert(0, %r); from wae_lib.config import Config; "
              "from wae_lib.train import train; train(Config(**json.loads(sys.argv[1])), sys.argv[2])") % str(CODE)
    p = subprocess.run(["timeout", "-s", "TERM", str(int(left + 20)), sys.executable, "-c", script,
                        json.dumps(cfg.to_dict()), str(run_dir)], env={**os.environ, "PYTHONPATH": str(CODE)})
    log(f"training exit code {p.returncode}")
    from wae_lib.pretrained import export_pretrained
    from wae_lib.train import load_model
    model = load_model(run_dir, "cpu")
    info = model.checkpoint_info
    log("checkpoint:", info)
    buf = out / "pretrained_gpu.pt"
    export_pretrained(model, buf, trained_on="device " + ("cpu (dry)" if a.dry else "cuda"),
                      data="mixed_train of data-large, JPEG q90 4:4:4 mosaic re-encoding", batch_size=a.batch,
                      step=info["step"], finished=info["finished"])
    blob = buf.read_bytes()
    buf.unlink()
    part = 15 * 2**20
    for i in range(0, len(blob), part):
        (out / f"pretrained_gpu.part{i // part}").write_bytes(blob[i:i + part])
    for name in ("log.jsonl", "config.json", "metadata.json"):
        if (run_dir / name).is_file():
            shutil.copy(run_dir / name, out / name)
    samples = sorted((run_dir / "samples").glob("*.png"))
    if samples:
        shutil.copy(samples[-1], out / "samples_last.png")
    log("done; files:", sorted(p.name for p in out.iterdir()), f"weights {len(blob) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
