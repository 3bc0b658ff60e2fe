"""``python -m devtools papermill IN OUT [papermill's options]``: papermill as the Makefile runs every notebook, with
the notebook's parameters checked before a kernel starts and a failure said in one line.

    python -m devtools papermill notebooks/07_compare.ipynb out.ipynb --kernel python3 --cwd . -p n_styles 4

The options are papermill's own (its command line parses them; ``--help`` lists them). Before papermill starts a
kernel, the values of ``-p`` / ``-r`` / ``-f`` / ``-y`` / ``-b`` are checked as the notebook's check cell will check
them (wae_lib.params.check_before_running): ``make compare PARAMS='-p n_styles abc'`` prints the parameter's own
line, instead of that line at the end of ~60 lines of papermill's and the cell's tracebacks after the imports
before the check had run (issue 35). A cell that fails later is one line too, naming the notebook and the cell; its
traceback stays in the output notebook. Ctrl-C: one line, exit status 130. A bad parameter or a failing cell: 1.
"""

from __future__ import annotations

import base64
import sys
from typing import Any

from wae_lib.params import ParameterError, check_before_running

PROG = "python -m devtools papermill"


def parameters(options: dict[str, Any]) -> dict[str, Any]:
    """The parameters papermill's command line would inject, from its parsed options (papermill.cli: base64 YAML,
    then YAML files, then YAML strings, then ``-p`` with its type guess, then ``-r`` as raw strings)."""
    import yaml
    from papermill.cli import _resolve_type
    from papermill.iorw import NoDatesSafeLoader, read_yaml_file

    final: dict[str, Any] = {}
    try:
        for text in options.get("parameters_base64") or ():
            final.update(yaml.load(base64.b64decode(text), Loader=NoDatesSafeLoader) or {})
        for path in options.get("parameters_file") or ():
            final.update(read_yaml_file(path) or {})
        for text in options.get("parameters_yaml") or ():
            final.update(yaml.load(text, Loader=NoDatesSafeLoader) or {})
    except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        raise ParameterError(f"papermill's parameters (-f/-y/-b) could not be read: {str(exc).splitlines()[0]}") \
            from None
    final.update({name: _resolve_type(value) for name, value in options.get("parameters") or ()})
    final.update(dict(options.get("parameters_raw") or ()))
    return final


def cell_failure(exc: Any, notebook: str, output: str) -> str:
    """A PapermillExecutionError in one line: the notebook, the cell, the error; where its traceback is."""
    value = (str(exc.evalue).strip().splitlines() or [""])[0]
    where = f"the executed notebook {output}" if output and output != "-" else "the output notebook"
    return f"{notebook}, cell In [{exc.exec_count}]: {exc.ename}: {value} (its traceback is in {where})"


def main(argv: list[str] | None = None) -> int:
    try:
        import click
        from papermill import cli as pm_cli
        from papermill.exceptions import PapermillExecutionError
    except ImportError:
        print("error: papermill is not installed (pip install papermill); `python -m devtools headless NOTEBOOK` "
              "runs a notebook's cells without it", file=sys.stderr)
        return 1
    argv = list(sys.argv[1:] if argv is None else argv)
    notebook, output = "notebook", ""
    try:
        ctx = pm_cli.papermill.make_context(PROG, argv)
        with ctx:
            opts = ctx.params
            notebook, output = opts.get("notebook_path") or "-", opts.get("output_path") or ""
            if notebook != "-" and not opts.get("help_notebook"):
                check_before_running(notebook, parameters(opts))  # before a kernel starts
            pm_cli.papermill.invoke(ctx)
    except click.exceptions.Exit as exc:  # --help, --version
        return exc.exit_code
    except click.ClickException as exc:  # a malformed command line
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 1
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PapermillExecutionError as exc:
        print(f"error: {cell_failure(exc, notebook, output)}", file=sys.stderr)
        return 130 if exc.ename == "KeyboardInterrupt" else 1  # Ctrl-C reaches the kernel too: its cell stops
    except (KeyboardInterrupt, click.exceptions.Abort):
        print(f"error: {notebook}: interrupted; the output notebook is incomplete", file=sys.stderr)
        return 130
    return 0

