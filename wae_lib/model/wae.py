"""WAEStyle (SPEC §1), the style-transfer WAE that joins the networks of wae_lib.model.networks:
z = [content latent | style latent], one decoder. ``encode_content``, ``encode_style``, ``decode``, ``reconstruct``,
``transfer``, ``interpolate_styles``; :func:`check_images`, the input check of that API (N x 3 x 64 x 64 in [0, 1]).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import torch
from torch import nn

from ..config import IMAGE_SIZE, Config, VGGSource
from .losses import gram_matrix, reparameterize
from .networks import ContentEncoder, Decoder, MapDecoder, StyleEncoder, data_dependent_init
from .vgg import VGG16Features


def check_images(x: torch.Tensor, name: str = "x", multiple: int = 0) -> None:
    """Inputs of the public API are N x 3 x 64 x 64 RGB images in [0, 1]; with ``multiple`` > 0 (a fully
    convolutional model's content, or any style image of it) N x 3 x H x W with H and W multiples of ``multiple``."""
    ok_shape = isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] == 3
    if ok_shape and multiple:
        ok_shape = x.shape[2] >= multiple and x.shape[3] >= multiple and not x.shape[2] % multiple \
            and not x.shape[3] % multiple
    elif ok_shape:
        ok_shape = tuple(x.shape[2:]) == (IMAGE_SIZE, IMAGE_SIZE)
    if not ok_shape:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        size = f"H x W (multiples of {multiple})" if multiple else f"{IMAGE_SIZE} x {IMAGE_SIZE}"
        raise ValueError(f"{name} must be an N x 3 x {size} float tensor in [0, 1], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype} (divide uint8 images by 255)")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{name} must hold values in [0, 1], got range [{lo:.3f}, {hi:.3f}]")


class WAEStyle(nn.Module):
    """Style-transfer WAE (SPEC §1): z = [content latent | style latent], one decoder.

    ``WAEStyle()`` builds the default model (content 128, Tables 1-2 at full width) with the VGG16 source
    chosen by ``config.vgg_source`` (``auto``: ImageNet if cached, else the offline HED stand-in), prints which
    source it used and records it: ``model.config.vgg_source`` is the resolved VGGSource. Transfer is one
    forward pass: content latent of the content image, style latent of the style image, decode.
    """

    def __init__(self, config: Config | None = None, vgg: VGG16Features | None = None, verbose: bool = True,
                 **overrides):
        super().__init__()
        config = config or Config()
        if overrides:
            config = config.replace(**overrides)
        self.vgg = vgg if vgg is not None else VGG16Features(config.vgg_source, config.style_layers)
        self.config = config if config.vgg_source == self.vgg.source else config.replace(vgg_source=self.vgg.source)
        missing = [n for n in config.style_layers if n not in self.vgg.layers]
        if missing:
            raise ValueError(f"the VGG16 extractor does not return style layer(s) {missing}")
        channels = self._layer_channels(self.vgg, config.style_layers)
        self.content_encoder = ContentEncoder(config.content_dim, config.gated, config.width,
                                              config.stochastic, config.logvar_max, config.content_norm,
                                              config.content_map)
        self.style_encoder = StyleEncoder(channels, config.style_dim_per_layer, config.style_hidden,
                                          config.style_depth, config.stochastic, config.logvar_max,
                                          standardize=config.gram_standardize)
        modulate = config.style_injection == "modulate"
        if config.content_map:
            self.decoder = MapDecoder(config.content_dim, config.content_map, config.style_dim, config.width,
                                      config.n_resblocks, config.upsample, modulate)
        else:
            self.decoder = Decoder(config.latent_dim, config.width, config.n_resblocks, config.upsample,
                                   config.style_dim if modulate else 0)
        if verbose:
            print(f"[wae_lib] VGG16 source: {self.vgg_source.label}", file=sys.stderr)

    @staticmethod
    def _layer_channels(vgg: VGG16Features, layers) -> dict[str, int]:
        with torch.no_grad():
            probe = vgg(torch.zeros(1, 3, 32, 32, device=next(vgg.parameters()).device))
        return {n: probe[n].shape[1] for n in layers}

    @property
    def vgg_source(self) -> VGGSource:
        return self.config.vgg_source

    @property
    def size_multiple(self) -> int:
        """0: the model takes 64 x 64 images only (the paper's vector code); else content images may be any
        H x W that are multiples of this (a content map's stride, issue 33)."""
        return IMAGE_SIZE // self.config.content_map if self.config.content_map else 0

    def check_content(self, x: torch.Tensor, name: str = "content") -> None:
        check_images(x, name, self.size_multiple)

    def check_style(self, x: torch.Tensor, name: str = "style") -> None:
        """Style images: 64 x 64 for the vector model; for a map model any multiple of 16 px (Grams are normalised by
        the size; the style nets were trained at 64 px, which the CLI and the explorer use)."""
        check_images(x, name, 16 if self.size_multiple else 0)

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    # ---------------- pieces ----------------
    def grams(self, feats: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: gram_matrix(feats[n]) for n in self.config.style_layers}

    def encode_content(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the content latent (Table 1)."""
        return self.content_encoder(x)

    def encode_style(self, x: torch.Tensor, grams: Mapping[str, torch.Tensor] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the style latent, from the image or precomputed Grams."""
        if grams is None:
            with torch.no_grad():  # the VGG is frozen and the Grams of the input need no gradient
                grams = self.grams(self.vgg(x))
        return self.style_encoder(grams)

    def encode_own_style(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The style latent of a content image, from its 64 px version: the style nets were trained on Gram matrices
        of 64 px images, so a larger content image of a fully convolutional model is shrunk (area filter) first."""
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = torch.nn.functional.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area")
        return self.encode_style(x)

    def decode(self, z_content: torch.Tensor, z_style: torch.Tensor) -> torch.Tensor:
        """Decoder of Table 2 on the concatenated latent (and, with style_injection="modulate", the style latent at
        every stage); returns N x 3 x 64 x 64 in [0, 1]. A map model (``content_map``) takes the map N x C x h x w
        (or, flattened, N x C*n*n of a 64 px image) and returns N x 3 x (h * 64 / n) x (w * 64 / n)."""
        if self.config.content_map:
            if z_content.dim() == 2:
                if z_content.shape[1] != self.config.content_latent_dim:
                    raise ValueError(f"a flat content latent must hold {self.config.content_latent_dim} numbers (the "
                                     f"{self.config.content_label} of a 64 px image), got {z_content.shape[1]}: "
                                     f"pass the map itself (N x C x h x w) for other sizes")
                z_content = z_content.view(-1, *self.config.content_shape)
            return self.decoder(z_content, z_style)
        return self.decoder(torch.cat([z_content, z_style], dim=1), z_style)

    # ---------------- training forward ----------------
    def forward(self, x: torch.Tensor, grams_x: Mapping[str, torch.Tensor] | None = None,
                noise: torch.Tensor | None = None, partner: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Encode, sample z = mean + exp(logvar / 2) * noise (when stochastic), decode.

        ``noise`` (N x latent_dim, content part first) lets the trainer draw it from its own generator so
        that resumed and multi-process runs see the same numbers; it is drawn here when omitted.
        ``partner`` (``objective="swap"``, issue 16): indices into the batch; image k's content latent is also
        decoded with image ``partner[k]``'s style latent (``x_swap``), with the VGG16 features of that output
        and, when ``w_cycle`` > 0, its re-encoded latent means. Inside forward, so DDP and compile see it all.
        """
        cfg = self.config
        mc, lc = self.encode_content(x)
        ms, ls = self.encode_style(x, grams_x)
        # a content map joins the flat latent as content_dim x N x N numbers (decode reshapes it back)
        mean, logvar = torch.cat([mc.flatten(1), ms], 1), torch.cat([lc.flatten(1), ls], 1)
        if cfg.stochastic:
            z = reparameterize(mean, logvar, torch.randn_like(mean) if noise is None else noise)
        else:
            z = mean
        z_c, z_s = z.split([cfg.content_latent_dim, cfg.style_dim], dim=1)
        out = {"z_content": z_c, "z_style": z_s, "z": z, "x_hat": self.decode(z_c, z_s), "logvar": logvar,
               "mean": mean}
        if partner is not None:
            out["x_swap"] = self.decode(z_c, z_s[partner])
            out["feats_swap"] = self.vgg(out["x_swap"])
            if cfg.w_cycle > 0:
                out["cycle_content"] = self.encode_content(out["x_swap"])[0].flatten(1)
                out["cycle_style"] = self.encode_style(out["x_swap"], self.grams(out["feats_swap"]))[0]
        return out

    def data_init(self, x: torch.Tensor) -> None:
        """Start both latents with unit variance across the images of ``x`` (see data_dependent_init); with
        ``gram_standardize``, first fit the style nets' input statistics on the same images."""
        if self.config.gram_standardize:
            with torch.no_grad():
                grams = self.grams(self.vgg(x))
            for name, net in self.style_encoder.nets.items():
                net.fit_standardization(grams[name])
        head = self.content_encoder.head if self.config.content_map else self.content_encoder.fc
        layers = [head] + [net.net[-1] for net in self.style_encoder.nets.values()]
        data_dependent_init(layers, lambda: self(x, noise=torch.zeros(x.shape[0], self.config.latent_dim,
                                                                      device=x.device)))

    # ---------------- inference API (deterministic: latent means) ----------------
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        self.check_content(x, "x")
        return self.decode(self.encode_content(x)[0], self.encode_own_style(x)[0]).float()

    @torch.no_grad()
    def transfer(self, content: torch.Tensor, style: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """Content latent of ``content``, style latent of ``style``, one decoder pass.

        ``style`` may hold 1 image (applied to every content image) or as many as ``content``.
        ``strength`` interpolates the style latent from the content image's own (0) to the style's (1).
        """
        self.check_content(content)
        self.check_style(style)
        if style.shape[0] not in (1, content.shape[0]):
            raise ValueError(f"style must hold 1 image or as many as content ({content.shape[0]}), got {style.shape[0]}")
        z_c = self.encode_content(content)[0]
        z_s = self.encode_style(style)[0].expand(content.shape[0], -1)
        z_own = self.encode_own_style(content)[0] if strength != 1.0 else None
        return self.decode(z_c, self.at_strength(z_own, z_s, strength)).float()

    @staticmethod
    def mix_styles(z_styles: torch.Tensor, weights) -> torch.Tensor:
        """One style latent (1 x style_dim) from several (K x style_dim), weighted (weights summing to 1): the CLI's
        ``--style-mix`` and the explorer's mix slider (two styles, weights 1 - mix and mix)."""
        w = torch.as_tensor(weights, dtype=z_styles.dtype, device=z_styles.device)
        return (w[:, None] * z_styles).sum(0, keepdim=True)

    @staticmethod
    def at_strength(z_own: torch.Tensor | None, z_style: torch.Tensor, strength: float) -> torch.Tensor:
        """The style latent at ``strength`` on the line from the content image's own (0) to ``z_style`` (1); values
        above 1 extrapolate. The one interpolation of :meth:`transfer`, the CLI's ``--alpha`` and the explorer's
        strength slider (``z_own`` may be None at strength 1)."""
        return z_style if strength == 1.0 else torch.lerp(z_own, z_style, float(strength))

    @torch.no_grad()
    def interpolate_styles(self, content: torch.Tensor, style_a: torch.Tensor, style_b: torch.Tensor,
                           alphas) -> torch.Tensor:
        """Decode ``content`` with style latents on the line from ``style_a`` (0) to ``style_b`` (1).

        Returns len(alphas) x N x 3 x 64 x 64.
        """
        self.check_content(content)
        self.check_style(style_a, "style_a")
        self.check_style(style_b, "style_b")
        z_c = self.encode_content(content)[0]
        za = self.encode_style(style_a)[0].expand(content.shape[0], -1)
        zb = self.encode_style(style_b)[0].expand(content.shape[0], -1)
        return torch.stack([self.decode(z_c, torch.lerp(za, zb, float(a))).float() for a in alphas])
