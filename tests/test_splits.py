import numpy as np
import pytest

from hypo.config import SplitConfig
from hypo.data.moments import Moments
from hypo.data.splits import assign_split, split_by_subject
from hypo.errors import ConfigError


def test_split_is_deterministic_and_by_subject():
    cfg = SplitConfig(seed=3)
    subjects = [str(i % 700) for i in range(1000)]  # repeated subjects
    a = split_by_subject(subjects, cfg)
    b = split_by_subject(list(reversed(subjects)), cfg)
    assert a == b
    assert len(a) == 700
    assert all(assign_split(s, cfg) == a[s] for s in subjects)


def test_split_fractions_are_respected_and_seed_matters():
    cfg = SplitConfig(0.6, 0.2, 0.2, seed=0)
    splits = split_by_subject([str(i) for i in range(20000)], cfg)
    frac = {k: sum(v == k for v in splits.values()) / 20000 for k in ("train", "val", "test")}
    assert frac["train"] == pytest.approx(0.6, abs=0.015)
    assert frac["val"] == pytest.approx(0.2, abs=0.015)
    other = split_by_subject([str(i) for i in range(20000)], SplitConfig(0.6, 0.2, 0.2, seed=1))
    assert other != splits


def test_bad_fractions_are_one_line_errors():
    with pytest.raises(ConfigError, match="sum to 1"):
        SplitConfig(0.5, 0.2, 0.2)
    with pytest.raises(ConfigError, match="train"):
        SplitConfig(0.0, 0.5, 0.5)


def test_moments_combine_equals_moments_of_union():
    rng = np.random.default_rng(1)
    a, b = rng.normal(3, 2, (50, 60, 7)), rng.normal(-1, 5, (20, 60, 7))
    m = Moments.of(a).combine(Moments.of(b)).combine(Moments.empty(7))
    allx = np.concatenate([a, b]).reshape(-1, 7)
    np.testing.assert_allclose(m.mean, allx.mean(0))
    np.testing.assert_allclose(m.std, allx.std(0))
    assert Moments.from_dict(m.to_dict()).n == m.n
