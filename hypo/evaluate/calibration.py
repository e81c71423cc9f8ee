"""Calibration and clinical usefulness of class probabilities, one class against the rest.

- :func:`reliability`: the reliability curve in equal-width bins and the expected calibration error (ECE: the
  bin-size-weighted mean of |mean predicted - observed share|);
- :func:`brier`: the Brier score of one class, ``mean((p - y)^2)``; :func:`multiclass_brier` sums it over classes;
- :func:`calibration_slope_intercept`: logistic recalibration (Cox 1958; Van Calster et al. 2019): the
  **slope** ``b`` of ``logit P(y) = a + b logit(p)`` (1 when the spread of the risks is right, below 1 when
  they are too extreme: an over-confident model) and the **intercept** ``a`` of ``logit P(y) = a + logit(p)``
  with the slope fixed at 1 (calibration-in-the-large: 0 when the risks are right on average, negative when they
  are too high);
- :func:`decision_curve`: net benefit of alarming when ``p >= t`` at each threshold ``t`` (Vickers & Elkin 2006):
  ``TP/n - FP/n * t/(1-t)``, beside alarming always and never (net benefit 0);
- :func:`class_calibration`: all of these per abnormal class, as the reports print them.

Every function takes plain arrays and returns plain floats and lists (JSON-ready).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hypo.data.signals import CLASSES, HYPERTENSION, HYPOTENSION

N_BINS = 10
LOGIT_CLIP = 1e-7  # probabilities of exactly 0 or 1 are moved this far inside before taking the logit
DECISION_THRESHOLDS = np.round(np.arange(0.01, 0.991, 0.01), 2)


def reliability(positive, prob, n_bins: int = N_BINS) -> dict[str, Any]:
    """Reliability bins of equal width: mean predicted probability, observed share and count per non-empty bin.

    Args:
        positive: bool [n], the class of interest.
        prob: float [n], its predicted probability.
        n_bins: Bins over [0, 1].

    Returns:
        ``{"pred", "obs", "n"}`` (lists over the non-empty bins) and ``"ece"``.
    """
    pos = np.asarray(positive, np.float64)
    p = np.asarray(prob, np.float64)
    idx = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    n = np.bincount(idx, minlength=n_bins)
    pred = np.bincount(idx, weights=p, minlength=n_bins)
    obs = np.bincount(idx, weights=pos, minlength=n_bins)
    keep = n > 0
    mean_pred, share = pred[keep] / n[keep], obs[keep] / n[keep]
    ece = float(np.sum(n[keep] * np.abs(mean_pred - share)) / max(n.sum(), 1))
    return {"pred": mean_pred.tolist(), "obs": share.tolist(), "n": n[keep].tolist(), "ece": ece}


def brier(positive, prob) -> float:
    """Brier score of one class: mean squared difference between ``prob`` and the 0/1 outcome (NaN if empty)."""
    pos = np.asarray(positive, np.float64)
    p = np.asarray(prob, np.float64)
    return float(np.mean((p - pos) ** 2)) if len(p) else math.nan


def multiclass_brier(y, probs) -> float:
    """Multi-class Brier score: mean over windows of the summed squared error over the classes (0 to 2)."""
    yy = np.asarray(y, np.int64)
    p = np.asarray(probs, np.float64)
    if not len(p):
        return math.nan
    onehot = np.eye(p.shape[1])[yy]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def logit(prob) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to [LOGIT_CLIP, 1 - LOGIT_CLIP]."""
    p = np.clip(np.asarray(prob, np.float64), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def _logistic(x: np.ndarray, y: np.ndarray, offset: np.ndarray, slope: bool, iters: int = 100) -> np.ndarray:
    """Maximum-likelihood ``(a, b)`` of ``P(y) = sigmoid(a + b x + offset)`` by Newton's method.

    Without ``slope`` only ``(a,)`` is fitted (``b`` fixed at 0; the offset carries a slope of 1 when it is ``x``).
    """
    design = np.column_stack([np.ones_like(x), x]) if slope else np.ones((len(x), 1))
    beta = np.zeros(design.shape[1])
    for _ in range(iters):
        eta = design @ beta + offset
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = np.maximum(mu * (1 - mu), 1e-12)
        step = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (y - mu))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def calibration_slope_intercept(positive, prob) -> dict[str, float]:
    """Calibration slope and intercept (calibration-in-the-large) of one class's probabilities.

    Args:
        positive: bool [n], the class of interest.
        prob: float [n], its predicted probability.

    Returns:
        ``{"slope", "intercept"}``; NaN when the class is absent or the only one.
    """
    y = np.asarray(positive, np.float64)
    if not 0 < y.sum() < len(y):
        return {"slope": math.nan, "intercept": math.nan}
    x = logit(prob)
    with np.errstate(over="ignore"):
        slope = float(_logistic(x, y, np.zeros_like(x), slope=True)[1])
        intercept = float(_logistic(x, y, x, slope=False)[0])
    return {"slope": slope, "intercept": intercept}


def decision_curve(positive, prob, thresholds=DECISION_THRESHOLDS) -> dict[str, list[float]]:
    """Net benefit of alarming when ``prob >= t``, of alarming always, and of never alarming (0).

    Args:
        positive: bool [n], the event (hypotension 5 min later).
        prob: float [n], its predicted probability.
        thresholds: Threshold probabilities ``t`` in (0, 1): the harm of a false alarm relative to the benefit of
            a true one is ``t / (1 - t)``.

    Returns:
        ``{"threshold", "model", "all", "none"}``, lists over ``thresholds``.
    """
    pos = np.asarray(positive, bool)
    p = np.asarray(prob, np.float64)
    t = np.asarray(thresholds, np.float64)
    n = max(len(p), 1)
    odds = t / (1 - t)
    alarm = p[None, :] >= t[:, None]
    tp = (alarm & pos[None, :]).sum(axis=1) / n
    fp = (alarm & ~pos[None, :]).sum(axis=1) / n
    prevalence = pos.mean() if len(pos) else math.nan
    return {"threshold": t.tolist(), "model": (tp - fp * odds).tolist(),
            "all": (prevalence - (1 - prevalence) * odds).tolist(), "none": [0.0] * len(t)}


def class_calibration(y, probs, classes=(HYPOTENSION, HYPERTENSION), n_bins: int = N_BINS) -> dict[str, Any]:
    """Reliability, ECE and Brier per class (one-vs-rest), slope and intercept for each, and the multi-class Brier.

    Args:
        y: int [n] labels.
        probs: float [n, 3] class probabilities.
        classes: The classes to describe.
        n_bins: Reliability bins.

    Returns:
        Class name -> ``{"reliability", "ece", "brier", "slope", "intercept", "prevalence", "mean_predicted"}``,
        and ``"multiclass_brier"``.
    """
    yy = np.asarray(y, np.int64)
    p = np.asarray(probs, np.float64)
    out: dict[str, Any] = {}
    for c in classes:
        pos = yy == c
        rel = reliability(pos, p[:, c], n_bins)
        out[CLASSES[c]] = {"reliability": rel, "ece": rel["ece"], "brier": brier(pos, p[:, c]),
                           **calibration_slope_intercept(pos, p[:, c]),
                           "prevalence": float(pos.mean()) if len(pos) else math.nan,
                           "mean_predicted": float(p[:, c].mean()) if len(p) else math.nan}
    out["multiclass_brier"] = multiclass_brier(yy, p)
    return out
