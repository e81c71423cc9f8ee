"""hypo.learn.recalibration: temperature, vector and isotonic maps, as evaluated and as exported (TorchScript)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from hypo.errors import ConfigError
from hypo.evaluate.calibration import calibration_slope_intercept, class_calibration
from hypo.learn.recalibration import (
    IsotonicPerClass,
    ScaledLogProbs,
    apply_recalibration,
    fit_recalibration,
)

OVERCONFIDENCE = 3.0


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cohort(n, seed):
    """True class probabilities, labels drawn from them, and a deliberately over-confident model's probabilities
    (its logits are the true ones times OVERCONFIDENCE)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1, (n, 3)) * [0.8, 1.2, 1.0] + [1.2, -0.2, -0.6]
    truth = softmax(z)
    y = (rng.random(n)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    return truth, y, softmax(OVERCONFIDENCE * z).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    _, y_cal, p_cal = cohort(20000, 1)
    truth, y, p = cohort(20000, 2)
    return {"y_cal": y_cal, "p_cal": p_cal, "truth": truth, "y": y, "p": p}


def aurocs(y, p):
    return np.array([roc_auc_score(y == k, p[:, k]) for k in range(3)])


def test_temperature_brings_the_slope_of_an_overconfident_model_near_one(data):
    calib = fit_recalibration("temperature", data["p_cal"], data["y_cal"])
    assert np.isclose(calib.describe()["temperature"], OVERCONFIDENCE, rtol=0.1)
    after = apply_recalibration(calib, data["p"])
    y = data["y"]
    before_slope = calibration_slope_intercept(y == 1, data["p"][:, 1])["slope"]
    after_slope = calibration_slope_intercept(y == 1, after[:, 1])["slope"]
    assert before_slope < 0.5  # over-confident: its risks are far too extreme
    assert abs(after_slope - 1) < 0.1
    assert class_calibration(y, after)["hypotension"]["ece"] < class_calibration(y, data["p"])["hypotension"]["ece"]
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-5)


def test_temperature_keeps_decisions_and_pairwise_rankings_and_moves_one_vs_rest_aurocs_by_little(data):
    calib = fit_recalibration("temperature", data["p_cal"], data["y_cal"])
    p, y = data["p"], data["y"]
    after = apply_recalibration(calib, p)
    assert np.array_equal(after.argmax(axis=1), p.argmax(axis=1))  # every window's most probable class
    # log(p_hypo / p_normal) is divided by T: the ranking of windows by it does not change.
    pair_before = np.log(p[:, 1]) - np.log(p[:, 0])
    pair_after = np.log(after[:, 1].astype(np.float64)) - np.log(after[:, 0])
    assert np.isclose(roc_auc_score(y == 1, pair_before), roc_auc_score(y == 1, pair_after), atol=1e-9)
    # One-vs-rest with three classes: p_k alone can swap order between windows (next test), so AUROC may move,
    # but only slightly.
    assert np.abs(aurocs(y, after) - aurocs(y, p)).max() < 0.005


def test_three_class_temperature_scaling_can_swap_a_one_vs_rest_order():
    # Why the AUROC is not exactly unchanged: window a is more hypotensive than window b before the map, less
    # after it, because a's remaining mass sits on one other class and b's is split.
    p = np.array([[0.5, 0.4, 0.1], [0.7, 0.3, 1e-6]], np.float32)
    hot = ScaledLogProbs(np.full(3, 1 / 5.0), np.zeros(3), "temperature")
    after = apply_recalibration(hot, p)
    assert p[0, 1] > p[1, 1] and after[0, 1] < after[1, 1]


def test_vector_scaling_fits_better_than_the_model_and_sums_to_one(data):
    calib = fit_recalibration("vector", data["p_cal"], data["y_cal"])
    params = calib.describe()
    assert params["method"] == "vector" and params["bias"][0] == 0.0 and len(params["weight"]) == 3
    after = apply_recalibration(calib, data["p"])
    y = data["y"]

    def nll(q):
        return -np.mean(np.log(np.clip(q[np.arange(len(y)), y], 1e-12, 1)))

    assert nll(after) < nll(data["p"])
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-5)
    # the weights undo the over-confidence
    np.testing.assert_allclose(params["weight"], 1 / OVERCONFIDENCE, rtol=0.2)


def test_isotonic_calibrates_each_class_and_makes_ties(data):
    calib = fit_recalibration("isotonic", data["p_cal"], data["y_cal"])
    assert isinstance(calib, IsotonicPerClass)
    after = apply_recalibration(calib, data["p"])
    y = data["y"]
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-5)
    for name in ("hypotension", "hypertension"):
        assert class_calibration(y, after)[name]["ece"] < 0.02 < class_calibration(y, data["p"])[name]["ece"]
    # Steps: far fewer distinct values of each class's map before renormalising, so rankings get ties and AUROC
    # can change (it is not promised to stay the same, unlike the decisions of temperature scaling).
    raw = torch.stack([calib.fp[k][torch.searchsorted(calib.xp[k], torch.as_tensor(data["p"][:, k]).contiguous(),
                                                      right=True).clamp(1, calib.xp.size(1) - 1) - 1]
                       for k in range(3)], dim=1).numpy()
    assert len(np.unique(raw[:, 1])) < len(np.unique(data["p"][:, 1])) / 20
    assert np.abs(aurocs(y, after) - aurocs(y, data["p"])).max() < 0.02


@pytest.mark.parametrize("method", ["temperature", "vector", "isotonic"])
def test_the_map_scripts_to_torchscript_and_keeps_nan_rows_nan(data, method):
    calib = fit_recalibration(method, data["p_cal"][:3000], data["y_cal"][:3000])
    p = data["p"][:500].copy()
    p[7] = np.nan
    eager = apply_recalibration(calib, p)
    scripted = torch.jit.script(calib)
    with torch.no_grad():
        got = scripted(torch.as_tensor(p)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(eager))
    np.testing.assert_allclose(got[~np.isnan(got)], eager[~np.isnan(eager)], atol=1e-7)
    assert np.isnan(eager[7]).all() and np.isfinite(np.delete(eager, 7, axis=0)).all()


def test_a_probability_of_exactly_zero_or_one_is_mapped_not_lost():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], np.float32)
    y = np.array([0, 1, 2])
    for method in ("temperature", "vector", "isotonic"):
        after = apply_recalibration(fit_recalibration(method, np.tile(p, (30, 1)), np.tile(y, 30)), p)
        assert np.isfinite(after).all() and np.allclose(after.sum(axis=1), 1, atol=1e-5), method


def test_fitting_refuses_an_absent_class_and_an_unknown_method(data):
    y = data["y_cal"].copy()
    y[y == 2] = 0
    with pytest.raises(ConfigError, match="no window of class 2.*--calibration-share"):
        fit_recalibration("temperature", data["p_cal"], y)
    with pytest.raises(ConfigError, match="--recalibrate must be one of"):
        fit_recalibration("platt", data["p_cal"], data["y_cal"])
