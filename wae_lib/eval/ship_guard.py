"""What ``python -m wae_lib export`` checks before it writes: a finished run, and a file it may replace.

A shipped model (``wae_lib/weights/pretrained.pt``) was once replaced by a 90-step sample model without a word
(issue 35). So export writes over an existing file (the ``.pt``, its card or its scorecard) only with
``--replace``, and even then only a model that

- scores at least as well on the held-out scorecard by the rule export chooses a model with (the caller's
  ``score``: export's ``balance_score``, the geometric mean of style retrieval and identity kept), compared on the
  same held-out sets (the Reinhard floor row, which depends on those sets alone, must match; otherwise the old
  model is scored again on these sets), and
- trained on at least as many images (steps x batch size).

A refusal is one line stating both figures; to ship a model anyway, remove the old file first (a deliberate act).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..model.pretrained import PretrainedError, card_file, load_pretrained, scorecard_file
from ..utils import UserError
from . import scorecard

# the floor row's figures that depend only on the held-out sets: equal floors, the same held-out sets
FLOOR_COLUMNS = ("style_retrieval_gram", "style_retrieval_color", "content_retrieval", "style_gram_distance",
                 "style_color_distance")


class ExportError(UserError):
    """A problem with export's inputs or its --out that the user can fix: one line, exit status 1."""


@dataclass(frozen=True)
class Trained:
    """How long a model trained: its checkpoint's step (not the config's plan) and its batch size."""

    name: str
    step: int
    batch: int

    @property
    def images(self) -> int:
        return self.step * self.batch

    def __str__(self) -> str:
        return f"{self.images:,} images ({self.step:,} steps x {self.batch})"


def check_finished(where: str, step: int | None, planned: int, finished: bool) -> None:
    """An unfinished run (stopped at step 53 of a planned 400) is not a model to ship: its card would state the
    plan, not what it learnt."""
    if not finished or (step is not None and step < planned):
        raise ExportError(f"{where}: unfinished run (its checkpoint is at step {step} of a planned {planned}); "
                          f"resume it with the same train command until it finishes, then export it")


def existing(out: Path) -> list[Path]:
    return [p for p in (out, card_file(out), scorecard_file(out)) if p.exists()]


def refusal(out: Path, why: str) -> ExportError:
    return ExportError(f"refusing to replace {out}: {why}; keep it (another --out), or remove it first to ship "
                       f"this model in its place anyway")


def check_may_replace(out: Path, replace: bool) -> None:
    """Before any scoring: an existing file is replaced only on request."""
    found = existing(out)
    if found and not replace:
        raise ExportError(f"{found[0]} exists: export replaces a model (its .pt, card and scorecard) only with "
                          f"--replace, and then only by one that scores at least as well on the held-out scorecard "
                          f"and trained on at least as many images; or give another --out")


def old_provenance(out: Path, quiet: bool = False) -> dict | None:
    """The provenance and config of the exported model at ``out`` (None: no such file, or not an export)."""
    if not out.is_file():
        return None
    try:
        payload = torch.load(out, map_location="cpu", weights_only=True)
        return {**payload["config"], **payload["provenance"]}
    except Exception as exc:  # a damaged or foreign file: nothing to compare, said once
        if not quiet:
            print(f"[wae_lib] note: {out} cannot be read as an exported model ({type(exc).__name__}); its "
                  f"training is not compared", file=sys.stderr)
        return None


def old_training(out: Path) -> Trained | None:
    prov = old_provenance(out)
    step, batch = (prov.get("step"), prov.get("batch_size")) if prov else (None, None)
    if not isinstance(step, int) or not isinstance(batch, int):
        if prov is not None:
            print(f"[wae_lib] note: {out} records no step and batch size: how long it trained is not compared",
                  file=sys.stderr)
        return None
    return Trained(str(prov.get("run", out.stem)), step, batch)


def check_trained_as_long(out: Path, new: Trained) -> None:
    old = old_training(out)
    if old is not None and new.images < old.images:
        raise refusal(out, f"it trained on more images: {old} > new {new} for {new.name}")


def old_score(out: Path, table: pd.DataFrame, evalset, score: Callable[[pd.Series], float]) -> pd.Series | None:
    """The replaced model's scorecard row on this ``evalset`` (whose scorecard is ``table``): from its scorecard
    when that was scored on the same held-out sets (equal floor rows), else by scoring it again here; None, said
    on stderr, when there is nothing to compare."""
    path, prov = scorecard_file(out), old_provenance(out, quiet=True)
    if not path.is_file():
        print(f"[wae_lib] note: {out} has no scorecard ({path.name}) to compare with; replacing it as --replace asks",
              file=sys.stderr)
        return None
    try:
        rows = pd.read_csv(path)
        floor = rows[rows["run"] == scorecard.FLOOR_RUN].iloc[0]
        own = rows[rows["run"] == prov["run"]] if prov else rows[rows["run"] != scorecard.FLOOR_RUN]
        own = own.iloc[-1]
        score(own)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print(f"[wae_lib] note: {path} holds no usable scorecard row of {out.name} ({type(exc).__name__}: {exc}); "
              f"nothing to compare, replacing it as --replace asks", file=sys.stderr)
        return None
    here = table[table["run"] == scorecard.FLOOR_RUN].iloc[0]
    cols = [c for c in FLOOR_COLUMNS if c in floor.index]
    if cols and np.allclose(floor[cols].astype(float), here[cols].astype(float), rtol=1e-3, equal_nan=True):
        return own
    print(f"[wae_lib] note: {path.name} was scored on other held-out sets (its floor row differs); scoring {out} "
          f"again on these", file=sys.stderr)
    try:
        return pd.Series({"run": out.stem, **scorecard.score_model(load_pretrained(out), evalset)})
    except PretrainedError as exc:
        print(f"[wae_lib] note: {out} cannot be scored here ({exc}); nothing to compare, replacing it as --replace "
              f"asks", file=sys.stderr)
        return None


def check_scores_as_well(out: Path, table: pd.DataFrame, new: pd.Series, evalset,
                         score: Callable[[pd.Series], float], rule: str) -> None:
    """Refuse a model that scores worse than the one at ``out`` by ``score`` (described by ``rule``); a score that
    cannot be computed here (NaN: no face embeddings) is not "at least as well"."""
    if not existing(out):
        return
    old = old_score(out, table, evalset, score)
    if old is None:
        return
    a, b = score(old), score(new)
    if a != a:  # NaN: the old scorecard has no identity figure (scored without dlib): nothing to hold the new one to
        print(f"[wae_lib] note: {out}'s scorecard has no {rule} figure (NaN); nothing to compare, replacing it as "
              f"--replace asks", file=sys.stderr)
        return
    if not b >= a - 1e-9:  # equal passes (the same model exported again); NaN (no face embeddings here) does not
        style = lambda r: (r["style_retrieval_color"] + r["style_retrieval_gram"]) / 2  # noqa: E731
        raise refusal(out, f"it scores better on the held-out scorecard: {rule} {a:.3f} > new {b:.3f} for "
                           f"{new['run']} (style retrieval {style(old):.2f} vs {style(new):.2f}, identity kept "
                           f"{old['identity_match']:.2f} vs {new['identity_match']:.2f})")
