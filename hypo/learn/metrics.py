"""Evaluation metrics: mean AUROC, summed AUPRC, per-class figures, and all of them by the last reading's class.

The study ranks on mean AUROC and AUPRC hypotension + hypertension; the honest view adds each class's
prevalence (PITFALLS.md 5) and the same figures stratified by the class of the last cuff reading (PITFALLS.md 2).

Every function returns a flat dict of floats, ready for ``tune.report`` and JSON:

- ``auroc_<class>`` one-vs-rest AUROC, ``mean_auroc`` their mean;
- ``auprc_<class>`` average precision (``average_precision_score``), ``sum_auprc`` = hypotension + hypertension;
- ``prevalence_<class>`` and ``n``;
- with ``last_class``: ``bylast_<stratum>_<metric>`` for strata ``normal``, ``hypotension``, ``hypertension``
  (the last reading's class) and ``none`` (no reading yet).

A class without positives or without negatives has no AUROC / AUPRC: NaN, never a crash, and one
:class:`MetricWarning` per split or stratum naming the classes concerned (``warn=False`` silences it).
The summaries do not change meaning silently: ``mean_auroc`` is the mean over **all three** classes and
``sum_auprc`` the sum of hypotension's and hypertension's, so either is NaN as soon as one of its terms is
(averaging the classes present would make trials on different splits incomparable).
:func:`undefined_reasons` says why a metric is NaN ("no hypertension window in this split") from the flat dict
alone, for tables and reports.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from hypo.data.signals import CLASSES, HYPERTENSION, HYPOTENSION

# How trials and epochs are ranked everywhere: mean AUROC, then summed AUPRC (validation split).
RANK_METRICS: tuple[str, ...] = ("val_mean_auroc", "val_sum_auprc")

STRATA: tuple[str, ...] = (*CLASSES, "none")  # the last reading's class; "none" = no reading yet (code -1)
NO_READING = -1


class MetricWarning(UserWarning):
    """A metric is undefined on this data (e.g. a class is absent) and was set to NaN."""


def evaluate_scores(y_true, probs, last_class=None, where: str = "", warn: bool = True) -> dict[str, float]:
    """Score class probabilities against labels.

    Args:
        y_true: int [n] labels (0 normal, 1 hypotension, 2 hypertension).
        probs: float [n, 3] class scores (probabilities or any per-class ranking score).
        last_class: Optional int [n]: class of the last reading at the window end, -1 when none; adds the
            stratified ``bylast_*`` metrics.
        where: Label for warnings (e.g. ``"val"``).
        warn: Warn about undefined metrics (training warns on its first epoch only).

    Returns:
        Flat dict of metrics (see the module docstring).
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape != (len(y), len(CLASSES)):
        raise ValueError(f"probs must be [n, {len(CLASSES)}] with n = len(y_true) = {len(y)}, got {p.shape}")
    out = _scores(y, p, where, warn)
    if last_class is not None:
        lc = np.asarray(last_class).astype(np.int64)
        if lc.shape != y.shape:
            raise ValueError(f"last_class must have shape {y.shape}, got {lc.shape}")
        for code, stratum in zip((*range(len(CLASSES)), NO_READING), STRATA):
            mask = lc == code
            label = f"{where} windows whose last reading is {stratum}".strip()
            for key, v in _scores(y[mask], p[mask], label, warn).items():
                out[f"bylast_{stratum}_{key}"] = v
    return out


def _scores(y: np.ndarray, p: np.ndarray, where: str, warn: bool) -> dict[str, float]:
    n = len(y)
    out: dict[str, float] = {"n": float(n)}
    aurocs, auprcs, undefined = [], {}, []
    for c, name in enumerate(CLASSES):
        pos = y == c
        n_pos = int(pos.sum())
        out[f"prevalence_{name}"] = n_pos / n if n else math.nan
        if 0 < n_pos < n:
            auroc = float(roc_auc_score(pos, p[:, c]))
            auprc = float(average_precision_score(pos, p[:, c]))
        else:
            undefined.append(f"{name} ({'absent' if n_pos == 0 else 'the only class'})")
            auroc = auprc = math.nan
        out[f"auroc_{name}"] = auroc
        out[f"auprc_{name}"] = auprc
        aurocs.append(auroc)
        auprcs[c] = auprc
    # NaN as soon as one term is: a mean over fewer classes is another metric (see the module docstring).
    out["mean_auroc"] = float(np.mean(aurocs))
    out["sum_auprc"] = float(auprcs[HYPOTENSION] + auprcs[HYPERTENSION])
    if warn and n and undefined:
        summaries = [k for k, v in (("mean AUROC", out["mean_auroc"]), ("summed AUPRC", out["sum_auprc"]))
                     if math.isnan(v)]
        warnings.warn(f"{where or 'data'} ({n} windows): AUROC and AUPRC are NaN for {', '.join(undefined)}"
                      + (f", and so are {' and '.join(summaries)}" if summaries else ""),
                      MetricWarning, stacklevel=3)
    return out


# Which classes each summary needs: mean AUROC all three, summed AUPRC hypotension and hypertension.
_NEEDS = {"mean_auroc": tuple(range(len(CLASSES))), "sum_auprc": (HYPOTENSION, HYPERTENSION)}


def undefined_reasons(metrics: dict[str, float], where: str = "this split", prefix: str = "") -> dict[str, str]:
    """Why each NaN metric of :func:`evaluate_scores` is NaN, read off its prevalences.

    Args:
        metrics: A flat dict of :func:`evaluate_scores` (any prefix, e.g. ``val_`` or ``val_bylast_normal_``).
        where: How the reason names the windows (``"this split"``, ``"the test split"``).
        prefix: The keys' prefix.

    Returns:
        Metric name (without prefix: ``mean_auroc``, ``sum_auprc``, ``auroc_<class>``, ``auprc_<class>``) -> a
        reason such as ``"no hypertension window in this split"``; only for metrics that are undefined.
    """
    n = metrics.get(f"{prefix}n")
    if n is not None and not n > 0:
        return {k: f"no window in {where}" for k in ("mean_auroc", "sum_auprc",
                                                       *(f"{m}_{c}" for m in ("auroc", "auprc") for c in CLASSES))}
    per_class: dict[int, str] = {}
    for c, name in enumerate(CLASSES):
        prev = metrics.get(f"{prefix}prevalence_{name}")
        if prev is None or (isinstance(prev, float) and math.isnan(prev)):
            continue
        if prev <= 0:
            per_class[c] = f"no {name} window in {where}"
        elif prev >= 1:
            per_class[c] = f"only {name} windows in {where}"
    out = {f"{m}_{CLASSES[c]}": why for c, why in per_class.items() for m in ("auroc", "auprc")}
    for key, needs in _NEEDS.items():
        whys = [per_class[c] for c in needs if c in per_class]
        if whys:
            out[key] = "; ".join(dict.fromkeys(whys))
    return out


def prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """``metrics`` with every key prefixed (e.g. ``"val_"``)."""
    return {f"{prefix}{k}": v for k, v in metrics.items()}
