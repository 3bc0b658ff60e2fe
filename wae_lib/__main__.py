"""``python -m wae_lib COMMAND ...`` (or ``wae-style COMMAND``): the package's commands, one table of them.

Each command is the module ``wae_lib/commands/<name>.py`` (``eval-cache``: eval_cache.py) with ``add_arguments`` and
``run``; :func:`wae_lib.command.main` parses, runs and turns what a command raises into one line and one exit
status: 0 success, 1 a bad input or a failed run, 130 interrupted. The repository's own tooling (the lent GPU's
session, notebooks run headless or through papermill) is ``python -m devtools``, outside the package.
"""

from __future__ import annotations

import sys

from .command import main as run_command_line

COMMANDS = {  # name -> module (relative to wae_lib), in the order of the study's stages, the user's command first
    "transfer": ".commands.transfer",
    "data": ".commands.data",
    "train": ".commands.train",
    "eval-cache": ".commands.eval_cache",
    "baselines": ".commands.baselines",
    "ship-baselines": ".commands.ship_baselines",
    "scorecard": ".commands.scorecard",
    "export": ".commands.export",
    "frontier": ".commands.frontier",
    "grid": ".commands.grid",
    "both-trainings": ".commands.both_trainings",
    "clean-notebook": ".commands.clean_notebook",
}
DESCRIPTION = ("wae-style: style transfer with a Wasserstein autoencoder (Nakada & Asoh 2019). Commands (each has "
               "--help):")


def main(argv: list[str] | None = None) -> int:
    """The exit status of ``python -m wae_lib`` with ``argv`` (default ``sys.argv[1:]``); tests call it in-process."""
    return run_command_line(argv, "python -m wae_lib", DESCRIPTION, COMMANDS, __package__)


if __name__ == "__main__":
    sys.exit(main())
