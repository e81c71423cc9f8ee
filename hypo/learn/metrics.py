"""Evaluation metrics: mean AUROC, summed AUPRC, per-class figures, and all of them by the last reading's class.

The study ranks on mean AUROC and AUPRC hypotension + hypertension; the honest view adds each class's
prevalence (PITFALLS.md 5) and the same figures stratified by the class of the last cuff reading (PITFALLS.md 2).

Every function returns a flat dict of floats, ready for ``tune.report`` and JSON:

- ``auroc_<class>`` one-vs-rest AUROC, ``mean_auroc`` their mean;
- ``auprc_<class>`` average precision (``average_precision_score``), ``sum_auprc`` = hypotension + hypertension;
- ``prevalence_<class>`` and ``n``;
- with ``last_class``: ``bylast_<stratum>_<metric>`` for strata ``normal``, ``hypotension``, ``hypertension``
  (the last reading's class) and ``none`` (no reading yet);
- with ``last_map`` (the last cuff MAP at prediction time, PITFALLS.md 10): ``bymap_<stratum>_<metric>`` for the
  strata of :data:`MAP_STRATA` (``below`` hypo_map, the ``gray`` zone hypo_map-75 mmHg, ``above`` 75, ``none``),
  ``excl_<metric>`` without the windows whose last reading is already below hypo_map (``--exclude-in-hypotension``),
  and ``matched_auroc_hypotension``: the AUROC of p(hypotension) with positives and negatives compared only within
  the same current-MAP bin (:func:`matched_auroc`).

Several horizons (:func:`horizon_scores`): ``h<S>_auroc``, ``h<S>_auprc``, ``h<S>_prevalence`` and ``h<S>_n``
of a risk of hypotension by horizon ``S`` seconds against the target "hypotension by S"
(:func:`hypo.data.windows.hypotension_by`), over the windows where that target is known.

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
GRAY_ZONE_TOP = 75.0  # mmHg: the gray zone of the current MAP runs from the hypotension threshold to here
MAP_STRATA: tuple[str, ...] = ("below", "gray", "above", "none")  # by the last cuff MAP; codes 0..3


class MetricWarning(UserWarning):
    """A metric is undefined on this data (e.g. a class is absent) and was set to NaN."""


def evaluate_scores(y_true, probs, last_class=None, where: str = "", warn: bool = True, last_map=None,
                    hypo_map: float = 65.0) -> dict[str, float]:
    """Score class probabilities against labels.

    Args:
        y_true: int [n] labels (0 normal, 1 hypotension, 2 hypertension).
        probs: float [n, 3] class scores (probabilities or any per-class ranking score).
        last_class: Optional int [n]: class of the last reading at the window end, -1 when none; adds the
            stratified ``bylast_*`` metrics.
        where: Label for warnings (e.g. ``"val"``).
        warn: Warn about undefined metrics (training warns on its first epoch only).
        last_map: Optional float [n]: the last cuff MAP at the window end (NaN when none); adds ``bymap_*``,
            ``excl_*`` and the MAP-matched AUROC (:func:`map_metrics`).
        hypo_map: The hypotension threshold (mmHg): the lower edge of the gray zone.

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
    if last_map is not None:
        out.update(map_metrics(y, p[:, HYPOTENSION], last_map, hypo_map,
                               lambda mask: _scores(y[mask], p[mask], "", False)))
    return out


def map_stratum(last_map, hypo_map: float = 65.0, top: float = GRAY_ZONE_TOP) -> np.ndarray:
    """Each window's stratum of the last cuff MAP (indices into :data:`MAP_STRATA`).

    0 below ``hypo_map``, 1 the gray zone ``hypo_map``-``top`` (both ends included), 2 above ``top``, 3 no reading.
    """
    m = np.asarray(last_map, np.float64)
    out = np.full(len(m), 3, np.int64)
    with np.errstate(invalid="ignore"):
        out[m < hypo_map] = 0
        out[(m >= hypo_map) & (m <= top)] = 1
        out[m > top] = 2
    return out


def stratum_titles(hypo_map: float = 65.0, top: float = GRAY_ZONE_TOP) -> dict[str, str]:
    """How each stratum of :data:`MAP_STRATA` reads in a table (``"< 65"``, ``"65-75"``, ``"> 75"``, ...)."""
    return {"below": f"< {hypo_map:g}", "gray": f"{hypo_map:g}-{top:g}", "above": f"> {top:g}",
            "none": "no reading"}


def map_metrics(y: np.ndarray, p_hypo: np.ndarray | None, last_map, hypo_map: float, scores) -> dict[str, float]:
    """Metrics by the last cuff MAP: per stratum, without the windows already in hypotension, and MAP-matched.

    Args:
        y: int [n] labels.
        p_hypo: float [n] the score of hypotension (None: no matched AUROC, e.g. a fixed rule).
        last_map: float [n] the last cuff MAP (NaN when none).
        hypo_map: The hypotension threshold.
        scores: ``mask -> dict`` of the metrics on the windows of ``mask``.

    Returns:
        ``bymap_<stratum>_<key>``, ``excl_<key>`` and (with ``p_hypo``) ``matched_auroc_hypotension``,
        ``matched_pairs_hypotension`` and ``matched_bin_mmhg``.
    """
    m = np.asarray(last_map, np.float64)
    strata = map_stratum(m, hypo_map)
    out: dict[str, float] = {}
    for code, stratum in enumerate(MAP_STRATA):
        out.update({f"bymap_{stratum}_{k}": v for k, v in scores(strata == code).items()})
    out.update({f"excl_{k}": v for k, v in scores(strata != 0).items()})
    if p_hypo is not None:
        width = reading_resolution(m)
        value, pairs = matched_auroc(np.asarray(y) == HYPOTENSION, p_hypo, m, width)
        out.update(matched_auroc_hypotension=float(value[0]), matched_pairs_hypotension=float(pairs[0]),
                   matched_bin_mmhg=width)
    return out


def reading_resolution(values, lo: float = 1.0, hi: float = 2.0) -> float:
    """The bin width of the MAP-matched AUROC: the readings' own resolution, kept within ``[lo, hi]`` mmHg.

    The smallest step between distinct finite values (1 mmHg for a monitor that reports whole mmHg); finer
    readings still share 1-mmHg bins, so a bin holds comparable windows.
    """
    v = np.unique(np.asarray(values, np.float64)[np.isfinite(np.asarray(values, np.float64))])
    step = float(np.diff(v).min()) if len(v) > 1 else lo
    return float(min(max(step, lo), hi))


def matched_auroc(positive, score, covariate, width: float = 1.0, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """The covariate-adjusted AUROC (Janes & Pepe 2008): positives against negatives of the same covariate bin.

    Every (positive, negative) pair whose covariates (the last cuff MAP) fall in the same ``width``-wide bin is
    compared (concordant 1, tied 0.5), and the pairs of all bins are pooled. A score that is a function of the
    covariate alone ties within a bin: 0.5; what lies above 0.5 is what the score knows beyond the covariate.

    Args:
        positive: bool [n].
        score: float [n].
        covariate: float [n] (NaN: left out).
        width: Bin width; bin ``floor(covariate / width)``.
        weights: Optional float [b, n] (bootstrap weights); a pair weighs the product of its two weights.

    Returns:
        ``(auroc, pairs)``, each [b] (b = 1 without weights); NaN where no bin holds both a positive and a negative.
    """
    pos = np.asarray(positive, bool)
    s, c = np.asarray(score, np.float64), np.asarray(covariate, np.float64)
    keep = np.isfinite(s) & np.isfinite(c)
    w = np.ones((1, len(s))) if weights is None else np.atleast_2d(np.asarray(weights, np.float64))
    pos, s, w, b = pos[keep], s[keep], w[:, keep], np.floor(c[keep] / width)
    order = np.lexsort((s, b))  # by bin, then score
    pos, s, w, b = pos[order], s[order], w[:, order], b[order]
    n = len(s)
    wn, wp = w * ~pos, w * pos
    before = np.concatenate([np.zeros((len(w), 1)), np.cumsum(wn, axis=1)], axis=1)  # negatives before index i
    new_bin = np.r_[True, b[1:] != b[:-1]] if n else np.zeros(0, bool)
    new_tie = new_bin | (np.r_[True, s[1:] != s[:-1]] if n else np.zeros(0, bool))
    idx = np.arange(n)
    bin_start = np.maximum.accumulate(np.where(new_bin, idx, 0)) if n else idx
    tie_start = np.maximum.accumulate(np.where(new_tie, idx, 0)) if n else idx
    tie_end = np.r_[tie_start[1:][new_tie[1:]], n] if n else idx  # one past each tie group's end, per group
    tie_end = tie_end[np.cumsum(new_tie) - 1] if n else idx
    bin_end = np.r_[bin_start[1:][new_bin[1:]], n] if n else idx
    bin_end = bin_end[np.cumsum(new_bin) - 1] if n else idx
    lower = before[:, tie_start] - before[:, bin_start]
    tied = before[:, tie_end] - before[:, tie_start]
    in_bin = before[:, bin_end] - before[:, bin_start]
    concordant = (wp * (lower + 0.5 * tied)).sum(axis=1)
    pairs = (wp * in_bin).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, concordant / np.where(pairs > 0, pairs, 1), np.nan), pairs


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


def horizon_scores(targets, risk, horizons) -> dict[str, float]:
    """Hypotension AUROC and AUPRC per horizon (see the module docstring); NaN where a horizon lacks a class.

    Args:
        targets: int [n, H]: hypotension by each horizon (1, 0; -1 unknown: left out).
        risk: float [n, H] (or [n]: one score for every horizon, e.g. p(hypotension) of a 3-class model).
        horizons: The H horizons in seconds.
    """
    t = np.asarray(targets)
    r = np.asarray(risk, np.float64)
    out: dict[str, float] = {}
    for k, h in enumerate(horizons):
        known = t[:, k] >= 0
        y, score = t[known, k] == 1, (r[:, k] if r.ndim == 2 else r)[known]
        n_pos = int(y.sum())
        defined = 0 < n_pos < len(y)
        out[f"h{h}_auroc"] = float(roc_auc_score(y, score)) if defined else math.nan
        out[f"h{h}_auprc"] = float(average_precision_score(y, score)) if defined else math.nan
        out[f"h{h}_prevalence"] = n_pos / len(y) if len(y) else math.nan
        out[f"h{h}_n"] = float(len(y))
    return out


def prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """``metrics`` with every key prefixed (e.g. ``"val_"``)."""
    return {f"{prefix}{k}": v for k, v in metrics.items()}
