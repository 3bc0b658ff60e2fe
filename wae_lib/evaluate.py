"""Evaluation of a trained sweep: the numbers behind Figures 5-7 and claims C1-C4 (SPEC.md §5).

Everything the figure notebooks (03-05) compute lives here; the notebooks hold parameters, narrative and plots.

* Sweep discovery (SPEC §5: 2 training sets x content sizes): :func:`discover_runs` finds the run folders
  that ``wae_lib.train`` wrote under a models folder and orders them as the paper's figures do (CelebA-only
  512..32, then mixed 512..32); :func:`load_sweep` loads them with an :class:`EvalContext` (profile, data
  source, VGG source, scaling note) that every caption and table carries.
* Per-image metrics: MSE, PSNR, SSIM, VGG perceptual distance (C1, C2); Gram "style distance" and VGG "content
  distance" of transfers (C3, C4); distance to the mean CelebA face (C3); the OpenCV Haar face detector of
  ``wae_lib.faces`` on upscaled 64 px images (face hallucination, C2).
* Metrics the models were not trained on (issue 5), in the same per-image / per-pair tables: face identity
  (dlib face-recognition ResNet, ``wae_lib.identity``), CIELAB colour distance (``wae_lib.color``), style and
  content retrieval shares with their chance levels (``wae_lib.retrieval``), and a reference row: the Reinhard
  et al. (2001) colour transfer measured the same way (``data == "reference"``, never in a ranking or verdict).
* Sweeps with several seeds: run folders ``<set>_c<content>`` or ``<set>_c<content>_s<seed>``; set, size and
  seed are read from config.json, every table row carries ``seed``.
* Distribution metrics: FID and KID (torchmetrics) on Inception-v3 features when torch-fidelity and its
  weights are available, otherwise on a VGG16 stand-in (pooled VGG16 activations) that is labelled as such
  and never mixed with Inception numbers; bootstrap intervals and sample sizes with every number.

Our readings (not in the paper, which judges Figures 6-7 by eye), each reachable by a parameter:
distances are *relative* squared errors (||a - b||^2 / ||b||^2, per layer, averaged over layers) so that they
do not depend on the VGG source's activation scale; the content layer is relu4_2 (Gatys et al. 2016); style
layers are the model's own (SPEC §6: relu1_1, relu2_1, relu3_1).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import PROFILES, SWEEPS, TRAINING_SETS, Config, VGGSource, run_name
from .faces import detect_faces
from .losses import gram_matrix
from .prep_config import PrepConfig
from .prepared import MANIFEST_FILE, read_manifest
from .runs import load_model
from .sets import SET_FILES, load_eval_identities, load_set_info, prepared_dir, set_path
from .utils import resolve_device, spread
from .vgg import VGG16Features, common_source

CONTENT_LAYERS = ("relu4_2",)  # Gatys et al. 2016 content layer (our reading; SPEC does not define content distance)
FID_VGG_LAYERS = ("relu4_2",)  # the stand-in's features: the deepest block that the HED stand-in keeps close to
#   ImageNet VGG16 (PILOT.md: block 5 has drifted), mean-pooled over space
FACE_UPSCALE = 4  # 64 px -> 256 px before the Haar detector (PrepConfig.detect_scale 0.5 then runs it at 128 px)
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's FID Inception weights
PAPER_LABELS = {"celeba": "CelebA-only", "mixed": "mixed"}


class EvaluationError(ValueError):
    """A notebook parameter or an input on disk is not what the evaluation needs; the message names it."""


# --------------------------------------------------------------------------------------------------
# the sweep: run folders in the paper's order (SPEC §5, Fig. 6-7 row order)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    """One trained model of a sweep, read from its run folder's config.json."""

    name: str
    path: Path
    data: str
    content_dim: int
    profile: str
    config: Config
    seed: int = 0  # the run's Config.seed: runs of one (data, content_dim) with several seeds are replicates

    @property
    def training_set_label(self) -> str:
        return PAPER_LABELS.get(self.data, self.data)

    @property
    def label(self) -> str:
        """Row label of Figures 6-7: training set and content size, e.g. ``CelebA-only c128``; a run folder named
        ``..._s<seed>`` (a further seed of a sweep) adds ``seed <seed>`` so that replicate rows stay apart."""
        base = f"{self.training_set_label} c{self.content_dim}"
        return f"{base} seed {self.seed}" if self.name.endswith(f"_s{self.seed}") else base


def paper_order_key(data: str, content_dim: int, seed: int = 0) -> tuple:
    """SPEC §5: CelebA-only models first, then mixed, each from the largest content size to the smallest
    (replicates of a model by seed)."""
    rank = TRAINING_SETS.index(data) if data in TRAINING_SETS else len(TRAINING_SETS)
    return rank, data, -int(content_dim), int(seed)


def _check_profile(profile: str) -> None:
    if profile != "auto" and profile not in PROFILES:
        raise EvaluationError(f"parameter profile = {profile!r} is unknown: expected 'auto' (the profile of the "
                              f"runs found) or one of {sorted(PROFILES)}")


def discover_runs(models_dir: str | Path, profile: str = "auto") -> list[RunInfo]:
    """The run folders under ``models_dir`` (subfolders holding config.json and checkpoint.pt), paper order.

    Training set, content size and seed are read from each folder's config.json, never from its name, so
    ``<set>_c<content>`` and ``<set>_c<content>_s<seed>`` (further seeds of a sweep) are both found; runs of
    one (set, content size) with different seeds are replicates of one model (see :func:`seeds_of`).
    ``profile='auto'`` takes every run and requires them to share one profile; a named profile keeps only
    its runs. Raises :class:`EvaluationError` / FileNotFoundError naming the parameter at fault.
    """
    _check_profile(profile)
    root = Path(models_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"parameter models_dir = {str(models_dir)!r}: no such folder. Train a sweep first: "
                                f"`python -m wae_lib.train sweep --profile quick --models-dir {models_dir}`")
    runs = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if not ((sub / "config.json").is_file() and (sub / "checkpoint.pt").is_file()):
            continue
        cfg = Config.load(sub / "config.json")
        runs.append(RunInfo(sub.name, sub, Path(cfg.data).stem if cfg.data.endswith(".npy") else cfg.data,
                            cfg.content_dim, cfg.profile, cfg, int(cfg.seed)))
    if not runs:
        raise FileNotFoundError(f"parameter models_dir = {str(models_dir)!r} holds no run folder (a subfolder with "
                                f"config.json and checkpoint.pt written by wae_lib.train)")
    profiles = sorted({r.profile for r in runs})
    if profile == "auto":
        if len(profiles) > 1:
            raise EvaluationError(f"parameter profile = 'auto', but models_dir = {str(models_dir)!r} holds runs of "
                                  f"several profiles {profiles}: set profile to one of them")
    else:
        runs = [r for r in runs if r.profile == profile]
        if not runs:
            raise EvaluationError(f"parameter profile = {profile!r}: models_dir = {str(models_dir)!r} holds no run "
                                  f"of that profile (it holds {profiles})")
    _check_replicates(runs, models_dir)
    return sorted(runs, key=lambda r: paper_order_key(r.data, r.content_dim, r.seed))


def _check_replicates(runs: Sequence[RunInfo], models_dir: str | Path) -> None:
    """Two folders with the same (set, content size, seed) would be counted as two replicates: refuse."""
    seen: dict[tuple, str] = {}
    for r in runs:
        key = (r.data, r.content_dim, r.seed)
        if key in seen:
            raise EvaluationError(f"parameter models_dir = {str(models_dir)!r}: runs {seen[key]!r} and {r.name!r} are "
                                  f"both {r.data} content {r.content_dim} with seed {r.seed}; keep one (or give "
                                  f"them different seeds)")
        seen[key] = r.name


def seeds_of(runs: Sequence[RunInfo]) -> dict[tuple[str, int], list[int]]:
    """The seeds trained for each (set, content size), in paper order."""
    out: dict[tuple[str, int], list[int]] = {}
    for r in runs:
        out.setdefault((r.data, r.content_dim), []).append(r.seed)
    return out


def missing_runs(runs: Sequence[RunInfo]) -> list[str]:
    """Models of the profile's sweep (wae_lib.config.SWEEPS) that are not among ``runs``, by run name."""
    sweep = SWEEPS.get(runs[0].profile) if runs else None
    if not sweep:
        return []
    have = {(r.data, r.content_dim) for r in runs}
    return [run_name(d, c) for d in sweep["data"] for c in sweep["content_dim"] if (d, c) not in have]


@dataclass
class EvalContext:
    """What every caption and table header says (ISSUE 5): profile, data source, VGG16 source, scaling."""

    profile: str
    data_source: str
    vgg_source: str
    scaled_note: str = ""
    note: str = ""  # e.g. missing or unfinished runs

    def caption(self, extra: str = "") -> str:
        parts = [f"profile={self.profile}", f"data: {self.data_source}", f"VGG16: {self.vgg_source}"]
        parts += [p for p in (self.scaled_note, self.note, extra) if p]
        return " | ".join(parts)

    def columns(self) -> dict[str, str]:
        """Context columns added to every table row (so a CSV is never read without them)."""
        return {"profile": self.profile, "data_source": self.data_source, "vgg_source": self.vgg_source,
                "scaled_note": self.scaled_note}

    def header(self) -> str:
        """One markdown line for reports."""
        return self.caption()


def load_sweep(models_dir: str | Path, data_root: str | Path, profile: str = "auto", device: str = "auto"
               ) -> tuple[list[RunInfo], list[nn.Module], EvalContext]:
    """Runs in paper order, their models (eval mode, on ``device``) and the context for captions."""
    runs = discover_runs(models_dir, profile)
    info = load_set_info(data_root)
    dev = resolve_device(device)
    models = [load_model(r.path, device=dev) for r in runs]
    notes = []
    missing = missing_runs(runs)
    if missing:
        notes.append(f"missing runs of the {runs[0].profile} sweep: {', '.join(missing)}")
    seeds = seeds_of(runs)
    if any(len(v) > 1 for v in seeds.values()):
        notes.append("seeds per model: " + ", ".join(f"{run_name(d, c)}: {len(v)}" for (d, c), v in seeds.items()))
    unfinished = [f"{r.name} (step {m.checkpoint_info['step']})" for r, m in zip(runs, models)
                  if not m.checkpoint_info.get("finished")]
    if unfinished:
        notes.append(f"UNFINISHED checkpoints: {', '.join(unfinished)}")
    steps = sorted({int(m.checkpoint_info["step"]) for m in models})
    notes.append(f"checkpoint step {steps[0]}" if len(steps) == 1 else f"checkpoint steps {steps[0]}-{steps[-1]}")
    vgg_labels = sorted({m.vgg_source.label for m in models})
    scaled = sorted({r.config.scale_note for r in runs if r.config.scale_note})
    ctx = EvalContext(profile=runs[0].profile, data_source=info["source"], vgg_source=" / ".join(vgg_labels),
                      scaled_note=" / ".join(scaled), note="; ".join(notes))
    return runs, models, ctx


# --------------------------------------------------------------------------------------------------
# evaluation images (wae_lib.sets)
# --------------------------------------------------------------------------------------------------
def load_set(data_root: str | Path, name: str, limit: int | None = None) -> torch.Tensor:
    """Images of a named set as float N x 3 x 64 x 64 in [0, 1]; ``limit`` keeps that many, spread evenly."""
    if name not in SET_FILES:
        raise EvaluationError(f"set name {name!r}: expected one of {tuple(SET_FILES)}")
    path = set_path(data_root, name)
    if not path.is_file():
        raise FileNotFoundError(f"parameter data_root = {str(data_root)!r}: set file {path} does not exist; run "
                                f"`python -m wae_lib.data all --out {data_root}`")
    arr = np.load(path, mmap_mode="r")
    idx = spread(len(arr), limit) if limit else np.arange(len(arr))
    return uint8_to_float(np.asarray(arr[idx]))


def content_identities(data_root: str | Path, limit: int | None = None) -> np.ndarray | None:
    """The person of each ``content_eval`` image (int64, aligned with :func:`load_set` with the same ``limit``),
    or None when the data do not say (no identity file, or every entry -1 = unknown).

    Read with ``wae_lib.sets.load_eval_identities`` (``sets/content_eval_identity.npy``); without identities the
    identity match falls back to "own content image" (:func:`wae_lib.identity.identity_match`).
    """
    ids = load_eval_identities(data_root)
    if ids is None:
        return None
    ids = np.asarray(ids, dtype=np.int64)
    count = load_set_info(data_root)["sets"]["content_eval"]["count"]
    if len(ids) != count:
        warnings.warn(f"{len(ids)} content_eval identities for {count} images: ignored (identity match falls back "
                      f"to the own content image)", stacklevel=2)
        return None
    ids = ids[spread(len(ids), limit)] if limit else ids
    return ids if (ids >= 0).any() else None


def uint8_to_float(arr: np.ndarray) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255)


def float_to_uint8(images: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W float in [0, 1] -> N x H x W x 3 uint8 (rounded)."""
    return (images.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def mean_training_image(data_root: str | Path, name: str = "celeba", chunk: int = 4096) -> torch.Tensor:
    """The mean image (3 x 64 x 64 in [0, 1]) of a training set: SPEC §5 C3's "average CelebA face"."""
    path = set_path(data_root, name)
    if not path.is_file():
        raise FileNotFoundError(f"parameter data_root = {str(data_root)!r}: {path} does not exist")
    arr = np.load(path, mmap_mode="r")
    if len(arr) == 0:
        raise EvaluationError(f"{path} is empty: no mean image")
    total = np.zeros(arr.shape[1:], np.float64)
    for i in range(0, len(arr), chunk):
        total += np.asarray(arr[i:i + chunk], dtype=np.float64).sum(0)
    return torch.from_numpy(total / len(arr) / 255).permute(2, 0, 1).float()


def style_names(data_root: str | Path, n: int | None = None) -> list[str]:
    """Names of the style_eval images (file stems from the styles manifest), in set order; ``style i`` when
    the manifest is not there."""
    info = load_set_info(data_root)
    count = info["sets"]["style_eval"]["count"]
    names = [f"style {i}" for i in range(count)]
    folder = prepared_dir(data_root, "styles")
    if (folder / MANIFEST_FILE).is_file():
        m = read_manifest(folder)
        kept = m[m["status"] == "kept"].sort_values("index")
        stems = [Path(str(p).split("#")[0].split(":")[-1]).stem for p in kept["path"]]
        if len(stems) == count:
            names = stems
    return names


def figure_images(data_root: str | Path, name: str, n: int) -> torch.Tensor:
    """The ``n`` images of a set shown in figures: spread evenly over the set, the same in every notebook."""
    require(n >= 1, f"n ({name} images shown)", n, "an integer >= 1")
    return load_set(data_root, name, n)


def figure_styles(data_root: str | Path, n: int) -> tuple[torch.Tensor, list[str]]:
    """Fig. 5: the ``n`` style images used in Figures 5-7 and the transfer metrics, with their names."""
    names = style_names(data_root)
    idx = spread(len(names), n)
    return figure_images(data_root, "style_eval", n), [names[i] for i in idx]


def parse_floats(text: str, name: str) -> list[float]:
    """A notebook parameter like ``"0, 0.5, 1"`` -> [0.0, 0.5, 1.0]; the error names the parameter."""
    try:
        values = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        values = []
    require(len(values) >= 2, name, text, "at least 2 comma-separated numbers, e.g. '0, 0.5, 1'")
    return values


def require(ok: bool, name: str, value: Any, expected: str) -> None:
    """Raise EvaluationError naming a notebook parameter when ``ok`` is false."""
    if not ok:
        raise EvaluationError(f"parameter {name} = {value!r} is invalid: expected {expected}")


def pick(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over ``range(n_total)`` (wae_lib.utils.spread: deterministic, not hand-picked)."""
    return spread(n_total, n)


# --------------------------------------------------------------------------------------------------
# per-image metrics (C1, C2)
# --------------------------------------------------------------------------------------------------
def mse_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error of each image pair (images in [0, 1])."""
    return (x.float() - y.float()).pow(2).flatten(1).mean(1)


def psnr_from_mse(mse: torch.Tensor | float, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB: 10 log10(range^2 / MSE); +inf for identical images."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    return 10 * torch.log10(data_range ** 2 / mse)


def psnr_per_image(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    return psnr_from_mse(mse_per_image(x, y), data_range).float()


def ssim_per_image(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM of each pair (torchmetrics: Gaussian window 11, sigma 1.5, Wang et al. 2004 constants)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(x.float(), y.float(), data_range=data_range, reduction="none")


def relative_feature_distance(feats_a: Mapping[str, torch.Tensor], feats_b: Mapping[str, torch.Tensor],
                              layers: Iterable[str]) -> torch.Tensor:
    """Per image, the mean over ``layers`` of ||F_a - F_b||^2 / ||F_b||^2 (0 when equal; b is the reference)."""
    out = []
    for n in layers:
        a, b = feats_a[n].float().flatten(1), feats_b[n].float().flatten(1)
        out.append((a - b).pow(2).sum(1) / b.pow(2).sum(1).clamp_min(1e-12))
    return torch.stack(out).mean(0)


def gram_distance(feats_a: Mapping[str, torch.Tensor], feats_b: Mapping[str, torch.Tensor],
                  layers: Iterable[str]) -> torch.Tensor:
    """Style distance (Gatys et al. 2016): per image, mean over ``layers`` of ||G_a - G_b||_F^2 / ||G_b||_F^2,
    with G the normalised Gram matrix of wae_lib.losses (the model's own style representation, SPEC §1)."""
    out = []
    for n in layers:
        ga, gb = gram_matrix(feats_a[n]).flatten(1), gram_matrix(feats_b[n]).flatten(1)
        out.append((ga - gb).pow(2).sum(1) / gb.pow(2).sum(1).clamp_min(1e-20))
    return torch.stack(out).mean(0)


class EvalVGG(nn.Module):
    """The frozen VGG16 used for evaluation distances: the models' own weight source, deepened to relu4_2.

    ``style_layers`` (default: the models' style layers) define the Gram distance, ``content_layers`` the
    content distance, and both together the perceptual distance of reconstructions.
    """

    def __init__(self, source: str | VGGSource, style_layers: Sequence[str],
                 content_layers: Sequence[str] = CONTENT_LAYERS):
        super().__init__()
        self.style_layers = tuple(style_layers)
        self.content_layers = tuple(content_layers)
        self.perceptual_layers = tuple(dict.fromkeys(self.style_layers + self.content_layers))
        self.net = VGG16Features(source, self.perceptual_layers)
        self.label = self.net.source.label

    @classmethod
    def for_models(cls, models: Sequence[nn.Module], content_layers: Sequence[str] = CONTENT_LAYERS) -> EvalVGG:
        source = common_source(m.vgg_source for m in models)  # recorded at training, not resolved again
        if source is None:
            labels = sorted({m.vgg_source.label for m in models})
            raise EvaluationError(f"the models use different VGG16 sources {labels}: evaluate one sweep at a time")
        vgg = cls(source, models[0].config.style_layers, content_layers)
        return vgg.to(_device(models[0]))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        dev = next(self.net.parameters()).device
        parts = [self.net(x[i:i + batch_size].to(dev)) for i in range(0, len(x), batch_size)]
        return {n: torch.cat([p[n] for p in parts]).cpu() for n in self.perceptual_layers}


def take(feats: Mapping[str, torch.Tensor], idx) -> dict[str, torch.Tensor]:
    """Rows ``idx`` of every layer's features."""
    idx = torch.as_tensor(idx, dtype=torch.long)
    return {k: v[idx] for k, v in feats.items()}


# --------------------------------------------------------------------------------------------------
# face detector (C2: face hallucination)
# --------------------------------------------------------------------------------------------------
def face_detected(images: torch.Tensor | np.ndarray, upscale: int = FACE_UPSCALE, prep_config=None) -> np.ndarray:
    """For each 64 px image, whether the OpenCV Haar frontal-face detector of wae_lib.faces fires.

    Same cascade, scaleFactor, minNeighbors, detect_scale and minimum window as the CelebA preprocessing
    (``PrepConfig``); the image is first upscaled ``upscale`` x (bicubic) because the detector's 24 px window
    is too coarse for 64 px faces.
    """
    import cv2

    cfg = prep_config or PrepConfig()
    arr = float_to_uint8(images) if isinstance(images, torch.Tensor) else np.asarray(images)
    out = np.zeros(len(arr), dtype=bool)
    for i, img in enumerate(arr):
        big = cv2.resize(np.ascontiguousarray(img), None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        out[i] = len(detect_faces(big, cfg)) > 0
    return out


def face_hallucination_rate(reconstructions: torch.Tensor | np.ndarray, originals: torch.Tensor | np.ndarray,
                            upscale: int = FACE_UPSCALE, prep_config=None) -> dict[str, float]:
    """Share of face-free originals (detector silent) whose reconstruction makes the detector fire (C2)."""
    rec = face_detected(reconstructions, upscale, prep_config)
    orig = face_detected(originals, upscale, prep_config)
    n = int((~orig).sum())
    return {"rate": float(rec[~orig].mean()) if n else float("nan"), "n_face_free": n,
            "rate_on_originals": float(orig.mean()) if len(orig) else float("nan")}


# --------------------------------------------------------------------------------------------------
# statistics: bootstrap, ranks
# --------------------------------------------------------------------------------------------------
def bootstrap_ci(n_units: int, statistic: Callable[[np.ndarray], float], n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """(point, low, high): percentile bootstrap of ``statistic(indices)`` over ``n_units`` resampled units.

    ``statistic`` receives an index array (the identity for the point estimate, a resample with replacement
    otherwise) so that paired and grouped data are resampled by their unit (an image), never by row.
    Resamples where the statistic is NaN are dropped; all-NaN gives NaN bounds.
    """
    point = float(statistic(np.arange(n_units)))
    if n_units < 2 or n_boot < 1:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, n_units, n_units)) for _ in range(n_boot)]
    return (point, *percentile_interval(draws, level))


def bootstrap_mean_ci(values: Sequence[float], n_boot: int = 1000, level: float = 0.95, seed: int = 0
                      ) -> tuple[float, float, float]:
    """Mean of ``values`` with its percentile bootstrap interval."""
    v = np.asarray(values, dtype=float)
    return bootstrap_ci(len(v), lambda i: float(np.mean(v[i])) if len(v) else float("nan"), n_boot, level, seed)


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); NaN when either side is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def summarise(df, by: Sequence[str], metrics: Sequence[str], n_boot: int = 1000, seed: int = 0):
    """Per group of ``by``: mean, bootstrap interval and n of each metric (rows are independent units)."""
    import pandas as pd

    records = []
    for key, g in df.groupby(list(by), sort=False):
        rec = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        rec["n"] = len(g)
        for m in metrics:
            mean, lo, hi = bootstrap_mean_ci(g[m].to_numpy(dtype=float), n_boot, seed=seed)
            rec.update({m: mean, f"{m}_ci_low": lo, f"{m}_ci_high": hi})
        records.append(rec)
    return pd.DataFrame.from_records(records)


# --------------------------------------------------------------------------------------------------
# tables the notebooks write (long format, one row per image or pair, with context columns)
# --------------------------------------------------------------------------------------------------
def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_means(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Content and style latent means of ``images`` (CPU), computed in batches on the model's device."""
    dev, zc, zs = _device(model), [], []
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
    dev = _device(model)
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


REFERENCE_DATA = "reference"  # ``data`` of reference rows (not a trained model): excluded from rankings and claims
REFERENCE_RUN = "reinhard2001"  # Reinhard et al. 2001 colour transfer (wae_lib.color), the trivial floor


def is_model_row(df):
    """Boolean mask of a table's rows that come from trained models (not the reference rows)."""
    return df["data"] != REFERENCE_DATA


def run_columns(run: RunInfo) -> dict[str, Any]:
    """The columns that name a model in every table row."""
    return {"run": run.name, "data": run.data, "content_dim": run.content_dim, "seed": run.seed}


REFERENCE_COLUMNS = {"run": REFERENCE_RUN, "data": REFERENCE_DATA, "content_dim": 0, "seed": -1}


@dataclass
class IdentityReference:
    """dlib embeddings of the content faces and what identity_match needs (wae_lib.identity)."""

    embeddings: np.ndarray
    identities: np.ndarray | None
    columns: dict[str, Any]  # constant columns: model label, gallery, chance level, ceiling on the real photos

    @classmethod
    def build(cls, content: torch.Tensor, identities: np.ndarray | None = None, enabled: bool = True
              ) -> IdentityReference:
        from . import identity as ID

        n = len(content)
        emb = ID.embeddings_or_nan(content)[0] if enabled else np.full((n, ID.EMBEDDING_DIM), np.nan)
        people = len(np.unique(ID.gallery_labels(n, identities)))
        gallery = f"person ({people} people, mean embedding)" if identities is not None else f"content image ({n})"
        label = ID.identity_label() if enabled else "not computed (identity=False)"
        return cls(emb, identities, {"identity_model": label, "identity_gallery": gallery,
                                     "identity_match_chance": ID.gallery_chance(n, identities),
                                     "identity_match_originals": ID.identity_match_originals(emb, identities)})

    @property
    def enabled(self) -> bool:
        return bool(np.isfinite(self.embeddings).all()) and len(self.embeddings) > 0

    def metrics(self, outputs: torch.Tensor, own: np.ndarray) -> dict[str, np.ndarray]:
        """identity_distance (to the own content face), identity_match (nearest gallery entry is own),
        identity_face_found (dlib's detector fired on the output) for each output image."""
        from . import identity as ID

        n = len(outputs)
        if not self.enabled or n == 0:
            return {"identity_distance": np.full(n, np.nan), "identity_match": np.full(n, np.nan),
                    "identity_face_found": np.full(n, np.nan)}
        emb, found = ID.face_embeddings(outputs)
        return {"identity_distance": ID.identity_distance(emb, self.embeddings[own]),
                "identity_match": ID.identity_match(emb, own, self.embeddings, self.identities),
                "identity_face_found": found.astype(float)}


def reconstruction_table(runs: Sequence[RunInfo], models: Sequence[nn.Module], sets: Mapping[str, torch.Tensor],
                         vgg: EvalVGG, ctx: EvalContext, detect_faces_in: Iterable[str] = ("style_eval",
                                                                                            "natural_eval"),
                         batch_size: int = 64, face_upscale: int = FACE_UPSCALE,
                         identities: np.ndarray | None = None, identity: bool = True):
    """One row per (model, eval set, image): MSE, PSNR, SSIM, perceptual distance (C1, C2), and for the sets in
    ``detect_faces_in`` whether the face detector fires on the original and on the reconstruction (C2).

    ``content_eval`` rows also get the independent identity metric (wae_lib.identity, dlib): identity_distance
    of the reconstruction to its original, identity_match (its nearest person among the held-out faces,
    ``identities`` aligned with ``sets['content_eval']``, is its own; without identities: its own image),
    identity_face_found, and the constant columns identity_match_chance / identity_match_originals (the real
    photos' own score, the ceiling) / identity_gallery / identity_model. NaN with a label without dlib.
    """
    import pandas as pd

    detect = set(detect_faces_in)
    rows = []
    for set_name, images in sets.items():
        if len(images) == 0:  # e.g. natural_eval when the data folder has no natural/ images
            warnings.warn(f"evaluation set {set_name!r} is empty: no reconstruction metrics for it", stacklevel=2)
            continue
        ref_feats = vgg(images, batch_size)
        face_orig = face_detected(images, face_upscale) if set_name in detect else None
        id_ref = IdentityReference.build(images, identities, identity) if set_name == "content_eval" else None
        for run, model in zip(runs, models):
            rec = reconstruct_images(model, images, batch_size)
            feats = vgg(rec, batch_size)
            mse = mse_per_image(rec, images)
            cols = {"mse": mse.numpy(), "psnr": psnr_from_mse(mse).numpy(),
                    "ssim": ssim_per_image(rec, images).numpy(),
                    "perceptual": relative_feature_distance(feats, ref_feats, vgg.perceptual_layers).numpy()}
            if id_ref is not None:
                cols.update(id_ref.metrics(rec, np.arange(len(images))))
            face_rec = face_detected(rec, face_upscale) if set_name in detect else None
            for i in range(len(images)):
                row = {**run_columns(run), "eval_set": set_name, "image": i,
                       **{k: float(v[i]) for k, v in cols.items()}}
                if face_orig is not None:
                    row.update(face_in_original=bool(face_orig[i]), face_in_reconstruction=bool(face_rec[i]))
                if id_ref is not None:
                    row.update(id_ref.columns)
                rows.append({**row, **ctx.columns()})
    return pd.DataFrame.from_records(rows)


@dataclass
class TransferReference:
    """Everything about the content and style images that every model's transfers are compared with."""

    content_feats: dict[str, torch.Tensor]  # content layers of the faces
    style_grams: dict[str, torch.Tensor]  # Gram matrices of the styles
    style_colors: np.ndarray  # Lab colour signatures of the styles (wae_lib.color)
    mean_face: torch.Tensor
    content_face_mse: torch.Tensor  # MSE of each face to the mean face
    identity: IdentityReference

    @classmethod
    def build(cls, content: torch.Tensor, styles: torch.Tensor, vgg: EvalVGG, mean_face: torch.Tensor,
              identities: np.ndarray | None, identity: bool, batch_size: int) -> TransferReference:
        from .color import color_signature
        from .retrieval import grams

        cf = vgg(content, batch_size)
        face = mean_face.unsqueeze(0)
        return cls({n: cf[n] for n in vgg.content_layers}, grams(vgg(styles, batch_size), vgg.style_layers),
                   color_signature(styles), face, mse_per_image(content, face.expand_as(content)),
                   IdentityReference.build(content, identities, identity))


def distances_to_references(ref: TransferReference, vgg: EvalVGG, images: torch.Tensor, batch_size: int = 64
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(images x styles Gram distances, images x faces content distances), VGG features computed one chunk at
    a time so that memory grows with the batch, not with the number of pairs."""
    from .retrieval import feature_distance_matrix, gram_distance_matrix, grams

    style_d, content_d = [np.zeros((0, len(ref.style_colors)))], [np.zeros((0, len(ref.content_face_mse)))]
    for i in range(0, len(images), batch_size):
        f = vgg(images[i:i + batch_size], batch_size)
        style_d.append(gram_distance_matrix(grams(f, vgg.style_layers), ref.style_grams, vgg.style_layers))
        content_d.append(feature_distance_matrix(f, ref.content_feats, vgg.content_layers))
    return np.concatenate(style_d), np.concatenate(content_d)


def transfer_metrics(ref: TransferReference, vgg: EvalVGG, out: torch.Tensor, rec: torch.Tensor,
                     ci: torch.Tensor, si: torch.Tensor, identity_pairs: np.ndarray | None = None,
                     batch_size: int = 64) -> dict[str, np.ndarray]:
    """Per-pair metric columns of transfers ``out`` (pair k = content ci[k], style si[k]) and of ``rec``, the
    reconstructions of the content images (the no-transfer baseline). See :func:`transfer_table`."""
    from .color import color_distance, color_distance_matrix, color_signature
    from .retrieval import nearest_is_own

    ci_np, si_np = ci.numpy(), si.numpy()
    style_d, content_d = distances_to_references(ref, vgg, out, batch_size)
    rec_style_d, rec_content_d = distances_to_references(ref, vgg, rec, batch_size)
    out_col, rec_col = color_signature(out), color_signature(rec)
    color_d = color_distance_matrix(out_col, ref.style_colors)
    rows = np.arange(len(out))
    cols = {"style_distance": style_d[rows, si_np], "style_distance_recon": rec_style_d[ci_np, si_np],
            "content_distance": content_d[rows, ci_np], "content_distance_recon": rec_content_d[ci_np, ci_np],
            "mean_face_mse": mse_per_image(out, ref.mean_face.expand_as(out)).numpy(),
            "mean_face_mse_content": ref.content_face_mse.numpy()[ci_np],
            "color_distance": color_d[rows, si_np],
            "color_distance_recon": color_distance(rec_col[ci_np], ref.style_colors[si_np]),
            "style_retrieval_gram": nearest_is_own(style_d, si_np),
            "style_retrieval_color": nearest_is_own(color_d, si_np),
            "content_retrieval": nearest_is_own(content_d, ci_np)}
    measured = np.ones(len(out), bool) if identity_pairs is None else np.asarray(identity_pairs, bool)
    ident = {k: np.full(len(out), np.nan) for k in ("identity_distance", "identity_match", "identity_face_found")}
    if measured.any():
        for k, v in ref.identity.metrics(out[torch.from_numpy(measured)], ci_np[measured]).items():
            ident[k][measured] = v
    return {**cols, **ident}


def identity_pair_mask(n_content: int, n_styles: int, identity_styles: int | None) -> np.ndarray:
    """Which pairs of :func:`all_pairs` get the identity metric (dlib: ~0.1 s per image on a CPU): every pair,
    or each content image with ``identity_styles`` styles spread evenly over the styles."""
    if not identity_styles or identity_styles >= n_styles:
        return np.ones(n_content * n_styles, bool)
    chosen = np.zeros(n_styles, bool)
    chosen[pick(n_styles, identity_styles)] = True
    return np.tile(chosen, n_content)


def transfer_table(runs: Sequence[RunInfo], models: Sequence[nn.Module], content: torch.Tensor,
                   styles: torch.Tensor, vgg: EvalVGG, mean_face: torch.Tensor, ctx: EvalContext,
                   batch_size: int = 64, identities: np.ndarray | None = None, identity: bool = True,
                   identity_styles: int | None = None, reference: bool = True):
    """One row per (model, content image, style image) (C3, C4):

    * ``style_distance``: Gram distance of the transfer to the style image; ``style_distance_recon``: the same
      for the model's reconstruction of the content image (the no-transfer baseline);
    * ``content_distance``: VGG feature distance (content layers) of the transfer to the content image;
      ``content_distance_recon``: the same for the reconstruction;
    * ``mean_face_mse``: pixel MSE of the transfer to the mean CelebA face; ``mean_face_mse_content``: of the
      content image itself.

    Independent of the training losses (issue 5):

    * ``color_distance``: sliced Wasserstein distance of the CIELAB pixel distributions of transfer and style
      image (wae_lib.color; Lab units); ``color_distance_recon``: of the reconstruction;
    * ``style_retrieval_gram`` / ``style_retrieval_color``: 1 when the style nearest to the transfer (among
      all ``styles``, by Gram / colour distance) is its own, chance ``style_retrieval_chance`` = 1 / styles;
    * ``content_retrieval``: 1 when the held-out face nearest to the transfer by content distance is its own
      content image, chance ``content_retrieval_chance`` = 1 / faces;
    * ``identity_distance`` / ``identity_match`` / ``identity_face_found`` (dlib, see
      :func:`reconstruction_table`) for the pairs of :func:`identity_pair_mask` (others NaN).

    ``reference=True`` adds rows ``run = reinhard2001`` (``data = reference``, content_dim 0, seed -1): the
    Reinhard et al. (2001) colour transfer of every pair, measured the same way, as the trivial floor.
    """
    import pandas as pd

    from .color import reinhard_transfer

    ref = TransferReference.build(content, styles, vgg, mean_face, identities, identity, batch_size)
    nc, ns = len(content), len(styles)
    ci, si = all_pairs(nc, ns)
    id_pairs = identity_pair_mask(nc, ns, identity_styles)
    constant = {"style_retrieval_chance": 1 / ns, "content_retrieval_chance": 1 / nc, **ref.identity.columns,
                **ctx.columns()}
    methods = [(run_columns(run), lambda model=model: (transfer_pairs(model, content, styles, ci, si, batch_size),
                                                       reconstruct_images(model, content, batch_size)))
               for run, model in zip(runs, models)]
    if reference:  # the "reconstruction" of a colour transfer is the content image itself
        methods.append((REFERENCE_COLUMNS, lambda: (reinhard_transfer(content[ci], styles[si]), content)))
    frames = []
    for names, make in methods:
        out, rec = make()
        cols = transfer_metrics(ref, vgg, out, rec, ci, si, id_pairs, batch_size)
        frames.append(pd.DataFrame({**{k: [v] * len(ci) for k, v in names.items()},
                                    "content_image": ci.numpy(), "style_image": si.numpy(), **cols,
                                    **{k: [v] * len(ci) for k, v in constant.items()}}))
    return pd.concat(frames, ignore_index=True)


def balance_scores(style_distance: Sequence[float], content_distance: Sequence[float]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """C4 criterion on per-model mean distances: (score, tie_break), smaller is better.

    score = rank-normalised style distance + rank-normalised content distance (ranks scaled to [0, 1] over the
    models, 0 = smallest distance); tie_break = the sum of the min-max-normalised distances.
    """
    s, c = np.asarray(style_distance, float), np.asarray(content_distance, float)
    m = max(1, len(s) - 1)

    def minmax(v):
        span = v.max() - v.min()
        return (v - v.min()) / span if span > 0 else v * 0

    return (rankdata(s) - 1) / m + (rankdata(c) - 1) / m, minmax(s) + minmax(c)


def best_by_balance(style_distance: Sequence[float], content_distance: Sequence[float]) -> int:
    """Index of the model that balances style and content best (:func:`balance_scores`)."""
    score, tie = balance_scores(style_distance, content_distance)
    return int(np.lexsort((tie, score))[0])


def balance_ranking(transfers):
    """C4: per model (paper order kept), mean style and content distance of its transfers, their rank-normalised
    values, ``score`` (sum; smaller = better balance) and ``best`` (the model with the smallest score).
    Reference rows (Reinhard 2001) are left out: C4 ranks the trained models."""
    t = (transfers[is_model_row(transfers)].groupby("run", sort=False)
         .agg(data=("data", "first"), content_dim=("content_dim", "first"),
              style_distance=("style_distance", "mean"), content_distance=("content_distance", "mean"),
              n_pairs=("style_distance", "size"))
         .reset_index())
    m = max(1, len(t) - 1)
    t["style_rank"] = (rankdata(t["style_distance"]) - 1) / m
    t["content_rank"] = (rankdata(t["content_distance"]) - 1) / m
    t["score"], t["tie_break"] = balance_scores(t["style_distance"], t["content_distance"])
    t["best"] = np.arange(len(t)) == best_by_balance(t["style_distance"], t["content_distance"])
    return t


def best_model(ranking, runs: Sequence[RunInfo], models: Sequence[nn.Module]) -> tuple[RunInfo, nn.Module]:
    """The run and model marked ``best`` in a :func:`balance_ranking` table."""
    name = ranking.loc[ranking["best"], "run"].iloc[0]
    i = [r.name for r in runs].index(name)
    return runs[i], models[i]


# --------------------------------------------------------------------------------------------------
# FID / KID (torchmetrics), Inception or a labelled VGG16 stand-in
# --------------------------------------------------------------------------------------------------
class PooledVGGFeatures(nn.Module):
    """STAND-IN for the FID Inception network: VGG16 activations at ``layers``, mean-pooled over space and
    concatenated. Numbers on it are not comparable with published (Inception) FID values."""

    kind = "vgg16-standin"

    def __init__(self, source: str | VGGSource = "auto", layers: Sequence[str] = FID_VGG_LAYERS):
        super().__init__()
        self.layers = tuple(layers)
        self.net = VGG16Features(source, self.layers)
        vgg_label = self.net.source.label
        self.label = (f"STAND-IN (not Inception): VGG16 {'+'.join(self.layers)} mean-pooled, {vgg_label}")
        with torch.no_grad():
            probe = self.net(torch.zeros(1, 3, 32, 32))
        self.num_features = sum(probe[n].shape[1] for n in self.layers)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.net(x.float())
        return torch.cat([feats[n].mean((2, 3)) for n in self.layers], dim=1)


class InceptionFeatures(nn.Module):
    """The standard FID network (Inception-v3, 2048-d pool features, torch-fidelity weights via torchmetrics)."""

    kind = "inception-v3"

    def __init__(self, weights_path: str | None = None):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=weights_path or None)
        self.num_features = 2048
        self.label = "Inception-v3 (standard FID weights, torch-fidelity)"

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x.float().clamp(0, 1) * 255).round().to(torch.uint8))


def inception_weights_cached() -> Path | None:
    """torch-fidelity's Inception weights file in the torch hub cache, if it is there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    return path if path.is_file() else None


def torch_fidelity_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch_fidelity") is not None


def fid_feature_extractor(kind: str = "auto", vgg_source: str | VGGSource = "auto", inception_weights_path: str = "",
                          vgg_layers: Sequence[str] = FID_VGG_LAYERS
                          ) -> nn.Module:
    """The network FID/KID are computed on.

    * ``inception``: the standard Inception-v3 (needs torch-fidelity; with ``inception_weights_path`` empty
      torch-fidelity downloads its weights once into the torch hub cache: explicit opt-in only);
    * ``vgg16``: the labelled stand-in (:class:`PooledVGGFeatures`), always offline;
    * ``auto``: Inception if torch-fidelity is installed and the weights are a local file (the path given or
      the torch hub cache), else the stand-in. Never downloads.
    """
    if kind not in ("auto", "inception", "vgg16"):
        raise EvaluationError(f"parameter feature_extractor = {kind!r}: expected 'auto', 'inception' or 'vgg16'")
    if inception_weights_path and not Path(inception_weights_path).is_file():
        raise FileNotFoundError(f"parameter inception_weights_path = {inception_weights_path!r}: no such file "
                                f"(expected torch-fidelity's {INCEPTION_WEIGHTS_FILE})")
    if kind == "auto":
        local = inception_weights_path or inception_weights_cached()
        kind = "inception" if torch_fidelity_available() and local else "vgg16"
        inception_weights_path = str(local) if local else ""
    if kind == "inception":
        if not torch_fidelity_available():
            raise EvaluationError("parameter feature_extractor = 'inception' needs the package torch-fidelity "
                                  "(`pip install torch-fidelity`); use 'vgg16' (the labelled stand-in) offline")
        return InceptionFeatures(inception_weights_path or None).eval()
    return PooledVGGFeatures(vgg_source, vgg_layers).eval()


@torch.no_grad()
def extract_features(extractor: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """N x d float64 features of N images in [0, 1]."""
    dev = next(extractor.parameters()).device
    return torch.cat([extractor(images[i:i + batch_size].to(dev)).double().cpu()
                      for i in range(0, len(images), batch_size)])


class _Precomputed(nn.Module):
    """Identity "feature extractor" so that torchmetrics' FID/KID consume features computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def fid_torchmetrics(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID of two feature sets with torchmetrics' FrechetInceptionDistance (float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), reset_real_features=True)
    metric.set_dtype(torch.float64)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid_torchmetrics(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                     seed: int = 0) -> tuple[float, float]:
    """(mean, std) of KID over random subsets (torchmetrics; subset_size capped at the smaller set)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID from features in O(n_real * n_fake * d) (same value as torchmetrics', for bootstrap resamples).

    tr sqrt(S_r S_f) equals the sum of singular values of X_r X_f^T / sqrt((n_r - 1)(n_f - 1)) for centred
    feature matrices X (the non-zero eigenvalues of S_r S_f are those of M M^T, M = X_r X_f^T).
    """
    r, f = real.double(), fake.double()
    xr, xf = r - r.mean(0), f - f.mean(0)
    nr, nf = len(r), len(f)
    cross = torch.linalg.svdvals(xr @ xf.T).sum() / math.sqrt((nr - 1) * (nf - 1))
    return float((r.mean(0) - f.mean(0)).pow(2).sum() + xr.pow(2).sum() / (nr - 1) + xf.pow(2).sum() / (nf - 1)
                 - 2 * cross)


def kid_unbiased(real: torch.Tensor, fake: torch.Tensor, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD^2 with KID's polynomial kernel (x.y / d + coef)^degree, on all samples (sizes may differ)."""
    r, f = real.double(), fake.double()
    d, m, n = r.shape[1], len(r), len(f)
    k_rr, k_ff, k_rf = ((a @ b.T / d + coef) ** degree for a, b in ((r, r), (f, f), (r, f)))
    return float((k_rr.sum() - k_rr.diagonal().sum()) / (m * (m - 1)) + (k_ff.sum() - k_ff.diagonal().sum())
                 / (n * (n - 1)) - 2 * k_rf.mean())


@contextlib.contextmanager
def torch_threads(n: int):
    """Temporarily run torch CPU ops on ``n`` threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def percentile_interval(draws: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Central ``level`` interval of bootstrap draws (NaN, NaN when there are none)."""
    v = np.asarray(draws, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))


def fid_kid(real: torch.Tensor, fake: torch.Tensor, n_boot: int = 200, level: float = 0.95, seed: int = 0,
            kid_subsets: int = 100) -> dict[str, float]:
    """FID and KID (torchmetrics point estimates) with percentile bootstrap intervals and sample sizes.

    Real and generated features are resampled independently with replacement. FID is biased upwards at small
    n (and by the duplicates of a resample): compare models at equal n, read intervals, prefer KID (unbiased).
    """
    rng = np.random.default_rng(seed)
    fids, kids = [], []
    with torch_threads(1):  # hundreds of tiny ops: one thread is ~30x faster than two contending ones
        for _ in range(n_boot):
            ri = torch.from_numpy(rng.integers(0, len(real), len(real)))
            fi = torch.from_numpy(rng.integers(0, len(fake), len(fake)))
            fids.append(frechet_distance(real[ri], fake[fi]))
            kids.append(kid_unbiased(real[ri], fake[fi]))
    (f_lo, f_hi), (k_lo, k_hi) = percentile_interval(fids, level), percentile_interval(kids, level)
    kid_mean, kid_std = kid_torchmetrics(real, fake, kid_subsets, seed=seed)
    return {"fid": fid_torchmetrics(real, fake), "fid_ci_low": f_lo, "fid_ci_high": f_hi,
            "kid": kid_unbiased(real, fake), "kid_ci_low": k_lo, "kid_ci_high": k_hi,
            "kid_subset_mean": kid_mean, "kid_subset_std": kid_std, "kid_subset_size": min(1000, len(real), len(fake)),
            "n_real": len(real), "n_fake": len(fake), "n_boot": n_boot, "ci_level": level}


def fid_table(runs: Sequence[RunInfo], models: Sequence[nn.Module], extractor: nn.Module,
              content: torch.Tensor, face_free: torch.Tensor, styles: torch.Tensor, ctx: EvalContext,
              n_boot: int = 200, seed: int = 0, batch_size: int = 64):
    """FID/KID per model of: reconstructions of held-out faces (vs those faces), reconstructions of face-free
    images (style_eval + natural_eval, vs themselves) and transfers of every held-out face x style (vs the
    held-out faces). A "real halves" row per reference set gives the noise floor at that sample size."""
    import pandas as pd

    label, kind = extractor.label, extractor.kind
    f_content = extract_features(extractor, content, batch_size)
    f_free = extract_features(extractor, face_free, batch_size) if len(face_free) else torch.zeros(0, 1)
    ci, si = all_pairs(len(content), len(styles))
    rows = []

    def add(run: str, data: str, cdim, what: str, ref: str, real, fake):
        rows.append({"run": run, "data": data, "content_dim": cdim, "generated": what, "reference_set": ref,
                     "feature_extractor": kind, "feature_extractor_label": label,
                     **fid_kid(real, fake, n_boot, seed=seed), **ctx.columns()})

    enough_free = len(face_free) >= 2
    for name, feats in (("content_eval", f_content), ("style_eval+natural_eval", f_free)):
        half = len(feats) // 2
        if half >= 2:
            perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(feats)))
            add("(real halves)", "-", None, f"real: half of {name}", name, feats[perm[:half]], feats[perm[half:]])
    for run, model in zip(runs, models):
        rec_c = reconstruct_images(model, content, batch_size)
        rec_f = reconstruct_images(model, face_free, batch_size) if enough_free else None
        out = transfer_pairs(model, content, styles, ci, si, batch_size)
        add(run.name, run.data, run.content_dim, "reconstruction", "content_eval", f_content,
            extract_features(extractor, rec_c, batch_size))
        if enough_free:
            add(run.name, run.data, run.content_dim, "reconstruction", "style_eval+natural_eval", f_free,
                extract_features(extractor, rec_f, batch_size))
        add(run.name, run.data, run.content_dim, "transfer", "content_eval", f_content,
            extract_features(extractor, out, batch_size))
    return pd.DataFrame.from_records(rows)


# --------------------------------------------------------------------------------------------------
# writing tables
# --------------------------------------------------------------------------------------------------
TABLE_FILES = {
    "reconstruction": "reconstruction_per_image.csv",  # 03
    "reconstruction_summary": "reconstruction_summary.csv",  # 03
    "transfer": "transfer_per_pair.csv",  # 04
    "transfer_summary": "transfer_summary.csv",  # 04
    "balance": "transfer_balance_ranking.csv",  # 04 (C4 criterion)
    "fid": "fid_kid.csv",  # 05
    "compare": "compare_per_pair.csv",  # 07: one row per method x (face, style) pair
    "compare_fid": "compare_fid_kid.csv",  # 07
    "compare_summary": "compare_summary.csv",  # 07: one row per method, with ratios to our model
}
TABLE_WRITERS = {"reconstruction": "03_reconstruction", "reconstruction_summary": "03_reconstruction",
                 "transfer": "04_transfer", "transfer_summary": "04_transfer", "balance": "04_transfer",
                 "fid": "05_fid", "compare": "07_compare", "compare_fid": "07_compare",
                 "compare_summary": "07_compare"}


def write_table(df, tables_dir: str | Path, key: str) -> Path:
    """Write one of TABLE_FILES under ``tables_dir`` (created) and return its path."""
    path = Path(tables_dir) / TABLE_FILES[key]
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


CHANCE_COLUMNS = {"style_retrieval_gram": "style_retrieval_chance", "style_retrieval_color": "style_retrieval_chance",
                  "content_retrieval": "content_retrieval_chance", "identity_match": "identity_match_chance"}


def chance_levels(table) -> dict[str, float]:
    """Chance level of each retrieval / match column of a transfer or reconstruction table, e.g.
    ``{"style_retrieval_gram": 0.125, ...}`` (columns the table lacks are left out)."""
    return {m: float(table[c].dropna().iloc[0]) for m, c in CHANCE_COLUMNS.items()
            if m in table and c in table and table[c].notna().any()}
