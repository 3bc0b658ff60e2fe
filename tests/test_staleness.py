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
    return {m.split(".", 1)[1].replace(".", "/") + ".py" for m in out.stdout.split()}


@pytest.mark.parametrize("module", ["eval_cache", "prepare"])
def test_closure_covers_every_module_the_computation_imports(module):
    static = names(STL.closure(module))
    assert imported_at_run_time(module) <= static
    assert f"{module}.py" in static and "train.py" not in static  # its own file; not the whole package


def test_eval_cache_depends_on_the_losses_and_networks():
    # the cache's digest once covered config, models, vgg and itself only, while WAEStyle uses losses.py
    assert {"losses.py", "models.py", "vgg.py", "config.py", "checkpoint.py"} <= names(STL.closure("eval_cache"))


def test_notebook_roots_read_their_code_cells_and_the_package_init():
    deps = names(STL.closure(REPO / "notebooks" / "03_reconstruction.ipynb"))
    assert {"__init__.py", "eval_cache.py", "models.py"} <= deps


def test_digest_changes_with_a_dependency_only(tmp_path, monkeypatch):
    copy = tmp_path / "wae_lib"
    shutil.copytree(STL.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    monkeypatch.setattr(STL, "PACKAGE_DIR", copy)
    before = STL.code_digest("eval_cache")
    (copy / "train.py").write_text((copy / "train.py").read_text() + "\n# an edit eval_cache does not import\n")
    assert STL.code_digest("eval_cache") == before
    (copy / "losses.py").write_text((copy / "losses.py").read_text() + "\n# an edit to a dependency\n")
    assert STL.code_digest("eval_cache") != before


def test_every_user_reads_the_one_rule():
    from wae_lib import eval_cache, prepare
    assert eval_cache.code_digest() == STL.code_digest(eval_cache.__file__)
    assert prepare.code_versions()["code"] == STL.code_digest(prepare.__file__)
    makefile = (REPO / "Makefile").read_text()
    assert "$(code_eval_cache)" in makefile and "$(LIB)" not in makefile
    for nb in NOTEBOOKS:  # each executed notebook is remade when the code it imports changes
        assert f"$(code_{nb.stem})" in makefile, nb.name


def test_make_variables_and_errors(tmp_path, capsys):
    assert STL.main(["--make", "eval_cache", str(NOTEBOOKS[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("code_eval_cache := ") and "wae_lib/losses.py" in lines[1]
    assert lines[2].startswith(f"code_{NOTEBOOKS[0].stem} := ")
    assert STL.main(["no_such_module"]) == 2
    assert "staleness root 'no_such_module'" in capsys.readouterr().err
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["%matplotlib inline\n", "!ls\n",
                                                                          "from wae_lib.losses import gram_matrix"]}]}))
    assert names(STL.closure(nb)) >= {"__init__.py", "losses.py"}
