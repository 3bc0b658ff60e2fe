"""``python3 -m devtools.code_deps [--make] ROOT ...``: the library files a module or notebook imports
(wae_lib.staleness, the one home of that rule), printed as make variables for the Makefile's ``build/code-deps.mk``.
The standard library only: make runs it with the system's python3 before the virtual environment exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wae_lib import staleness


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_make = bool(args) and args[0] == "--make"
    roots = args[1:] if as_make else args
    if not roots:
        print("usage: python3 -m devtools.code_deps [--make] ROOT [ROOT ...]  (a wae_lib module name or a .py/.ipynb "
              "file)", file=sys.stderr)
        return 1
    cwd = Path.cwd()
    show = lambda files: " ".join(str(p.relative_to(cwd)) if cwd in p.parents else str(p) for p in files)  # noqa: E731
    try:
        if as_make:
            print("# written by devtools/code_deps.py --make: the library files each output depends on")
            for root in roots:
                print(f"{staleness.make_name(root)} := {show(staleness.closure(root))}")
        else:
            print(show(staleness.closure(*roots)))
    except (ValueError, OSError, SyntaxError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
