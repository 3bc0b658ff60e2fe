"""Distribution metrics (notebook 05, and 07's comparison): FID and KID with bootstrap intervals and sample sizes.

Computed (torchmetrics) on Inception-v3 features when torch-fidelity and its weights are available, otherwise on
a VGG16 stand-in (pooled VGG16 activations) that is labelled as such and never mixed with Inception numbers.
FID is biased upwards at small n: compare models at equal n, read the intervals, prefer KID (unbiased).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..config import EvaluationError, VGGSource
from ..model.vgg import VGG16Features
from ..utils import module_device
from .cache import Outputs
from .images import FACE_FREE, EvalImages
from .runs import EvalContext, RunInfo
from .stats import percentile_interval

FID_VGG_LAYERS = ("relu4_2",)  # the stand-in's features: the deepest block that the HED stand-in keeps close to
#   ImageNet VGG16 (PILOT.md: block 5 has drifted), mean-pooled over space
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's FID Inception weights


# --------------------------------------------------------------------------------------------------
# the feature networks: Inception or a labelled VGG16 stand-in
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
    dev = module_device(extractor)
    return torch.cat([extractor(images[i:i + batch_size].to(dev)).double().cpu()
                      for i in range(0, len(images), batch_size)])


# --------------------------------------------------------------------------------------------------
# FID and KID of two feature sets
# --------------------------------------------------------------------------------------------------
class _Precomputed(nn.Module):
    """Identity "feature extractor" so that torchmetrics' FID/KID consume features computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def fid_torchmetrics(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID of two feature sets with torchmetrics' FrechetInceptionDistance (float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance  # ~2 s to import: when used

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


# --------------------------------------------------------------------------------------------------
# notebook 05's table
# --------------------------------------------------------------------------------------------------
def fid_table(runs: Sequence[RunInfo], outputs: Sequence[Outputs], extractor: nn.Module,
              content: EvalImages, face_free: EvalImages, styles: EvalImages, ctx: EvalContext,
              n_boot: int = 200, seed: int = 0, batch_size: int = 64) -> pd.DataFrame:
    """FID/KID per model of: reconstructions of held-out faces (vs those faces), reconstructions of face-free
    images (style_eval + natural_eval, vs themselves) and transfers of every held-out face x style (vs the
    held-out faces). A "real halves" row per reference set gives the noise floor at that sample size.
    ``outputs``: each run's outputs (wae_lib.eval.cache), computed or read from the cache."""
    label, kind = extractor.label, extractor.kind
    f_content = extract_features(extractor, content.images, batch_size)
    f_free = extract_features(extractor, face_free.images, batch_size) if len(face_free) else torch.zeros(0, 1)
    rows = []

    def add(run: str, data: str, cdim, what: str, ref: str, real, fake):
        rows.append({"run": run, "data": data, "content_dim": cdim, "generated": what, "reference_set": ref,
                     "feature_extractor": kind, "feature_extractor_label": label,
                     **fid_kid(real, fake, n_boot, seed=seed), **ctx.columns()})

    enough_free = len(face_free) >= 2
    for name, feats in (("content_eval", f_content), (FACE_FREE, f_free)):
        half = len(feats) // 2
        if half >= 2:
            perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(feats)))
            add("(real halves)", "-", None, f"real: half of {name}", name, feats[perm[:half]], feats[perm[half:]])
    for run, out in zip(runs, outputs):
        rec_c = out.reconstructions(content)
        rec_f = out.reconstructions(face_free) if enough_free else None
        transfers = out.transfers(content, styles)
        add(run.name, run.data, run.content_dim, "reconstruction", "content_eval", f_content,
            extract_features(extractor, rec_c, batch_size))
        if enough_free:
            add(run.name, run.data, run.content_dim, "reconstruction", FACE_FREE, f_free,
                extract_features(extractor, rec_f, batch_size))
        add(run.name, run.data, run.content_dim, "transfer", "content_eval", f_content,
            extract_features(extractor, transfers, batch_size))
    return pd.DataFrame.from_records(rows)
