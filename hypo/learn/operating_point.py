"""The operating point: probability thresholds that turn the model's scores into alarms and a class.

One rule is used everywhere a decision is needed (the report's confusion matrix, the exported model's sidecar,
the ``predict`` timeline), so the three always agree:

- each abnormal class gets a threshold on its probability, fixed on the **validation** split at a stated
  specificity (default 90%, one-vs-rest), never on the test split (PITFALLS.md 6);
- a window is called hypotension when p(hypotension) >= its threshold, else hypertension when
  p(hypertension) >= its threshold, else normal (hypotension first, as in the labels).

    from hypo.learn.operating_point import alarm_thresholds, decide
    thresholds = alarm_thresholds(val.label, val_probs)        # {"hypotension": 0.31, "hypertension": 0.22}
    predicted = decide(test_probs, thresholds)
"""

from __future__ import annotations

import math

import numpy as np

from hypo.data.signals import CLASSES, HYPERTENSION, HYPOTENSION, NORMAL

SPECIFICITY = 0.9
ALARM_CLASSES: tuple[str, ...] = (CLASSES[HYPOTENSION], CLASSES[HYPERTENSION])


def describe(specificity: float = SPECIFICITY) -> str:
    """One sentence stating the operating point, for reports and sidecars."""
    return (f"alarm thresholds fixed on the validation split at {100 * specificity:.0f}% specificity for each "
            "class (one-vs-rest); a window is called hypotension when p(hypotension) >= its threshold, else "
            "hypertension when p(hypertension) >= its threshold, else normal")


def threshold_at_specificity(positive, score, specificity: float = SPECIFICITY) -> float:
    """The lowest score threshold whose alarms (``score >= t``) keep at least ``specificity`` on the negatives.

    Args:
        positive: bool [n], the class of interest.
        score: float [n], higher = more likely positive.
        specificity: Required share of negatives below the threshold.

    Returns:
        The threshold (one of the scores, or just above the highest negative score when every positive ties
        with it); NaN when there are no negatives.
    """
    pos = np.asarray(positive, bool)
    s = np.asarray(score, np.float64)
    neg = np.sort(s[~pos])[::-1]  # highest first
    if len(neg) == 0:
        return math.nan
    allowed = int(math.floor((1 - specificity) * len(neg) + 1e-9))  # negatives that may alarm
    # Any threshold above the (allowed + 1)-th highest negative score keeps enough negatives below it;
    # the lowest such threshold among the scores is the smallest score strictly above that negative.
    bound = neg[allowed] if allowed < len(neg) else -np.inf
    above = s[s > bound]
    return float(above.min()) if len(above) else float(np.nextafter(bound, np.inf))


def alarm_thresholds(y_true, probs, specificity: float = SPECIFICITY) -> dict[str, float]:
    """Thresholds of p(hypotension) and p(hypertension) at ``specificity`` (one-vs-rest).

    Args:
        y_true: int [n] labels (validation split).
        probs: float [n, 3] class probabilities.
        specificity: Target specificity of each alarm.

    Returns:
        ``{"hypotension": t1, "hypertension": t2}`` (NaN for a class without negatives).
    """
    y = np.asarray(y_true)
    p = np.asarray(probs, np.float64)
    return {CLASSES[c]: threshold_at_specificity(y == c, p[:, c], specificity) for c in (HYPOTENSION, HYPERTENSION)}


def decide(probs, thresholds: dict[str, float]) -> np.ndarray:
    """Class of each window at the operating point (hypotension first, then hypertension, else normal).

    Args:
        probs: float [n, 3] class probabilities (NaN rows give normal; callers mask them).
        thresholds: From :func:`alarm_thresholds` (a NaN threshold never alarms).

    Returns:
        int64 [n] classes.
    """
    p = np.asarray(probs, np.float64)
    out = np.full(len(p), NORMAL, np.int64)
    with np.errstate(invalid="ignore"):
        hyper = p[:, HYPERTENSION] >= thresholds[CLASSES[HYPERTENSION]]
        hypo = p[:, HYPOTENSION] >= thresholds[CLASSES[HYPOTENSION]]
    out[hyper] = HYPERTENSION
    out[hypo] = HYPOTENSION
    return out


def confusion(y_true, y_pred, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Confusion matrix [true, predicted] of counts (int64)."""
    y, p = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    return np.bincount(y * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
