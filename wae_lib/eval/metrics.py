"""Per-image metrics of the evaluation (SPEC.md §5, claims C1-C3): pixel errors, VGG distances, the face detector.

* MSE, PSNR, SSIM of reconstructions (C1, C2); the perceptual distance of a reconstruction to its original;
* Gram "style distance" and VGG "content distance" of transfers (C3, C4), on :class:`EvalVGG`: the models' own
  frozen VGG16, deepened to the content layer;
* the OpenCV Haar face detector of ``wae_lib.data.faces`` on upscaled 64 px images (face hallucination, C2).

Our readings (not in the paper, which judges Figures 6-7 by eye), each reachable by a parameter: distances are
*relative* squared errors (||a - b||^2 / ||b||^2, per layer, averaged over layers) so that they do not depend on
the VGG source's activation scale; the content layer is relu4_2 (Gatys et al. 2016); style layers are the
model's own (SPEC §6: relu1_1, relu2_1, relu3_1).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from ..config import EvaluationError, VGGSource
from ..data.faces import detect_faces
from ..data.options import PrepConfig
from ..model.losses import gram_matrix
from ..model.vgg import VGG16Features, common_source
from ..utils import module_device, to_uint8_hwc

CONTENT_LAYERS = ("relu4_2",)  # Gatys et al. 2016 content layer (our reading; SPEC does not define content distance)
FACE_UPSCALE = 4  # 64 px -> 256 px before the Haar detector (PrepConfig.detect_scale 0.5 then runs it at 128 px)


# --------------------------------------------------------------------------------------------------
# pixels (C1, C2)
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
    from torchmetrics.functional.image import structural_similarity_index_measure  # ~2 s to import: when used

    return structural_similarity_index_measure(x.float(), y.float(), data_range=data_range, reduction="none")


# --------------------------------------------------------------------------------------------------
# VGG distances (C1-C4)
# --------------------------------------------------------------------------------------------------
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
    with G the normalised Gram matrix of wae_lib.model.losses (the model's own style representation, SPEC §1)."""
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
        return vgg.to(module_device(models[0]))

    @torch.no_grad()
    def forward(self, x: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        dev = module_device(self.net)
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
    """For each 64 px image, whether the OpenCV Haar frontal-face detector of wae_lib.data.faces fires (all NaN,
    with a warning, on an OpenCV without the detector).

    Same cascade, scaleFactor, minNeighbors, detect_scale and minimum window as the CelebA preprocessing
    (``PrepConfig``); the image is first upscaled ``upscale`` x (bicubic) because the detector's 24 px window
    is too coarse for 64 px faces.
    """
    cfg = prep_config or PrepConfig()
    arr = to_uint8_hwc(images) if isinstance(images, torch.Tensor) else np.asarray(images)
    if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 dropped it (pyproject pins <5; a lent GPU's image has 5)
        warnings.warn(f"OpenCV {cv2.__version__} has no CascadeClassifier: the face detector's columns are NaN "
                      f"(install opencv-python-headless<5)", stacklevel=2)
        return np.full(len(arr), np.nan)
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
    if orig.dtype != bool:  # no detector here (face_detected: NaN)
        return {"rate": float("nan"), "n_face_free": 0, "rate_on_originals": float("nan")}
    n = int((~orig).sum())
    return {"rate": float(rec[~orig].mean()) if n else float("nan"), "n_face_free": n,
            "rate_on_originals": float(orig.mean()) if len(orig) else float("nan")}
