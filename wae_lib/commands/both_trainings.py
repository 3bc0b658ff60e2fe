"""``python -m wae_lib both-trainings REPORTS_A REPORTS_B --labels A B --out DIR [--replace]``: the paper's claims
and figure 7 of two reports folders (two trainings on the same data) side by side (wae_lib.report.both_trainings).
"""

from __future__ import annotations

HELP = "the claims and figures of two reports folders side by side"
DESCRIPTION = __doc__


def add_arguments(ap) -> None:
    ap.add_argument("folders", nargs="+", help="reports folders, one per training, on the same data")
    ap.add_argument("--labels", nargs="+", required=True, help="one label per folder")
    ap.add_argument("--out", required=True, help="folder for claims.md, claims_both.csv and fig7_both.png (not an "
                    "input folder)")
    ap.add_argument("--replace", action="store_true", help="replace those files when --out already holds them")


def run(args) -> int:
    from ..report.both_trainings import build

    out = build(args.folders, args.labels, args.out, args.replace)
    print(f"wrote {out}/claims.md, claims_both.csv" + (", fig7_both.png" if (out / "fig7_both.png").is_file() else ""))
    return 0
