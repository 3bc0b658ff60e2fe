"""The paper's networks (SPEC §3, Tables 1-2); WAEStyle, the module that joins them, is wae_lib.model.wae.

- ContentEncoder: Table 1 (conv encoder, ELU, stride instead of pooling).
- StyleEncoder: SPEC §1/§3: frozen VGG16 -> Gram matrices of 3 layers -> per-layer 3-stage FC net -> 64 x 2.
- Decoder: Table 2 (FC to 4x4x1024, sub-pixel convs, 3 ResBlocks, conv 5x5, sigmoid output).
Our departures (issue 16, docs/DEPARTURES.md), off by default: instance norm in the content encoder
(``content_norm``) and the style latent modulating every decoder stage (``style_injection``, StyleModulation).
Weight normalisation throughout (SPEC §3), via ``torch.nn.utils.parametrizations.weight_norm``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def scaled(channels: int, width: float, even: bool = False) -> int:
    """Channel count of the paper times ``width`` (CPU profiles scale the networks down)."""
    n = max(2 if even else 1, int(round(channels * width)))
    return n + (n % 2) if even else n


def wn(module: nn.Module) -> nn.Module:
    """Weight normalisation (Salimans & Kingma 2016), which the paper uses to speed up training (SPEC §3)."""
    return weight_norm(module)


def he_init(module: nn.Module) -> nn.Module:
    """He (Kaiming) normal weights and zero bias, applied before weight normalisation takes them over.

    PyTorch's default init (kaiming-uniform with a=sqrt(5), std ~1/sqrt(3 fan_in)) shrinks the signal through
    Table 1's five layers and GLU gates: at init the content latent varied ~0.0003 across images, the
    decoder learned to ignore it, and transfers came out independent of the content image.
    """
    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)
    return module


def icnr_(weight: torch.Tensor, upscale: int = 2) -> torch.Tensor:
    """ICNR init (Aitken et al. 2017): a sub-pixel conv that starts as nearest-neighbour upsampling.

    PILOT.md: without it the decoder starts with a checkerboard. PixelShuffle reads output channel
    c * r^2 + k as sub-pixel k of channel c, so each base kernel is repeated r^2 times consecutively.
    """
    out_ch = weight.shape[0] // (upscale**2)
    base = torch.empty(out_ch, *weight.shape[1:])
    nn.init.kaiming_normal_(base, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(upscale**2, dim=0))
    return weight


@torch.no_grad()
def data_dependent_init(layers, run_forward, max_gain: float = 10.0) -> None:
    """Weight-norm's data-dependent initialisation (Salimans & Kingma 2016, section 3) of ``layers``: on one
    batch, set each layer's scale g and bias b so its outputs have zero mean and unit variance per unit.

    We apply it to the encoders' output layers only, so that the content and the style latents both start
    with unit variance across images. Why: with default init the style latent varied ~100x more than the
    content latent, the decoder learned to ignore content, and transfers came out independent of the
    content image; He init alone made content dominate and style vanish. Applied to every layer (as in the
    paper of weight norm) it amplified near-constant Gram features and the first steps diverged, so the
    gain is also capped at ``max_gain``.
    """
    handles = []

    def hook(module, inputs, output):
        # per unit: over the batch (Linear), over the batch and the positions (a conv's map, issue 33)
        flat = output.movedim(1, -1).reshape(-1, output.shape[1]) if output.dim() == 4 else output
        mean, std = flat.mean(0), flat.std(0).clamp_min(1.0 / max_gain)
        g = module.parametrizations.weight.original0
        g.div_(std.view(-1, *[1] * (g.dim() - 1)))
        module.bias.sub_(mean).div_(std)
        shape = (1, -1, 1, 1) if output.dim() == 4 else (1, -1)
        return (output - mean.view(shape)) / std.view(shape)

    for layer in layers:
        if not (isinstance(layer, (nn.Linear, nn.Conv2d)) and hasattr(layer, "parametrizations")):
            raise TypeError(f"data_dependent_init expects weight-normalised nn.Linear or nn.Conv2d layers, got {layer}")
        handles.append(layer.register_forward_hook(hook))
    try:
        run_forward()
    finally:
        for h in handles:
            h.remove()


def capped_logvar(raw: torch.Tensor, logvar_max: float) -> torch.Tensor:
    """Soft cap of the log-variance at ``logvar_max`` (PILOT.md: a free variance diverged)."""
    return logvar_max - F.softplus(logvar_max - raw)


# --------------------------------------------------------------------------------------------------
# Table 1: content encoder
# --------------------------------------------------------------------------------------------------
class ContentEncoder(nn.Module):
    """Content encoder of Table 1 (ELU, stride-2 downsampling, no pooling).

    | layer | kind | input    | output      | kernel | stride |
    | 1     | conv | 64x64x3  | 64x64x8     | 3      | 1      |
    | 2     | conv | 64x64x8  | 32x32x32    | 4      | 2      |
    | 3     | conv | 32x32x32 | 16x16x128   | 4      | 2      |
    | 4     | conv | 16x16x64 | 8x8x256     | 4      | 2      |
    | 5     | conv | 8x8x128  | 4x4x512     | 4      | 2      |
    | 6     | full | 4x4x256  | content x 2 | -      | -      |

    Table 1's next-layer inputs are half the printed outputs (128->64, 256->128, 512->256). Our default
    reading (SPEC §6, ``gated=True``): a gated linear unit halves the channels after convs 3-5. With
    ``gated=False`` the halving is read as a typo and each layer takes the previous output as printed.
    Outputs the mean and (capped) log-variance of a Gaussian over the content latent.
    """

    def __init__(self, content_dim: int = 128, gated: bool = True, width: float = 1.0,
                 stochastic: bool = True, logvar_max: float = -4.0, norm: str = "none", map_size: int = 0):
        super().__init__()
        self.content_dim, self.gated, self.stochastic, self.logvar_max = content_dim, gated, stochastic, logvar_max
        # norm="instance" (issue 16): each conv's output is instance-normalised before its activation, so the
        # latent keeps where things are and loses each channel's mean and spread, the image's palette
        # (MUNIT's content encoder, NVlabs/MUNIT networks.py ContentEncoder, norm='in')
        self.instance_norm = norm == "instance"
        c1, c2 = scaled(8, width), scaled(32, width)
        if gated:  # conv outputs as printed (128, 256, 512); GLU halves them to the next layer's input
            outs = [scaled(64, width) * 2, scaled(128, width) * 2, scaled(256, width) * 2]
            ins = [c2, outs[0] // 2, outs[1] // 2]
            final = outs[2] // 2
        else:
            outs = [scaled(128, width), scaled(256, width), scaled(512, width)]
            ins = [c2, outs[0], outs[1]]
            final = outs[2]
        # map_size > 0 (Config.content_map, issue 33): the convs down to that side, a 1x1 conv to the map (the Swapping
        # Autoencoder's structure code, Park et al. 2020); the vector path builds exactly what it built before
        self.map_size = map_size
        self.n_convs = 5 if not map_size else 1 + (64 // map_size).bit_length() - 1
        specs = [(3, c1, 3, 1, 1), (c1, c2, 4, 2, 1), (ins[0], outs[0], 4, 2, 1), (ins[1], outs[1], 4, 2, 1),
                 (ins[2], outs[2], 4, 2, 1)]
        for k, spec in enumerate(specs[:self.n_convs], 1):
            setattr(self, f"conv{k}", wn(he_init(nn.Conv2d(*spec))))
        if map_size:  # the channels after the last conv's activation
            self.head = wn(he_init(nn.Conv2d([c1, c2, ins[1], ins[2], final][self.n_convs - 1], 2 * content_dim, 1)))
        else:
            self.fc = wn(he_init(nn.Linear(4 * 4 * final, 2 * content_dim)))

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        return F.glu(h, dim=1) if self.gated else F.elu(h)

    def _norm(self, h: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(h) if self.instance_norm else h

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x * 2 - 1  # centred input: [0, 1] images carry a large DC offset
        for k in range(1, self.n_convs + 1):
            h = getattr(self, f"conv{k}")(h)
            h = F.elu(self._norm(h)) if k <= 2 else self._act(self._norm(h))
        if self.map_size:
            mean, raw = self.head(h).chunk(2, dim=1)
        else:
            mean, raw = self.fc(h.flatten(1)).chunk(2, dim=1)
        return mean, capped_logvar(raw, self.logvar_max)


# --------------------------------------------------------------------------------------------------
# SPEC §1, §3: style encoder
# --------------------------------------------------------------------------------------------------
class GramToLatent(nn.Module):
    """One VGG layer's "3-stage" fully connected net: upper triangle of the Gram -> 64 x 2 (SPEC §3, §6).

    The Gram is symmetric, so only its upper triangle (C(C+1)/2 values) is fed. Gram entries span
    orders of magnitude (0 to ~10^3, medians ~1 at relu1_1..relu3_1), so the input is log-compressed:
    log(1 + G / scale) (our choice; the paper does not say how Grams are fed). With ``standardize`` each
    entry is then centred and scaled by its mean and std over an init batch (buffers saved with the model):
    raw log-Grams vary little across images around a large mean, so the style latent started with a std of
    ~0.4 across images while the content latent had 1, and the decoder leaned on content (issue 8).
    """

    def __init__(self, channels: int, out_dim: int = 64, hidden: int = 256, depth: int = 3,
                 gram_scale: float = 1.0, standardize: bool = False):
        super().__init__()
        self.gram_scale, self.standardize = gram_scale, standardize
        rows, cols = torch.triu_indices(channels, channels)
        self.register_buffer("triu_flat", rows * channels + cols, persistent=False)
        self.register_buffer("in_mean", torch.zeros(len(rows)))
        self.register_buffer("in_std", torch.ones(len(rows)))
        dims = [len(rows)] + [hidden] * (depth - 1) + [2 * out_dim]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(wn(nn.Linear(d_in, d_out)))
            if i < len(dims) - 2:
                layers.append(nn.ELU())
        self.net = nn.Sequential(*layers)

    def features(self, gram: torch.Tensor) -> torch.Tensor:
        """The net's input: log-compressed upper triangle, standardised when enabled."""
        g = torch.log1p(gram.flatten(1).index_select(1, self.triu_flat).clamp_min(0) / self.gram_scale)
        return (g - self.in_mean) / self.in_std if self.standardize else g

    @torch.no_grad()
    def fit_standardization(self, gram: torch.Tensor, min_std: float = 1e-3) -> None:
        """Per-entry mean and std of the log-Gram over a batch (floor ``min_std``: constant entries stay ~0)."""
        g = torch.log1p(gram.flatten(1).index_select(1, self.triu_flat).clamp_min(0) / self.gram_scale)
        self.in_mean.copy_(g.mean(0))
        self.in_std.copy_(g.std(0).clamp_min(min_std))

    def forward(self, gram: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(gram))


class StyleEncoder(nn.Module):
    """Gram matrices of the frozen VGG16 at ``layers`` -> one FC net per layer -> concatenated style latent.

    Paper (SPEC §3): 64 variables per layer, 3 layers, 192 in all; each net outputs 64 x 2 (mean and spread).
    The VGG16 itself lives in WAEStyle (shared with the losses); this module maps Grams to latents.
    """

    def __init__(self, layer_channels: Mapping[str, int], dim_per_layer: int = 64, hidden: int = 256,
                 depth: int = 3, stochastic: bool = True, logvar_max: float = -4.0, standardize: bool = False):
        super().__init__()
        self.layers = tuple(layer_channels)
        self.stochastic, self.logvar_max = stochastic, logvar_max
        self.nets = nn.ModuleDict({
            name: GramToLatent(ch, dim_per_layer, hidden, depth, standardize=standardize)
            for name, ch in layer_channels.items()
        })

    def forward(self, grams: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [self.nets[n](grams[n]).chunk(2, dim=1) for n in self.layers]
        mean = torch.cat([m for m, _ in outs], dim=1)
        raw = torch.cat([r for _, r in outs], dim=1)
        return mean, capped_logvar(raw, self.logvar_max)


# --------------------------------------------------------------------------------------------------
# Table 2: decoder
# --------------------------------------------------------------------------------------------------
class SubPixelConv(nn.Module):
    """3x3 conv to 4x the channels, then PixelShuffle(2) (Shi et al. 2016): doubles H and W (Table 2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        conv = nn.Conv2d(c_in, c_out * 4, 3, 1, 1)
        icnr_(conv.weight)
        nn.init.zeros_(conv.bias)
        self.conv = wn(conv)  # weight norm takes its direction and scale from the ICNR init
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class ResizeConv(nn.Module):
    """Nearest-neighbour x2 upsampling, then a 3x3 conv (Odena et al. 2016, "Deconvolution and checkerboard
    artifacts"): every output pixel sees the same kernel, so no periodic pattern is built in (issue 8's
    alternative to Table 2's sub-pixel convs, ``Config.upsample="resize"``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = wn(he_init(nn.Conv2d(c_in, c_out, 3, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


UPSAMPLERS = {"subpixel": SubPixelConv, "resize": ResizeConv}


class StyleModulation(nn.Module):
    """IN(h) * (1 + g(s)) + b(s): one decoder stage's feature statistics set by the style latent ``s``
    (``Config.style_injection="modulate"``, issue 16).

    MUNIT's AdaIN (Huang et al. 2018, NVlabs/MUNIT networks.py AdaptiveInstanceNorm2d, with the affine
    parameters from an MLP of the style code) and StyleGAN's modulation (Karras et al. 2019): the content path
    keeps the layout, the style latent the means and spreads of every channel. g and b are one linear map of
    ``s``, zero at init (no weight norm: it is undefined at zero weights), so training starts from IN(h).
    """

    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.affine = nn.Linear(style_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: torch.Tensor, z_style: torch.Tensor) -> torch.Tensor:
        gain, bias = self.affine(z_style).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return F.instance_norm(h) * (1 + gain) + bias


class ResBlock(nn.Module):
    """x + conv3x3(relu(conv3x3(relu(x)))) (SPEC §6: Fig. 4 is not in the text)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = wn(nn.Conv2d(channels, channels, 3, 1, 1))
        self.conv2 = wn(nn.Conv2d(channels, channels, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Decoder(nn.Module):
    """Decoder of Table 2 (ReLU activations, sigmoid output in [0, 1]).

    full -> 4x4x1024; sub-pixel conv (3x3) -> 8x8x512; ResBlock x3 at 8x8x512; sub-pixel conv -> 16x16x256;
    sub-pixel conv -> 32x32x128; sub-pixel conv -> 64x64x64; conv 5x5 -> 64x64x3.

    With ``style_dim`` > 0 (``style_injection="modulate"``) each upsampling's output is also modulated by the
    style latent (:class:`StyleModulation`) before its ReLU; the input stays the concatenated latent.
    """

    def __init__(self, latent_dim: int, width: float = 1.0, n_resblocks: int = 3, upsample: str = "subpixel",
                 style_dim: int = 0):
        super().__init__()
        c = [scaled(n, width) for n in (1024, 512, 256, 128, 64)]
        up = UPSAMPLERS[upsample]
        self.c0 = c[0]
        self.fc = wn(nn.Linear(latent_dim, 4 * 4 * c[0]))
        self.up1 = up(c[0], c[1])
        self.res = nn.Sequential(*[ResBlock(c[1]) for _ in range(n_resblocks)])
        self.up2 = up(c[1], c[2])
        self.up3 = up(c[2], c[3])
        self.up4 = up(c[3], c[4])
        self.out = wn(nn.Conv2d(c[4], 3, 5, 1, 2))
        self.mods = nn.ModuleList([StyleModulation(style_dim, ch) for ch in c[1:]]) if style_dim else None

    def forward(self, z: torch.Tensor, z_style: torch.Tensor | None = None) -> torch.Tensor:
        if self.mods is not None and z_style is None:
            raise ValueError("this decoder modulates every stage by the style latent: pass z_style")

        def stage(k: int, h: torch.Tensor) -> torch.Tensor:
            return F.relu(h if self.mods is None else self.mods[k](h, z_style))

        h = F.relu(self.fc(z)).view(-1, self.c0, 4, 4)
        h = self.res(stage(0, self.up1(h)))
        h = stage(1, self.up2(h))
        h = stage(2, self.up3(h))
        h = stage(3, self.up4(h))
        return torch.sigmoid(self.out(h))


class MapDecoder(nn.Module):
    """The decoder of a spatial content map (``Config.content_map`` = N, issue 33): Table 2 from the stage at N x N
    on, with the fully connected input layer replaced by a 3x3 conv of the map.

    conv 3x3 (map -> Table 2's channels at N x N) -> ResBlock x3 -> sub-pixel convs up to 64 x 64 (Table 2's channels
    at each size) -> conv 5x5 -> sigmoid. With ``style_dim`` > 0 (``style_injection="modulate"``) the input conv's and
    each upsampling's outputs are modulated by the style latent (:class:`StyleModulation`); with ``concat`` the style
    latent is tiled over the map's positions and joins its channels (the paper's concatenated latent, read spatially).
    Fully convolutional: a 2N x 2N map decodes to 128 x 128.
    """

    CHANNELS = {4: 1024, 8: 512, 16: 256, 32: 128, 64: 64}  # Table 2: the decoder's channels at each side

    def __init__(self, map_channels: int, map_size: int, style_dim: int, width: float = 1.0, n_resblocks: int = 3,
                 upsample: str = "subpixel", modulate: bool = True):
        super().__init__()
        sizes = [map_size * 2**k for k in range((64 // map_size).bit_length())]  # e.g. 16, 32, 64
        c = [scaled(self.CHANNELS[n], width) for n in sizes]
        self.concat_style = style_dim if not modulate else 0
        self.inp = wn(he_init(nn.Conv2d(map_channels + self.concat_style, c[0], 3, 1, 1)))
        self.res = nn.Sequential(*[ResBlock(c[0]) for _ in range(n_resblocks)])
        up = UPSAMPLERS[upsample]
        self.ups = nn.ModuleList([up(a, b) for a, b in zip(c[:-1], c[1:])])
        self.out = wn(nn.Conv2d(c[-1], 3, 5, 1, 2))
        self.mods = nn.ModuleList([StyleModulation(style_dim, ch) for ch in c]) if modulate else None

    def forward(self, z_map: torch.Tensor, z_style: torch.Tensor) -> torch.Tensor:
        def stage(k: int, h: torch.Tensor) -> torch.Tensor:
            return F.relu(h if self.mods is None else self.mods[k](h, z_style))

        if self.concat_style:
            tiled = z_style[:, :, None, None].expand(-1, -1, *z_map.shape[2:])
            z_map = torch.cat([z_map, tiled.to(z_map.dtype)], dim=1)
        h = self.res(stage(0, self.inp(z_map)))
        for k, up in enumerate(self.ups, 1):
            h = stage(k, up(h))
        return torch.sigmoid(self.out(h))


class LatentDiscriminator(nn.Module):
    """WAE-GAN's latent discriminator (WAE paper: an MLP with 4 hidden layers of 512 ReLU units)."""

    def __init__(self, latent_dim: int, hidden: int = 512, depth: int = 4):
        super().__init__()
        dims = [latent_dim] + [hidden] * depth
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(1)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
