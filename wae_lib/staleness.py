"""Which code an output depends on: the one home of staleness.

An output (the prepared data, a run's evaluation cache, an executed notebook) is stale when any module its
computation imports has changed. The modules are found by reading import statements (``ast``, nothing is
imported), transitively inside ``wae_lib``: a root module, every ``wae_lib`` module it imports (also inside
functions; absolute or relative, ``from ..config import X``, ``from . import x``, ``from .eval import tables``),
theirs, and so on. Importing a module of a subpackage (``wae_lib.eval.tables``) runs that subpackage's
``__init__.py`` too, so it counts (and its own imports are followed). ``from wae_lib import name`` and ``import
wae_lib`` count ``wae_lib/__init__.py`` and, for a name of the public API (its ``_EXPORTS`` table, imported
lazily), the module that defines it; relative imports inside the package do not count ``wae_lib/__init__.py``,
since the package's own ``__init__`` does not take part in a module's computation.

Three users, one rule:
- data prep: :func:`wae_lib.data.prepare.code_versions` digests the closure of ``data.prepare`` (and of
  ``data.sample`` for the embedded sample), recorded beside every prepared output;
- the evaluation cache: :func:`wae_lib.eval.cache.code_digest` digests the closure of ``eval.cache``;
- the Makefile: ``python3 -m devtools.code_deps --make ROOT...`` (devtools/code_deps.py) writes ``code_<root> := <files>`` for each root
  (a module name or a notebook) into build/code-deps.mk, which the Makefile includes and remakes when a library
  file or a notebook changes, so a stage's prerequisites are the files its output depends on. Stdlib only, so
  make can run it before the virtual environment exists.

    python3 -m devtools.code_deps eval.cache notebooks/03_reconstruction.ipynb   # their files, one line
    python3 -m devtools.code_deps --make eval.cache notebooks/*.ipynb            # make variables, one per root
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

PACKAGE = "wae_lib"
PACKAGE_DIR = Path(__file__).resolve().parent


def module_file(parts: list[str]) -> Path | None:
    """``wae_lib/a/b.py`` or ``wae_lib/a/b/__init__.py`` for the dotted name ``a.b`` inside the package, if any."""
    if not parts:
        return PACKAGE_DIR / "__init__.py"
    base = PACKAGE_DIR.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def packages_of(parts: list[str]) -> list[Path]:
    """The ``__init__.py`` of every subpackage on the dotted name ``parts`` (``eval/__init__.py`` for
    ``eval.tables`` and for ``eval``; not the package's own): what Python runs on the way to the module."""
    found = [module_file(parts[:k]) for k in range(1, len(parts) + 1)]
    return [p for p in found if p is not None and p.name == "__init__.py"]


def exports() -> dict[str, str]:
    """The public API's lazy table ``_EXPORTS`` of ``wae_lib/__init__.py``: name -> module (dotted, relative)."""
    init = module_file([])
    for node in ast.walk(ast.parse(init.read_text())) if init.is_file() else ():
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def module_parts(path: Path) -> list[str]:
    """The dotted name inside the package of one of its files (``[]`` for the package's own __init__)."""
    rel = path.resolve().relative_to(PACKAGE_DIR).with_suffix("")
    return list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def imports_of(source: str, parts: list[str] | None, is_package: bool = False) -> set[Path]:
    """The package files that ``source`` imports. ``parts``: its dotted name inside the package (for relative
    imports; None for a file outside the package, such as a notebook or a benchmark)."""
    found: set[Path] = set()
    public = exports()

    def add(target: list[str], names: list[str] = (), whole_package: bool = False) -> None:
        found.update(packages_of(target))  # the subpackages on the way run their __init__
        if whole_package or target:
            path = module_file(target)
            if path is not None:
                found.add(path)
        for name in names:  # `from .x import y`: y may be a submodule
            path = module_file([*target, name])
            if path is not None:
                found.add(path)
            elif not target and name in public:  # `from wae_lib import load_model`: the module defining it
                path = module_file(public[name].lstrip(".").split("."))
                if path is not None:
                    found.update([path, *packages_of(module_parts(path))])

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                head, *rest = alias.name.split(".")
                if head == PACKAGE:
                    add(rest, whole_package=True)
                    if rest:
                        found.add(module_file([]))
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names if a.name != "*"]
            module = node.module.split(".") if node.module else []
            if node.level == 0:
                if module and module[0] == PACKAGE:
                    found.add(module_file([]))
                    add(module[1:], names)
            elif parts is not None:
                package = parts if is_package else parts[:-1]
                base = package[:len(package) - (node.level - 1)]
                add(base + module, names)
    return found


def notebook_source(path: Path) -> str:
    """The code cells of a notebook, without IPython's magics and shell lines (which ``ast`` cannot read)."""
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell.get("cell_type") == "code":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            lines += [ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def closure(*roots: str | Path) -> list[Path]:
    """Every package file the roots' computation imports, the roots' own package files included, sorted. A root
    is a module name inside the package (``"eval.cache"``, ``"data.prepare"``) or a path to a .py or .ipynb file."""
    todo: list[tuple[Path, list[str] | None]] = []
    for root in roots:
        path = Path(root)
        if path.suffix in (".py", ".ipynb") and path.is_file():
            inside = path.suffix == ".py" and PACKAGE_DIR in path.resolve().parents
            todo.append((path.resolve(), module_parts(path) if inside else None))
        else:
            found = module_file(str(root).split("."))
            if found is None:
                raise ValueError(f"staleness root {str(root)!r}: neither a module of {PACKAGE} nor a .py/.ipynb file")
            todo += [(found, module_parts(found)), *((p, module_parts(p)) for p in packages_of(module_parts(found)))]
    seen: set[Path] = set()
    while todo:
        path, parts = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        source = notebook_source(path) if path.suffix == ".ipynb" else path.read_text()
        for dep in imports_of(source, parts, path.name == "__init__.py"):
            if dep not in seen:
                todo.append((dep, module_parts(dep)))
    return sorted(p for p in seen if PACKAGE_DIR in p.parents)


def code_digest(*roots: str | Path) -> str:
    """A digest of the closure's files (names and bytes): it changes when any code the output depends on does."""
    h = hashlib.sha256()
    for path in closure(*roots):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def make_name(root: str) -> str:
    """The make variable of a root: ``code_eval_cache`` (``eval.cache``), ``code_03_reconstruction`` (a file's stem)."""
    return "code_" + (Path(root).stem if Path(root).suffix in (".py", ".ipynb") else root.replace(".", "_"))
