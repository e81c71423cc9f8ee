"""Scoring a cuff policy: how long after an episode's onset a reading shows it, and what it cost in inflations.

**Detection delay.** For each scored hypotension episode of a recording (:mod:`hypo.evaluate.alarms.events`: the
arterial line's runs of the label rule, merged when < 5 min apart, onsets after induction), the delay is the time
from its onset to the report of the first cuff reading that shows MAP < ``hypo_map`` (a reading the pipeline's
artefact rules remove shows nothing: :func:`hypo.evaluate.advisor.closed_loop.kept_map`), counting a reading that
reports at or after the onset and whose inflation began before the episode ended. An episode no such reading shows
is **undetected** (censored at its end): its delay counts as longer than any detected one, so the median delay is
the median over all episodes with the undetected ranked last (infinite when half or more are undetected).

**Cost.** Extra inflations per hour: the policy's inflations less the fixed base schedule's, over the hours of the
scored span (a fixed schedule every 150 s against a base of 300 s: +12/h).

**The trigger threshold** is fixed on the validation split: the lowest threshold of the grid whose extra inflations
per hour stay within the budget (:func:`choose_threshold`); the test split is then run at it.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

BUDGET_PER_H = 2.0  # extra inflations per hour the advisor may cost (default)


def detection_delays(episodes, time, maps, hypo_map: float, inflation_s: int) -> np.ndarray:
    """Seconds from each episode's onset to the first reading that shows it (module docstring; inf: undetected).

    Args:
        episodes: int [e, 2] ``[onset, end)``.
        time: int [r] readings' report seconds.
        maps: float [r] their MAP (NaN: a failed inflation, which shows nothing).
        hypo_map: Hypotension: MAP below this.
        inflation_s: Seconds from a reading's request to its report.

    Returns:
        float64 [e].
    """
    ep = np.asarray(episodes, np.int64).reshape(-1, 2)
    t = np.asarray(time, np.int64)
    with np.errstate(invalid="ignore"):
        low = t[np.asarray(maps, np.float64) < hypo_map]
    low = np.sort(low)
    out = np.full(len(ep), np.inf)
    i = np.searchsorted(low, ep[:, 0], side="left")  # the first low reading at or after each onset
    has = i < len(low)
    first = low[np.minimum(i, max(len(low) - 1, 0))] if len(low) else np.zeros(len(ep), np.int64)
    ok = has & (first - inflation_s < ep[:, 1])
    out[ok] = (first - ep[:, 0])[ok]
    return out


def weighted_median(values, weights) -> float:
    """The (lower) median of ``values`` repeated ``weights`` times; inf values rank last; NaN when all weights 0."""
    v, w = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    if not len(v) or w.sum() <= 0:
        return math.nan
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cum, cum[-1] / 2, side="left")])


@dataclasses.dataclass
class PolicyScore:
    """One policy on one split: its episodes' delays and its inflations (the curve's point).

    Attributes:
        family: ``advisor``, ``schedule`` or ``trend``.
        param: Its trigger threshold, interval (s) or level (mmHg).
        delays: float64 [e] each scored episode's delay (s; inf undetected).
        subjects: [e] each episode's subject.
        inflations: Inflations in all.
        base_inflations: The base schedule's inflations on the same recordings.
        hours: Hours of scored span.
    """

    family: str
    param: float
    delays: np.ndarray
    subjects: np.ndarray
    inflations: int
    base_inflations: int
    hours: float

    @property
    def extra_per_h(self) -> float:
        """Extra inflations per hour over the base schedule."""
        return (self.inflations - self.base_inflations) / self.hours if self.hours > 0 else math.nan

    @property
    def inflations_per_h(self) -> float:
        """Inflations per hour."""
        return self.inflations / self.hours if self.hours > 0 else math.nan

    @property
    def detected(self) -> float:
        """Share of episodes detected."""
        return float(np.isfinite(self.delays).mean()) if len(self.delays) else math.nan

    @property
    def median_delay_s(self) -> float:
        """Median delay (s), undetected ranked last (inf when half or more are undetected)."""
        return weighted_median(self.delays, np.ones(len(self.delays)))

    def median_interval(self, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
        """Percentile interval of the median delay over a bootstrap of the subjects with episodes."""
        from hypo.evaluate.bootstrap import interval, subject_weights

        if not len(self.delays) or n_boot < 1:
            return {"lo": math.nan, "hi": math.nan, "n_valid": 0}
        reps = [weighted_median(self.delays, w) for block in subject_weights(self.subjects, n_boot, seed)
                for w in block]
        reps = np.asarray(reps)
        out = interval(np.where(np.isinf(reps), 1e12, reps), level)  # an undetected median stays a replicate
        return {k: (math.inf if isinstance(v, float) and v >= 1e12 else v) for k, v in out.items()}


def choose_threshold(points: list[PolicyScore], budget_per_h: float = BUDGET_PER_H) -> tuple[float, str]:
    """The advisor's trigger threshold at the budget: the lowest threshold whose extra inflations/h <= budget.

    Args:
        points: The advisor's scores on validation, one per threshold.
        budget_per_h: Extra inflations per hour allowed.

    Returns:
        ``(threshold, how)``: ``how`` says how it was chosen (the highest threshold when none meets the budget).

    Raises:
        ValueError: Without points.
    """
    if not points:
        raise ValueError("no advisor thresholds to choose from")
    within = [p for p in points if p.extra_per_h <= budget_per_h]
    if within:
        best = min(within, key=lambda p: p.param)
        return best.param, (f"the lowest threshold whose extra inflations stay <= {budget_per_h:g}/h on the "
                            f"validation split ({best.extra_per_h:.2f}/h there)")
    best = max(points, key=lambda p: p.param)
    return best.param, (f"no threshold of the grid stays <= {budget_per_h:g} extra inflations/h on validation: the "
                        f"highest ({best.extra_per_h:.2f}/h there)")


def threshold_grid(risks: np.ndarray, n: int = 16) -> np.ndarray:
    """Trigger thresholds from the validation split's risks with the base schedule alone.

    Upper quantiles (30% .. 99.8% of the steps), so that the curve spans few to many requests whatever the model's
    scale.
    """
    r = np.asarray(risks, np.float64)
    r = r[np.isfinite(r)]
    if not len(r):
        return np.zeros(0)
    q = 1 - np.geomspace(0.7, 0.002, n)
    return np.unique(np.round(np.quantile(r, q), 6))
