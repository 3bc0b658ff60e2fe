"""``python -m wae_lib COMMAND ...`` (or ``wae-style COMMAND``): the package's command-line tools.

``transfer`` is the user's command (below); the study's stages (``data``, ``train``, ``eval-cache``,
``baselines``, ``export``, ``device``, ... :data:`TOOLS`) are handed to their modules' own ``main``.

A command is a module with ``HELP`` (one line), ``DESCRIPTION``, optional ``EPILOG``, ``add_arguments(parser)``
and ``run(args) -> int`` that raises ``wae_lib.utils.UserError`` for problems the user can fix; add it to
:data:`COMMANDS`. Command modules import torch inside ``run``, so ``--help`` stays fast.

:func:`main` takes ``argv`` and returns the exit status (tests call it in-process): 0 on success, 1 for a bad
input, 2 for a malformed command line, 130 when interrupted; user errors print one line ``error: ...`` on
stderr and no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .utils import UsageError, UserError

COMMANDS = {  # name -> module (relative to wae_lib)
    "transfer": ".tools.transfer",
    "clean-notebook": ".report.executed",
    "scorecard": ".tools.scorecard",
    "frontier": ".report.frontier",
}
# The study's stage tools: each module parses the rest of the command line with its own main(argv) (its --help
# lists its flags); `python -m wae_lib train ...` runs `wae_lib.train.cli.main`. The one table of them.
TOOLS = {  # name -> (module, one line for --help)
    "data": (".data.cli", "prepare the paper's datasets (or the embedded sample) into a data root (make data)"),
    "train": (".train.cli", "train one model (--out) or a profile's sweep (train sweep --models-dir ...)"),
    "eval-cache": (".eval.cache", "every run's reconstructions and transfers of the evaluation sets, once"),
    "baselines": (".baselines.train", "train AdaIN's or WCT's decoders on our training set"),
    "ship-baselines": (".baselines.shipped", "ship finished decoder runs into wae_lib/weights with a card"),
    "export": (".tools.export", "score a sweep's models on held-out people and write one as a model file (--out; --replace)"),
    "both-trainings": (".report.both_trainings", "the claims and figures of two reports folders side by side"),
    "device": (".tools.device_session", "the prepared call of a lent GPU: pack, run, unpack, reports"),
    "headless": (".tools.headless", "run a notebook's code cells without Jupyter (a machine without it)"),
    "papermill": (".tools.run_notebook", "papermill (make's notebook runner) with the parameters checked first"),
}


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit status 2) instead of printing usage and exiting."""

    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> Parser:
    parser = Parser(prog="python -m wae_lib", description="wae-style: style transfer with a Wasserstein "
                    "autoencoder (Nakada & Asoh 2019). Commands (each has --help):")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(module, __package__)
        p = sub.add_parser(name, help=mod.HELP, description=mod.DESCRIPTION, epilog=getattr(mod, "EPILOG", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(run=mod.run)
    for name, (_, line) in TOOLS.items():  # listed here; main() hands their arguments to the module
        sub.add_parser(name, help=line, add_help=False)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C (temporary files removed, one line)


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    args_in = sys.argv[1:] if argv is None else list(argv)
    if args_in and args_in[0] in TOOLS:  # a stage tool: its own parser, errors and exit codes
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)
        try:
            return importlib.import_module(TOOLS[args_in[0]][0], __package__).main(args_in[1:])
        except SystemExit as exc:  # its --help, or a malformed command line (argparse's exit status 2)
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # argparse fills CONTENT and the optional STYLE from the first run of positionals only: a STYLE given
        # after an option (`transfer face.jpg -o out.png style.jpg`) comes back as an extra argument
        if extra and len(extra) == 1 and not extra[0].startswith("-") and getattr(args, "style", "") is None:
            args.style, extra = extra[0], []
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return args.run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":
    sys.exit(main())
