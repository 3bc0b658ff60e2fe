"""The package's layout (issue 20 item 1): subpackages by layer and the import rules of wae_lib/__init__.py.

Every module is read with ``ast`` (nothing is imported), every import counted, the ones inside functions and
``if TYPE_CHECKING:`` blocks too, absolute (``wae_lib.x``) or relative (``from ..x import y``).
"""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

import wae_lib
from wae_lib import LAYERS

PACKAGE_DIR = Path(wae_lib.__file__).resolve().parent
ENTRY_POINTS = ("__init__", "__main__")  # the package's own: they name modules of every layer in their tables
MAX_LINES = 700  # a hard stop; a module over SOFT_LINES is named in a warning (issue 36: concepts over caps)
SOFT_LINES = 500


def module_name(path: Path) -> list[str]:
    """``['eval', 'tables']`` for wae_lib/eval/tables.py, ``['eval']`` for wae_lib/eval/__init__.py, ``[]`` for
    wae_lib/__init__.py."""
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    return list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "weights" not in p.relative_to(PACKAGE_DIR).parts)


def layer(name: list[str]) -> int:
    """0 for the foundation (the top-level modules), 1 + the index in LAYERS for a subpackage's modules."""
    if len(name) == 1 and name[0] not in LAYERS:
        return 0
    if name[0] not in LAYERS:
        raise ValueError(f"wae_lib.{'.'.join(name)}: a subpackage that is not a layer of wae_lib.LAYERS {LAYERS}")
    return 1 + LAYERS.index(name[0])


def layer_name(rank: int) -> str:
    return "the foundation" if rank == 0 else LAYERS[rank - 1]


def imported(source: str, name: list[str], is_package: bool = False) -> list[tuple[int, list[str]]]:
    """(line, dotted name inside wae_lib) of every wae_lib module ``source`` imports; ``name``: its own dotted name
    inside the package. ``from X import y``: y when X.y is a module, else X (``[]``: the package's public API)."""
    package = name if is_package else name[:-1]
    found = []

    def add(line: int, target: list[str], names) -> None:
        subs = [[*target, n] for n in names if (PACKAGE_DIR.joinpath(*target, n + ".py")).is_file()
                or (PACKAGE_DIR.joinpath(*target, n, "__init__.py")).is_file()]
        found.extend((line, s) for s in subs)
        if len(subs) < len(names):  # names defined in the module (or package) itself
            found.append((line, target))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                head, *rest = alias.name.split(".")
                if head == "wae_lib":
                    found.append((node.lineno, rest))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module.split(".") if node.module else []
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                add(node.lineno, base + mod, [a.name for a in node.names])
            elif mod and mod[0] == "wae_lib":
                add(node.lineno, mod[1:], [a.name for a in node.names])
    return found


def violations(source: str, name: list[str], is_package: bool = False) -> list[str]:
    """The imports of ``source`` (the module wae_lib.<name>) that break the rules of wae_lib/__init__.py."""
    if name[-1:] and name[-1] in ENTRY_POINTS or not name:
        return []
    own = layer(name)
    out = []
    for line, target in imported(source, name, is_package):
        where = f"wae_lib.{'.'.join(name)} line {line} imports wae_lib{''.join('.' + t for t in target)}"
        if not target:
            out.append(f"{where}: the package's public API, which reaches into any layer; import the module "
                       f"that defines the name")
        elif target[0] in ENTRY_POINTS:
            out.append(f"{where}: an entry point")
        elif layer(target) > own:
            out.append(f"{where}: {layer_name(layer(target))} is above {layer_name(own)} "
                       f"(a layer imports the foundation, its own layer and the layers below it)")
    if name[:1] == ["commands"] and not is_package:
        out.extend(f"wae_lib.{'.'.join(name)}: {problem}" for problem in command_problems(source))
    if is_package and name and any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(ast.parse(source))):
        out.append(f"wae_lib/{'/'.join(name)}/__init__.py imports: a subpackage's __init__ holds its docstring only "
                   f"(importing one module must not import the whole layer)")
    return out


def command_problems(source: str) -> list[str]:
    """What breaks the command contract (wae_lib.command) in a command module: exiting by itself (``sys.exit``,
    ``exit``, ``SystemExit``), printing its own ``error:`` line, or lacking ``add_arguments`` / ``run``."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("exit", "_exit") or name == "SystemExit":
                found.append(f"line {node.lineno}: calls {ast.unparse(f)} (a command returns or raises UserError; "
                             f"wae_lib.command turns that into the exit status)")
            if name == "print" and node.args and "error:" in ast.unparse(node.args[0]):
                found.append(f"line {node.lineno}: prints an error itself (raise UserError: wae_lib.command "
                             f"prints it)")
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    found.extend(f"defines no {f}()" for f in ("add_arguments", "run") if f not in defined
                 and any(isinstance(n, ast.FunctionDef) for n in tree.body))
    return found


def test_no_module_breaks_the_import_rules():
    found = [v for path in modules() for v in violations(path.read_text(), module_name(path), path.name == "__init__.py")]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("source, name, expected", [
    ("from ..report.figures import save_grid\n", ["train", "trainer"], "report is above train"),
    ("def f():\n    from ..commands import transfer\n", ["eval", "tables"], "commands is above eval"),  # lazy
    ("from wae_lib.eval.metrics import EvalVGG\n", ["data", "faces"], "eval is above data"),  # absolute
    ("from .eval import tables\n", ["config"], "eval is above the foundation"),  # the foundation imports a layer
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..baselines.build import BASELINES\n",
     ["eval", "cache"], "baselines is above eval"),
    ("from .. import load_model\n", ["eval", "runs"], "the package's public API"),
    ("from .runs import load_sweep\n", ["eval"], "holds its docstring only"),  # a subpackage __init__ importing
    ("import sys\ndef add_arguments(p):\n    pass\ndef run(args):\n    sys.exit(1)\n", ["commands", "train"],
     "sys.exit"),  # a command exiting by itself
    ("def add_arguments(p):\n    pass\ndef run(args):\n    print(f'error: {args}', file=sys.stderr)\n    return 2\n",
     ["commands", "data"], "prints an error"),
    ("def run(args):\n    return 0\n", ["commands", "data"], "defines no add_arguments"),
])
def test_the_checker_catches_a_planted_violation(source, name, expected):
    is_package = name == ["eval"]
    found = violations(source, name, is_package)
    assert len(found) == 1 and expected in found[0], found


def test_the_checker_allows_what_the_rules_allow():
    allowed = ("from ..config import Config\nfrom .. import utils\nfrom ..data.layout import set_path\n"
               "from ..model import vgg\nfrom .metrics import EvalVGG\nfrom . import stats as S\n"
               "def lazy():\n    from ..train.trainer import Trainer\n")
    assert violations(allowed, ["eval", "tables"]) == []
    assert violations("from .eval import tables\n", ["__main__"]) == []  # the entry points name every layer


def test_every_subpackage_is_a_layer_and_the_tables_name_modules():
    subpackages = {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")}
    assert subpackages - {"weights"} == set(LAYERS) and not (PACKAGE_DIR / "weights" / "__init__.py").exists()
    from wae_lib.__main__ import COMMANDS

    names = [*COMMANDS.values(), *(f".{m}" for m in wae_lib._EXPORTS.values())]
    for rel in names:  # importlib.util.find_spec would import the parent packages: check the files instead
        parts = rel.lstrip(".").split(".")
        assert PACKAGE_DIR.joinpath(*parts).with_suffix(".py").is_file(), rel


def test_every_command_module_is_a_command_of_the_table():
    """One module per command, named for it (issue 36 item 1): wae_lib/commands holds the commands and nothing else."""
    from wae_lib.__main__ import COMMANDS

    files = {p.stem for p in (PACKAGE_DIR / "commands").glob("*.py")} - {"__init__"}
    assert files == {m.rsplit(".", 1)[1] for m in COMMANDS.values()}
    assert all(m.rsplit(".", 1)[1] == name.replace("-", "_") for name, m in COMMANDS.items())


def test_module_length():
    lengths = {str(p.relative_to(PACKAGE_DIR)): len(p.read_text().splitlines()) for p in modules()}
    long = {k: n for k, n in lengths.items() if n > MAX_LINES}
    assert not long, f"split these by concern: {long}"
    if soft := {k: n for k, n in lengths.items() if n > SOFT_LINES}:
        warnings.warn(f"modules over {SOFT_LINES} lines (one concept each? split by concern if not): {soft}",
                      stacklevel=1)


def test_every_module_imports():
    for path in modules():
        importlib.import_module(".".join(["wae_lib", *module_name(path)]))
