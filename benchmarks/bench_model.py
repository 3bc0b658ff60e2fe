"""Forward+backward throughput, peak memory and FLOPs per image of WAEStyle for each content size.

    python benchmarks/bench_model.py [--batch 64] [--width 1.0] [--steps 3] [--device auto]

One "step" is what training does per batch: VGG16 features of the input (no grad), encoders, decoder,
VGG16 features of the reconstruction, the loss terms and backward. FLOPs come from
torch.utils.flop_counter (convolutions and matmuls; elementwise work is not counted).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from wae_lib.config import CONTENT_DIMS_PAPER, Config
from wae_lib.model.losses import mmd_imq, reconstruction_terms
from wae_lib.model.networks import count_parameters
from wae_lib.model.vgg import VGG16Features
from wae_lib.model.wae import WAEStyle
from wae_lib.utils import resolve_device, set_seed


def train_like_step(model: WAEStyle, x: torch.Tensor) -> torch.Tensor:
    layers = model.config.style_layers
    with torch.no_grad():
        feats_x = model.vgg(x)
        grams_x = model.grams(feats_x)
    out = model(x, grams_x)
    terms = reconstruction_terms(x, out["x_hat"], feats_x, model.vgg(out["x_hat"]), layers, grams_x)
    loss = sum(terms.values()) + mmd_imq(out["z"], torch.randn_like(out["z"]))
    loss.backward()
    return loss


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (Linux: KiB)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per content size (after 1 warm-up)")
    ap.add_argument("--content-dims", type=int, nargs="+", default=list(CONTENT_DIMS_PAPER))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    set_seed(0)
    device = resolve_device(args.device)
    vgg = VGG16Features("auto").to(device)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} width={args.width} "
          f"VGG16: {vgg.source.label}")
    print(f"{'content':>7} {'params':>12} {'GFLOP/img':>10} {'img/s':>8} {'GFLOP/s':>8} {'peak MB':>9}")
    for cd in args.content_dims:
        model = WAEStyle(Config(content_dim=cd, width=args.width), vgg=vgg, verbose=False).to(device)
        x = torch.rand(args.batch, 3, 64, 64, device=device)
        with FlopCounterMode(display=False) as counter:
            train_like_step(model, x)
        flops = counter.get_total_flops() / args.batch
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            train_like_step(model, x)
            model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / args.steps
        ips = args.batch / dt
        print(f"{cd:>7} {count_parameters(model):>12,} {flops / 1e9:>10.2f} {ips:>8.2f} {flops * ips / 1e9:>8.1f} "
              f"{peak_memory_mb(device):>9.0f}", flush=True)


if __name__ == "__main__":
    main()
