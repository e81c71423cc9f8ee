"""The last-reading baseline (PITFALLS.md 2): class scores from the most recent cuff reading, no learning.

p(hypotension) rises as the last MAP falls towards and below the hypotension threshold, p(hypertension) as the
last SBP rises towards and above the hypertension threshold (logistic ramps, ``MAP_SCALE`` / ``SBP_SCALE`` mmHg
wide); the three scores are normalised to sum to 1. Windows without a reading yet get the training split's
class prevalence (uninformative). Every evaluation reports this beside the model, on the same windows.
"""

from __future__ import annotations

import numpy as np

from hypo.config import LabelConfig
from hypo.data.manifest import Manifest
from hypo.data.signals import CLASSES
from hypo.data.windows import classify
from hypo.learn.metrics import NO_READING, evaluate_scores

MAP_SCALE = 5.0  # mmHg: how fast p(hypotension) rises as the last MAP falls past the threshold
SBP_SCALE = 10.0  # mmHg: the same for p(hypertension) and the last SBP


def label_config(manifest: Manifest) -> LabelConfig:
    """The label rule (thresholds) a dataset was built with."""
    return manifest.label


def train_prior(manifest: Manifest) -> np.ndarray:
    """Class prevalence of the training split (uniform when the manifest has no train counts)."""
    counts = manifest.split_counts("train")
    c = np.array([float(counts.of(name)) for name in CLASSES])
    return c / c.sum() if c.sum() > 0 else np.full(len(CLASSES), 1 / len(CLASSES))


def last_reading_class(last_map, last_sbp, label: LabelConfig) -> np.ndarray:
    """Class of the last reading of each window under the dataset's thresholds; -1 when there is none.

    Args:
        last_map: float [n] MAP of the last reading (NaN when none).
        last_sbp: float [n] SBP of the last reading (NaN when none).
        label: The dataset's label rule (:func:`label_config`).

    Returns:
        int64 [n]: 0 normal, 1 hypotension, 2 hypertension, -1 no reading.
    """
    m, s = np.asarray(last_map, np.float64), np.asarray(last_sbp, np.float64)
    cls = classify(m, s, label).astype(np.int64)
    cls[~(np.isfinite(m) & np.isfinite(s))] = NO_READING
    return cls


def last_reading_scores(last_map, last_sbp, label: LabelConfig, prior) -> np.ndarray:
    """Baseline class scores [n, 3] (rows sum to 1) from the last reading.

    Args:
        last_map: float [n] MAP of the last reading (NaN when none).
        last_sbp: float [n] SBP of the last reading (NaN when none).
        label: The dataset's label rule (thresholds).
        prior: Scores for windows without a reading (the training prevalence).
    """
    m, s = np.asarray(last_map, np.float64), np.asarray(last_sbp, np.float64)
    has = np.isfinite(m) & np.isfinite(s)
    with np.errstate(invalid="ignore", over="ignore"):
        p_hypo = 1.0 / (1.0 + np.exp(-(label.hypo_map - m) / MAP_SCALE))
        p_hyper = 1.0 / (1.0 + np.exp(-(s - label.hyper_sbp) / SBP_SCALE))
    scores = np.stack([(1 - p_hypo) * (1 - p_hyper), p_hypo, p_hyper], axis=1)
    scores /= scores.sum(axis=1, keepdims=True)
    scores[~has] = np.asarray(prior, np.float64)
    return scores


def baseline_metrics(arrays, manifest: Manifest, where: str = "", warn: bool = True) -> dict[str, float]:
    """The baseline's metrics on one split, stratified by the last reading's class.

    Args:
        arrays: A split from :func:`hypo.data.dataset.load_split`.
        manifest: The dataset's manifest (thresholds, training prevalence).
        where: Label for warnings.
        warn: Warn about undefined metrics (absent classes).

    Returns:
        The flat dict of :func:`hypo.learn.metrics.evaluate_scores` (unprefixed keys).
    """
    label = label_config(manifest)
    scores = last_reading_scores(arrays.last_map, arrays.last_sbp, label, train_prior(manifest))
    last = last_reading_class(arrays.last_map, arrays.last_sbp, label)
    return evaluate_scores(arrays.label, scores, last, where=where, warn=warn)
