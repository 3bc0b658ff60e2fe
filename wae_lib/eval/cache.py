"""Evaluate once, read many: the models' outputs on the evaluation sets, computed or read from a per-run cache.

    python -m wae_lib eval-cache --models-dir M --data-root P --cache-dir DIR [--n-styles 8] [--device auto]

writes, for every run of the sweep in ``M``, the outputs that notebooks 03-05 measure into ``DIR/<run>/``: the
latent means and reconstructions of content_eval, style_eval and natural_eval, the reconstructions of the
face-free images (style_eval then natural_eval, as notebook 05 takes them) and the transfers of every
content_eval face x the ``n_styles`` figure styles (pair k = face k // n_styles, style k % n_styles), as float32
``.npy`` (the very tensors the notebooks would compute: same functions, same batches, so the same numbers),
and ``manifest.json``. The manifest records the run's checkpoint (sha256, step), the data's digest (info.json
and the evaluation set files) and the digest of the code that computes the outputs (this module and every
module it imports, wae_lib.staleness), and each array's shape, dtype and SHA-256: a run whose cache is up to date
and whose arrays are the ones recorded is skipped (one line says so), a stale or damaged one is recomputed, and a
notebook refuses either with the command that fixes it. Every file is written atomically, the manifest last.

The notebooks (parameter ``cache_dir``; empty: compute) get a :class:`ModelOutputs` per run (computed when
asked) or a :class:`CachedOutputs` (read); the tables of wae_lib.eval.tables and wae_lib.eval.fid use either the same way.
A subset of a set (``max_eval_images``) is read from the whole set's outputs: the same images, numbers equal
up to float rounding (the model sees other batches); whole sets, the Makefile's case, are identical.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import staleness
from ..config import EvaluationError
from ..data.layout import load_set_info, set_path
from ..model.checkpoint import CHECKPOINT
from ..model.run import load_model
from ..utils import (
    atomic_open,
    atomic_write_text,
    file_sha256,
    json_digest,
    module_device,
    remove_durably,
    remove_stale_temporaries,
    resolve_device,
    stage_done,
)
from .images import EVAL_SETS, FACE_FREE, EvalImages, eval_images
from .runs import RunInfo, check_trained_on, discover_runs

CACHE_FORMAT = 2  # 2: each array's dtype and SHA-256 recorded and checked (1: shapes only)
MANIFEST = "manifest.json"
TRANSFERS = "transfers"  # array name of the transfers content_eval x figure styles


# --------------------------------------------------------------------------------------------------
# a model's outputs, in batches on its device, returned on the CPU
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def encode_means(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Content and style latent means of ``images`` (CPU), computed in batches on the model's device."""
    dev, zc, zs = module_device(model), [], []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(dev)
        zc.append(model.encode_content(x)[0].float().cpu())
        zs.append(model.encode_style(x)[0].float().cpu())
    return torch.cat(zc), torch.cat(zs)


@torch.no_grad()
def decode_latents(model: nn.Module, z_content: torch.Tensor, z_style: torch.Tensor, batch_size: int = 64
                   ) -> torch.Tensor:
    """Decoded images (CPU) of latent pairs; with the latent means this is exactly ``model.reconstruct`` /
    ``model.transfer`` (strength 1), but each image is encoded once however many pairs use it."""
    dev = module_device(model)
    return torch.cat([model.decode(z_content[i:i + batch_size].to(dev), z_style[i:i + batch_size].to(dev)).float().cpu()
                      for i in range(0, len(z_content), batch_size)])


def reconstruct_images(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``model.reconstruct`` in batches, on CPU."""
    return decode_latents(model, *encode_means(model, images, batch_size), batch_size)


def transfer_pairs(model: nn.Module, content: torch.Tensor, styles: torch.Tensor, content_index: torch.Tensor,
                   style_index: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Transfers of pairs (content[content_index[k]], styles[style_index[k]]), each image encoded once."""
    zc, _ = encode_means(model, content, batch_size)
    _, zs = encode_means(model, styles, batch_size)
    return decode_latents(model, zc[content_index], zs[style_index], batch_size)


def all_pairs(n_content: int, n_styles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs of every content image with every style: pair k = (k // n_styles, k % n_styles)."""
    return torch.arange(n_content).repeat_interleave(n_styles), torch.arange(n_styles).repeat(n_content)


class ModelOutputs:
    """The outputs of one model, computed when asked (a notebook without a cache)."""

    def __init__(self, model: nn.Module, batch_size: int = 64):
        self.model, self.batch_size = model, batch_size

    def latents(self, images: EvalImages) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_means(self.model, images.images, self.batch_size)

    def reconstructions(self, images: EvalImages) -> torch.Tensor:
        return reconstruct_images(self.model, images.images, self.batch_size)

    def transfers(self, content: EvalImages, styles: EvalImages) -> torch.Tensor:
        """Every content image with every style (pairs of :func:`all_pairs`)."""
        return transfer_pairs(self.model, content.images, styles.images, *all_pairs(len(content), len(styles)),
                              self.batch_size)


# --------------------------------------------------------------------------------------------------
# the cache: one folder per run
# --------------------------------------------------------------------------------------------------
def data_digest(data_root: str | Path) -> dict[str, str]:
    """What the cached outputs were computed from, besides the model: info.json and the evaluation set files."""
    return {"info": json_digest(load_set_info(data_root)),
            **{name: file_sha256(set_path(data_root, name)) for name in EVAL_SETS}}


def code_digest() -> str:
    """The source of what turns a checkpoint into outputs (this module and every module it imports:
    wae_lib.staleness): a change to the networks, the losses or the VGG16 makes caches stale (a checkpoint and
    data alone would not notice)."""
    return staleness.code_digest(__file__)


def cache_key(run: RunInfo, data: dict[str, str], code: str, n_styles: int, batch_size: int) -> dict[str, Any]:
    """Everything a run's cached outputs depend on (``data``: :func:`data_digest`, ``code``: :func:`code_digest`,
    both computed once per sweep); a cache with another key is stale."""
    return {"format": CACHE_FORMAT, "checkpoint_sha256": file_sha256(Path(run.path) / CHECKPOINT), "data": data,
            "code": code, "n_styles": n_styles, "batch_size": batch_size}


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A run's cache manifest, or None when there is none or it is not one (it is rewritten then)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(manifest, dict) and isinstance(manifest.get("key"), dict) and isinstance(
        manifest.get("arrays"), dict) and isinstance(manifest.get("style_rows"), list)
    return manifest if ok else None


def array_problem(folder: Path, manifest: dict[str, Any]) -> str | None:
    """Why the arrays are not the ones the manifest recorded (missing, unreadable, another shape, dtype or
    content), or None when every one is; reads every byte (the digests)."""
    for name, rec in manifest["arrays"].items():
        path = folder / f"{name}.npy"
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            return f"{path.name} cannot be read ({type(exc).__name__})"
        if not isinstance(rec, dict) or list(arr.shape) != rec.get("shape") or str(arr.dtype) != rec.get("dtype"):
            return f"{path.name} is {arr.dtype} {list(arr.shape)}, not what the manifest recorded"
        if file_sha256(path) != rec.get("sha256"):
            return f"{path.name} is not the array the manifest recorded (SHA-256 differs)"
    return None


def compute_run_outputs(model: nn.Module, sets: dict[str, EvalImages], styles: EvalImages, batch_size: int
                        ) -> dict[str, torch.Tensor]:
    """The cached arrays of one model, by name: ``<set>.latent_content``, ``<set>.latent_style``,
    ``<set>.reconstruction`` (EVAL_SETS), ``<FACE_FREE>.reconstruction`` and ``transfers``."""
    out, arrays = ModelOutputs(model, batch_size), {}
    for name in (*EVAL_SETS, FACE_FREE):
        images = sets[name]
        if len(images) == 0:  # e.g. no natural/ images: nothing to run the model on
            arrays[f"{name}.reconstruction"] = torch.zeros(0, *images.images.shape[1:])
            continue
        if name in EVAL_SETS:
            arrays[f"{name}.latent_content"], arrays[f"{name}.latent_style"] = out.latents(images)
        arrays[f"{name}.reconstruction"] = out.reconstructions(images)
    arrays[TRANSFERS] = out.transfers(sets["content_eval"], styles)
    return arrays


def write_run_cache(folder: Path, arrays: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
    """The arrays (float32 .npy), then the manifest naming them: a crash leaves no manifest, never a wrong one."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_durably(folder / MANIFEST)
    for name, tensor in arrays.items():
        with atomic_open(folder / f"{name}.npy", "wb") as f:
            np.save(f, tensor.numpy().astype(np.float32, copy=False))
    manifest = {**manifest, "arrays": {name: {"shape": list(t.shape), "dtype": "float32",
                                              "sha256": file_sha256(folder / f"{name}.npy")}
                                       for name, t in arrays.items()}}
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def build_cache(models_dir: str | Path, data_root: str | Path, out: str | Path, n_styles: int = 8,
                device: str = "auto", batch_size: int = 64, profile: str = "auto") -> dict[str, str]:
    """Write (or keep, when up to date) the cache of every run under ``models_dir``; {run: written | up to date}."""
    if n_styles < 1 or batch_size < 1:
        raise EvaluationError(f"--n-styles {n_styles} / --batch-size {batch_size}: expected integers >= 1")
    runs, data, dev = discover_runs(models_dir, profile), data_digest(data_root), resolve_device(device)
    check_trained_on([r.path for r in runs], data_root)
    code = code_digest()
    sets = {name: eval_images(data_root, name) for name in (*EVAL_SETS, FACE_FREE)}
    styles = eval_images(data_root, "style_eval", n_styles)
    done = {}
    for run in runs:
        t0, folder = time.perf_counter(), Path(out) / run.name
        key = cache_key(run, data, code, n_styles, batch_size)
        if folder.is_dir():
            remove_stale_temporaries(folder)  # of a build killed while writing
        old = read_manifest(folder)
        problem = "no cache" if old is None else (
            "stale" if old["key"] != key or old["style_rows"] != styles.rows.tolist() else array_problem(folder, old))
        if problem is None:
            print(f"[wae_lib] eval cache: {run.name} up to date (checkpoint step {old['checkpoint']['step']}, arrays "
                  f"verified), skipped", file=sys.stderr)
            done[run.name] = "up to date"
            continue
        if old is not None and problem != "stale":
            print(f"[wae_lib] eval cache: {run.name}: {problem}; recomputing", file=sys.stderr)
        model = load_model(run.path, device=dev)
        arrays = compute_run_outputs(model, sets, styles, batch_size)
        write_run_cache(folder, arrays, {"run": run.name, "key": key, "checkpoint": model.checkpoint_info,
                                         "style_rows": styles.rows.tolist(),
                                         "sets": {name: len(sets[name]) for name in (*EVAL_SETS, FACE_FREE)}})
        size = sum(t.numel() * 4 for t in arrays.values()) / 2 ** 20
        stage_done("eval cache", f"{run.name} written (checkpoint step {model.checkpoint_info['step']}, "
                                 f"{len(arrays)} arrays, {size:.0f} MiB)", t0)
        done[run.name] = "written"
    return done


# --------------------------------------------------------------------------------------------------
# reading it back
# --------------------------------------------------------------------------------------------------
class CachedOutputs:
    """The outputs of one run read from its cache folder (``python -m wae_lib eval-cache``)."""

    def __init__(self, folder: Path, manifest: dict[str, Any]):
        self.folder, self.manifest = folder, manifest

    def _rows(self, name: str, rows: np.ndarray) -> torch.Tensor:
        if name not in self.manifest["arrays"]:
            raise EvaluationError(f"the cache {self.folder} holds no {name!r} (it holds "
                                  f"{sorted(self.manifest['arrays'])})")
        arr = np.load(self.folder / f"{name}.npy", mmap_mode="r")
        if len(rows) and rows.max() >= len(arr):
            raise EvaluationError(f"the cache {self.folder} holds {len(arr)} rows of {name!r}, row {rows.max()} was "
                                  f"asked for: recompute it (python -m wae_lib eval-cache)")
        return torch.from_numpy(np.ascontiguousarray(arr[rows]))

    def latents(self, images: EvalImages) -> tuple[torch.Tensor, torch.Tensor]:
        return (self._rows(f"{images.set_name}.latent_content", images.rows),
                self._rows(f"{images.set_name}.latent_style", images.rows))

    def reconstructions(self, images: EvalImages) -> torch.Tensor:
        return self._rows(f"{images.set_name}.reconstruction", images.rows)

    def transfers(self, content: EvalImages, styles: EvalImages) -> torch.Tensor:
        """Every content image with every style (pairs of :func:`all_pairs`), from the cached content_eval x
        figure styles; the styles must be the cache's (``--n-styles``)."""
        cached = self.manifest["style_rows"]
        if content.set_name != "content_eval" or styles.set_name != "style_eval" or styles.rows.tolist() != cached:
            raise EvaluationError(f"the cache {self.folder} holds transfers of content_eval x the {len(cached)} figure "
                                  f"styles {cached}, not {content.set_name} x {styles.set_name} rows "
                                  f"{styles.rows.tolist()}: set n_styles = {len(cached)}, rebuild the cache with "
                                  f"--n-styles {len(styles)}, or leave cache_dir empty")
        pairs = (content.rows[:, None] * len(cached) + np.arange(len(cached))).ravel()
        return self._rows(TRANSFERS, pairs)


Outputs = ModelOutputs | CachedOutputs  # one run's outputs, computed or read: the tables use either the same way


def open_cache(cache_dir: str | Path, run: RunInfo, data_root: str | Path, data: dict[str, str], code: str
               ) -> CachedOutputs:
    """A run's cache, refused (EvaluationError naming ``cache_dir``) when missing or stale: another checkpoint,
    other data (``data``: :func:`data_digest` of ``data_root``), other model code (``code``: :func:`code_digest`)
    or an older cache format."""
    folder = Path(cache_dir) / run.name
    manifest = read_manifest(folder)
    redo = (f"run `python -m wae_lib eval-cache --models-dir {Path(run.path).parent} --data-root {data_root} "
            f"--cache-dir {cache_dir}`, or leave cache_dir empty")
    if manifest is None:
        raise EvaluationError(f"parameter cache_dir = {str(cache_dir)!r} holds no complete cache of run {run.name}: "
                              f"{redo}")
    key = manifest["key"]
    stale = [what for what, ok in (("format", key.get("format") == CACHE_FORMAT),
                                   ("checkpoint", key.get("checkpoint_sha256")
                                    == file_sha256(Path(run.path) / CHECKPOINT)),
                                   ("data", key.get("data") == data),
                                   ("model code", key.get("code") == code)) if not ok]
    if stale:
        raise EvaluationError(f"parameter cache_dir = {str(cache_dir)!r}: the cache of run {run.name} is stale (its "
                              f"{' and '.join(stale)} changed): {redo}")
    problem = array_problem(folder, manifest)
    if problem:
        raise EvaluationError(f"parameter cache_dir = {str(cache_dir)!r}: the cache of run {run.name} is damaged "
                              f"({problem}): {redo}")
    return CachedOutputs(folder, manifest)


def sweep_outputs(runs: Sequence[RunInfo], models: Sequence[nn.Module], cache_dir: str | Path, data_root: str | Path,
                  batch_size: int = 64) -> list[Outputs]:
    """Where the tables get each run's outputs: the cache in ``cache_dir`` (refused when stale), or with
    ``cache_dir`` empty the models themselves (computed when asked, in batches of ``batch_size``)."""
    if not str(cache_dir):
        return [ModelOutputs(m, batch_size) for m in models]
    data = data_digest(data_root)
    code = code_digest()
    return [open_cache(cache_dir, run, data_root, data, code) for run in runs]
