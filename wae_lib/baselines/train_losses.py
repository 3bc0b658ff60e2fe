"""What the decoders of wae_lib.baselines.train learn from: AdaIN's loss (Huang & Belongie 2017, eq. 11-13) and
WCT's (Li et al. 2017, eq. 1) on a batch, weighted by the run's config, and the same loss on fixed held-out images
(the validation loss) with the plateau rule that ends a run once it stops improving.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import ConfigError
from .adain import ADAIN_LAYER, AdaIN, adain, mean_std
from .common import STYLE_LAYERS, encode
from .train_config import BaselineTrainConfig
from .wct import WCT


def adain_terms(model: AdaIN, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Huang & Belongie's decoder loss on a batch, the style of image i being image i-1's."""
    with torch.no_grad():
        feats = model.vgg(x)
        style = {n: f.roll(1, 0) for n, f in feats.items()}
        target = adain(feats[ADAIN_LAYER], style[ADAIN_LAYER])
    out = model.vgg(model.decode(target))
    content = F.mse_loss(out[ADAIN_LAYER], target)
    style_loss = x.new_zeros(())
    for n in STYLE_LAYERS:
        (m_o, s_o), (m_s, s_s) = mean_std(out[n]), mean_std(style[n])
        style_loss = style_loss + F.mse_loss(m_o, m_s) + F.mse_loss(s_o, s_s)
    return {"content": content, "style": style_loss}


def wct_terms(model: WCT, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Li et al.'s reconstruction loss, per level: pixel MSE and feature MSE at that level."""
    with torch.no_grad():
        feats = model.vgg(x)
    terms = {}
    for layer in model.levels:
        rec = model.decoders[layer](feats[layer])
        terms[f"pixel/{layer}"] = F.mse_loss(rec, x)
        terms[f"feature/{layer}"] = F.mse_loss(encode(model.vgg, rec, layer), feats[layer])
    return terms


def weighted_loss(cfg: BaselineTrainConfig, terms: dict[str, torch.Tensor]) -> torch.Tensor:
    weights = {"content": cfg.content_weight, "style": cfg.style_weight, "pixel": cfg.pixel_weight,
               "feature": cfg.feature_weight}
    return sum(weights[k.split("/")[0]] * v for k, v in terms.items())


TERMS = {"adain": adain_terms, "wct": wct_terms}


@torch.no_grad()
def validation_loss(cfg: BaselineTrainConfig, model: AdaIN | WCT, images: torch.Tensor) -> float:
    """The training loss on fixed held-out images, in chunks of the batch size (AdaIN: image i styled by image
    i-1 of its chunk): the same number every time for the same decoders, so successive values show convergence."""
    was_training = model.decoders.training
    model.decoders.eval()
    total, count = 0.0, 0
    for start in range(0, len(images), cfg.batch_size):
        chunk = images[start:start + cfg.batch_size]
        if len(chunk) >= 2:  # a last single image has no AdaIN partner
            total += weighted_loss(cfg, TERMS[cfg.method](model, chunk)).item() * len(chunk)
            count += len(chunk)
    model.decoders.train(was_training)
    return total / count


def load_validation_images(cfg: BaselineTrainConfig) -> torch.Tensor:
    """``cfg.val_images`` images spread evenly over the held-out sets ``cfg.val_sets`` of ``cfg.data_root``."""
    from ..data.layout import SET_FILES, set_path
    from ..eval.images import load_set

    names = [n.strip() for n in cfg.val_sets.split(",") if n.strip()]
    missing = [n for n in names if n not in SET_FILES or not set_path(cfg.data_root, n).is_file()]
    if not names or missing:
        raise ConfigError(f"config field 'val_sets' = {cfg.val_sets!r}: {missing or 'no set'} not under "
                          f"{cfg.data_root}/sets; expected held-out sets of `make data` (e.g. content_eval,natural_eval)")
    share = [cfg.val_images // len(names) + (i < cfg.val_images % len(names)) for i in range(len(names))]
    return torch.cat([load_set(cfg.data_root, n, k) for n, k in zip(names, share)])


def plateau(history: list[tuple[int, float]], patience: int, min_improvement: float) -> bool:
    """True when none of the last ``patience`` validations improved the best earlier one by ``min_improvement``
    (relative): the loss has stopped improving."""
    if patience < 1 or len(history) <= patience:
        return False
    best_before = min(v for _, v in history[:-patience])
    return min(v for _, v in history[-patience:]) > best_before * (1 - min_improvement)
