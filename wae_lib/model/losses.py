"""Loss maths as pure tensor functions (SPEC §2, §6), each citing its source.

Reconstruction error (SPEC §2) = pixel squared error + squared error of VGG16 features at the style
layers ("the style network's outputs up to its 3rd layer") + squared error of the Gram matrices, plus
a Wasserstein-autoencoder penalty between the prior and the encoded latents (Tolstikhin et al. 2018).
Our swapped-pair terms (issue 16, ``Config.objective="swap"``; docs/DEPARTURES.md) score the decoding of one
image's content latent with another image's style latent: against the partner's Gram matrices, against the own
image's instance-normalised features, and (optionally) through a latent cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # WAE reference code (tolstikhin/wae, wae.py mmd_penalty)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Normalised Gram matrix G_ij = <F_i, F_j> / (C * H * W) of N x C x H x W features (Gatys et al. 2016).

    The normalisation (Johnson et al. 2016) makes Grams of different layers and image sizes comparable.
    Computed in float32 even under autocast: bf16 sums over H*W lose the small off-diagonal entries.
    """
    n, c, h, w = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        f = features.reshape(n, c, h * w).float()
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def pixel_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error (SPEC §2, first term)."""
    return F.mse_loss(x.float(), y.float())


def feature_mse(feats_x: Mapping[str, torch.Tensor], feats_y: Mapping[str, torch.Tensor],
                layers: Sequence[str]) -> torch.Tensor:
    """Mean over layers of the mean squared error of VGG16 activations (SPEC §2, second term)."""
    return torch.stack([F.mse_loss(feats_x[n].float(), feats_y[n].float()) for n in layers]).mean()


def gram_mse(grams_x: Mapping[str, torch.Tensor], grams_y: Mapping[str, torch.Tensor],
             layers: Sequence[str]) -> torch.Tensor:
    """Mean over layers of the mean squared error of Gram matrices (SPEC §2, third term)."""
    return torch.stack([F.mse_loss(grams_x[n], grams_y[n]) for n in layers]).mean()


def squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances, ||a_i||^2 + ||b_j||^2 - 2 a_i.b_j, as in the WAE code; of N x d
    samples, or of ... x N x d batches of them (one matrix per leading index)."""
    na = (a * a).sum(-1, keepdim=True)
    nb = (b * b).sum(-1, keepdim=True)
    return (na + nb.transpose(-1, -2) - 2.0 * a @ b.transpose(-1, -2)).clamp_min(0.0)


def mmd_imq(z_q: torch.Tensor, z_p: torch.Tensor, prior_sigma: float = 1.0,
            scales: Sequence[float] = IMQ_SCALES) -> torch.Tensor:
    """WAE-MMD with the multi-scale inverse multiquadratic kernel, exactly as the WAE reference code.

    k(x, y) = C / (C + ||x - y||^2) with C = 2 * d * sigma^2 * s for s in (.1, .2, .5, 1, 2, 5, 10)
    (Tolstikhin et al., "Wasserstein Auto-Encoders", ICLR 2018; github.com/tolstikhin/wae wae.py).
    Within-sample terms exclude the diagonal and divide by n(n-1) (unbiased); the cross term averages
    all n^2 pairs, as the reference does.
    """
    if z_q.shape != z_p.shape or z_q.dim() != 2:
        raise ValueError(f"mmd_imq expects two N x d samples of the same shape, got {tuple(z_q.shape)} and {tuple(z_p.shape)}")
    n, d = z_q.shape
    if n < 2:
        raise ValueError("mmd_imq needs at least 2 samples per batch")
    with torch.autocast(device_type=z_q.device.type, enabled=False):
        return _mmd_imq_fp32(z_q.float(), z_p.float(), prior_sigma, scales)


def _mmd_imq_fp32(z_q: torch.Tensor, z_p: torch.Tensor, prior_sigma: float, scales: Sequence[float]) -> torch.Tensor:
    """The statistic of N x d samples, or its mean over the leading index of P x N x d batches (map_mmd)."""
    n, d = z_q.shape[-2:]
    d_qq, d_pp, d_qp = squared_distances(z_q, z_q), squared_distances(z_p, z_p), squared_distances(z_q, z_p)
    off_diag = 1.0 - torch.eye(n, device=z_q.device, dtype=z_q.dtype)
    c_base = 2.0 * d * prior_sigma**2
    batches = d_qq.numel() // (n * n)
    stat = z_q.new_zeros(())
    for s in scales:
        c = c_base * s
        within = ((c / (c + d_qq) + c / (c + d_pp)) * off_diag).sum() / (n * n - n)
        cross = (c / (c + d_qp)).sum() * 2.0 / (n * n)
        stat = stat + within / batches - cross / batches  # batches = 1: the N x d formula, term for term
    return stat


def map_mmd(z_q: torch.Tensor, z_p: torch.Tensor, prior_sigma: float = 1.0,
            scales: Sequence[float] = IMQ_SCALES) -> torch.Tensor:
    """The WAE penalty of a spatial content map (issue 33): :func:`mmd_imq` at each position, averaged over them.

    ``z_q``, ``z_p``: N x C x H x W encoded and prior maps. At each position the N images' C numbers are a sample
    that should look like N(0, sigma^2 I_C): the prior of every position's code, as the Swapping Autoencoder's
    structure code is a per-position code (Park et al. 2020). Why per position rather than one MMD of the
    flattened C*H*W vector: with N (16 on CPU) samples in 2,048 dimensions the kernel sees nearly equal distances
    between any two samples and the statistic says little; 256 small MMDs in C dimensions each see N samples
    where N >> C. (The same batch's positions are not independent, which makes this a penalty on the marginal
    of each position, not on the joint.)
    """
    if z_q.shape != z_p.shape or z_q.dim() != 4:
        raise ValueError(f"map_mmd expects two N x C x H x W maps of the same shape, got {tuple(z_q.shape)} and "
                         f"{tuple(z_p.shape)}")
    if z_q.shape[0] < 2:
        raise ValueError("map_mmd needs at least 2 samples per batch")
    with torch.autocast(device_type=z_q.device.type, enabled=False):
        q = z_q.float().flatten(2).permute(2, 0, 1)  # P x N x C: one sample of N codes per position
        p = z_p.float().flatten(2).permute(2, 0, 1)
        return _mmd_imq_fp32(q, p, prior_sigma, scales)


def gan_discriminator_loss(logits_prior: torch.Tensor, logits_encoded: torch.Tensor) -> torch.Tensor:
    """WAE-GAN: the latent discriminator tells prior samples (1) from encoded ones (0) (WAE paper, Alg. 1)."""
    return (F.binary_cross_entropy_with_logits(logits_prior, torch.ones_like(logits_prior))
            + F.binary_cross_entropy_with_logits(logits_encoded, torch.zeros_like(logits_encoded)))


def gan_encoder_penalty(logits_encoded: torch.Tensor) -> torch.Tensor:
    """WAE-GAN: the encoder's penalty, -log D(z_q) (non-saturating form used by the WAE reference code)."""
    return F.binary_cross_entropy_with_logits(logits_encoded, torch.ones_like(logits_encoded))


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Gaussian encoder sample mean + exp(logvar / 2) * noise, noise ~ N(0, I) (Kingma & Welling 2014)."""
    return mean + torch.exp(0.5 * logvar) * noise.to(mean.dtype)


def calibrate_weights(raw_terms: Mapping[str, float], targets: Mapping[str, float] | None = None,
                      floor: float = 1e-12) -> dict[str, float]:
    """Weights that make each term contribute about its target (SPEC §2: "roughly equal" contributions).

    ``raw_terms`` are unweighted term values averaged over a few batches after a warm-up (PILOT.md: the
    very first batch is a flat grey output and gives fragile weights). ``targets`` defaults to 1 per term;
    ``term_targets`` splits each VGG term equally over its layers, as the pilot did.
    """
    targets = targets or {}
    return {name: targets.get(name, 1.0) / max(float(value), floor) for name, value in raw_terms.items()}


def term_targets(layers: Sequence[str], pixel: float = 1.0, feature: float = 1.0, gram: float = 1.0,
                 gram_layer_weights: Sequence[float] = (), tv: float = 0.0, swap_gram: float = 0.0,
                 swap_content: float = 0.0, content_layers: Sequence[str] = (), cycle: float = 0.0,
                 texture: float = 0.0) -> dict[str, float]:
    """Each term's share of the reconstruction loss (SPEC §2: "roughly equal", so 1 : 1 : 1 by default).

    The feature share is split equally over the VGG layers; the Gram share by ``gram_layer_weights``
    (relative, one per layer; empty = equal). ``tv`` > 0 adds a total-variation term with that share. The
    swapped-pair terms (:func:`swap_terms`, :func:`cycle_terms`, the texture critic's) join with their shares when
    > 0: ``swap_gram`` split like the Gram share, ``swap_content`` equally over ``content_layers``, ``cycle`` over
    its two latents, ``texture`` whole.
    """
    rel = list(gram_layer_weights) or [1.0] * len(layers)
    if len(rel) != len(layers) or sum(rel) <= 0:
        raise ValueError(f"gram_layer_weights {list(gram_layer_weights)} must hold {len(layers)} non-negative "
                         f"numbers with a positive sum (one per style layer {list(layers)})")
    out = {"pixel": pixel}
    for n in layers:
        out[f"feature/{n}"] = feature / len(layers)
    for n, r in zip(layers, rel):
        out[f"gram/{n}"] = gram * r / sum(rel)
    if tv > 0:
        out["tv"] = tv
    if swap_gram > 0:
        for n, r in zip(layers, rel):
            out[f"swap_gram/{n}"] = swap_gram * r / sum(rel)
    if swap_content > 0:
        for n in content_layers:
            out[f"swap_content/{n}"] = swap_content / len(content_layers)
    if cycle > 0:
        out["cycle/content"] = out["cycle/style"] = cycle / 2
    if texture > 0:
        out["texture"] = texture
    return out


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of vertically and horizontally adjacent pixels (anisotropic L2 TV, as in
    Johnson et al. 2016's feed-forward style transfer); penalises the 2-4 px dot pattern of the decoder."""
    x = x.float()
    return ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + ((x[..., :, 1:] - x[..., :, :-1]) ** 2).mean()


def reconstruction_terms(x: torch.Tensor, x_hat: torch.Tensor, feats_x: Mapping[str, torch.Tensor],
                         feats_hat: Mapping[str, torch.Tensor], layers: Sequence[str],
                         grams_x: Mapping[str, torch.Tensor] | None = None, tv: bool = False
                         ) -> dict[str, torch.Tensor]:
    """The unweighted reconstruction terms of SPEC §2, one per VGG layer: pixel, feature/<l>, gram/<l>
    (and ``tv``, the total variation of the reconstruction, when asked: not in the paper).

    Per-layer terms let calibration balance layers whose Gram magnitudes differ by orders of magnitude.
    """
    grams_x = grams_x if grams_x is not None else {n: gram_matrix(feats_x[n]) for n in layers}
    grams_hat = {n: gram_matrix(feats_hat[n]) for n in layers}
    terms = {"pixel": pixel_mse(x_hat, x)}
    for n in layers:
        terms[f"feature/{n}"] = feature_mse(feats_hat, feats_x, [n])
    for n in layers:
        terms[f"gram/{n}"] = gram_mse(grams_hat, grams_x, [n])
    if tv:
        terms["tv"] = total_variation(x_hat)
    return terms


def instance_normalized_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error of N x C x H x W features after instance normalisation of each (per image and channel:
    zero mean, unit variance over H x W): MUNIT's content loss (Huang et al. 2018, NVlabs/MUNIT trainer.py
    compute_vgg_loss, after Johnson et al. 2016's perceptual loss). Channel means and spreads are the style's,
    so this asks for the same layout and structure, not the same colours."""
    with torch.autocast(device_type=a.device.type, enabled=False):
        return F.mse_loss(F.instance_norm(a.float()), F.instance_norm(b.float()))


def swap_terms(feats_swap: Mapping[str, torch.Tensor], feats_content: Mapping[str, torch.Tensor],
               grams_style: Mapping[str, torch.Tensor], layers: Sequence[str], content_layers: Sequence[str]
               ) -> dict[str, torch.Tensor]:
    """The unweighted swapped-pair terms of an output decoded from one image's content latent and a partner's
    style latent (issue 16; the pairing of MUNIT / DRIT, Lee et al. 2018, and the Swapping Autoencoder, Park
    et al. 2020): ``swap_gram/<l>``, the Gram error against the partner at every style layer (Gatys et al.
    2016), and ``swap_content/<l>``, the instance-normalised feature error against the content image.
    ``feats_swap``: VGG16 features of the swapped output; ``feats_content``: of the content images;
    ``grams_style``: the partners' Gram matrices, row k the partner of content image k."""
    terms = {f"swap_gram/{n}": F.mse_loss(gram_matrix(feats_swap[n]), grams_style[n]) for n in layers}
    for n in content_layers:
        terms[f"swap_content/{n}"] = instance_normalized_mse(feats_swap[n], feats_content[n])
    return terms


def cycle_terms(content_again: torch.Tensor, style_again: torch.Tensor, content: torch.Tensor,
                style: torch.Tensor) -> dict[str, torch.Tensor]:
    """The latent cycle of a swapped output (MUNIT's latent reconstruction, DRIT's cross-cycle in latent space):
    its re-encoded content latent against the content image's, its re-encoded style latent against the
    partner's. The targets (encoder means of the real images) are detached: the cycle shapes the decoder and
    the encoders' reading of generated images, not the real images' latents (which the WAE penalty holds)."""
    return {"cycle/content": F.mse_loss(content_again.float(), content.detach().float()),
            "cycle/style": F.mse_loss(style_again.float(), style.detach().float())}
