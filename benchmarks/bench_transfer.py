"""Images/s of our transfer and of each baseline at batch 1 and 64, with ratios (issue 9).

    python benchmarks/bench_transfer.py [--model pretrained] [--batches 1 64] [--gatys-steps 100]
                                        [--baselines-dir DIR] [--device auto] [--threads N]

Rows, all at 64x64 on random images (the cost does not depend on the pixels), with the VGG16 of our model:
- ours: one call of ``model.transfer`` (VGG16 Grams of the style image, both encoders, the decoder);
- ours, cached style: the style latent computed once and reused for every content image (content encoder +
  decoder only), the cost when one style is applied to many images;
- Gatys (L-BFGS, ``--gatys-steps`` iterations per image; the batch is optimised jointly), AdaIN (relu3_1 +
  decoder), WCT (three levels + decoders, eigendecompositions in float64), Reinhard (Lab statistics).
Decoder weights do not change the cost; untrained decoders are used when ``--baselines-dir`` is not given.
Targets (issue 9): ours >= 1000x faster than Gatys per image, and faster than AdaIN and WCT.
``--sizes 64 128 256`` (issue 33): the ours rows again with content images of those sides (a spatial-content model;
the style image stays 64 px); issue 33's target: the cached style at batch 64, 64 px, >= 1,000 img/s on 2 cores.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from wae_lib.baselines.build import build_baseline
from wae_lib.model.run import load_model
from wae_lib.report.compare import Method, baseline_method, our_method, seconds_per_image
from wae_lib.utils import resolve_device, set_seed


def cached_style_method(model) -> Method:
    """Our transfer with the style latent computed once outside the timed calls."""
    dev = next(model.parameters()).device
    cache: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def transfer(content, style, alpha=1.0):
        key = id(style)
        if key not in cache:
            cache[key] = model.encode_style(style.to(dev))[0]
        z_c = model.encode_content(content.to(dev))[0]
        return model.decode(z_c, cache[key].expand(len(content), -1)).float().cpu()

    return Method("ours_cached", "ours, cached style latent", transfer, "once for all styles")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="pretrained", help="our model: pretrained or a run folder")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--gatys-steps", type=int, default=100)
    ap.add_argument("--gatys-batches", type=int, nargs="+", default=None,
                    help="batch sizes for Gatys (default: --batches; a batch of 64 takes minutes on a CPU)")
    ap.add_argument("--baselines-dir", default="", help="folder with adain/ and wct/ decoder runs (optional)")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="time each row for at least this long")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64],
                    help="content sides for the ours rows (more than 64 needs a spatial-content model)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(0)
    dev = resolve_device(args.device)
    model = load_model(args.model, device=dev)
    vgg = model.vgg
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(max(args.batches), 3, 64, 64, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    methods = [our_method(model, "ours"), cached_style_method(model)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "decoders are UNTRAINED": irrelevant to speed
        for key in ("gatys", "adain", "wct", "reinhard"):
            kw = {"steps": args.gatys_steps} if key == "gatys" else {}
            weights = f"{args.baselines_dir}/{key}" if args.baselines_dir and key in ("adain", "wct") else None
            methods.append(baseline_method(key, build_baseline(key, vgg=vgg, weights=weights, device=dev, **kw),
                                           key, ""))
    print(f"device={dev} threads={torch.get_num_threads()} model={args.model} (content {model.config.content_dim}, "
          f"width {model.config.width}) VGG16: {model.vgg_source.label} | Gatys: {args.gatys_steps} L-BFGS iterations")
    timing: dict[str, dict[int, float]] = {}
    for m in methods:
        batches = args.gatys_batches or args.batches if m.key == "gatys" else args.batches
        t0 = time.perf_counter()
        timing[m.key] = {b: seconds_per_image(m, content, style, b, args.min_seconds) for b in batches}
        print(f"  timed {m.key} in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\n{'method':<12}" + "".join(f"{f'ms/img b{b}':>13}{f'img/s b{b}':>12}" for b in args.batches))
    for key, t in timing.items():
        cells = "".join(f"{t[b] * 1e3:>13.2f}{1 / t[b]:>12.1f}" if b in t else f"{'-':>13}{'-':>12}"
                        for b in args.batches)
        print(f"{key:<12}{cells}")
    for side in (n for n in args.sizes if n != 64):
        big = torch.rand(max(args.batches), 3, side, side, generator=g)
        for m in methods[:2]:
            timing[f"{m.key}@{side}"] = {b: seconds_per_image(m, big, style, b, args.min_seconds) for b in args.batches}
    print(f"\n{'method':<16}" + "".join(f"{f'ms/img b{b}':>13}{f'img/s b{b}':>12}" for b in args.batches))
    for key, t in timing.items():
        if "@" not in key:
            continue
        print(f"{key:<16}" + "".join(f"{t[b] * 1e3:>13.2f}{1 / t[b]:>12.1f}" for b in args.batches))
    timing = {k: v for k, v in timing.items() if "@" not in k}
    print("\nhow many times our per-image time each method takes (>1: ours is faster)")
    for ours in ("ours", "ours_cached"):
        for key, t in timing.items():
            if key.startswith("ours"):
                continue
            shared = [b for b in t if b in timing[ours]]
            print(f"  {key:<9} vs {ours:<12}" + ", ".join(f"batch {b}: {t[b] / timing[ours][b]:,.1f}x" for b in shared))
    gatys_b = min(timing["gatys"])
    best = min(timing["ours"].values())
    print(f"\ntargets: Gatys (batch {gatys_b}) / ours (best batch) = {timing['gatys'][gatys_b] / best:,.0f}x (>= 1000); "
          f"AdaIN / ours = {min(timing['adain'].values()) / best:.1f}x, WCT / ours = "
          f"{min(timing['wct'].values()) / best:.1f}x (> 1 each, best batch of each)")


if __name__ == "__main__":
    main()
