"""The comparators a reviewer asks for (PITFALLS.md 10): what the current pressure alone says, on the same windows.

Learned predictors of hypotension have been shown to track the current pressure: the Hypotension Prediction Index
alarms like a MAP threshold of 72-73 mmHg, linear extrapolation of MAP is a strong short-horizon predictor, and
the last diastolic pressure beats the last MAP as a baseline. Each comparator scores hypotension only (no
hypertension), reads one thing (:data:`CUFF` or :data:`ART`, beside the model's and the feature model's
:data:`MODEL_INPUTS`), and is scored on exactly the windows every other row is:

- **cuff MAP < 72**, **cuff MAP < 73**: fixed rules on the last cuff MAP (not tuned on validation): one operating
  point each, so a board shows their sensitivity, specificity and PPV for hypotension beside the curves;
- **MAP extrapolation**: a least-squares line through the last cuff reading and up to :data:`EARLIER_READINGS`
  earlier ones, each no older than :data:`MAX_AGE_S` before the window end (one reading: the line is flat),
  extrapolated to the label's horizon; p(hypotension) from a one-feature logistic fit on the train split;
- **last DBP**: the last cuff reading's diastolic pressure, through a one-feature logistic fit on train (as the
  last MAP is the last-reading baseline's input);
- with arterial-line labels, the same on the invasive line, named so: **ART MAP < 72** / **< 73** on the last ART
  minute, **ART MAP extrapolation** (the minutes ending 0, 150 and 300 s before the window end), **last ART DBP**.
  They read the invasive line, which the model does not see.

A window without the input (no reading yet) gets the training prevalence (curves) or no alarm (fixed rules).
Windows of a dataset built before they carried the last DBP and the earlier readings (dataset schema 1-2) have no
extrapolation or DBP rows: :func:`split_comparators` says so in one line (the fixed rules still score).

    fits = fit_comparators(train, manifest)
    rows, notes = split_comparators(test, manifest, fits)
    metrics = comparator_metrics(test.label, rows[0], test.last_map, manifest.label.hypo_map)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from hypo.data.dataset import comparator_rebuild_note
from hypo.data.manifest import Manifest
from hypo.data.signals import HYPOTENSION
from hypo.data.windows import ART_EARLIER_S, EARLIER_READINGS
from hypo.learn.metrics import map_metrics

CUFF, ART, MODEL_INPUTS = "cuff", "ART", "model inputs"  # what a row reads, in one word
FIXED_MAP_THRESHOLDS: tuple[float, ...] = (72.0, 73.0)  # mmHg (Mulder et al. 2024)
MAX_AGE_S = 900  # readings older than this before the window end are not extrapolated from
EXTRAPOLATION = "MAP extrapolation"
LAST_DBP = "last DBP"
ART_EXTRAPOLATION = "ART MAP extrapolation"
LAST_ART_DBP = "last ART DBP"


def fixed_name(threshold: float, reads: str = CUFF) -> str:
    """The row of a fixed MAP rule: ``"cuff MAP < 72"``, ``"ART MAP < 73"``."""
    return f"{reads} MAP < {threshold:g}"


def extrapolation_text(horizon_s: int) -> str:
    """What the MAP extrapolation reads, how many readings and how old."""
    return (f"a least-squares line through the last cuff reading and up to {EARLIER_READINGS} earlier ones no older "
            f"than {MAX_AGE_S / 60:g} min before the window end (one reading: flat), extrapolated {horizon_s} s ahead; "
            "p(hypotension) from a one-feature logistic fit on train")


DESCRIPTIONS = {
    LAST_DBP: "the last cuff reading's DBP at or before the window end; p(hypotension) from a one-feature logistic "
              "fit on train",
    ART_EXTRAPOLATION: "a least-squares line through the median ART MAP of the minutes ending 0, 150 and 300 s "
                       "before the window end, extrapolated to the horizon; one-feature logistic fit on train",
    LAST_ART_DBP: "the median ART DBP of the window's last minute; one-feature logistic fit on train",
}


@dataclasses.dataclass
class Comparator:
    """One comparator's hypotension score on one split.

    Attributes:
        name: The row's name (``"cuff MAP < 72"``, :data:`EXTRAPOLATION`, ...).
        reads: :data:`CUFF` or :data:`ART`.
        description: One line saying what it is.
        p_hypo: float [n] p(hypotension), or for a fixed rule 1.0 where it alarms and 0.0 elsewhere.
        fixed: A fixed rule (one operating point, no curve).
        params: JSON-ready details (the logistic fit, the threshold).
    """

    name: str
    reads: str
    description: str
    p_hypo: np.ndarray
    fixed: bool = False
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class OneFeatureLogistic:
    """``p = 1 / (1 + exp(-(a + b * (v - mean) / std)))``, fitted on train; ``prior`` where the value is missing."""

    a: float
    b: float
    mean: float
    std: float
    prior: float

    @classmethod
    def fit(cls, value, positive) -> OneFeatureLogistic:
        """Fit on the train windows whose value is finite (the training prevalence where none is)."""
        from sklearn.linear_model import LogisticRegression

        v, y = np.asarray(value, np.float64), np.asarray(positive, bool)
        prior = float(y.mean()) if len(y) else math.nan
        ok = np.isfinite(v)
        if ok.sum() < 2 or len(np.unique(y[ok])) < 2:
            return cls(0.0, 0.0, 0.0, 1.0, prior)
        mean, std = float(v[ok].mean()), float(v[ok].std()) or 1.0
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(((v[ok] - mean) / std)[:, None], y[ok])
        return cls(float(lr.intercept_[0]), float(lr.coef_[0, 0]), mean, std, prior)

    def predict(self, value) -> np.ndarray:
        """p(hypotension) of each value (the prior where it is NaN)."""
        v = np.asarray(value, np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            p = 1.0 / (1.0 + np.exp(-(self.a + self.b * (v - self.mean) / self.std)))
        return np.where(np.isfinite(v), p, self.prior)

    @classmethod
    def ramp(cls, centre: float, prior: float, scale: float = 5.0) -> OneFeatureLogistic:
        """No fit: p falls as the value rises past ``centre`` (``scale`` mmHg wide), as the last reading's ramp.

        For an evaluation without the train split it was developed on (``hypo evaluate``): only ranking figures
        are reported there, and they do not depend on the ramp.
        """
        return cls(0.0, -1.0, float(centre), float(scale), float(prior))

    def to_dict(self) -> dict[str, float]:
        """The fit as JSON."""
        return dataclasses.asdict(self)


def extrapolate(values: np.ndarray, times: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares line through each row's points, read at ``target``.

    Args:
        values: float [n, k] (NaN: no point).
        times: float [n, k] the points' times.
        target: float [n] where each line is read.

    Returns:
        float [n]: the line at ``target``; the value itself for a row with one point; NaN with none.
    """
    v, t = np.asarray(values, np.float64), np.asarray(times, np.float64)
    ok = np.isfinite(v) & np.isfinite(t)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = np.where(ok, t, 0).sum(axis=1) / n
        v_mean = np.where(ok, v, 0).sum(axis=1) / n
        dt = np.where(ok, t - t_mean[:, None], 0)
        sxx = (dt ** 2).sum(axis=1)
        slope = np.where(sxx > 0, (dt * np.where(ok, v - v_mean[:, None], 0)).sum(axis=1) / np.where(sxx > 0, sxx, 1),
                         0.0)
        return np.where(n > 0, v_mean + slope * (np.asarray(target, np.float64) - t_mean), np.nan)


def cuff_extrapolation(split, horizon_s: int) -> np.ndarray:
    """The MAP extrapolated to ``t_end + horizon_s`` from the window's recent cuff readings (see the module)."""
    t_end = np.asarray(split.t_end, np.float64)
    values = np.column_stack([split.last_map, split.earlier_map]).astype(np.float64)
    times = np.column_stack([split.last_time, split.earlier_time]).astype(np.float64)
    recent = (times >= 0) & (t_end[:, None] - times <= MAX_AGE_S)
    return extrapolate(np.where(recent, values, np.nan), times, t_end + horizon_s)


def art_extrapolation(split, horizon_s: int, event_s: int) -> np.ndarray:
    """The ART MAP extrapolated to ``t_end + horizon_s`` from the last minute and the minutes before it."""
    back = np.array([0, *ART_EARLIER_S], np.float64) + event_s / 2  # each minute's centre before the end
    values = np.column_stack([split.art_last_map, split.art_earlier_map]).astype(np.float64)
    times = np.broadcast_to(-back, values.shape)
    return extrapolate(values, times, np.full(len(values), float(horizon_s)))


def _inputs(split, manifest: Manifest) -> dict[str, tuple[str, np.ndarray]]:
    """The value each fitted comparator reads, by name (only those the split carries)."""
    label = manifest.label
    out: dict[str, tuple[str, np.ndarray]] = {}
    if split.has_comparator_inputs:
        out[EXTRAPOLATION] = (CUFF, cuff_extrapolation(split, label.horizon_s))
        out[LAST_DBP] = (CUFF, np.asarray(split.last_dbp, np.float64))
    if _has_art(split) and split.art_last_dbp is not None and split.art_earlier_map is not None:
        out[ART_EXTRAPOLATION] = (ART, art_extrapolation(split, label.horizon_s, label.event_s))
        out[LAST_ART_DBP] = (ART, np.asarray(split.art_last_dbp, np.float64))
    return out


def _has_art(split) -> bool:
    m = getattr(split, "art_last_map", None)
    return m is not None and bool(np.isfinite(np.asarray(m, np.float64)).any())


def fit_comparators(train, manifest: Manifest) -> dict[str, OneFeatureLogistic]:
    """The one-feature logistic fits of the extrapolation and DBP rows, on the train split (deterministic)."""
    positive = np.asarray(train.label) == HYPOTENSION
    return {name: OneFeatureLogistic.fit(value, positive) for name, (_, value) in _inputs(train, manifest).items()}


def split_comparators(split, manifest: Manifest, fits: dict[str, OneFeatureLogistic],
                      where: str = "the dataset") -> tuple[list[Comparator], list[str]]:
    """Every comparator's score on one split, in row order, and the lines saying which rows are left out and why.

    Args:
        split: A :class:`~hypo.data.dataset.WindowArrays`.
        manifest: The dataset's manifest (horizon, thresholds, label source).
        fits: :func:`fit_comparators` of the train split; a row it lacks is scored through a fixed ramp
            (:meth:`OneFeatureLogistic.ramp`: the same ranking, no fit).
        where: The dataset, as a note names it.
    """
    rows = [Comparator(fixed_name(t), CUFF, f"alarm when the last cuff MAP at or before the window end is below "
                       f"{t:g} mmHg (a fixed rule, not tuned)", _below(split.last_map, t), True, {"threshold": t})
            for t in FIXED_MAP_THRESHOLDS]
    inputs = _inputs(split, manifest)
    horizon = manifest.label.horizon_s
    fits = {name: fits.get(name) or _unfitted(name, manifest) for name in inputs}
    for name in (EXTRAPOLATION, LAST_DBP):
        if name in inputs:
            text = extrapolation_text(horizon) if name == EXTRAPOLATION else DESCRIPTIONS[name]
            rows.append(Comparator(name, CUFF, text, fits[name].predict(inputs[name][1]),
                                   params={"fit": fits[name].to_dict()}))
    notes = [] if EXTRAPOLATION in inputs else [comparator_rebuild_note(where)]
    if _has_art(split):
        rows += [Comparator(fixed_name(t, ART), ART, f"alarm when the median ART MAP of the window's last minute is "
                            f"below {t:g} mmHg (a fixed rule on the invasive line)", _below(split.art_last_map, t),
                            True, {"threshold": t}) for t in FIXED_MAP_THRESHOLDS]
        for name in (ART_EXTRAPOLATION, LAST_ART_DBP):
            if name in inputs:
                rows.append(Comparator(name, ART, DESCRIPTIONS[name], fits[name].predict(inputs[name][1]),
                                       params={"fit": fits[name].to_dict()}))
        if ART_EXTRAPOLATION not in inputs:
            notes.append(comparator_rebuild_note(where, "the ART extrapolation and last-ART-DBP rows"))
    return rows, notes


def _unfitted(name: str, manifest: Manifest) -> OneFeatureLogistic:
    """A comparator without a fit (``fits`` lacks it): the ramp around the threshold (DBP: 20 mmHg below it)."""
    from hypo.learn.baseline import train_prior

    centre = float(manifest.label.hypo_map) - (20.0 if name in (LAST_DBP, LAST_ART_DBP) else 0.0)
    return OneFeatureLogistic.ramp(centre, float(train_prior(manifest)[HYPOTENSION]))


def _below(values, threshold: float) -> np.ndarray:
    v = np.asarray(values, np.float64)
    with np.errstate(invalid="ignore"):
        return (v < threshold).astype(np.float64)


# ----------------------------------------------------------------------------------------------- metrics


def hypotension_scores(positive, score, fixed: bool = False) -> dict[str, float]:
    """One row's hypotension figures on some windows.

    Returns:
        ``n`` and ``prevalence_hypotension``; a curve row adds ``auroc_hypotension`` and ``auprc_hypotension``
        (NaN without positives or negatives); a fixed rule (``score`` 1 where it alarms) ``sensitivity_``,
        ``specificity_``, ``ppv_hypotension`` and ``alarm_rate``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    pos = np.asarray(positive, bool)
    s = np.asarray(score, np.float64)
    n = len(pos)
    out = {"n": float(n), "prevalence_hypotension": float(pos.mean()) if n else math.nan}
    if fixed:
        alarm = s >= 0.5
        tp, fp = int((pos & alarm).sum()), int((~pos & alarm).sum())
        fn, tn = int((pos & ~alarm).sum()), int((~pos & ~alarm).sum())
        out.update(sensitivity_hypotension=tp / (tp + fn) if tp + fn else math.nan,
                   specificity_hypotension=tn / (tn + fp) if tn + fp else math.nan,
                   ppv_hypotension=tp / (tp + fp) if tp + fp else math.nan,
                   alarm_rate=float(alarm.mean()) if n else math.nan)
        return out
    defined = 0 < pos.sum() < n
    out["auroc_hypotension"] = float(roc_auc_score(pos, s)) if defined else math.nan
    out["auprc_hypotension"] = float(average_precision_score(pos, s)) if defined else math.nan
    return out


def comparator_metrics(y_true, comp: Comparator, last_map, hypo_map: float = 65.0) -> dict[str, float]:
    """A comparator's hypotension figures, also by the last cuff MAP, and MAP-matched.

    On every window, by the last cuff MAP, without the windows already in hypotension (``excl_``), and (curve rows)
    the MAP-matched AUROC (:func:`hypo.learn.metrics.map_metrics`).
    """
    pos = np.asarray(y_true) == HYPOTENSION
    s = np.asarray(comp.p_hypo, np.float64)
    out = hypotension_scores(pos, s, comp.fixed)
    out.update(map_metrics(np.asarray(y_true), None if comp.fixed else s, last_map, hypo_map,
                           lambda mask: hypotension_scores(pos[mask], s[mask], comp.fixed)))
    return out


def comparator_records(split, manifest: Manifest, fits: dict[str, OneFeatureLogistic], where: str = "the dataset",
                       prefix: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """Every comparator's metrics on one split, as JSON-ready rows, and the notes of :func:`split_comparators`.

    Returns:
        ``(rows, notes)``: each row ``{"name", "reads", "description", "fixed", "params", "metrics"}`` with the
        metric keys prefixed (``"val_"``, ``"test_"``).
    """
    rows, notes = split_comparators(split, manifest, fits, where)
    hypo_map = float(manifest.label.hypo_map)
    return [{"name": c.name, "reads": c.reads, "description": c.description, "fixed": c.fixed, "params": c.params,
             "metrics": {f"{prefix}{k}": v for k, v in comparator_metrics(split.label, c, split.last_map,
                                                                        hypo_map).items()}}
            for c in rows], notes


def reading_extrapolation(times, values, horizon_s: int, max_age_s: int = MAX_AGE_S,
                          earlier: int = EARLIER_READINGS) -> np.ndarray:
    """At each reading of a series, the MAP extrapolated ``horizon_s`` ahead from it and the ``earlier`` before it.

    The alarm replay's form of the extrapolation: the same line as the windows' (readings no older than
    ``max_age_s`` before the newest; one reading: flat), read at ``time + horizon_s``.

    Args:
        times: int [r] reading times, increasing.
        values: float [r] their MAP (NaN: none).
        horizon_s: How far ahead.
        max_age_s: Older readings are not used.
        earlier: Readings used before each one.

    Returns:
        float [r].
    """
    t, v = np.asarray(times, np.float64), np.asarray(values, np.float64)
    idx = np.arange(len(t))[:, None] - np.arange(earlier + 1)[None, :]
    ok = idx >= 0
    ic = np.clip(idx, 0, None)
    pts_t = np.where(ok, t[ic] if len(t) else 0.0, np.nan)
    pts_v = np.where(ok & (t[:, None] - pts_t <= max_age_s), v[ic] if len(t) else 0.0, np.nan)
    return extrapolate(pts_v, pts_t, t + horizon_s) if len(t) else np.zeros(0)
