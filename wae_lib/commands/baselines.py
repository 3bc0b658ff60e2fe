"""``python -m wae_lib baselines --method adain|wct --out RUN [flags]``: train AdaIN's or WCT's decoders on our
model's training set (wae_lib.baselines.train: the losses, the run folder, resuming).

    python -m wae_lib baselines --method adain --data celeba --out models/baseline_adain --steps 2000
    python -m wae_lib baselines --method wct --data data/processed/sets/mixed_train.npy --out DIR

A flag per BaselineTrainConfig field (wae_lib.baselines.train_config, with its defaults' reasons). Ctrl-C writes a
checkpoint and exits with 130; the same command continues.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

HELP = "train AdaIN's or WCT's decoders on our training set"
DESCRIPTION = __doc__


def add_arguments(ap) -> None:
    from ..baselines.train_config import BASELINE_PROFILES, METHODS, BaselineTrainConfig

    ap.add_argument("--out", required=True, help="run folder (checkpoint.pt, log.jsonl, metadata.json)")
    ap.add_argument("--force", action="store_true", help="retrain from scratch even if a checkpoint is there")
    ap.add_argument("--profile", choices=list(BASELINE_PROFILES), default=None,
                    help="start from this study profile's budget (BASELINE_PROFILES); flags override it")
    for f in dataclasses.fields(BaselineTrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            ap.add_argument(flag, type=type(f.default), default=None,
                            choices=METHODS if f.name == "method" else None, help=f"default {f.default}")
    ap.add_argument("--lr-probe", default="", metavar="RATES",
                    help="choose lr by a short measured sweep over these comma-separated rates before training (e.g. "
                         "1e-4,3e-4,1e-3; the lowest validation loss wins, written to OUT/lr_probe.json)")
    ap.add_argument("--probe-steps", type=int, default=300, help="steps per rate of --lr-probe (default 300)")
    ap.add_argument("--continue-from", default="", metavar="FILE",
                    help="an empty --out starts from these shipped, unconverged decoders with their training state "
                         "(\"shipped\": the package's file of --method), so a run longer than one checkout carries on")


def run(args) -> int:
    import time

    import torch

    from ..baselines.shipped import restore_run
    from ..baselines.train import choose_lr, parse_rates, train_decoders
    from ..baselines.train_config import BaselineTrainConfig, baseline_profile
    from ..model.checkpoint import CHECKPOINT
    from ..utils import stage_done

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(BaselineTrainConfig)
                 if getattr(args, f.name) is not None}
    cfg = baseline_profile(args.profile, **overrides) if args.profile else BaselineTrainConfig(**overrides)
    t0 = time.perf_counter()
    if args.continue_from:  # before the probe: a restored folder reuses the shipped run's choice of lr
        restore_run(args.continue_from, args.out, cfg.method, cfg.to_dict())
    if args.lr_probe:
        cfg = choose_lr(cfg, Path(args.out), parse_rates(args.lr_probe), args.probe_steps, args.force)
    out = train_decoders(cfg, args.out, force=args.force)
    ckpt = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)  # where it stopped, not the budget
    state = "converged" if ckpt.get("converged") else f"of {cfg.steps}"
    stage_done(f"baseline {cfg.method}", f"{ckpt['step']} steps ({state}) in {args.out}", t0)
    return 0
