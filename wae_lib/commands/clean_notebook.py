"""``python -m wae_lib clean-notebook NB.ipynb ...``: executed notebooks rewritten in place so that they render on the
code host and in an untrusted JupyterLab (wae_lib.report.executed: what is dropped, what is kept, and why). The
Makefile runs it on every notebook it executes, before the file is renamed into place.
"""

from __future__ import annotations

HELP = "make executed notebooks readable anywhere: no widget state or progress widgets, large PNGs as JPEG"
DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    parser.add_argument("notebooks", nargs="+", metavar="NB.ipynb", help="executed notebooks, rewritten in place")


def run(args) -> int:
    from ..report.executed import MAX_BYTES, clean_file

    for path in args.notebooks:
        size = clean_file(path)
        if size > MAX_BYTES:
            print(f"note: {path} is {size / 2**20:.1f} MiB after cleaning (over {MAX_BYTES / 2**20:.0f} MiB: its "
                  f"figures; fewer images per figure make it lighter)")
    return 0
