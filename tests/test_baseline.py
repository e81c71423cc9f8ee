import math

import numpy as np
import pytest

from hypo.config import LabelConfig
from hypo.data.dataset import load_split, read_manifest
from hypo.learn.baseline import baseline_metrics, label_config, last_reading_class, last_reading_scores, train_prior
from hypo.learn.metrics import evaluate_scores

from synthetic_windows import manifest_record, write_synthetic_dataset

LABEL = LabelConfig(hypo_map=65.0, hyper_sbp=160.0)
PRIOR = np.array([0.7, 0.2, 0.1])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("baseline"))
    write_synthetic_dataset(d, n_train=200, n_val=600, n_test=0, seed=5)
    return d


def test_last_reading_class_thresholds():
    m = np.array([64.9, 65.0, 80.0, 80.0, np.nan, 60.0])
    s = np.array([120.0, 120.0, 160.0, 160.1, np.nan, 170.0])
    assert last_reading_class(m, s, LABEL).tolist() == [1, 0, 0, 2, -1, 1]  # hypotension wins a tie
    assert last_reading_class(m, s, LabelConfig(hyper_sbp=180.0)).tolist() == [1, 0, 0, 0, -1, 1]


def test_scores_are_monotone_normalised_and_prior_without_reading():
    maps = np.array([50.0, 60.0, 65.0, 70.0, 90.0])
    s = last_reading_scores(maps, np.full(5, 120.0), LABEL, PRIOR)
    np.testing.assert_allclose(s.sum(1), 1.0)
    assert np.all(np.diff(s[:, 1]) < 0)  # p(hypotension) falls as the last MAP rises
    assert s[2, 1] == pytest.approx(0.5, abs=0.01)  # at the threshold
    sbps = np.array([120.0, 150.0, 160.0, 175.0, 200.0])
    s = last_reading_scores(np.full(5, 85.0), sbps, LABEL, PRIOR)
    assert np.all(np.diff(s[:, 2]) > 0)
    s = last_reading_scores(np.array([np.nan, 85.0]), np.array([np.nan, 120.0]), LABEL, PRIOR)
    np.testing.assert_allclose(s[0], PRIOR)
    assert s[1, 0] > 0.9


def test_prior_and_label_config_from_manifest(dataset):
    m = read_manifest(dataset)
    c = m.counts["train"]
    np.testing.assert_allclose(train_prior(m), np.array([c.normal, c.hypotension, c.hypertension]) / 200)
    assert label_config(m) == LabelConfig()
    assert train_prior(manifest_record(counts={})).tolist() == pytest.approx([1 / 3] * 3)


def test_baseline_metrics_on_a_split(dataset):
    m = read_manifest(dataset)
    val = load_split(dataset, "val")
    got = baseline_metrics(val, m, warn=False)
    label = label_config(m)
    scores = last_reading_scores(val.last_map, val.last_sbp, label, train_prior(m))
    want = evaluate_scores(val.label, scores, last_reading_class(val.last_map, val.last_sbp, label), warn=False)
    assert got.keys() == want.keys()
    assert all(math.isclose(got[k], want[k]) or (math.isnan(got[k]) and math.isnan(want[k])) for k in got)
    # the synthetic last readings are correlated with the label: informative, not perfect
    assert 0.75 < got["mean_auroc"] < 0.99
    # windows without a reading all get the prior: no ranking among them
    assert got["bylast_none_n"] > 0 and got["bylast_none_auroc_hypotension"] == pytest.approx(0.5)


def test_baseline_is_uninformative_when_readings_are(dataset):
    val = load_split(dataset, "val")
    rng = np.random.default_rng(0)
    val.last_map = rng.permutation(val.last_map)
    val.last_sbp = rng.permutation(val.last_sbp)
    got = baseline_metrics(val, read_manifest(dataset), warn=False)
    assert abs(got["mean_auroc"] - 0.5) < 0.08
