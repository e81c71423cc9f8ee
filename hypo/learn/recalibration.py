"""Recalibration of a frozen model's class probabilities for another site: temperature, vector, isotonic.

A model moved to another hospital usually still ranks windows well but its probabilities no longer match the
frequencies there (another patient mix, another monitor). These maps are fitted on a share of the new site's
subjects and change only the probabilities, never the model:

- ``temperature``: ``softmax(log p / T)``, one parameter. ``log p`` are the model's logits up to a per-window
  constant, which softmax ignores, so this is exactly temperature scaling of the logits (Guo et al. 2017). It
  keeps every window's most probable class. With three classes it does **not** keep every one-vs-rest ranking
  exactly: ``p_k`` of two windows can swap order when their other two classes split differently, so each class's
  AUROC can move a little (rarely beyond the third decimal); with two classes it would keep them exactly.
- ``vector``: ``softmax(w * log p + b)``, a weight and a bias per class (the bias of ``normal`` fixed at 0, since
  softmax ignores a common shift). On the log-probabilities rather than the raw logits: for temperature
  scaling the two are the same; per class, this is the diagonal Dirichlet calibration of Kull et al. (2019).
- ``isotonic``: per class one-vs-rest, a monotone step function of ``p_k`` (scikit-learn's
  ``IsotonicRegression``, interpolated linearly between its points), then renormalised to sum to 1. Steps make
  ties, and renormalising mixes the classes, so AUROC can change (ties lower it, usually slightly).

All three are TorchScript modules taking probabilities ``[n, 3]`` and returning probabilities that sum to 1
(NaN rows stay NaN); the same module scores the evaluation and goes inside a recalibrated export
(:class:`Recalibrated`), so ``hypo predict`` applies exactly what was evaluated.

    calib = fit_recalibration("temperature", probs_cal, y_cal)
    probs_after = apply_recalibration(calib, probs_test)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from hypo.errors import ConfigError

METHODS: tuple[str, ...] = ("none", "temperature", "vector", "isotonic")
EPS = 1e-12  # probabilities are clipped to this before the log (a float32 softmax can return exactly 0)
T_RANGE = (0.05, 20.0)  # temperatures searched


def log_probs(probs: np.ndarray) -> np.ndarray:
    """``log(max(p, EPS))`` in float64 (the canonical logits of the probabilities)."""
    return np.log(np.clip(np.asarray(probs, np.float64), EPS, 1.0))


class ScaledLogProbs(nn.Module):
    """``softmax(weight * log p + bias)``: temperature scaling (weight ``1/T``, bias 0) or vector scaling."""

    def __init__(self, weight, bias, method: str) -> None:
        super().__init__()
        self.register_buffer("weight", torch.as_tensor(np.asarray(weight, np.float32)))
        self.register_buffer("bias", torch.as_tensor(np.asarray(bias, np.float32)))
        self.method = method
        self.eps = EPS

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """Recalibrated probabilities of probabilities ``p`` [n, 3]."""
        return torch.softmax(torch.log(p.clamp(self.eps, 1.0)) * self.weight + self.bias, dim=1)

    def describe(self) -> dict[str, Any]:
        """Method and parameters as plain values."""
        w, b = self.weight.tolist(), self.bias.tolist()
        if self.method == "temperature":
            return {"method": "temperature", "temperature": 1.0 / w[0]}
        return {"method": "vector", "weight": w, "bias": b}


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``np.interp(x, xp, fp)`` (clipped at both ends) for increasing ``xp`` of at least two points."""
    m = xp.size(0)
    idx = torch.searchsorted(xp, x.contiguous(), right=True).clamp(1, m - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    y0, y1 = fp[idx - 1], fp[idx]
    t = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return y0 + t * (y1 - y0)


class IsotonicPerClass(nn.Module):
    """Per class, a monotone map of ``p_k`` (isotonic, one-vs-rest), then renormalised to sum to 1.

    The points of every class are padded to one length with points beyond 1 (where no probability lies)
    holding the last value, so the three maps are one buffer each.
    """

    def __init__(self, xs: list[np.ndarray], ys: list[np.ndarray]) -> None:
        super().__init__()
        m = max(len(x) for x in xs) + 1
        px, py = np.zeros((len(xs), m), np.float32), np.zeros((len(xs), m), np.float32)
        for k, (x, y) in enumerate(zip(xs, ys)):
            pad = m - len(x)
            px[k] = np.r_[x, 2.0 + np.arange(pad)]
            py[k] = np.r_[y, np.full(pad, y[-1])]
        self.register_buffer("xp", torch.as_tensor(px))
        self.register_buffer("fp", torch.as_tensor(py))
        self.n_points = [int(len(x)) for x in xs]

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """Recalibrated probabilities of probabilities ``p`` [n, 3]."""
        cols = [_interp(p[:, k], self.xp[k], self.fp[k]) for k in range(self.xp.size(0))]
        q = torch.stack(cols, dim=1)
        s = q.sum(dim=1, keepdim=True)
        out = torch.where(s > 0, q / s.clamp_min(1e-30), p)  # every class mapped to 0: keep the model's row
        return torch.where(torch.isnan(p).any(dim=1, keepdim=True), torch.full_like(p, float("nan")), out)

    def describe(self) -> dict[str, Any]:
        """Method and the size of each class's map."""
        return {"method": "isotonic", "points_per_class": list(self.n_points)}


class Recalibrated(nn.Module):
    """A model (windows in, probabilities out) followed by a recalibration map: what a recalibrated export runs."""

    def __init__(self, base: nn.Module, calibration: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.calibration = calibration

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Recalibrated probabilities [n, 3] of windows ``x``."""
        return self.calibration(self.base(x))


def _nll(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean multi-class cross entropy of ``logits`` [n, C] and its gradient with respect to them."""
    z = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    loss = float(np.mean(lse - z[np.arange(len(y)), y]))
    grad = np.exp(z - lse[:, None])
    grad[np.arange(len(y)), y] -= 1.0
    return loss, grad / len(y)


def fit_temperature(probs, y) -> float:
    """The temperature minimising the cross entropy of ``softmax(log p / T)`` on (``probs``, ``y``)."""
    from scipy.optimize import minimize_scalar

    lp, yy = log_probs(probs), np.asarray(y, np.int64)
    res = minimize_scalar(lambda log_t: _nll(lp / math.exp(log_t), yy)[0], bounds=tuple(map(math.log, T_RANGE)),
                          method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def fit_vector(probs, y) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias per class minimising the cross entropy of ``softmax(w * log p + b)`` (bias[0] = 0)."""
    from scipy.optimize import minimize

    lp, yy = log_probs(probs), np.asarray(y, np.int64)
    c = lp.shape[1]

    def objective(theta):
        w, b = theta[:c], np.r_[0.0, theta[c:]]
        loss, g = _nll(lp * w + b, yy)
        return loss, np.r_[(g * lp).sum(axis=0), g.sum(axis=0)[1:]]

    t0 = 1.0 / fit_temperature(probs, y)
    res = minimize(objective, np.r_[np.full(c, t0), np.zeros(c - 1)], jac=True, method="L-BFGS-B")
    return res.x[:c].copy(), np.r_[0.0, res.x[c:]]


def fit_isotonic(probs, y) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per class, the points of an isotonic regression of ``y == k`` on ``p_k``."""
    from sklearn.isotonic import IsotonicRegression

    p, yy = np.asarray(probs, np.float64), np.asarray(y, np.int64)
    xs, ys = [], []
    for k in range(p.shape[1]):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, k], (yy == k).astype(float))
        xs.append(np.asarray(iso.X_thresholds_, np.float64))
        ys.append(np.asarray(iso.y_thresholds_, np.float64))
    return xs, ys


def fit_recalibration(method: str, probs, y) -> nn.Module:
    """Fit a recalibration map on a calibration set.

    Args:
        method: ``temperature``, ``vector`` or ``isotonic``.
        probs: float [n, 3] the frozen model's probabilities on the calibration windows.
        y: int [n] their labels.

    Returns:
        The map (a module with ``describe()``), probabilities in, probabilities out.

    Raises:
        ConfigError: On an unknown method, or calibration windows without every class (a map for an absent
            class cannot be fitted).
    """
    p, yy = np.asarray(probs, np.float64), np.asarray(y, np.int64)
    if method not in METHODS[1:]:
        raise ConfigError(f"--recalibrate must be one of {', '.join(METHODS)}, got {method!r}")
    if p.ndim != 2 or len(p) != len(yy) or not np.isfinite(p).all():
        raise ValueError(f"probs must be finite [n, C] with n = len(y), got {p.shape} for {len(yy)} labels")
    missing = [k for k in range(p.shape[1]) if not (yy == k).any()]
    if missing:
        raise ConfigError(f"the calibration windows hold no window of class {', '.join(map(str, missing))}; "
                          "a larger --calibration-share or more cases are needed to fit a recalibration")
    if method == "temperature":
        t = fit_temperature(p, yy)
        return ScaledLogProbs(np.full(p.shape[1], 1.0 / t), np.zeros(p.shape[1]), "temperature")
    if method == "vector":
        return ScaledLogProbs(*fit_vector(p, yy), "vector")
    return IsotonicPerClass(*fit_isotonic(p, yy))


@torch.no_grad()
def apply_recalibration(calibration: nn.Module, probs) -> np.ndarray:
    """The map's probabilities (float32 [n, 3]) of ``probs``, computed as the exported model computes them."""
    x = torch.as_tensor(np.ascontiguousarray(probs, np.float32))
    return calibration.eval()(x).numpy()
