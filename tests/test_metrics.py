import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from hypo.learn.metrics import STRATA, MetricWarning, evaluate_scores, prefixed, undefined_reasons

CLASSES = ("normal", "hypotension", "hypertension")


def scored(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(3, n, p=[0.7, 0.2, 0.1])
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
    p = np.exp(logits)
    return y, p / p.sum(1, keepdims=True), rng


def test_matches_scikit_learn():
    y, p, _ = scored()
    m = evaluate_scores(y, p)
    for c, name in enumerate(CLASSES):
        assert math.isclose(m[f"auroc_{name}"], roc_auc_score(y == c, p[:, c]))
        assert math.isclose(m[f"auprc_{name}"], average_precision_score(y == c, p[:, c]))
        assert math.isclose(m[f"prevalence_{name}"], float(np.mean(y == c)))
    assert math.isclose(m["mean_auroc"], roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert math.isclose(m["sum_auprc"], m["auprc_hypotension"] + m["auprc_hypertension"])
    assert m["n"] == len(y)
    assert 0.5 < m["mean_auroc"] < 1  # the scores carry signal, and are not perfect


def test_auprc_is_average_precision_not_trapezoid():
    y = np.array([0, 1, 1, 0, 1, 0, 0, 2])
    p = np.array([[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.6, 0.4, 0.0], [0.4, 0.6, 0.0], [0.2, 0.8, 0.0],
                  [0.9, 0.1, 0.0], [0.5, 0.5, 0.0], [0.1, 0.1, 0.8]])
    m = evaluate_scores(y, p)
    # hand-computed: ranks 0.8(+) 0.7(+) 0.6(-) 0.5(-) 0.4(+,-tie) ...: AP = (1 + 1 + 3/6) / 3
    assert math.isclose(m["auprc_hypotension"], (1 + 1 + 0.5) / 3)


def test_absent_class_makes_the_summaries_nan_with_the_reason():
    """Averaging the classes present would quietly make mean AUROC another metric: NaN instead, with why."""
    y, p, _ = scored(seed=1)
    keep = y != 2
    with pytest.warns(MetricWarning, match="hypertension \\(absent\\).*mean AUROC and summed AUPRC"):
        m = evaluate_scores(y[keep], p[keep], where="val")
    assert math.isnan(m["auroc_hypertension"]) and math.isnan(m["auprc_hypertension"])
    assert m["prevalence_hypertension"] == 0
    assert math.isfinite(m["auroc_normal"]) and math.isfinite(m["auroc_hypotension"])
    assert math.isnan(m["mean_auroc"]) and math.isnan(m["sum_auprc"])
    why = undefined_reasons(prefixed(m, "val_"), prefix="val_")
    assert why == {"mean_auroc": "no hypertension window in this split",
                   "sum_auprc": "no hypertension window in this split",
                   "auroc_hypertension": "no hypertension window in this split",
                   "auprc_hypertension": "no hypertension window in this split"}
    assert undefined_reasons(evaluate_scores(y, p)) == {}  # every class present: nothing undefined
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_scores(y[keep], p[keep], warn=False)


def test_absent_normal_class_spoils_mean_auroc_only():
    y, p, _ = scored(seed=3)
    keep = y != 0
    m = evaluate_scores(y[keep], p[keep], warn=False)
    assert math.isnan(m["mean_auroc"]) and math.isfinite(m["sum_auprc"])
    assert math.isclose(m["sum_auprc"], m["auprc_hypotension"] + m["auprc_hypertension"])
    assert undefined_reasons(m, "the test split") == {
        "mean_auroc": "no normal window in the test split", "auroc_normal": "no normal window in the test split",
        "auprc_normal": "no normal window in the test split"}


def test_single_class_and_empty_inputs_do_not_crash():
    p = np.full((4, 3), 1 / 3)
    with pytest.warns(MetricWarning, match="the only class"):
        m = evaluate_scores(np.zeros(4, int), p)
    assert math.isnan(m["mean_auroc"]) and math.isnan(m["sum_auprc"])
    why = undefined_reasons(m)
    assert why["mean_auroc"] == ("only normal windows in this split; no hypotension window in this split; "
                                 "no hypertension window in this split")
    assert why["sum_auprc"] == "no hypotension window in this split; no hypertension window in this split"
    m = evaluate_scores(np.zeros(0, int), np.zeros((0, 3)))
    assert m["n"] == 0 and math.isnan(m["mean_auroc"])
    assert undefined_reasons(m)["mean_auroc"] == "no window in this split"
    with pytest.raises(ValueError, match="probs must be"):
        evaluate_scores(np.zeros(4, int), np.zeros((4, 2)))


def test_stratified_by_last_reading_class():
    y, p, rng = scored(n=900, seed=2)
    last = np.where(rng.random(len(y)) < 0.6, y, rng.choice([-1, 0, 1, 2], len(y)))
    m = evaluate_scores(y, p, last_class=last, warn=False)
    for code, stratum in zip((0, 1, 2, -1), STRATA):
        mask = last == code
        sub = evaluate_scores(y[mask], p[mask], warn=False)
        assert m[f"bylast_{stratum}_n"] == mask.sum() > 0
        for key in ("mean_auroc", "sum_auprc", "auroc_hypotension", "auprc_hypertension", "prevalence_normal"):
            assert math.isclose(m[f"bylast_{stratum}_{key}"], sub[key]) or (
                math.isnan(sub[key]) and math.isnan(m[f"bylast_{stratum}_{key}"])
            )
    # the overall figures are unchanged by stratification
    assert m["mean_auroc"] == evaluate_scores(y, p)["mean_auroc"]
    assert all(isinstance(v, float) for v in m.values())


def test_prefixed():
    assert prefixed({"mean_auroc": 0.5}, "val_") == {"val_mean_auroc": 0.5}
