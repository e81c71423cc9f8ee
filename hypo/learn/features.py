"""Window summary statistics: the inputs of the feature-model baseline (:mod:`hypo.learn.feature_model`).

Each window ``[window_s, 7]`` (physical units, signals in :data:`hypo.data.signals.SIGNALS` order) becomes six
numbers per signal: mean, standard deviation, minimum, maximum, last value and least-squares slope (units per
second). That is the comparator clinical ML reviewers ask for: if a booster or a logistic regression on these
matches a deep model, the deep model adds nothing the window's summary did not already say.

    from hypo.learn.features import window_features, feature_names
    f = window_features(train.x)          # float64 [n, 42]
"""

from __future__ import annotations

import numpy as np

from hypo.data.signals import SIGNALS

STATISTICS: tuple[str, ...] = ("mean", "std", "min", "max", "last", "slope")
CHUNK = 8192  # windows per block: float64 copies of [chunk, 60, 7] stay a few MB


def feature_names(signals: tuple[str, ...] = tuple(SIGNALS)) -> list[str]:
    """Names of the columns of :func:`window_features`, ``<signal>_<statistic>``, signal-major."""
    return [f"{s}_{stat}" for s in signals for stat in STATISTICS]


def window_features(x) -> np.ndarray:
    """Per-signal summary statistics of each window.

    Args:
        x: float [n, window_s, n_signals] windows in physical units.

    Returns:
        float64 [n, n_signals * 6]: for each signal in order, mean, std (population), min, max, last value and
        the least-squares slope over the window's seconds (units per second), as named by :func:`feature_names`.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"windows must be [n, window_s, signals], got shape {x.shape}")
    n, steps, n_sig = x.shape
    t = np.arange(steps, dtype=np.float64)
    tc = t - t.mean()
    denom = float(np.sum(tc * tc)) or 1.0  # a one-step window has no slope: 0
    out = np.empty((n, n_sig, len(STATISTICS)), np.float64)
    for start in range(0, n, CHUNK):
        block = x[start : start + CHUNK].astype(np.float64)
        part = out[start : start + CHUNK]
        mean = block.mean(axis=1)
        part[:, :, 0] = mean
        part[:, :, 1] = block.std(axis=1)
        part[:, :, 2] = block.min(axis=1)
        part[:, :, 3] = block.max(axis=1)
        part[:, :, 4] = block[:, -1, :]
        part[:, :, 5] = np.einsum("t,nts->ns", tc, block) / denom
    return out.reshape(n, n_sig * len(STATISTICS))
