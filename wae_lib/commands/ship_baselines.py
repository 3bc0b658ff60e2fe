"""``python -m wae_lib ship-baselines RUN... [--figure F.png] [--weights-dir DIR] [--replace]``: finished AdaIN / WCT
decoder runs shipped into the package's wae_lib/weights with their card (wae_lib.baselines.shipped: what is
written, and why a run that trained fewer steps or validates worse than the shipped decoders is refused even with
``--replace``).

    python -m wae_lib ship-baselines models/converge-adain models/converge-wct --figure reports/baselines/curves.png
    python -m wae_lib ship-baselines RUN --weights-dir /tmp/weights     # anywhere else (tests, a trial)
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "ship finished decoder runs into wae_lib/weights with a card"
DESCRIPTION = __doc__


def add_arguments(ap) -> None:
    ap.add_argument("runs", nargs="+", help="finished decoder run folders (python -m wae_lib baselines --out)")
    ap.add_argument("--figure", default="", help="also plot the shipped decoders' training curves into this PNG")
    ap.add_argument("--weights-dir", default="", metavar="DIR",
                    help="ship into this folder instead of the package's wae_lib/weights (a trial, tests)")
    ap.add_argument("--replace", action="store_true",
                    help="replace shipped decoders (and an existing --figure); decoders that trained fewer steps or "
                         "score a higher best held-out validation loss than the shipped ones are refused even so")


def run(args) -> int:
    from ..baselines.shipped import ship

    for line in ship(args.runs, Path(args.weights_dir) if args.weights_dir else None, args.replace, args.figure):
        print(line, file=sys.stderr if line.startswith("[wae_lib]") else sys.stdout)
    return 0
