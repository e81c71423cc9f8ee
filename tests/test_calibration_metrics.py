"""hypo.evaluate.calibration: reliability and ECE, Brier scores, calibration slope and intercept, decision curve."""

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from hypo.evaluate.calibration import (
    brier,
    calibration_slope_intercept,
    class_calibration,
    decision_curve,
    logit,
    multiclass_brier,
    reliability,
)


def test_reliability_bins_and_ece_by_hand():
    p = np.array([0.05, 0.05, 0.15, 0.95, 0.95, 0.95, 1.0])
    y = np.array([0, 1, 0, 1, 1, 0, 1], bool)
    r = reliability(y, p)
    # bins [0, .1): 2 windows, mean .05, share .5; [.1, .2): 1 window, .15, 0; [.9, 1]: 4 windows (1.0 included)
    assert r["n"] == [2, 1, 4]
    np.testing.assert_allclose(r["pred"], [0.05, 0.15, (0.95 * 3 + 1.0) / 4])
    np.testing.assert_allclose(r["obs"], [0.5, 0.0, 0.75])
    want = (2 * 0.45 + 1 * 0.15 + 4 * abs(0.9625 - 0.75)) / 7
    assert math.isclose(r["ece"], want)


def test_brier_scores_match_their_definitions():
    rng = np.random.default_rng(0)
    p = rng.dirichlet([2, 1, 1], 500)
    y = rng.integers(0, 3, 500)
    for k in range(3):
        assert math.isclose(brier(y == k, p[:, k]), brier_score_loss(y == k, p[:, k]))
    assert math.isclose(multiclass_brier(y, p), sum(brier(y == k, p[:, k]) for k in range(3)))
    assert multiclass_brier(y, np.eye(3)[y]) == 0.0


def test_slope_and_intercept_match_a_logistic_fit_and_read_right():
    rng = np.random.default_rng(1)
    z = rng.normal(-1.5, 1.2, 40000)
    y = rng.random(len(z)) < 1 / (1 + np.exp(-z))
    calibrated = 1 / (1 + np.exp(-z))
    overconfident = 1 / (1 + np.exp(-2.5 * z))
    too_high = 1 / (1 + np.exp(-(z + 1.0)))
    ok = calibration_slope_intercept(y, calibrated)
    assert abs(ok["slope"] - 1) < 0.05 and abs(ok["intercept"]) < 0.05
    over = calibration_slope_intercept(y, overconfident)
    assert abs(over["slope"] - 1 / 2.5) < 0.03  # the spread of the risks is 2.5 times too wide
    high = calibration_slope_intercept(y, too_high)
    assert abs(high["slope"] - 1) < 0.05 and abs(high["intercept"] + 1.0) < 0.05  # risks 1 logit too high
    lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logit(overconfident)[:, None], y)
    assert math.isclose(over["slope"], float(lr.coef_[0, 0]), rel_tol=1e-4)


def test_slope_is_nan_when_the_class_is_absent():
    assert all(math.isnan(v) for v in calibration_slope_intercept(np.zeros(10, bool), np.full(10, 0.2)).values())


def test_decision_curve_by_hand():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    p = np.array([0.9, 0.4, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    dc = decision_curve(y, p, thresholds=[0.2, 0.45, 0.95])
    # t = .2: alarms at .9, .4, .5 -> TP 2, FP 1; t = .45: .9, .5 -> 1, 1; t = .95: none
    want = [2 / 10 - 1 / 10 * 0.25, 1 / 10 - 1 / 10 * 0.45 / 0.55, 0.0]
    np.testing.assert_allclose(dc["model"], want)
    np.testing.assert_allclose(dc["all"], [0.2 - 0.8 * 0.25, 0.2 - 0.8 * 0.45 / 0.55, 0.2 - 0.8 * 19])
    assert dc["none"] == [0.0, 0.0, 0.0] and dc["threshold"] == [0.2, 0.45, 0.95]


def test_decision_curve_of_a_perfect_predictor_is_the_prevalence():
    y = np.array([1, 0, 0, 1, 0], bool)
    dc = decision_curve(y, y.astype(float))
    np.testing.assert_allclose(dc["model"], 0.4)


@pytest.mark.parametrize("bins", [5, 10])
def test_class_calibration_gathers_everything_per_class(bins):
    rng = np.random.default_rng(2)
    p = rng.dirichlet([3, 1, 1], 2000)
    y = np.array([rng.choice(3, p=row) for row in p])  # calibrated by construction
    out = class_calibration(y, p, n_bins=bins)
    assert set(out) == {"hypotension", "hypertension", "multiclass_brier"}
    for k, name in ((1, "hypotension"), (2, "hypertension")):
        c = out[name]
        assert c["ece"] == c["reliability"]["ece"] < 0.05 and len(c["reliability"]["n"]) <= bins
        assert math.isclose(c["prevalence"], float((y == k).mean()))
        assert math.isclose(c["mean_predicted"], float(p[:, k].mean()))
        assert abs(c["slope"] - 1) < 0.25
