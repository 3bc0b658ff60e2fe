"""The one command contract of ``python -m wae_lib COMMAND`` (and of the repository's ``python -m devtools``).

A command is one module named for the command (``wae_lib/commands/<name>.py``) with ``HELP`` (one line),
``DESCRIPTION``, optional ``EPILOG``, ``add_arguments(parser)`` and ``run(args) -> int``. It raises
:class:`wae_lib.utils.UserError` (or a library error derived from it) for a problem the user can fix or a run that
failed; it never prints an error, calls ``sys.exit`` or catches ``KeyboardInterrupt`` (tests/test_layout.py checks
the first two). :func:`main` alone turns what a command raises into one line on stderr and one exit status:

    0    success (and ``--help``)
    1    a bad command line, a bad input, or a run that failed (``error: ...``, no traceback)
    130  interrupted (Ctrl-C, SIGTERM, or a long run stopped by either): ``error: interrupted``, or the line of
         the command's ``Interrupted`` saying what it left

An ``OSError`` that reaches :func:`main` (a missing file, a full disk) is a failed run too: its message names the
file. wae_lib's command modules import torch inside ``run``, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .utils import UserError

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 130


class Parser(argparse.ArgumentParser):
    """argparse that raises UserError (one line, exit status 1) instead of printing its usage and exiting."""

    def error(self, message: str):
        raise UserError(message)


def build_parser(prog: str, description: str, commands: dict[str, str], package: str | None) -> Parser:
    """One subcommand per entry of ``commands`` (name -> module, relative to ``package``)."""
    parser = Parser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for name, module in commands.items():
        mod = importlib.import_module(module, package)
        p = sub.add_parser(name, help=mod.HELP, description=mod.DESCRIPTION, epilog=getattr(mod, "EPILOG", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(command_run=mod.run)  # not "run": a command may have a --run option (export)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C (temporary files removed, one line)


def main(argv: list[str] | None, prog: str, description: str, commands: dict[str, str],
         package: str | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit status (tests call it
    in-process; the ``__main__`` modules pass it to ``sys.exit``)."""
    import signal
    import threading

    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        parser = build_parser(prog, description, commands, package)
        args, extra = parser.parse_known_args(argv)
        # argparse fills CONTENT and the optional STYLE of `transfer` from the first run of positionals only: a STYLE
        # given after an option (`transfer face.jpg -o out.png style.jpg`) comes back as an extra argument
        if extra and len(extra) == 1 and not extra[0].startswith("-") and getattr(args, "style", "") is None:
            args.style, extra = extra[0], []
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.command_run(args) or EXIT_OK)
    except SystemExit as exc:  # --help (argparse's own exit; a command never exits)
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_ERROR)
    except KeyboardInterrupt:  # a command's temporary files are removed where it raised; what it wrote stays whole
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, OSError) as exc:  # UserError.code: 1, or 130 for a training stopped by a signal
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "code", EXIT_ERROR) if isinstance(exc, UserError) else EXIT_ERROR
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)
