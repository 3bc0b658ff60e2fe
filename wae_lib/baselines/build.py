"""Every baseline by name (:data:`BASELINES`) and :func:`build_baseline`: the method in eval mode, AdaIN's and
WCT's trained decoders loaded from a run folder, a checkpoint or the files shipped in wae_lib/weights.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..model.vgg import VGG16Features
from ..utils import non_finite
from .adain import AdaIN
from .common import STYLE_LAYERS, BaselineWeightsError, read_baseline_checkpoint, resolve_weights
from .gatys import GATYS_STEPS, Gatys
from .reinhard import Reinhard
from .wct import WCT

BASELINES: dict[str, str] = {
    "reinhard": "Reinhard (colour floor): Lab mean/std transfer - Reinhard, Ashikhmin, Gooch & Shirley 2001",
    "gatys": f"Gatys (L-BFGS, {GATYS_STEPS} it.): image optimisation - Gatys, Ecker & Bethge 2016",
    "adain": "AdaIN (relu3_1 + decoder): adaptive instance normalisation - Huang & Belongie 2017",
    "wct": "WCT (relu3_1, 2_1, 1_1 + decoders): whitening and colouring - Li et al. 2017",
}
_DECODER_METHODS = {"adain": AdaIN, "wct": WCT}


def load_baseline_weights(model: AdaIN | WCT, path: str | Path) -> dict[str, Any]:
    """Load trained decoders into ``model``; refuses a checkpoint of another method or VGG16 source (its
    decoders invert other features). Returns the checkpoint's metadata (step, config, ...)."""
    ckpt = read_baseline_checkpoint(path)
    if ckpt["method"] != model.method or ckpt["vgg_source"] != model.vgg_source:
        raise BaselineWeightsError(
            f"{path} holds {ckpt['method']} decoders for VGG source {ckpt['vgg_source']!r}, not {model.method} on "
            f"{model.vgg_source!r}: use build_baseline({ckpt['method']!r}, vgg_source={ckpt['vgg_source']!r}) "
            f"or train matching decoders")
    width = ckpt["config"].get("width", 1.0)
    if width != model.width:
        raise BaselineWeightsError(f"{path} holds decoders of width {width}, this model's are {model.width}: "
                                   f"use build_baseline(..., weights=path), which reads the width")
    bad = non_finite(ckpt["decoders"])
    if bad:
        raise BaselineWeightsError(f"{path}: decoder weights {bad[:3]} hold NaN or inf; retrain them")
    try:
        model.decoders.load_state_dict(ckpt["decoders"])
    except RuntimeError as exc:  # torch lists every mismatched tensor over many lines: name the first
        first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc)[:200])
        raise BaselineWeightsError(f"{path}: its {ckpt['method']} decoders do not fit width {width} ({first[:200]})"
                                   ) from None
    if not ckpt.get("finished", True):
        steps = ckpt["config"].get("steps", "?")
        print(f"[wae_lib] warning: {path}: the {ckpt['method']} decoders are unfinished (step {ckpt['step']} of "
              f"{steps}); used as they are (resume their training to finish them)", file=sys.stderr)
    model.checkpoint_info = {k: v for k, v in ckpt.items() if k not in ("decoders", "optimizer", "rng")}
    return model.checkpoint_info


def build_baseline(name: str, vgg_source: str = "hed", weights: str | Path | None = None,
                   device: str | torch.device = "cpu", vgg: VGG16Features | None = None, **kwargs: Any) -> nn.Module:
    """The baseline ``name`` (a key of BASELINES) in eval mode on ``device``, ready for ``.transfer``.

    ``weights``: a decoder checkpoint (file or run folder) for adain/wct, or ``"shipped"`` for the decoders
    packaged in ``wae_lib/weights`` (wae_lib.baselines.shipped); its width is read from it. Without
    it the decoders are untrained (a warning says so: fine for timing, meaningless for quality). ``vgg``
    shares an already built VGG16Features (it must reach relu3_1); ``kwargs`` go to the class (e.g. Gatys'
    ``steps``).
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {list(BASELINES)}")
    if name == "reinhard":
        return Reinhard().to(device).eval()
    vgg = vgg if vgg is not None else VGG16Features(vgg_source, STYLE_LAYERS)
    if name == "gatys":
        return Gatys(vgg, **kwargs).to(device).eval()
    if weights is None:
        warnings.warn(f"{name}: no decoder weights given, the decoders are UNTRAINED (outputs are meaningless; "
                      f"fine for timing). Train them with `python -m wae_lib baselines --method {name}`.",
                      UserWarning, stacklevel=2)
        model = _DECODER_METHODS[name](vgg, **kwargs)
    else:
        weights = resolve_weights(name, weights)
        ckpt = read_baseline_checkpoint(weights)
        model = _DECODER_METHODS[name](vgg, width=ckpt["config"].get("width", 1.0), **kwargs)
        load_baseline_weights(model, weights)
    return model.to(device).eval()
