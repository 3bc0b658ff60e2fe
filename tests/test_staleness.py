"""wae_lib.staleness: the one home of "which code an output depends on" (issue 20 item 5)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wae_lib import staleness as STL

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def names(paths) -> set[str]:
    return {p.relative_to(STL.PACKAGE_DIR).as_posix() for p in paths}


def imported_at_run_time(module: str) -> set[str]:
    """The package files ``module`` really imports, in a fresh interpreter, with the package's __init__ left out
    (it imports the public API, which is not this module's computation)."""
    code = (f"import sys, types, importlib\n"
            f"pkg = types.ModuleType('wae_lib'); pkg.__path__ = [{str(STL.PACKAGE_DIR)!r}]\n"
            f"sys.modules['wae_lib'] = pkg\n"
            f"importlib.import_module('wae_lib.{module}')\n"
            f"print(' '.join(sorted(m for m in sys.modules if m.startswith('wae_lib.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return {names([STL.module_file(m.split(".")[1:])]).pop() for m in out.stdout.split()}  # a subpackage: its __init__


@pytest.mark.parametrize("module", ["eval.cache", "data.prepare"])
def test_closure_covers_every_module_the_computation_imports(module):
    static = names(STL.closure(module))
    assert imported_at_run_time(module) <= static
    own = module.replace(".", "/") + ".py"
    assert own in static and f"{module.split('.')[0]}/__init__.py" in static  # its file and its subpackage's
    assert "train/trainer.py" not in static  # not the whole package


def test_eval_cache_depends_on_the_losses_and_networks():
    # the cache's digest once covered config, models, vgg and itself only, while WAEStyle uses losses.py
    assert {"model/losses.py", "model/networks.py", "model/vgg.py", "config.py", "model/checkpoint.py"} <= names(
        STL.closure("eval.cache"))


def test_notebook_roots_read_their_code_cells_and_the_package_init():
    deps = names(STL.closure(REPO / "notebooks" / "03_reconstruction.ipynb"))
    assert {"__init__.py", "eval/__init__.py", "eval/cache.py", "model/networks.py"} <= deps


def test_digest_changes_with_a_dependency_only(tmp_path, monkeypatch):
    copy = tmp_path / "wae_lib"
    shutil.copytree(STL.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    monkeypatch.setattr(STL, "PACKAGE_DIR", copy)
    before = STL.code_digest("eval.cache")
    trainer = copy / "train" / "trainer.py"
    trainer.write_text(trainer.read_text() + "\n# an edit eval.cache does not import\n")
    assert STL.code_digest("eval.cache") == before
    losses = copy / "model" / "losses.py"
    losses.write_text(losses.read_text() + "\n# an edit to a dependency\n")
    changed = STL.code_digest("eval.cache")
    assert changed != before
    init = copy / "eval" / "__init__.py"  # the subpackage's __init__ runs before eval.cache: it counts too
    init.write_text(init.read_text() + "\n# an edit to the subpackage's __init__\n")
    assert STL.code_digest("eval.cache") != changed


def test_every_user_reads_the_one_rule():
    from wae_lib.data import prepare
    from wae_lib.eval import cache as eval_cache
    assert eval_cache.code_digest() == STL.code_digest(eval_cache.__file__)
    assert prepare.code_versions()["code"] == STL.code_digest(prepare.__file__)
    makefile = (REPO / "Makefile").read_text()
    assert "$(code_eval_cache)" in makefile and "$(LIB)" not in makefile
    for nb in NOTEBOOKS:  # each executed notebook is remade when the code it imports changes
        assert f"$(code_{nb.stem})" in makefile, nb.name


def test_make_variables_and_errors(tmp_path, capsys):
    from devtools import code_deps

    assert code_deps.main(["--make", "eval.cache", str(NOTEBOOKS[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("code_eval_cache := ") and "wae_lib/model/losses.py" in lines[1]
    assert lines[2].startswith(f"code_{NOTEBOOKS[0].stem} := ")
    assert code_deps.main(["no_such_module"]) == 1
    assert "staleness root 'no_such_module'" in capsys.readouterr().err
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["%matplotlib inline\n", "!ls\n",
                                                                          "from wae_lib.model.losses import gram_matrix"]}]}))
    assert names(STL.closure(nb)) >= {"__init__.py", "model/__init__.py", "model/losses.py"}


def test_relative_imports_of_a_subpackage_module_and_the_public_api(tmp_path):
    # how a module of wae_lib/eval/ names its dependencies, each read as Python resolves it
    source = ("from ..config import Config\n"
              "from .. import utils\n"
              "from . import tables\n"
              "from .images import load_set\n"
              "from ..data.layout import set_path\n"
              "def lazy():\n"
              "    from ..model import vgg\n")
    assert names(STL.imports_of(source, ["eval", "x"])) == {
        "config.py", "utils.py", "eval/__init__.py", "eval/tables.py", "eval/images.py", "data/__init__.py",
        "data/layout.py", "model/__init__.py", "model/vgg.py"}
    # outside the package: `from wae_lib.eval import tables`, and the public API's lazily imported names
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": [
        "from wae_lib.eval import tables\n", "from wae_lib import load_model\n"]}]}))
    defining = STL.module_file(STL.exports()["load_model"].lstrip(".").split("."))
    assert {"__init__.py", "eval/__init__.py", "eval/tables.py"} | names([defining]) <= names(STL.closure(nb))
