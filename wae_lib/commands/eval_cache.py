"""``python -m wae_lib eval-cache --models-dir M --data-root P --cache-dir DIR [--n-styles 8] [--device auto]``: every
run's outputs that notebooks 03-05 measure, computed once into ``DIR/<run>/`` (wae_lib.eval.cache: what is
written, how a stale or damaged run is found and recomputed). Ctrl-C keeps the runs cached so far (exit 130).
"""

from __future__ import annotations

import time

HELP = "every run's reconstructions and transfers of the evaluation sets, once"
DESCRIPTION = __doc__


def add_arguments(ap) -> None:
    ap.add_argument("--models-dir", required=True, help="the sweep's run folders (python -m wae_lib train sweep)")
    ap.add_argument("--data-root", required=True, help="prepared data (sets/*.npy, sets/info.json)")
    ap.add_argument("--cache-dir", required=True, help="cache folder: one subfolder per run")
    ap.add_argument("--n-styles", type=int, default=8, help="figure styles of the transfers (notebooks' n_styles)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--batch-size", type=int, default=64, help="the notebooks' batch_size")
    ap.add_argument("--profile", default="auto", help="keep the runs of this profile (auto: all, one profile)")


def run(args) -> int:
    from ..eval.cache import build_cache
    from ..utils import Interrupted, stage_done

    t0 = time.perf_counter()
    try:
        done = build_cache(args.models_dir, args.data_root, args.cache_dir, args.n_styles, args.device, args.batch_size,
                           args.profile)
    except KeyboardInterrupt:  # every file is written atomically: the runs finished so far are kept
        raise Interrupted(f"interrupted; the runs cached so far in {args.cache_dir} are kept, run the same command "
                          f"to finish") from None
    written = sum(v == "written" for v in done.values())
    stage_done("eval cache", f"{len(done)} runs in {args.cache_dir} ({written} written, {len(done) - written} up to date)",
               t0)
    return 0
