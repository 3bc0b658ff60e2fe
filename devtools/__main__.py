"""``python -m devtools COMMAND``: the repository's tooling (devtools/__init__.py). ``device`` and ``headless`` follow
wae_lib's command contract (wae_lib.command: one line on a failure; exit 0, 1, or 130 when interrupted);
``papermill`` hands its whole command line to papermill's own parser (devtools.run_notebook), with the same exit
statuses.
"""

from __future__ import annotations

import sys

from wae_lib.command import main as run_command_line

COMMANDS = {"device": ".device", "headless": ".headless"}  # name -> module (relative to devtools)
DESCRIPTION = "wae-style's tooling for maintaining the study (not part of the wae_lib package). Commands:"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["papermill"]:  # papermill's options are its own: its parser reads them
        from .run_notebook import main as papermill

        return papermill(argv[1:])
    return run_command_line(argv, "python -m devtools", DESCRIPTION + " device, headless, papermill",
                            COMMANDS, __package__)


if __name__ == "__main__":
    sys.exit(main())
