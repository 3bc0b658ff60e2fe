"""``python -m wae_lib frontier T.csv[=GROUP] ... --out F.png``: the style-identity frontier of scorecard tables,
one figure and its table (wae_lib.report.frontier: which tables may be put side by side, and each row's kind).
"""

from __future__ import annotations

HELP = "the style-identity frontier of scorecard tables (one figure, one table; same held-out pairs checked)"
DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    parser.add_argument("tables", nargs="+", metavar="T.csv[=GROUP]", help="scorecard tables")
    parser.add_argument("--out", required=True, help="the figure (.png); its table is written beside it (.csv)")
    parser.add_argument("--caption", default="", help="one line under the figure")
    parser.add_argument("--replace", action="store_true", help="replace an existing figure and table")


def run(args) -> int:
    from ..report.figures import scorecard_frontier
    from ..report.frontier import frontier_table
    from ..utils import atomic_write_text, output_pair

    out = output_pair(args.out, ".png", ".csv", args.replace)
    table = frontier_table(args.tables)
    out.parent.mkdir(parents=True, exist_ok=True)
    scorecard_frontier(table, out.with_suffix(".tmp.png"), caption=args.caption).replace(out)
    atomic_write_text(out.with_suffix(".csv"), table.to_csv(index=False))
    print(f"wrote {out} and {out.with_suffix('.csv')} ({len(table)} rows)")
    return 0
