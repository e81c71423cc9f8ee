"""Training losses: cross entropy and the multi-class focal loss (Lin et al., 2017), searched by name.

    FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)

averaged over the batch (no normalisation by the alphas), computed from ``log_softmax`` in float32.
With ``gamma = 0`` and no alpha it equals cross entropy.

Models with per-horizon risks (:class:`HorizonLoss`) add to it the binary cross entropy of the risk of
hypotension by each horizon against its target, averaged over the labelled (window, horizon) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hypo.errors import ConfigError

LOSSES: tuple[str, ...] = ("ce", "focal")
N_CLASSES = 3


def _alpha_tensor(alpha: Sequence[float] | None) -> torch.Tensor | None:
    if alpha is None:
        return None
    a = torch.as_tensor([float(v) for v in alpha], dtype=torch.float32)
    if a.shape != (N_CLASSES,) or not bool((a > 0).all()) or not bool(torch.isfinite(a).all()):
        raise ConfigError(f"alpha must be {N_CLASSES} positive numbers (normal, hypo, hyper), got {list(alpha)}")
    return a


class FocalLoss(nn.Module):
    """Multi-class focal loss on logits.

    Args:
        gamma: Focusing parameter (>= 0); 0 gives cross entropy.
        alpha: Optional per-class weights (normal, hypotension, hypertension).
    """

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | None = None) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ConfigError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        a = _alpha_tensor(alpha)
        self.register_buffer("alpha", a if a is not None else torch.ones(N_CLASSES), persistent=False)
        self.weighted = a is not None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean focal loss of ``logits`` [batch, 3] against class indices ``target`` [batch]."""
        logp = F.log_softmax(logits.float(), dim=1).gather(1, target.long()[:, None])[:, 0]
        loss = -logp
        if self.gamma:
            # 1 - p_t via expm1 stays accurate near p_t = 1; the floor keeps pow's gradient finite for gamma < 1.
            loss = loss * (-torch.expm1(logp)).clamp_min(1e-12) ** self.gamma
        if self.weighted:
            loss = loss * self.alpha[target.long()]
        return loss.mean()

    def extra_repr(self) -> str:
        """Shown in ``repr(module)``."""
        return f"gamma={self.gamma}, alpha={self.alpha.tolist() if self.weighted else None}"


def make_loss(name: str, gamma: float = 0.0, alpha: Sequence[float] | None = None) -> nn.Module:
    """The loss called ``name``.

    Args:
        name: ``"ce"`` (cross entropy; ``alpha`` as class weights, PyTorch's weighted mean) or ``"focal"``.
        gamma: Focal gamma; must be 0 for ``"ce"``.
        alpha: Optional per-class weights.

    Returns:
        A module ``loss(logits, target) -> scalar``.

    Raises:
        ConfigError: On an unknown name or invalid gamma / alpha.
    """
    if name == "ce":
        if gamma:
            raise ConfigError(f"gamma applies to the focal loss only; got gamma={gamma} with loss 'ce'")
        return nn.CrossEntropyLoss(weight=_alpha_tensor(alpha))
    if name == "focal":
        return FocalLoss(gamma, alpha)
    raise ConfigError(f"loss must be one of {LOSSES}, got {name!r}")


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, accurate at both ends (Maechler 2012)."""
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def horizon_bce(horizon_logits: torch.Tensor, target: torch.Tensor, head: str) -> torch.Tensor:
    """Mean binary cross entropy of the per-horizon risks against ``target`` [batch, H] (1, 0; -1 masked).

    ``hazard``: the risk by ``h_k`` is ``1 - S_k`` with ``log S_k = sum_{j<=k} logsigmoid(-a_j)`` (the same
    formula as :func:`hypo.learn.models.cumulative_risk`, in log space); ``independent``: ``sigmoid(a_k)``.
    """
    a = horizon_logits.float()
    known = target >= 0
    if not bool(known.any()):
        return a.sum() * 0.0
    y = target.clamp_min(0).float()
    if head == "hazard":
        log_s = torch.cumsum(F.logsigmoid(-a), dim=1).clamp_max(-1e-7)
        per = -(y * _log1mexp(log_s) + (1 - y) * log_s)
    else:
        per = F.binary_cross_entropy_with_logits(a, y, reduction="none")
    return per[known].mean()


class HorizonLoss(nn.Module):
    """The class loss of the primary horizon plus :func:`horizon_bce` of the per-horizon risks.

    Called as ``loss(outputs, target)``: ``outputs`` [batch, 3 + H] (class logits, then the per-horizon logits),
    ``target`` [batch, 1 + H] (the primary class, then the hypotension-by-horizon targets, -1 unknown).
    """

    def __init__(self, base: nn.Module, head: str) -> None:
        super().__init__()
        self.base = base
        self.head = head

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The summed loss (a scalar)."""
        return self.base(outputs[:, :N_CLASSES], target[:, 0]) + horizon_bce(outputs[:, N_CLASSES:], target[:, 1:],
                                                                              self.head)
