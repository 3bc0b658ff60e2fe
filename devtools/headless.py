"""Execute a notebook's code cells in this Python process, for a machine without Jupyter (the lent GPU).

    python -m devtools headless notebooks/03_reconstruction.ipynb --log out/03.log -p models_dir runs -p profile reference

The lent GPU (issue 17; devtools.device) has PyTorch, pandas and matplotlib but no papermill, Jupyter kernel
or IPython. The notebooks hold narrative and plots over library calls and write their figures and tables through
their ``figures_dir`` / ``tables_dir`` parameters, so running their code cells in order is enough to produce those
files. As papermill does, the cell tagged ``parameters`` runs first and the given values are assigned after it (the
notebooks then check them: wae_lib.params; the command checks ``-p`` values the same way before any cell runs).
Where IPython is missing, ``IPython.display`` is a stand-in that prints what a notebook would show (a table's text,
an image's path), as is a cell's last bare expression. Every cell's printed output goes to the log with its number
and time; a failing cell stops the run with its number in the error, and so does a cell that exits early
(``sys.exit(0)`` too: the cells after it never ran, so the notebook did not succeed). The command's exit status: 0,
1 for an unreadable notebook, a bad parameter or a failing cell, 130 for Ctrl-C; each failure is one line. Under
make, and wherever Jupyter is installed, papermill runs the notebooks (it also keeps their outputs); this is the
fallback, not a second pipeline.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

from wae_lib.params import check_before_running
from wae_lib.utils import Interrupted, UserError


class NotebookError(UserError, RuntimeError):
    """A notebook could not be read, or one of its cells raised or exited; the message names the notebook and the
    cell."""


class NotebookInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a cell's own KeyboardInterrupt) during a cell; the message names the notebook and the cell. A
    KeyboardInterrupt still, so that a caller's deadline (devtools.device_stages) stops the run as before."""


def code_cells(path: Path) -> list[tuple[int, str, bool]]:
    """(cell number from 1, source, is the parameters cell) of every code cell."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookError(f"{path}: not a readable notebook ({exc})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path}: not a notebook (expected a JSON object with a list of 'cells', found "
                            f"{type(nb).__name__}{'' if not isinstance(nb, dict) else ' without one'})")
    cells = []
    for i, cell in enumerate(nb["cells"], start=1):
        # a cell that is not {"cell_type": ..., "source": str or [str], "metadata": {"tags": [...]}} would fail
        # later with a KeyError or TypeError deep in the loop; name it here
        source = cell.get("source", []) if isinstance(cell, dict) else None
        meta = cell.get("metadata", {}) if isinstance(cell, dict) else None
        tags = meta.get("tags", []) if isinstance(meta, dict) else None
        if (not isinstance(source, (str, list)) or not all(isinstance(s, str) for s in source)
                or not isinstance(tags, list)):
            raise NotebookError(f"{path}, cell {i}: not a notebook cell (expected an object with a 'source' text "
                                f"and 'metadata', found {json.dumps(cell)[:60]})")
        if cell.get("cell_type") == "code":
            cells.append((i, "".join(source), "parameters" in tags))
    return cells


def first_line(error: BaseException) -> str:
    """An exception's message on one line (the first of a multi-line one)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def parse_value(text: str) -> Any:
    """A ``-p`` value as papermill's command line reads one: True / False / None, an int, a float, else the
    string (so "1, 64" stays a string, as the notebooks expect)."""
    special = {"True": True, "False": False, "None": None}
    if text in special:
        return special[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def display_stand_in() -> types.ModuleType:
    """``IPython.display`` for a process without IPython: ``display`` prints a text form."""
    mod = types.ModuleType("IPython.display")

    class Image:
        def __init__(self, filename: str | None = None, **_: Any):
            self.filename = filename

        def __repr__(self) -> str:
            return f"[image {self.filename}]"

    class Markdown:
        def __init__(self, data: str = ""):
            self.data = data

        def __repr__(self) -> str:
            return self.data

    def display(*objs: Any, **_: Any) -> None:
        for obj in objs:
            print(obj.to_string() if hasattr(obj, "to_string") else repr(obj))

    mod.Image, mod.Markdown, mod.display = Image, Markdown, display
    return mod


@contextlib.contextmanager
def ipython_display() -> Any:
    """Make ``from IPython.display import ...`` work whether or not IPython is installed."""
    try:
        import IPython.display  # noqa: F401

        yield
        return
    except ImportError:
        pass
    saved = {k: sys.modules.get(k) for k in ("IPython", "IPython.display")}
    pkg = types.ModuleType("IPython")
    pkg.display = display_stand_in()
    # libraries that look for a running shell (pandas, matplotlib, tqdm: `IPython.get_ipython()`) are told there is
    # none, as in a plain Python process (on the lent H200, without IPython, notebook 03 stopped here)
    pkg.get_ipython = lambda: None
    # matplotlib patches IPython releases before 8.24 on every new canvas; the stand-in needs no patch
    pkg.version_info = (8, 24, 0, "", "stand-in")
    sys.modules["IPython"], sys.modules["IPython.display"] = pkg, pkg.display
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def run_cell(source: str, name: str, namespace: dict[str, Any]) -> None:
    """Execute a cell; a last bare expression is shown as Jupyter shows it (a table's text in the log)."""
    tree = ast.parse(source, name)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, name, "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), name, "eval"), namespace)
        if value is not None:
            print(value.to_string() if hasattr(value, "to_string") else repr(value))


def execute(notebook: str | Path, params: dict[str, Any] | None = None, log: str | Path | None = None) -> dict[str, Any]:
    """Run ``notebook``'s code cells in order in one namespace, with ``params`` assigned after its parameters cell;
    returns the namespace. ``log``: a text file of every cell's printed output (appended cell by cell)."""
    import matplotlib

    matplotlib.use("Agg")  # figures are saved by the notebooks; nothing is shown
    path = Path(notebook)
    cells = code_cells(path)
    if not any(is_params for _, _, is_params in cells):
        raise NotebookError(f"{path}: no cell tagged 'parameters'")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        log_file = open(log, "a") if log else None  # noqa: SIM115 (kept open across cells, closed below)
    except OSError as exc:
        raise NotebookError(f"--log {log}: cannot write the log ({exc.strerror}); no cell of {path.name} ran") \
            from None
    t_start = time.perf_counter()
    try:
        with ipython_display():
            for number, source, is_params in cells:
                t0 = time.perf_counter()
                out, error = io.StringIO(), None
                try:
                    with contextlib.redirect_stdout(out):
                        run_cell(source, f"{path.name}[cell {number}]", namespace)
                        if is_params and params:
                            namespace.update(params)
                except (Exception, SystemExit, KeyboardInterrupt) as exc:  # any of them ends the run, named by its cell
                    error = exc
                if log_file:
                    log_file.write(f"--- {path.name} cell {number} ({time.perf_counter() - t0:.1f} s)\n{out.getvalue()}")
                    log_file.flush()
                where = f"{path.name}, cell {number}"
                if isinstance(error, KeyboardInterrupt):
                    raise NotebookInterrupted(f"{where}: interrupted; the cells after it did not run") from error
                if isinstance(error, SystemExit):  # sys.exit(0) too: the cells after it never ran, so not a success
                    raise NotebookError(f"{where}: exited early (SystemExit: {error.code}); the cells after it did "
                                        f"not run") from error
                if error is not None:
                    raise NotebookError(f"{where}: {type(error).__name__}: {first_line(error)}") from error
    finally:
        if log_file:
            log_file.write(f"=== {path.name}: {len(cells)} code cells in {time.perf_counter() - t_start:.1f} s\n")
            log_file.close()
    return namespace


HELP = "run a notebook's code cells without Jupyter (a machine without it)"
DESCRIPTION = __doc__


def add_arguments(ap) -> None:
    ap.add_argument("notebook")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a parameter, as papermill's -p")
    ap.add_argument("--log", default=None, help="append every cell's output to this file")


def run(args) -> int:
    t0 = time.perf_counter()
    params = {k: parse_value(v) for k, v in args.p}
    check_before_running(args.notebook, params)  # a bad -p in one line, before any cell runs
    try:
        execute(args.notebook, params, args.log)
    except KeyboardInterrupt as exc:  # Ctrl-C in a cell (NotebookInterrupted names it) or before the first
        raise Interrupted(str(exc) if isinstance(exc, NotebookInterrupted) else f"{args.notebook}: interrupted") from None
    print(f"[wae_lib] executed {args.notebook} headless in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0
