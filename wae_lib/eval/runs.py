"""A trained sweep's runs in the paper's order, with the context every caption and table carries (one run
folder's model: wae_lib.model.run).

A sweep (SPEC §5: 2 training sets x content sizes): :func:`discover_runs` finds the run folders that
``python -m wae_lib train sweep`` wrote under a models folder and orders them as the paper's figures do (CelebA-only 512..32,
then mixed 512..32); :func:`load_sweep` loads them with an :class:`EvalContext` (profile, data source, VGG
source, scaling note). Run folders are ``<set>_c<content>`` or ``<set>_c<content>_s<seed>``: set, size and
seed are read from config.json, and runs of one (set, size) with several seeds are replicates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import PROFILES, SWEEPS, TRAINING_SETS, Config, EvaluationError, run_name, training_set_label
from ..data.layout import load_set_info
from ..model.checkpoint import CHECKPOINT
from ..model.run import load_model
from ..model.wae import WAEStyle
from ..utils import resolve_device


# --------------------------------------------------------------------------------------------------
# a sweep: run folders in the paper's order (SPEC §5, Fig. 6-7 row order)
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
        return training_set_label(self.data)

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
                                f"`python -m wae_lib train sweep --profile quick --models-dir {models_dir}`")
    runs = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if not ((sub / "config.json").is_file() and (sub / CHECKPOINT).is_file()):
            continue
        cfg = Config.load(sub / "config.json")
        runs.append(RunInfo(sub.name, sub, Path(cfg.data).stem if cfg.data.endswith(".npy") else cfg.data,
                            cfg.content_dim, cfg.profile, cfg, int(cfg.seed)))
    if not runs:
        raise FileNotFoundError(f"parameter models_dir = {str(models_dir)!r} holds no run folder (a subfolder with "
                                f"config.json and checkpoint.pt written by `python -m wae_lib train`)")
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


def check_trained_on(run_dirs: Sequence[str | Path], data_root: str | Path) -> None:
    """Refuse to evaluate a run on another data root than the one it trained on: that root's held-out people
    may be in the run's training set, and its tables would say nothing. Each run folder's metadata.json records
    the training set's path and content digest (wae_lib.train.run_folder); ``data_root``'s sets/info.json records the
    digest of each set it wrote (wae_lib.data). A run whose set that root does not hold (a user's .npy), or a run
    folder without the record, is not judged here. Raises :class:`EvaluationError` in one line naming both."""
    recorded = load_set_info(data_root).get("sha256", {})
    for run in map(Path, run_dirs):
        try:
            meta = json.loads((run / "metadata.json").read_text())
        except (OSError, ValueError):
            continue
        digest, name = str(meta.get("data_fingerprint", "")), Path(str(meta.get("data_path", ""))).name
        if name in recorded and digest.startswith("sha256:") and digest != f"sha256:{recorded[name]}":
            raise EvaluationError(
                f"parameter data_root = {str(data_root)!r}: run {run} trained on another {name} "
                f"({meta['data_path']}, {digest[:19]}..., {str(data_root)!r} holds sha256:{recorded[name][:12]}...); "
                f"evaluate it with the data root it trained on")


def load_sweep(models_dir: str | Path, data_root: str | Path, profile: str = "auto", device: str = "auto"
               ) -> tuple[list[RunInfo], list[WAEStyle], EvalContext]:
    """Runs in paper order, their models (eval mode, on ``device``) and the context for captions."""
    runs = discover_runs(models_dir, profile)
    check_trained_on([r.path for r in runs], data_root)
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
