"""The tests' way to run a command as a user does: ``python -m wae_lib NAME ...`` (or ``python -m devtools NAME``)
in-process, through the one entry point that turns errors into exit statuses (wae_lib.command)."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def command(name: str, entry: str = "wae_lib") -> Callable[[Iterable], int]:
    """``command("train")(["--out", run, ...])`` is the exit status of ``python -m wae_lib train --out RUN ...``."""

    def run(argv: Iterable = ()) -> int:
        if entry == "devtools":
            from devtools.__main__ import main
        else:
            from wae_lib.__main__ import main
        return main([name, *(str(a) for a in argv)])

    return run
