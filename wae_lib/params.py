"""One validation path for every value that arrives from outside: config fields (flags, YAML, Python) and
notebook parameters (papermill ``-p``, a person editing the parameters cell).

``coerce(value, kind)`` turns a value into the declared type or raises :class:`Invalid` saying what was
expected; the caller adds the name in its own words (``config field 'lr' = ...``, ``parameter n_styles = ...``),
so every error is one line naming the field, the value and the expectation. Rules, the same everywhere:

* ``int``: an int, an integral float (``8.0``) or a numeric string (``"8"``); never a bool, never ``8.5``;
* ``float``: a number or a numeric string (YAML reads ``1e-3`` as the string ``"1e-3"``), finite;
* ``bool``: a bool, 0/1, or true/false/yes/no/on/off;
* ``str``: a string or a path;
* ``tuple[...]``: a list/tuple of items, or one string of comma-separated items (``relu1_1`` -> ``("relu1_1",)``).

Notebooks call :func:`check_notebook_parameters` in the cell right after their ``parameters`` cell.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
import math
import os
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .utils import UserError

STRICT_ENV = "WAE_STRICT_PARAMS"  # set to 1 by the Makefile: an unknown notebook parameter is an error there
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
# The study's root: the checkout that holds the notebooks and the Makefile (None for an installed wheel). Every
# relative path in a parameters cell (data/processed/sample, models/..., reports/...) is relative to it, as
# `make` runs the notebooks (papermill --cwd .).
STUDY_ROOT = NOTEBOOKS_DIR.parent if (NOTEBOOKS_DIR.parent / "Makefile").is_file() and NOTEBOOKS_DIR.is_dir() else None


class Invalid(ValueError):
    """A value that cannot be coerced; ``expected`` says what would have been accepted."""

    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


class ParameterError(UserError, ValueError):
    """A notebook parameter is unknown, of the wrong type or out of range; the message names it."""


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid("an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return _int(float(value.strip())) if any(c in value for c in ".eE") else int(value.strip())
        except (ValueError, Invalid, OverflowError):
            pass
    raise Invalid("an integer")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise Invalid("a finite number")
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip()):
        try:
            out = float(value)
        except (ValueError, OverflowError):
            out = math.nan
        if math.isfinite(out):
            return out
    raise Invalid("a finite number")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Invalid("true or false")


def _str(value: Any) -> str:
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise Invalid("a string")


_SCALARS = {int: _int, float: _float, bool: _bool, str: _str}


def coerce(value: Any, kind: Any) -> Any:
    """``value`` as type ``kind`` (int, float, bool, str, tuple[T, ...], dict, ``T | None``, Any) or Invalid."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):  # T | None
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0]) if len(inner) == 1 else value
    if kind in _SCALARS:
        return _SCALARS[kind](value)
    if origin is tuple:
        item = args[0] if args else Any
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise Invalid(f"a list of {_name(item)}s")
        try:
            return tuple(coerce(v, item) for v in value)
        except Invalid as exc:
            raise Invalid(f"a list of {_name(item)}s ({exc.expected} each)") from None
    if origin is dict or kind is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise Invalid("a mapping")
    return value


def _name(kind: Any) -> str:
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(kind, str(kind))


# --------------------------------------------------------------------------------------------------
# notebook parameters
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """What one notebook parameter may hold: a type, optional bounds (``min``/``max`` inclusive, ``above``/
    ``below`` exclusive), a set of ``choices``, and whether None is allowed (``optional``). ``kind=None``: the
    type of the default in the notebook's parameters cell (see :func:`notebook_spec`)."""

    kind: Any = None
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple | None = None
    optional: bool = False

    def expected(self) -> str:
        text = {int: "an integer", float: "a finite number", bool: "True or False", str: "a string"}.get(
            self.kind, _name(self.kind))
        if self.choices is not None:
            text = f"one of {list(self.choices)}"
        for op, bound in ((">=", self.min), (">", self.above), ("<=", self.max), ("<", self.below)):
            if bound is not None:
                text += f" {op} {bound}"
        return text + (" (or None)" if self.optional else "")

    def check(self, value: Any) -> Any:
        """The coerced value, or Invalid."""
        if value is None and self.optional:
            return None
        try:
            value = coerce(value, self.kind)
        except Invalid:
            raise Invalid(self.expected()) from None
        in_range = ((self.min is None or value >= self.min) and (self.max is None or value <= self.max)
                    and (self.above is None or value > self.above) and (self.below is None or value < self.below))
        if not in_range or (self.choices is not None and value not in self.choices):
            raise Invalid(self.expected())
        return value


# names every IPython/Jupyter namespace holds that are not parameters
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
_SEEN = "_wae_parameter_names"  # names present at the first check (see below)


def _is_parameter_like(name: str, value: Any) -> bool:
    """Papermill injects literals only (str, numbers, bool, None, lists, dicts): modules, functions and classes
    imported by earlier cells are never parameters."""
    return (not name.startswith("_") and name not in _KERNEL_NAMES
            and isinstance(value, (str, int, float, bool, list, dict, tuple, type(None))))


def declared_parameters(notebook: str | Path) -> dict[str, Any]:
    """The names and default values assigned in a notebook's ``parameters`` cell, in order: the one
    declaration of its parameters. ``notebook``: a path, or a project notebook's name (``"04_transfer"``)."""
    path = Path(notebook) if str(notebook).endswith(".ipynb") else NOTEBOOKS_DIR / f"{notebook}.ipynb"
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    source = next(("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])),
                  None)
    if source is None:
        raise ParameterError(f"notebook {path} has no cell tagged 'parameters'")
    declared = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    declared[target.id] = ast.literal_eval(node.value)
    return declared


def notebook_spec(notebook: str | Path, constraints: Mapping[str, Param | Any] = ()) -> dict[str, Param]:
    """Every parameter of ``notebook``'s parameters cell as a :class:`Param`: the type of its default, with the
    bounds or choices of ``constraints`` (which may only name declared parameters; a ``Param`` without a kind
    takes the default's type, a bare type overrides it, e.g. ``float`` for a default written ``1``)."""
    declared = declared_parameters(notebook)
    constraints = dict(constraints)
    stray = sorted(set(constraints) - set(declared))
    if stray:
        raise ParameterError(f"the check names {stray}, which the parameters cell of {notebook} does not define: "
                             f"the notebook and its check disagree")
    spec = {}
    for name, default in declared.items():
        given = constraints.get(name, Param())
        param = given if isinstance(given, Param) else Param(given)
        if param.kind is None:
            if default is None:
                raise ParameterError(f"parameter {name} of {notebook} defaults to None: give its type in the check")
            param = dataclasses.replace(param, kind=type(default))
        spec[name] = param
    return spec


@functools.cache
def project_parameter_names(folder: Path = NOTEBOOKS_DIR) -> frozenset[str]:
    """Every name assigned in the ``parameters`` cell of a notebook in ``folder`` (the project's notebooks)."""
    names: set[str] = set()
    for path in sorted(folder.glob("*.ipynb")):
        try:
            names.update(declared_parameters(path))
        except (OSError, ValueError, KeyError, SyntaxError):
            continue
    return frozenset(names)


def enter_study_root(cwd: str | Path | None = None) -> Path | None:
    """Move a kernel that runs inside the study's checkout to its root, where the parameters' relative paths
    point; returns the new working directory, or None when nothing moved.

    JupyterLab starts each kernel in its notebook's folder (``notebooks/``, ``reports/<run>/notebooks/``), where
    ``data/processed/sample`` does not exist (issue 32: Run All from ``make lab`` stopped in the first code cell).
    A kernel outside the checkout (papermill ``--cwd`` elsewhere, a copied notebook) is left where it is: its
    paths are the caller's own.
    """
    if STUDY_ROOT is None:
        return None
    here = Path(cwd if cwd is not None else os.getcwd()).resolve()
    if here == STUDY_ROOT or STUDY_ROOT not in here.parents:
        return None
    os.chdir(STUDY_ROOT)
    print(f"working directory: {STUDY_ROOT} (the study's root, where the parameters' relative paths point; the "
          f"kernel started in {here.relative_to(STUDY_ROOT)}/)")
    return STUDY_ROOT


def check_notebook_parameters(namespace: dict[str, Any], spec: str | Mapping[str, Param | Any],
                              constraints: Mapping[str, Param | Any] = (), *, strict: bool | None = None
                              ) -> dict[str, Any]:
    """Validate a notebook's parameters in place; call it in the cell right after the ``parameters`` cell::

        from wae_lib.params import Param, check_notebook_parameters
        check_notebook_parameters(globals(), "04_transfer", {"n_styles": Param(min=1)})

    ``spec``: the notebook's name, whose parameters cell declares the names and (by their defaults) the types,
    with ``constraints`` adding bounds and choices (:func:`notebook_spec`); or a mapping of every parameter name
    to a :class:`Param` (or a bare type, e.g. ``str``). Each value is coerced
    to its type and range-checked; coerced values are written back into ``namespace`` (``"8"`` -> ``8``). A
    wrong value raises ParameterError naming it (``parameter n_styles = 'eight' is invalid: expected an
    integer >= 1``) before the notebook writes anything. A name in ``namespace`` that is not in ``spec`` (a
    misspelled ``-p figure_dir X``) is a warning, or, when ``strict`` (default: the ``WAE_STRICT_PARAMS``
    environment variable, which the Makefile sets), an error unless another notebook of the project declares it
    (make passes one ``PARAMS`` to every notebook a target runs; those names are for the others). Returns the
    checked values.

    A kernel started inside the study's checkout but not at its root (JupyterLab starts it in the notebook's
    folder) first moves to the root (:func:`enter_study_root`), so the parameters' relative paths resolve there.

    Re-running the cell in a live kernel ignores variables that later cells created after the first run.
    """
    enter_study_root()
    return _check(namespace, spec, constraints, strict)


def _check(namespace: dict[str, Any], spec: str | Path | Mapping[str, Param | Any],
           constraints: Mapping[str, Param | Any] = (), strict: bool | None = None) -> dict[str, Any]:
    """check_notebook_parameters without moving the working directory (the check before a kernel starts uses it)."""
    if strict is None:
        strict = os.environ.get(STRICT_ENV, "").strip().lower() in _TRUE
    spec = (notebook_spec(spec, constraints) if isinstance(spec, (str, Path))
            else {k: (v if isinstance(v, Param) else Param(v)) for k, v in spec.items()})
    missing = [k for k in spec if k not in namespace]
    if missing:
        raise ParameterError(f"the parameters cell does not define {missing}: the notebook and its check disagree")
    checked = {}
    for name, param in spec.items():
        try:
            checked[name] = param.check(namespace[name])
        except Invalid as exc:
            raise ParameterError(f"parameter {name} = {namespace[name]!r} is invalid: expected {exc.expected}") \
                from None
    seen = namespace.setdefault(_SEEN, set(namespace))
    unknown = sorted(k for k, v in namespace.items() if k in seen and k not in spec and _is_parameter_like(k, v))
    if strict:
        unknown = [k for k in unknown if k not in project_parameter_names()]
    if unknown:
        message = (f"unknown parameter(s) {unknown} (misspelled?); this notebook's parameters are "
                   f"{sorted(spec)}")
        if strict:
            raise ParameterError(message)
        warnings.warn(message + f" (an error when {STRICT_ENV}=1, as under make)", stacklevel=3)
    namespace.update(checked)
    return checked


# --------------------------------------------------------------------------------------------------
# the same check before a kernel starts (papermill, headless)
# --------------------------------------------------------------------------------------------------
def _check_call(notebook: Path) -> ast.Call | None:
    """The ``check_notebook_parameters(...)`` call in ``notebook``'s code cells, if there is one."""
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse("".join(cell.get("source", [])))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            func = node.func if isinstance(node, ast.Call) else None
            if getattr(func, "id", getattr(func, "attr", None)) == "check_notebook_parameters":
                return node
    return None


def check_before_running(notebook: str | Path, params: Mapping[str, Any], strict: bool | None = None) -> None:
    """Check ``params`` (the values papermill's ``-p`` or headless's would inject) as ``notebook``'s own check cell
    will, before a kernel starts or a cell runs: a bad value or an unknown name (under ``WAE_STRICT_PARAMS``) is
    one ParameterError naming the notebook and the parameter, instead of a kernel's traceback after the cells
    before the check (imports of torch and the rest) have run (issue 35).

    The check call is read from the notebook (its spec and constraints evaluated with only ``Param``, ``wae_lib``
    and the builtin types in scope). A notebook that has none, or one this cannot read, is left to its own cells:
    this check refuses only what the notebook's check would refuse, never more.
    """
    import wae_lib.config  # wae_lib.config.PROFILES: in the constraints of notebooks 03-05

    path = Path(notebook)
    try:
        call = _check_call(path)
        declared = declared_parameters(path)
        if call is None or len(call.args) < 2:
            return
        scope = {"__builtins__": {t.__name__: t for t in (int, float, str, bool, tuple, list, dict)},
                 "Param": Param, "wae_lib": wae_lib}
        args = [eval(compile(ast.Expression(a), str(path), "eval"), scope) for a in call.args[1:3]]  # noqa: S307
        keywords = {k.arg: ast.literal_eval(k.value) if k.arg == "strict" else
                    eval(compile(ast.Expression(k.value), str(path), "eval"), scope)  # noqa: S307
                    for k in call.keywords}
    except Exception:  # noqa: BLE001 (unreadable here: the notebook's own cells check, and say so in theirs)
        return
    spec, constraints = args[0], args[1] if len(args) > 1 else keywords.get("constraints", ())
    if strict is None and keywords.get("strict") is not None:
        strict = bool(keywords["strict"])
    try:
        with warnings.catch_warnings():  # an unknown name outside make: the notebook's own check warns
            warnings.simplefilter("ignore")
            _check({**declared, **params}, spec, constraints, strict)
    except ParameterError as exc:
        raise ParameterError(f"{path}: {exc}") from None
