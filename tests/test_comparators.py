"""The comparators (PITFALLS.md 10): each computed by hand once, the windows that carry their inputs, a dataset
built before them, the MAP-matched AUROC, the gray zone and the alarm rows."""

import dataclasses
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hypo.config import LabelConfig, WindowConfig
from hypo.data.dataset import WindowArrays, load_split, read_manifest
from hypo.data.signals import DBP, MBP, N_SIGNALS, SBP
from hypo.data.windows import make_windows
from hypo.evaluate.alarms.events import CaseEvents, classify_episodes
from hypo.evaluate.alarms.metrics import (
    PROBABILITY,
    READING,
    AlarmConfig,
    Track,
    case_counts,
    slots_of_readings,
    slots_on_grid,
)
from hypo.evaluate.alarms.strata import stratified
from hypo.evaluate.comparison import gray_zone_cells, hypotension_cells, split_rows
from hypo.learn.comparators import (
    ART,
    CUFF,
    EXTRAPOLATION,
    LAST_DBP,
    MAX_AGE_S,
    OneFeatureLogistic,
    comparator_metrics,
    cuff_extrapolation,
    fit_comparators,
    reading_extrapolation,
    split_comparators,
)
from hypo.learn.metrics import evaluate_scores, map_stratum, matched_auroc, reading_resolution

from demo_experiment import as_schema_2
from synthetic_windows import write_synthetic_dataset

LABEL = LabelConfig()


def _split(last_map, label, **more) -> WindowArrays:
    n = len(label)
    base = {"x": np.zeros((n, 0, N_SIGNALS), np.float32), "label": np.asarray(label, np.int64),
            "last_map": np.asarray(last_map, np.float32), "last_sbp": np.full(n, 120.0, np.float32),
            "caseid": np.array([str(i) for i in range(n)]), "subjectid": np.array([f"s{i % 4}" for i in range(n)]),
            "t_end": np.full(n, 1000, np.int32), "last_time": np.full(n, 990, np.int32),
            "last_dbp": np.asarray(last_map, np.float32) - 20, "earlier_map": np.full((n, 2), np.nan, np.float32),
            "earlier_time": np.full((n, 2), -1, np.int32)}
    base.update(more)
    return WindowArrays(**base)


class _Manifest:
    """The manifest fields the comparators read."""

    label = LABEL

    def split_counts(self, split):
        from hypo.data.manifest import SplitCounts

        return SplitCounts(windows=10, normal=8, hypotension=2)


# ------------------------------------------------------------------------------------------ each by hand


def test_a_fixed_map_rule_is_one_operating_point_computed_by_hand():
    maps = [60, 70, 71.9, 72, 80, 90, np.nan]
    y = [1, 1, 0, 1, 0, 0, 1]
    rows, _ = split_comparators(_split(maps, y), _Manifest(), {})
    c72 = next(r for r in rows if r.name == "cuff MAP < 72")
    assert c72.fixed and c72.reads == CUFF and c72.p_hypo.tolist() == [1, 1, 1, 0, 0, 0, 0]  # 72 itself: no alarm
    m = comparator_metrics(y, c72, maps)
    # alarms at 60, 70, 71.9: two of the four hypotension windows, one of the three others
    assert m["sensitivity_hypotension"] == 2 / 4 and m["specificity_hypotension"] == 2 / 3
    assert m["ppv_hypotension"] == 2 / 3 and "auroc_hypotension" not in m
    c73 = next(r for r in rows if r.name == "cuff MAP < 73")
    assert comparator_metrics(y, c73, maps)["sensitivity_hypotension"] == 3 / 4  # 72 alarms below 73


def test_the_map_extrapolation_by_hand():
    # readings 80, 76, 72 mmHg at 0, 150, 300 s; the window ends at 330 s: the line reaches 63.2 at 630 s
    split = _split([72.0], [1], t_end=np.array([330], np.int32), last_time=np.array([300], np.int32),
                   earlier_map=np.array([[76.0, 80.0]], np.float32), earlier_time=np.array([[150, 0]], np.int32))
    assert cuff_extrapolation(split, 300)[0] == pytest.approx(76 + (-4 / 150) * (630 - 150))
    # a reading older than MAX_AGE_S before the window end is not used: two points remain
    old = dataclasses.replace(split, earlier_time=np.array([[150, 330 - MAX_AGE_S - 1]], np.int32))
    assert cuff_extrapolation(old, 300)[0] == pytest.approx(72 + (-4 / 150) * 330)
    # one reading: flat; none: NaN (the train prevalence then)
    one = dataclasses.replace(split, earlier_map=np.full((1, 2), np.nan, np.float32),
                              earlier_time=np.full((1, 2), -1, np.int32))
    assert cuff_extrapolation(one, 300)[0] == 72.0
    assert np.isnan(cuff_extrapolation(dataclasses.replace(one, last_map=np.array([np.nan], np.float32),
                                                           last_time=np.array([-1], np.int32)), 300)[0])
    # the alarm replay's form: at each reading, from it and the two before
    assert reading_extrapolation([0, 150, 300], [80, 76, 72], 300)[2] == pytest.approx(64.0)  # read at 600 s
    assert reading_extrapolation([0, 150, 300], [80, 76, 72], 300)[0] == 80.0


def test_last_dbp_ranks_as_the_dbp_itself_and_is_a_probability_from_a_fit_on_train():
    rng = np.random.default_rng(0)
    dbp = rng.normal(50, 8, 400)
    y = (rng.random(400) < 1 / (1 + np.exp((dbp - 45) / 3))).astype(int)
    train = _split(dbp + 20, y, last_dbp=dbp.astype(np.float32))
    fits = fit_comparators(train, _Manifest())
    assert fits[LAST_DBP].b < 0  # lower DBP, more hypotension
    rows, notes = split_comparators(train, _Manifest(), fits)
    row = next(r for r in rows if r.name == LAST_DBP)
    assert not notes and row.reads == CUFF and ((row.p_hypo > 0) & (row.p_hypo < 1)).all()
    m = comparator_metrics(y, row, train.last_map)
    assert m["auroc_hypotension"] == pytest.approx(roc_auc_score(y == 1, -dbp))
    # no fit given (hypo evaluate): a ramp with the same ranking
    ramp = next(r for r in split_comparators(train, _Manifest(), {})[0] if r.name == LAST_DBP)
    assert comparator_metrics(y, ramp, train.last_map)["auroc_hypotension"] == pytest.approx(m["auroc_hypotension"])


def test_art_comparators_by_hand_and_named_as_reading_the_line():
    art_map = np.array([60, 71, 80, 90], np.float32)
    split = _split([70, 70, 70, 70], [1, 1, 0, 0], art_last_map=art_map, art_last_sbp=art_map + 40,
                   art_last_dbp=art_map - 20, art_earlier_map=np.array([[62, 64], [75, 79], [80, 80], [90, 90]],
                                                                        np.float32))
    rows, notes = split_comparators(split, _Manifest(), {})
    names = {r.name: r for r in rows}
    assert names["ART MAP < 72"].reads == ART and names["ART MAP < 72"].p_hypo.tolist() == [1, 1, 0, 0]
    m = comparator_metrics(split.label, names["ART MAP < 72"], split.last_map)
    assert m["sensitivity_hypotension"] == 1.0 and m["specificity_hypotension"] == 1.0
    assert {"ART MAP extrapolation", "last ART DBP"} <= set(names) and not notes
    dbp = comparator_metrics(split.label, names["last ART DBP"], split.last_map)  # ranks as the ART DBP itself
    assert names["last ART DBP"].reads == ART
    assert dbp["auroc_hypotension"] == roc_auc_score([1, 1, 0, 0], -(art_map - 20))
    from hypo.learn.comparators import art_extrapolation

    # minutes centred 30, 180, 330 s before the end: 60, 62, 64 mmHg, falling 2 mmHg per 150 s
    assert art_extrapolation(split, 300, 60)[0] == pytest.approx(62 + (-2 / 150) * (300 + 180))


# ------------------------------------------------------------------------------------------ the MAP-matched AUROC


def test_a_score_constant_within_each_map_bin_gets_exactly_one_half():
    rng = np.random.default_rng(1)
    maps = rng.integers(55, 95, 3000).astype(float)
    y = rng.random(3000) < 1 / (1 + np.exp((maps - 68) / 4))
    value, pairs = matched_auroc(y, 1 / (1 + np.exp((maps - 65) / 5)), maps, 1.0)
    assert value[0] == 0.5 and pairs[0] > 0
    assert roc_auc_score(y, -maps) > 0.8  # ... while its plain AUROC is high


def test_a_score_with_information_beyond_the_current_map_is_well_above_one_half():
    rng = np.random.default_rng(2)
    maps = rng.integers(55, 95, 3000).astype(float)
    trend = rng.normal(0, 1, 3000)  # what the current MAP does not say
    y = rng.random(3000) < 1 / (1 + np.exp((maps - 68) / 4 + 1.5 * trend))
    value, _ = matched_auroc(y, -maps - 5 * trend, maps, reading_resolution(maps))
    assert value[0] > 0.7


def test_a_model_of_the_current_map_alone_is_within_0_02_of_one_half():
    rng = np.random.default_rng(3)
    maps = np.round(rng.uniform(55, 95, 5000) * 2) / 2  # readings at 0.5 mmHg: 1-mmHg bins hold two values
    y = (rng.random(5000) < 1 / (1 + np.exp((maps - 68) / 6))).astype(int)
    assert reading_resolution(maps) == 1.0
    p_hypo = 1 / (1 + np.exp((maps - 66) / 3))
    probs = np.stack([1 - p_hypo, p_hypo, np.zeros_like(p_hypo)], axis=1)
    m = evaluate_scores(y, probs, warn=False, last_map=maps)
    assert abs(m["matched_auroc_hypotension"] - 0.5) < 0.02 and m["auroc_hypotension"] > 0.75


def test_the_matched_auroc_is_the_pooled_within_bin_pair_count():
    rng = np.random.default_rng(4)
    maps, s = rng.integers(60, 70, 300).astype(float), np.round(rng.normal(size=300), 1)
    y = rng.random(300) < 0.3
    num = den = 0.0
    for b in np.unique(maps):
        d = s[(maps == b) & y][:, None] - s[(maps == b) & ~y][None, :]
        num, den = num + (d > 0).sum() + 0.5 * (d == 0).sum(), den + d.size
    assert matched_auroc(y, s, maps, 1.0)[0][0] == pytest.approx(num / den)


# ------------------------------------------------------------------------------------------ the gray zone


def test_strata_of_the_current_map_and_the_exclusion():
    assert map_stratum([64.9, 65, 75, 75.1, np.nan]).tolist() == [0, 1, 1, 2, 3]
    y = np.array([1, 1, 0, 0, 1, 0])
    maps = np.array([60, 62, 70, 71, 80, 85.0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.7, 0.1])
    probs = np.stack([1 - p, p, np.zeros(6)], axis=1)
    m = evaluate_scores(y, probs, warn=False, last_map=maps)
    assert m["bymap_below_n"] == 2 and m["bymap_gray_n"] == 2 and m["bymap_above_n"] == 2
    assert m["bymap_below_prevalence_hypotension"] == 1.0 and math.isnan(m["bymap_gray_auroc_hypotension"])
    assert m["excl_n"] == 4 and m["excl_auroc_hypotension"] == roc_auc_score([0, 0, 1, 0], [0.3, 0.6, 0.7, 0.1])


def test_comparison_tables_name_what_each_row_reads(tmp_path):
    data = str(tmp_path / "syn")
    write_synthetic_dataset(data, n_train=400, n_val=200, n_test=200)
    manifest = read_manifest(data)
    test = load_split(data, "test", manifest)
    fits = fit_comparators(load_split(data, "train", manifest, x=False), manifest)
    from hypo.learn.baselines import split_baselines

    rows, notes = split_rows(test, manifest, {}, split_baselines(test, manifest), fits)
    header, cells = hypotension_cells(rows, exclude=True)
    assert [c[:2] for c in cells] == [["baseline: last reading", "cuff"], ["cuff MAP < 72", "cuff"],
                                      ["cuff MAP < 73", "cuff"], [EXTRAPOLATION, "cuff"], [LAST_DBP, "cuff"]]
    assert "AUROC excl." in header and not notes
    header, cells = gray_zone_cells(rows)
    assert header[2].startswith("< 65 (n ") and "65-75" in header[3]


# ------------------------------------------------------------------------------------------ a dataset built before


def test_a_dataset_built_before_says_in_one_line_that_these_rows_need_a_rebuild(tmp_path):
    from hypo.search.hypotension_board import comparator_rows

    data = str(tmp_path / "old")
    write_synthetic_dataset(data, n_train=400, n_val=200, n_test=200)
    as_schema_2(data)
    manifest = read_manifest(data)
    assert manifest.schema_version == 3  # migrated
    val = load_split(data, "val", manifest)
    assert not val.has_comparator_inputs and val.last_dbp is None
    rows, notes = comparator_rows(data)
    assert [r["name"] for r in rows] == ["cuff MAP < 72", "cuff MAP < 73"]  # the fixed rules still score
    (note,) = notes
    assert "need a rebuild" in note and data in note and "\n" not in note
    from hypo.evaluate.external.validation import pooled_windows

    assert len(pooled_windows(data, manifest)) == 800  # every other reader works on it


def test_windows_carry_the_last_dbp_and_the_earlier_readings():
    n = 1500
    sig = np.full((n, N_SIGNALS), 1.0, np.float32)
    sig[:, [SBP, MBP, DBP]] = np.nan
    for t, (s, m, d) in {100: (120, 80, 60), 400: (118, 78, 58), 700: (110, 70, 50), 1000: (100, 60, 40),
                         1400: (100, 60, 41)}.items():
        sig[t, [SBP, MBP, DBP]] = (s, m, d)
    filled = np.nan_to_num(sig, nan=1.0)
    win = make_windows(sig, filled, WindowConfig(min_case_s=360))
    i = int(np.flatnonzero(win.t_end == 719)[0])  # after the reading at 700
    assert win.last_map[i] == 70 and win.last_dbp[i] == 50 and win.last_time[i] == 700
    assert win.earlier_map[i].tolist() == [78, 80] and win.earlier_time[i].tolist() == [400, 100]
    j = int(np.flatnonzero(win.t_end == 479)[0])  # one reading before the last
    assert win.earlier_map[j, 0] == 80 and np.isnan(win.earlier_map[j, 1]) and win.earlier_time[j, 1] == -1


# ------------------------------------------------------------------------------------------ alarms


def _events(episodes, duration=7200, span=(59, 7200)):
    ep = np.asarray(episodes, np.int64).reshape(-1, 2)
    return CaseEvents("1", "s1", duration, span, ep, classify_episodes(ep, span, 600), "cuff",
                      hypo_s=float((ep[:, 1] - ep[:, 0]).sum()) if len(ep) else 0.0)


def test_an_alarm_that_starts_inside_an_episode_is_not_judged_even_when_it_catches_the_next():
    cfg = AlarmConfig(stride_s=10)
    ev = _events([[2000, 2300], [2700, 3000]])  # the second onset's warning window begins at 1800
    ends = np.arange(60, 7200, 10)
    p = np.where((ends >= 2100) & (ends < 2800), 0.9, 0.1)  # on from inside the first episode into the second
    t, u = slots_on_grid(ends, 7200, 10)
    c = case_counts(Track(t, u, p, PROBABILITY), ev, [0.5], cfg)
    assert c.alarms.tolist() == [1] and c.judged.tolist() == [0] and c.catching.tolist() == [0]  # PPV undefined


def test_alarm_strata_by_the_last_cuff_map_by_hand():
    cfg = AlarmConfig(stride_s=10)
    ev = _events([[3600, 3900]])
    readings_t = np.array([100, 3000, 3600, 5000], np.int64)  # 80 mmHg, then 70 (gray), the low one, then 90
    readings = Track(*slots_of_readings(readings_t, 7200, 900), np.array([80, 70, 60, 90.0]), READING)
    ends = np.arange(60, 7200, 10)
    p = np.where(((ends >= 3300) & (ends < 3600)) | ((ends >= 6000) & (ends < 6100)), 0.9, 0.1)
    t, u = slots_on_grid(ends, 7200, 10)
    st = stratified([Track(t, u, p, PROBABILITY)], [ev], [readings], 0.5, cfg)
    # the episode's warning is judged at onset - 1 min (3540 s): last reading 70 mmHg, the gray zone; caught there
    assert st["gray"]["episodes"] == 1 and st["gray"]["sensitivity"] == 1.0 and st["gray"]["ppv"] == 1.0
    # the alarm at 6000 s is false (no onset after, 20 min before the end): last reading 90 mmHg
    assert st["above"]["false_alarms"] == 1 and st["above"]["ppv"] == 0.0
    # hours outside the episode and induction by stratum: above from 600 to 3000 s and from 5000 s to the end, gray
    # from 3000 to 3600 s, below (the low reading) from the episode's end at 3900 to 5000 s
    assert st["gray"]["hours"] == pytest.approx(600 / 3600) and st["below"]["hours"] == pytest.approx(1100 / 3600)
    assert st["above"]["hours"] == pytest.approx(4600 / 3600)
    assert st["above"]["fa_per_h"] == pytest.approx(1 / (4600 / 3600))


def test_one_feature_logistic_gives_the_prior_where_the_value_is_missing():
    fit = OneFeatureLogistic.fit(np.array([50, 60, 70, 80, np.nan]), np.array([1, 1, 0, 0, 1], bool))
    assert fit.prior == pytest.approx(0.6) and fit.predict([np.nan])[0] == pytest.approx(0.6)
    assert fit.predict([50])[0] > fit.predict([80])[0]


def test_the_burden_is_hypotensive_minutes_per_scored_hour():
    from hypo.evaluate.alarms.evaluation import _cases_summary
    from hypo.evaluate.alarms.replay import ReplayedSplit

    a = _events([[3600, 4200]], duration=7200, span=(59, 3659))  # 600 s of hypotension in a 3,600-s span
    b = _events([], duration=3600, span=(0, 3600))
    summary = _cases_summary(ReplayedSplit("test", [a, b], {}, {}, [], 2, 2, {}))
    assert summary.scored_span_hours == 2.0 and summary.hypotension_min_per_h == pytest.approx(10 / 2)
