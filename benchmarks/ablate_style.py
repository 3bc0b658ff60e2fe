"""The style ablation of issue 16 at one fixed CPU budget: the paper's training, then our changes one by one.

    python benchmarks/ablate_style.py --data-root data/processed/shared-data-large --models-dir models/ablate-style
    python benchmarks/ablate_style.py ... --rows paper paper_s1      # some rows only (finished runs are reused)

Every row: the reference profile's networks and schedule (channels x1/4, style FC 128, 600 steps of 16, cosine
lr 1e-3, running balance), the mixed training set, content latent 256, seed 0 unless the row says otherwise;
only the fields of the row change. Runs are resumable (wae_lib.train.run_folder): an interrupted ablation continues where it
stopped. Score them afterwards on held-out people with benchmarks/bench_quality.py (the scorecard); the rows'
labels and changes are written to MODELS_DIR/rows.json for the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from wae_lib.config import profile_config
from wae_lib.train.run_folder import train
from wae_lib.utils import atomic_write_text, set_seed

SWAP = dict(objective="swap")
MODULATE = dict(SWAP, style_injection="modulate")
INSTANCE = dict(MODULATE, content_norm="instance")
# name -> (what the row changes, Config fields on top of the reference profile's mixed_c256)
ROWS: dict[str, tuple[str, dict]] = {
    "paper": ("the paper: reconstruction only, concatenated latent, no normalisation", {}),
    "paper_s1": ("the paper, seed 1", dict(seed=1)),
    "swap": ("+ swapped pairs (Gram vs partner at relu1_1..3_1, IN relu3_1 vs own)", SWAP),
    "swap_mod": ("+ swap + style modulation at every decoder stage", MODULATE),
    "swap_mod_in": ("+ swap + modulation + instance norm in the content encoder", INSTANCE),
    "swap_mod_in_cycle": ("+ swap + modulation + instance norm + latent cycle (share 1)", dict(INSTANCE, w_cycle=1.0)),
    "swap_mod_in_c2": ("+ swap + modulation + instance norm, content term at relu2_1 and relu3_1",
                       dict(INSTANCE, swap_content_layers=("relu2_1", "relu3_1"))),
    "swap_mod_in_s1": ("+ swap + modulation + instance norm, seed 1", dict(INSTANCE, seed=1)),
    "swap_mod_in_c2_s1": ("+ swap + modulation + instance norm, content term at relu2_1 and relu3_1, seed 1",
                          dict(INSTANCE, swap_content_layers=("relu2_1", "relu3_1"), seed=1)),
    "swap_mod_in_cycle_s1": ("+ swap + modulation + instance norm + latent cycle, seed 1",
                             dict(INSTANCE, w_cycle=1.0, seed=1)),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True, help="prepared data (sets/mixed.npy)")
    ap.add_argument("--models-dir", type=Path, default=Path("models/ablate-style"))
    ap.add_argument("--rows", nargs="+", choices=sorted(ROWS), help="rows to train (default: all, in order)")
    ap.add_argument("--steps", type=int, help="override the fixed budget (a test, not the ablation)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    names = args.rows or list(ROWS)
    args.models_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.models_dir / "rows.json", json.dumps({n: ROWS[n][0] for n in ROWS}, indent=2))
    for name in names:
        change, fields = ROWS[name]
        extra = {"steps": args.steps} if args.steps else {}
        cfg = profile_config("reference", data="mixed", content_dim=256, data_root=args.data_root, device=args.device,
                             extra={"ablation_row": name, "change": change}, **{**fields, **extra})
        set_seed(cfg.seed)
        t0 = time.perf_counter()
        train(cfg, args.models_dir / name)
        print(f"[ablate] {name}: {change} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
