"""Confidence intervals from a bootstrap over **subjects**, not windows.

Windows of one patient are strongly correlated (overlapping minutes, the same blood pressure); resampling
windows would treat them as independent and give bands far too narrow. Each replicate draws as many subjects
as the split has, with replacement, and keeps all windows of each drawn subject (a subject drawn twice counts
twice). That is done with integer weights: window ``i`` weighs the number of times its subject was drawn, which
is exactly the resampled data set, so every replicate's curves come from one sort of the scores.

    from hypo.evaluate.bootstrap import bootstrap_scores, curve_on_grid
    boot = bootstrap_scores(test.label, probs, test.subjectid, n_boot=1000, seed=0)
    boot["hypotension"]["auroc"]        # {"value": 0.91, "lo": 0.88, "hi": 0.93}
    boot["hypotension"]["roc"]["tpr_lo"]  # lower band of the ROC curve on boot["grid"]

Curves match scikit-learn's: AUROC is the trapezoid under the ROC curve (``roc_auc_score``), AUPRC the step
sum of ``average_precision_score``. A replicate without a positive or a negative gives NaN and is left out of
its interval; ``n_valid`` says how many replicates an interval rests on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np

from hypo.data.signals import CLASSES, HYPERTENSION, HYPOTENSION

GRID = np.linspace(0.0, 1.0, 101)  # FPR (ROC) and recall (PR) grid of the bands
CHUNK = 64  # replicates per vectorised block


def subject_weights(subjectid, n_boot: int, seed: int = 0, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Yield blocks of bootstrap weights, float64 [b, n]: how often each window's subject was drawn.

    Args:
        subjectid: [n] subject of each window.
        n_boot: Replicates in all.
        seed: Seed of the draws (the same seed gives the same replicates).
        chunk: Replicates per block.
    """
    _, code = np.unique(np.asarray(subjectid).astype(str), return_inverse=True)
    n_subjects = int(code.max()) + 1 if len(code) else 0
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        draws = rng.integers(0, max(n_subjects, 1), size=(b, n_subjects))
        counts = np.stack([np.bincount(d, minlength=n_subjects) for d in draws]) if n_subjects else np.zeros((b, 0))
        yield counts[:, code].astype(np.float64)
        done += b


def weighted_curves(positive, score, weights) -> dict[str, np.ndarray]:
    """ROC and precision-recall points of each weight row, from one sort of the scores.

    Args:
        positive: bool [n].
        score: float [n].
        weights: float [b, n] (a row of ones gives the plain curves).

    Returns:
        ``fpr``, ``tpr`` (= recall), ``precision``: [b, m] at each distinct threshold, highest first;
        ``thresholds`` [m]; ``n_pos`` and ``n_neg`` [b] (weighted counts).
    """
    pos = np.asarray(positive, bool)
    s = np.asarray(score, np.float64)
    w = np.atleast_2d(np.asarray(weights, np.float64))
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1]  # last index of each tied score
    wo = w[:, order]
    tp = np.cumsum(wo * pos[order], axis=1)[:, last]
    fp = np.cumsum(wo * ~pos[order], axis=1)[:, last]
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / n_pos[:, None]
        fpr = fp / n_neg[:, None]
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
    return {"fpr": fpr, "tpr": tpr, "precision": precision, "thresholds": s_sorted[last], "n_pos": n_pos,
            "n_neg": n_neg}


def curve_metrics(c: dict[str, np.ndarray], specificity: float = 0.9) -> dict[str, np.ndarray]:
    """AUROC, AUPRC and sensitivity at ``specificity`` [b] of :func:`weighted_curves` output (NaN if undefined)."""
    fpr = np.hstack([np.zeros((len(c["fpr"]), 1)), c["fpr"]])
    tpr = np.hstack([np.zeros((len(c["tpr"]), 1)), c["tpr"]])
    auroc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
    auprc = np.sum(np.diff(tpr, axis=1) * c["precision"], axis=1)
    sens = np.where(fpr <= 1 - specificity + 1e-12, tpr, 0.0).max(axis=1)
    undefined = (c["n_pos"] <= 0) | (c["n_neg"] <= 0)
    for a in (auroc, auprc, sens):
        a[undefined] = np.nan
    return {"auroc": auroc, "auprc": auprc, "sens_at_spec": sens}


def curve_on_grid(c: dict[str, np.ndarray], grid: np.ndarray = GRID) -> dict[str, np.ndarray]:
    """Each row's ROC (TPR at FPR ``grid``) and PR curve (precision at recall ``grid``), [b, len(grid)].

    TPR is interpolated linearly (the curve the AUROC integrates); precision at recall ``r`` is that of the
    highest threshold reaching recall ``r`` (the step the AUPRC sums).
    """
    b = len(c["fpr"])
    tpr_g = np.full((b, len(grid)), np.nan)
    prec_g = np.full((b, len(grid)), np.nan)
    for i in range(b):
        if not (c["n_pos"][i] > 0 and c["n_neg"][i] > 0):
            continue
        tpr_g[i] = np.interp(grid, np.r_[0.0, c["fpr"][i]], np.r_[0.0, c["tpr"][i]])
        j = np.minimum(np.searchsorted(c["tpr"][i], grid - 1e-12, side="left"), c["tpr"].shape[1] - 1)
        prec_g[i] = c["precision"][i][j]
    return {"tpr": tpr_g, "precision": prec_g}


def interval(values, level: float = 0.95) -> dict[str, float]:
    """Percentile interval of bootstrap replicates (NaN replicates left out)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"lo": math.nan, "hi": math.nan, "n_valid": 0}
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return {"lo": float(lo), "hi": float(hi), "n_valid": int(len(v))}


def replicates(y_true, scores, subjectid, n_boot: int, seed: int = 0, specificity: float = 0.9,
               curves_for: tuple[int, ...] = ()) -> dict[int, dict[str, np.ndarray]]:
    """Bootstrap replicates of each class's one-vs-rest metrics (and curves on :data:`GRID` where asked).

    Args:
        y_true: int [n] labels.
        scores: float [n, 3] class scores.
        subjectid: [n] subject of each window.
        n_boot: Replicates.
        seed: Seed of the subject draws (the same seed gives the same replicates for any scorer).
        specificity: Where the sensitivity is read.
        curves_for: Classes whose ROC and PR curves are kept.

    Returns:
        class -> ``{"auroc", "auprc", "sens_at_spec"}`` [n_boot] (plus ``"tpr"``, ``"precision"`` [n_boot, grid]).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    y = np.asarray(y_true, np.int64)
    s = np.asarray(scores, np.float64)
    acc: dict[int, dict[str, list]] = {c: {} for c in range(s.shape[1])}
    for w in subject_weights(subjectid, n_boot, seed):
        for c in acc:
            curves = weighted_curves(y == c, s[:, c], w)
            parts = dict(curve_metrics(curves, specificity))
            if c in curves_for:
                parts.update(curve_on_grid(curves))
            for k, v in parts.items():
                acc[c].setdefault(k, []).append(v)
    return {c: {k: np.concatenate(v) for k, v in d.items()} for c, d in acc.items()}


def _point(y: np.ndarray, s: np.ndarray, c: int, specificity: float) -> tuple[dict, dict]:
    curves = weighted_curves(y == c, s[:, c], np.ones((1, len(y))))
    return ({k: float(v[0]) for k, v in curve_metrics(curves, specificity).items()},
            {k: v[0] for k, v in curve_on_grid(curves).items()})


def _over_classes(rows: list[np.ndarray], reduce) -> np.ndarray:
    """Per replicate, ``reduce`` (mean or sum) over the classes ``rows``; NaN where any of them is undefined.

    ``rows`` holds every class the statistic needs (all three for mean AUROC, hypotension and hypertension for
    summed AUPRC), as :func:`hypo.learn.metrics.evaluate_scores` defines them: a replicate that lost one of
    them (no positive drawn) is left out of the interval rather than scored on fewer classes, which would be
    another statistic; a split without one has no value and no interval.
    """
    return reduce(np.vstack(rows), axis=0)


def _band(rows: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # grid points where every replicate is NaN
        lo, hi = np.nanpercentile(rows, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return lo, hi


def summarise(y_true, scores, subjectid, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
              specificity: float = 0.9, curves: bool = False) -> tuple[dict, dict]:
    """Point estimates with subject-bootstrap intervals for one scorer.

    Returns:
        ``(summary, reps)``: ``summary`` holds, per abnormal class, ``auroc``, ``auprc``, ``sens_at_spec``
        (each ``{value, lo, hi, n_valid}``) and ``prevalence`` (plus ``roc`` {tpr, tpr_lo, tpr_hi} and ``pr``
        {precision, precision_lo, precision_hi} on :data:`GRID` when ``curves``), and ``mean_auroc`` and
        ``sum_auprc``; ``reps`` holds the raw replicates of ``mean_auroc`` (for paired differences).
    """
    y = np.asarray(y_true, np.int64)
    s = np.asarray(scores, np.float64)
    abnormal = (HYPOTENSION, HYPERTENSION)
    reps = replicates(y, s, subjectid, n_boot, seed, specificity, abnormal if curves else ())
    points = {c: _point(y, s, c, specificity) for c in range(len(CLASSES))}
    out: dict = {}
    for c in abnormal:
        metrics, grid = points[c]
        entry: dict = {"prevalence": float((y == c).mean()) if len(y) else math.nan}
        for key in ("auroc", "auprc", "sens_at_spec"):
            entry[key] = {"value": metrics[key], **interval(reps[c][key], level)}
        if curves:
            tlo, thi = _band(reps[c]["tpr"], level)
            plo, phi = _band(reps[c]["precision"], level)
            entry["roc"] = {"tpr": grid["tpr"], "tpr_lo": tlo, "tpr_hi": thi}
            entry["pr"] = {"precision": grid["precision"], "precision_lo": plo, "precision_hi": phi}
        out[CLASSES[c]] = entry
    every = list(points)
    mean_reps = _over_classes([reps[c]["auroc"] for c in every], np.mean)
    out["mean_auroc"] = {"value": float(np.mean([points[c][0]["auroc"] for c in every])),
                         **interval(mean_reps, level)}
    sum_reps = _over_classes([reps[c]["auprc"] for c in abnormal], np.sum)
    out["sum_auprc"] = {"value": float(sum(points[c][0]["auprc"] for c in abnormal)), **interval(sum_reps, level)}
    return out, {"mean_auroc": mean_reps}


def bootstrap_scores(y_true, probs, subjectid, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                     specificity: float = 0.9, reference=None, references: dict | None = None) -> dict:
    """The model's metrics and curves with subject-bootstrap intervals, and optionally a reference's.

    Args:
        y_true: int [n] labels.
        probs: float [n, 3] the model's class probabilities.
        subjectid: [n] subject of each window.
        n_boot: Replicates.
        seed: Seed of the subject draws.
        level: Interval level.
        specificity: Where the sensitivity is read.
        reference: Optional float [n, 3] scores of a reference (the last-reading baseline), scored on the same
            replicates; adds ``reference`` (its summary, no curves) and ``mean_auroc_diff`` (model minus
            reference, a paired interval).
        references: Optional name -> float [n, 3] scores of further baselines, each scored on the same
            replicates; adds ``references``: name -> its summary with its own ``mean_auroc_diff``.

    Returns:
        :func:`summarise`'s summary of the model (with curves), plus ``grid``, ``n_boot``, ``level``,
        ``specificity`` and ``n_subjects``.
    """
    out, reps = summarise(y_true, probs, subjectid, n_boot, seed, level, specificity, curves=True)
    out.update({"grid": GRID, "n_boot": int(n_boot), "level": level, "specificity": specificity, "seed": seed,
                "n_subjects": int(len(np.unique(np.asarray(subjectid).astype(str))))})
    if reference is not None:
        ref, ref_reps = summarise(y_true, reference, subjectid, n_boot, seed, level, specificity)
        out["reference"] = ref
        diff = reps["mean_auroc"] - ref_reps["mean_auroc"]
        out["mean_auroc_diff"] = {"value": out["mean_auroc"]["value"] - ref["mean_auroc"]["value"],
                                  **interval(diff, level)}
    for name, scores in (references or {}).items():
        ref, ref_reps = summarise(y_true, scores, subjectid, n_boot, seed, level, specificity)
        ref["mean_auroc_diff"] = {"value": out["mean_auroc"]["value"] - ref["mean_auroc"]["value"],
                                  **interval(reps["mean_auroc"] - ref_reps["mean_auroc"], level)}
        out.setdefault("references", {})[name] = ref
    return out
