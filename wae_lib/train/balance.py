"""Loss balancing (SPEC §2: "each term's contribution is tuned by weights to be roughly equal") and the schedules.

The reconstruction terms (pixel, VGG features, Gram matrices, optional TV) are weighted one of three ways,
chosen by Config: explicit weights (``calibrate=False``); a pixel + penalty warm-up, then weights fixed once from
the mean raw terms of a few batches (``balance="fixed"``, PILOT.md); or, from step 0, each term divided by a
bias-corrected running mean of its own raw value (``balance="running"``, issue 8). The WAE penalty weight lambda
and the learning rate follow their own warm-up schedules.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from ..config import Config
from ..model.losses import calibrate_weights, term_targets


def loss_targets(cfg: Config) -> dict[str, float]:
    """Each reconstruction term's share of the total (SPEC §2: roughly equal), from the config; with
    ``objective="swap"`` the swapped-pair terms too (issue 16)."""
    swap = cfg.objective == "swap"
    return term_targets(cfg.style_layers, cfg.w_pixel, cfg.w_feature, cfg.w_gram, cfg.gram_layer_weights, cfg.w_tv,
                        swap_gram=cfg.w_swap_gram if swap else 0.0, swap_content=cfg.w_swap_content if swap else 0.0,
                        content_layers=cfg.swap_content_layers, cycle=cfg.w_cycle if swap else 0.0,
                        texture=cfg.w_texture if swap else 0.0)


@dataclasses.dataclass
class LossState:
    """What a checkpoint saves of the balance (``loss_state``), and the gradient-clipping statistic."""

    weights: dict[str, float]  # weights in force (explicit until calibrated; the latest running ones)
    calibrated: bool = False
    sums: dict[str, float] = dataclasses.field(default_factory=dict)  # raw terms summed during calibration
    count: int = 0
    grad_ema: float = 0.0  # running mean of the gradient norm (PILOT: clip above 3x it)
    running: list[float] = dataclasses.field(default_factory=list)  # balance=running: EMA of each raw term
    running_steps: int = 0

    @classmethod
    def initial(cls, cfg: Config) -> LossState:
        """Explicit weights; with fixed calibration, the warm-up before it trains on pixel + penalty only.

        PILOT.md's untried idea, confirmed here: with the VGG terms on from the first step the decoder
        stalls near a flat output (pixel MSE 0.078 -> 0.077 in 60 steps on 16 faces), without them it learns.
        With ``balance="running"`` every term is normalised by its own running mean from step 0 instead.
        """
        targets = loss_targets(cfg)
        if not cfg.calibrate or cfg.balance == "running":
            return cls(weights=targets, calibrated=not cfg.calibrate)
        w = {k: (v if k in ("pixel", "tv") else 0.0) for k, v in targets.items()}
        return cls(weights=w, calibrated=False)


class LossBalance:
    """The weight of each reconstruction term at every step; ``state`` is what a checkpoint saves.

    ``reduce`` averages a tensor over the processes of a DDP run (identity in one process), so every rank
    computes the same weights.
    """

    def __init__(self, cfg: Config, device: torch.device,
                 reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t):
        self.cfg, self.reduce = cfg, reduce
        self.state = LossState.initial(cfg)
        self.names = list(self.state.weights)
        self.targets = torch.tensor([loss_targets(cfg)[k] for k in self.names], device=device)
        self.running = torch.zeros(len(self.names), device=device)  # balance=running (a tensor: no host sync)

    @property
    def is_running(self) -> bool:
        return self.cfg.calibrate and self.cfg.balance == "running"

    def weights(self, raw: torch.Tensor) -> torch.Tensor:
        """The weight of each term (in ``names`` order) this step, given its raw values ``raw`` (no host sync).

        balance=running: target share / bias-corrected running mean of the term's raw value, the current
        batch included, so each term contributes about its share at every step (issue 8). Otherwise the
        weights in force (explicit, then calibrated once).
        """
        if self.is_running:
            m = self.cfg.balance_momentum
            self.running = m * self.running + (1 - m) * self.reduce(raw.detach())
            self.state.running_steps += 1
            return self.targets / (self.running / (1 - m ** self.state.running_steps)).clamp_min(1e-12)
        return torch.tensor([self.state.weights[k] for k in self.names], device=raw.device)

    def calibrate(self, terms: dict[str, torch.Tensor], step: int) -> dict | None:
        """balance=fixed, SPEC §2: after the warm-up, average the raw terms of step ``step`` (0-based) and the next
        few, then fix the weights. Returns the calibration record (for calibration.json) when they were fixed."""
        cfg, st = self.cfg, self.state
        if st.calibrated or cfg.balance == "running" or step < cfg.calibrate_after:
            return None
        raw = torch.stack([terms[k].float() for k in st.weights])
        raw = self.reduce(raw).tolist()
        for k, v in zip(st.weights, raw):
            st.sums[k] = st.sums.get(k, 0.0) + v
        st.count += 1
        if st.count < cfg.calibrate_batches:
            return None
        means = {k: v / st.count for k, v in st.sums.items()}
        st.weights = calibrate_weights(means, loss_targets(cfg))
        st.calibrated = True
        st.grad_ema = 0.0  # the loss scale just changed: restart the clipping statistics
        return {"step": step + 1, "raw_term_means": means, "weights": st.weights, "targets": loss_targets(cfg)}

    def sync(self) -> None:
        """Copy the running balance (a device tensor) into the serialisable ``state`` (a host sync)."""
        if self.is_running and self.state.running_steps:
            self.state.running = self.running.tolist()
            m = self.cfg.balance_momentum
            norm = [v / (1 - m ** self.state.running_steps) for v in self.state.running]
            self.state.weights = {k: t / max(v, 1e-12) for k, t, v in zip(self.names, self.targets.tolist(), norm)}

    def load(self, loss_state: dict) -> None:
        """Resume from a checkpoint's ``loss_state``."""
        self.state = LossState(**loss_state)
        if self.state.running:
            self.running = torch.tensor(self.state.running, device=self.targets.device)


def penalty_weight_at(step: int, cfg: Config) -> float:
    """lambda, ramped linearly from 0 over ``penalty_warmup`` steps (0: full lambda from the first step)."""
    if cfg.penalty_warmup and step < cfg.penalty_warmup:
        return cfg.penalty_weight * (step + 1) / cfg.penalty_warmup
    return cfg.penalty_weight


def lr_at(step: int, cfg: Config) -> float:
    """Linear warm-up over ``lr_warmup`` steps, then constant or cosine decay to ``lr_min_ratio * lr``."""
    if cfg.lr_warmup and step < cfg.lr_warmup:
        return cfg.lr * (step + 1) / cfg.lr_warmup
    if cfg.lr_decay == "none":
        return cfg.lr
    progress = (step - cfg.lr_warmup) / max(1, cfg.steps - cfg.lr_warmup)
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
