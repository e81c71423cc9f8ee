"""The named baselines beside every result: each one a row with the same metrics on the same windows.

- **last reading** (:mod:`hypo.learn.baseline`): the most recent cuff MAP / SBP at the window end, no learning;
- **feature model** (:mod:`hypo.learn.feature_model`): window summary statistics into a logistic regression or a
  gradient-boosted classifier, fitted on train, chosen on validation: if it matches a deep model, the deep model
  adds nothing the window's summary did not say;
- **last ART minute**: the same ramp as the last reading, scored from the last valid arterial-line minute before
  the window end (``art_last_map`` / ``art_last_sbp``), only when the windows carry those columns and any of them
  is not NaN (datasets labelled from the arterial line).

Windows are stratified by the class of the last **cuff** reading for every baseline alike, so the rows compare.

    fm = fit_feature_model(train, val)
    rows = baseline_records(val, manifest, fm, where="val", prefix="val_")   # [{"name", "model", ...}]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hypo.data.manifest import Manifest
from hypo.learn.baseline import label_config, last_reading_class, last_reading_scores, train_prior
from hypo.learn.metrics import evaluate_scores, prefixed
from hypo.records import Record

LAST_READING = "last reading"
FEATURE_MODEL = "feature model"
LAST_ART = "last ART minute"
ROW_PREFIX = "baseline: "  # the trial column of a baseline row: "baseline: last reading"

# What each row reads, in one word (PITFALLS.md 10); the trials read the model inputs too.
READS = {LAST_READING: "cuff", FEATURE_MODEL: "model inputs", LAST_ART: "ART"}
MODEL_READS = "model inputs"


def reads_of(name: str) -> str:
    """What a baseline row reads (``cuff``, ``ART`` or ``model inputs``)."""
    return READS.get(name, MODEL_READS)


LAST_READING_TEXT = "scores from the last cuff MAP / SBP at or before the window end, no learning"
LAST_ART_TEXT = ("scores from the last valid arterial-line minute (MAP / SBP) before the window end, no learning: "
                 "the current invasive pressure")


@dataclasses.dataclass
class BaselineScores:
    """One baseline's class scores on one split.

    Attributes:
        name: Its name (:data:`LAST_READING`, :data:`FEATURE_MODEL`, :data:`LAST_ART`).
        model: The leaderboard's model column (``last-reading``, ``features+hgb``, ``last-art``).
        description: One sentence saying what it is.
        scores: float [n, 3] class scores of the split's windows.
        params: JSON-ready details (the feature model's choice), else {}.
    """

    name: str
    model: str
    description: str
    scores: np.ndarray
    params: dict[str, Any]


def _column(split, name: str) -> np.ndarray | None:
    """A column of a split, as an attribute (``WindowArrays``) or a key (a dict of arrays); None when absent."""
    value = split.get(name) if isinstance(split, dict) else getattr(split, name, None)
    return None if value is None else np.asarray(value, np.float64)


def _field(split, name: str):
    return split[name] if isinstance(split, dict) else getattr(split, name)


def art_last(split) -> tuple[np.ndarray, np.ndarray] | None:
    """``(art_last_map, art_last_sbp)`` of a split's windows, or None when absent or NaN throughout."""
    m, s = _column(split, "art_last_map"), _column(split, "art_last_sbp")
    if m is None or s is None or not (np.isfinite(m) & np.isfinite(s)).any():
        return None
    return m, s


def split_baselines(split, manifest: Manifest, feature_model=None) -> list[BaselineScores]:
    """Every baseline's scores on one split, in row order: last reading, feature model, last ART minute.

    Args:
        split: Windows with ``x``, ``label``, ``last_map``, ``last_sbp`` (and optionally ``art_last_map``,
            ``art_last_sbp``): a ``WindowArrays`` or a dict of arrays.
        manifest: The dataset's manifest (thresholds, training prevalence).
        feature_model: A fitted :class:`hypo.learn.feature_model.FeatureModel`, or None to leave its row out.
    """
    label, prior = label_config(manifest), train_prior(manifest)
    out = [BaselineScores(LAST_READING, "last-reading", LAST_READING_TEXT,
                          last_reading_scores(_field(split, "last_map"), _field(split, "last_sbp"), label, prior), {})]
    if feature_model is not None:
        out.append(BaselineScores(FEATURE_MODEL, feature_model.model_name, feature_model.description,
                                  feature_model.scores(_field(split, "x")), feature_model.params))
    art = art_last(split)
    if art is not None:
        out.append(BaselineScores(LAST_ART, "last-art", LAST_ART_TEXT, last_reading_scores(*art, label, prior), {}))
    return out


def baseline_records(split, manifest: Manifest, feature_model=None, where: str = "", prefix: str = "",
                     warn: bool = False) -> list[dict[str, Any]]:
    """Every baseline's metrics on one split (stratified by the last cuff reading's class).

    Args:
        split: As for :func:`split_baselines`.
        manifest: The dataset's manifest.
        feature_model: The fitted feature model, or None.
        where: Label for warnings (``"val"``).
        prefix: Prefix of the metric keys (``"val_"``).
        warn: Warn about undefined metrics.

    Returns:
        One JSON-ready dict per baseline: ``{"name", "model", "description", "params", "metrics"}``.
    """
    lm, ls = _field(split, "last_map"), _field(split, "last_sbp")
    last = last_reading_class(lm, ls, label_config(manifest))
    y = _field(split, "label")
    # Absent classes are a property of the windows, the same for every baseline: warned about once.
    return [{"name": b.name, "model": b.model, "description": b.description, "params": b.params,
             "metrics": prefixed(evaluate_scores(y, b.scores, last, where=where, warn=warn and i == 0), prefix)}
            for i, b in enumerate(split_baselines(split, manifest, feature_model))]


class BaselineRecord(Record):
    """One baseline's row as a search records it (``hypo_search.json``'s ``baselines``; :func:`baseline_records`).

    Attributes:
        name: The row's name (:data:`LAST_READING`, :data:`FEATURE_MODEL`, :data:`LAST_ART`).
        model: What scores it (``last-reading``, ``features+logreg``, ...).
        description: One line saying what it is.
        params: Its fitted choice (the feature model's candidate and settings, refitted by :func:`feature_model_for`).
        metrics: Its ``val_*`` metrics (NaN, or None in strict JSON, where a class is absent).
    """

    name: str
    model: str | None = None
    description: str = ""
    params: dict[str, Any] = {}
    metrics: dict[str, int | float | None] = {}


def baseline_list(baselines: Sequence[BaselineRecord | Mapping[str, Any]] | Mapping[str, Any] | None,
                  ) -> tuple[BaselineRecord, ...]:
    """Named baselines from what a search recorded.

    Args:
        baselines: The records (or their JSON) a search records, an older search's single ``baseline`` (the last
            reading's ``val_*`` metrics, a dict), or None.

    Returns:
        The records; an older search's single baseline as the last reading's row.
    """
    if not baselines:
        return ()
    if isinstance(baselines, Mapping):
        return (BaselineRecord(name=LAST_READING, model="last-reading", description=LAST_READING_TEXT,
                               metrics=dict(baselines)),)
    return tuple(BaselineRecord.model_validate(b) for b in baselines)


def recorded_feature_params(baselines: Sequence[BaselineRecord]) -> dict[str, Any] | None:
    """The feature model's recorded choice among a search's baselines, or None (older searches)."""
    for b in baselines:
        if b.name == FEATURE_MODEL and b.params.get("candidate"):
            return b.params
    return None


def feature_model_for(baselines: Sequence[BaselineRecord], train, val):
    """The feature model of an experiment: its recorded choice refitted, or (older searches) chosen anew.

    Both are deterministic functions of the train and validation splits, so ``--test`` and the report score the
    same model the leaderboard's row came from.

    Args:
        baselines: The baselines the search recorded (:attr:`hypo.search.record.SearchRecord.baselines`).
        train: The train split.
        val: The validation split.
    """
    from hypo.learn.feature_model import FeatureModel, fit_feature_model

    params = recorded_feature_params(baselines)
    return FeatureModel.refit(params, train, val) if params else fit_feature_model(train, val)
