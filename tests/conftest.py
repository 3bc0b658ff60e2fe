"""Shared fixtures. Real images come from WAE_TEST_DATA (CI sets it to ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from wae_lib.config import Config

# Under pytest-xdist (`make test` runs TEST_WORKERS processes), one torch thread per worker, inherited by the
# notebook kernels and subprocesses: two workers of 2 threads each on 2 cores slow each other several-fold.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# papermill here uses the repository's python3 kernel spec, as the Makefile does (no per-notebook TCP warning)
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    p for p in (str(Path(__file__).resolve().parents[1] / "jupyter"), os.environ.get("JUPYTER_PATH")) if p)
# ... and its kernels find devtools (the cell heartbeat extension), as the Makefile's PYTHONPATH gives them
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session")
def hed_vgg():
    """The offline VGG16 stand-in, built once for the whole session."""
    from wae_lib.model.vgg import VGG16Features

    return VGG16Features("hed", ("relu1_1", "relu2_1", "relu3_1"))


@pytest.fixture
def tiny_config() -> Config:
    """A narrow model that builds and runs in well under a second on CPU."""
    return Config(content_dim=16, width=0.125, style_hidden=32, style_dim_per_layer=8, vgg_source="hed")


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    root = os.environ.get("WAE_TEST_DATA")
    if not root and os.environ.get("WAE_REQUIRE_TEST_DATA"):
        pytest.fail("WAE_REQUIRE_TEST_DATA is set (as in CI) but WAE_TEST_DATA is not")
    if not root:
        pytest.skip("WAE_TEST_DATA is not set: real-image tests need it (CI sets WAE_TEST_DATA=../shared/data)")
    path = Path(root).resolve()
    if not path.is_dir():
        pytest.fail(f"WAE_TEST_DATA={root} is not a directory")
    return path


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 64, 64, generator=g)


# --------------------------------------------------------------------------------------------------
# interrupt harnesses: Ctrl-C or SIGTERM at a chosen point, in-process (one home; issue 36)
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def interrupted_training(monkeypatch):
    """``interrupted_training(cfg, out, at_step)``: wae_lib.train.run_folder.train stopped as SIGTERM stops it (the
    handler's flag set) after step ``at_step``; raises nothing, checks that it stopped, and puts the real step back."""
    from wae_lib.train import run_folder
    from wae_lib.train import trainer as T

    def run(cfg, out, at_step: int, match: str | None = None) -> None:
        original = T.Trainer.train_step

        def stopped(self):
            result = original(self)
            if self.step == at_step:
                self.stop_signal = 15  # what the SIGTERM handler sets
            return result

        monkeypatch.setattr(T.Trainer, "train_step", stopped)
        try:
            with pytest.raises(T.TrainingInterrupted, match=match):
                run_folder.train(cfg, out)
        finally:
            monkeypatch.setattr(T.Trainer, "train_step", original)

    return run


@pytest.fixture
def interrupted_prepare(monkeypatch):
    """``interrupted_prepare(src, out, cfg, after=2)``: wae_lib.data.prepare.prepare_anime with Ctrl-C arriving after
    ``after`` chunks were processed; checks that it stopped, and puts the real chunk processor back."""
    from wae_lib.data import prepare as P

    def run(src, out, cfg, after: int = 2) -> None:
        real, calls = P._process_chunk, []

        def interrupted(task):
            if len(calls) == after:
                raise KeyboardInterrupt
            calls.append(task)
            return real(task)

        monkeypatch.setattr(P, "_process_chunk", interrupted)
        try:
            with pytest.raises(KeyboardInterrupt):
                P.prepare_anime(src, out, cfg, progress=False)
        finally:
            monkeypatch.setattr(P, "_process_chunk", real)

    return run


_WEIGHTS = Path(__file__).resolve().parents[1] / "wae_lib" / "weights"


def _weights_state() -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(_WEIGHTS.iterdir()) if p.is_file()}


@pytest.fixture(autouse=True)
def shipped_weights_untouched():
    """No test may write into the package's wae_lib/weights (a test that ships must point the weights folder
    elsewhere): a test that did fails here, naming the files, instead of a damaged shipped model being committed."""
    before = _weights_state()
    yield
    after = _weights_state()
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    assert not changed, f"this test wrote into {_WEIGHTS}: {changed} (restore them: git checkout -- wae_lib/weights)"
