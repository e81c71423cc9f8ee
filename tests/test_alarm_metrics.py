"""Alarm scoring on hand-made timelines: every metric checked exactly, the state machine, events, thresholds."""

import math

import numpy as np
import pytest

from hypo.config import LabelConfig
from hypo.data.art import ArterialLine, hypotension_episodes, hypotensive_centres, hypotensive_minutes
from hypo.errors import ConfigError
from hypo.evaluate.alarms.events import (
    INDUCTION,
    SCORED,
    UNDER_WAY,
    CaseEvents,
    case_events,
    classify_episodes,
    cuff_episodes,
    merge_episodes,
)
from hypo.evaluate.alarms.metrics import (
    PROBABILITY,
    READING,
    AlarmConfig,
    Track,
    case_counts,
    case_story,
    curve,
    operating_point,
    pool_counts,
    select_thresholds,
    sensitivity_at_fa,
    slots_of_readings,
    slots_on_grid,
    threshold_grid,
    weighted_quantiles,
)
from hypo.infer.alarm_policy import alarm_intervals, alarm_on, alarm_on_loop, reading_alarm_on

STRIDE = 10
DURATION = 7200
CFG = AlarmConfig(stride_s=STRIDE, m=2, hysteresis=0.05)


def events(episodes, span=(59, DURATION), duration=DURATION, induction_s=600):
    ep = np.asarray(episodes, np.int64).reshape(-1, 2)
    return CaseEvents("1", "s1", duration, span, ep, classify_episodes(ep, span, induction_s), "art")


def track_with_alarm(on_from: int, on_to: int, duration: int = DURATION, high: float = 0.9, low: float = 0.1):
    """Predictions every 10 s on whole tens of seconds, p = high for those in [on_from, on_to), else low."""
    ends = np.arange(60, duration, STRIDE)
    p = np.where((ends >= on_from) & (ends < on_to), high, low)
    t, u = slots_on_grid(ends, duration, STRIDE)
    return Track(t, u, p, PROBABILITY)


def counts(track, ev, threshold=0.5, cfg=CFG):
    return case_counts(track, ev, [threshold], cfg)


# ------------------------------------------------------------------------------------------ the state machine


def test_m_consecutive_predictions_start_an_alarm():
    p = [0.6, 0.4, 0.6, 0.6, 0.6]
    assert alarm_on(p, [0.5], m=2, hysteresis=0.0)[0].tolist() == [False, False, False, True, True]
    assert alarm_on(p, [0.5], m=1, hysteresis=0.0)[0].tolist() == [True, False, True, True, True]
    assert alarm_on(p, [0.5], m=3, hysteresis=0.0)[0].tolist() == [False, False, False, False, True]


def test_hysteresis_keeps_an_alarm_on_until_below_threshold_minus_hysteresis():
    p = [0.6, 0.6, 0.47, 0.46, 0.44, 0.6]
    on = alarm_on(p, [0.5], m=2, hysteresis=0.05)[0]
    assert on.tolist() == [False, True, True, True, False, False]  # 0.47, 0.46 >= 0.45 hold it; 0.44 ends it
    no_h = alarm_on(p, [0.5], m=2, hysteresis=0.0)[0]
    assert no_h.tolist() == [False, True, False, False, False, False]


def test_a_missing_prediction_ends_an_alarm_and_breaks_the_run():
    p = [0.9, 0.9, np.nan, 0.9, 0.9, 0.9]
    assert alarm_on(p, [0.5], m=2)[0].tolist() == [False, True, False, False, True, True]


def test_vectorised_state_machine_equals_the_loop():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(0, 60))
        p = rng.random(n)
        p[rng.random(n) < 0.1] = np.nan
        m, h = int(rng.integers(1, 5)), float(rng.choice([0.0, 0.05, 0.2]))
        th = rng.random(4)
        got = alarm_on(p, th, m, h)
        for i, t in enumerate(th):
            assert got[i].tolist() == alarm_on_loop(p, t, m, h).tolist()


def test_reading_alarms_restart_at_each_low_reading():
    times = np.array([100, 400, 700, 1000])
    t, u = slots_of_readings(times, 1500, max_hold_s=900)
    assert u.tolist() == [400, 700, 1000, 1500]
    on = reading_alarm_on([70, 60, 62, 80], [65])[0]
    assert on.tolist() == [False, True, True, False]
    assert alarm_intervals(t, u, on, restart_each_slot=True).tolist() == [[400, 700], [700, 1000]]  # two alarms
    assert alarm_intervals(t, u, on).tolist() == [[400, 1000]]  # a probability alarm would be one
    t, u = slots_of_readings(np.array([0, 2000]), 2500, max_hold_s=900)
    assert u.tolist() == [900, 2500]  # a reading is not carried past the fill rule's limit


# ------------------------------------------------------------------------------------------ the metrics


def test_an_alarm_3_min_before_onset_is_caught_with_lead_180_s():
    ev = events([[3600, 3900]])
    c = counts(track_with_alarm(3410, 3600), ev)  # p high from 3410; m = 2: the alarm starts at 3420
    assert c.n_episodes == 1 and c.caught.tolist() == [1]
    assert c.lead.tolist() == [[180.0]]
    assert c.alarms.tolist() == [1] and c.false.tolist() == [0]  # followed by an onset within 15 min: true


def test_an_alarm_20_min_before_onset_is_not_caught_and_is_false():
    ev = events([[3600, 3900]])
    c = counts(track_with_alarm(3600 - 1210, 3600 - 1080), ev)  # on from 20 min to 18 min before onset
    assert c.caught.tolist() == [0] and math.isnan(c.lead[0, 0])
    assert c.false.tolist() == [1]  # no onset within 15 min of its start


def test_an_alarm_that_began_earlier_and_is_still_on_counts_with_the_lead_capped():
    ev = events([[3600, 3900]])
    c = counts(track_with_alarm(3600 - 1810, 3600 - 200), ev)  # starts 30 min before, on until 200 s before
    assert c.caught.tolist() == [1] and c.lead.tolist() == [[900.0]]


def test_the_last_minute_before_onset_is_too_late():
    ev = events([[3600, 3900]])
    c = counts(track_with_alarm(3600 - 50, 3700), ev)  # starts 40 s before onset
    assert c.caught.tolist() == [0]
    assert c.detected.tolist() == [1] and c.det_lead.tolist() == [[40.0]]
    c = counts(track_with_alarm(3600 - 70, 3700), ev)  # starts 60 s before: on at onset - 1 min, caught
    assert c.caught.tolist() == [1] and c.lead.tolist() == [[60.0]]


def test_both_lead_bounds_are_settings():
    ev = events([[3600, 3900]])
    tr = track_with_alarm(3600 - 610, 3600 - 500)  # on from 10 min to ~8 min before onset
    assert counts(tr, ev).caught.tolist() == [1]
    assert counts(tr, ev, cfg=AlarmConfig(lead_max_s=480)).caught.tolist() == [0]
    late = track_with_alarm(3600 - 130, 3700)  # starts 2 min before onset
    assert counts(late, ev).caught.tolist() == [1]
    assert counts(late, ev, cfg=AlarmConfig(lead_min_s=180)).caught.tolist() == [0]
    with pytest.raises(ConfigError):
        AlarmConfig(lead_min_s=900, lead_max_s=600)


def test_an_alarm_inside_an_episode_is_not_false():
    ev = events([[3600, 4200]])
    c = counts(track_with_alarm(3650, 3800), ev)
    assert c.alarms.tolist() == [1] and c.false.tolist() == [0] and c.caught.tolist() == [0]
    assert c.detected.tolist() == [1] and c.det_lead.tolist() == [[-60.0]]  # started 60 s after onset


def test_false_alarms_per_hour_and_time_in_alarm_exactly():
    ev = events([[3600, 3900]])  # 300 s of episode
    tr = track_with_alarm(1000, 1300)  # alarm on from 1010 to 1300 (m = 2), far from the onset
    c = counts(tr, ev)
    assert c.scored_s == DURATION - 600  # the span after induction
    assert c.fa_s == DURATION - 600 - 300  # ... outside the episode
    assert c.false.tolist() == [1] and c.alarm_s.tolist() == [290.0]
    p = pool_counts([c], ["s1"], [0.5])
    cur = curve(p)
    assert cur["fa_per_h"][0] == pytest.approx(1 / ((DURATION - 900) / 3600))
    assert cur["alarms_per_h"][0] == pytest.approx(1 / ((DURATION - 600) / 3600))
    assert cur["time_in_alarm"][0] == pytest.approx(290 / (DURATION - 600))
    assert cur["sensitivity"][0] == 0.0


def test_alarms_in_induction_are_not_counted_and_induction_episodes_are_apart():
    ev = events([[300, 500], [3600, 3900]])
    assert ev.kind.tolist() == [INDUCTION, SCORED]
    c = counts(track_with_alarm(100, 250), ev)  # an alarm during induction, before the induction episode
    assert c.alarms.tolist() == [0] and c.false.tolist() == [0] and c.alarm_s.tolist() == [0.0]
    assert c.n_episodes == 1 and c.n_induction == 1 and c.induction_caught.tolist() == [1]
    assert c.caught.tolist() == [0]  # the scored episode was not announced


def test_an_episode_under_way_when_scoring_starts_is_left_out():
    ep = np.array([[1000, 1500], [3600, 3900]])
    ev = events(ep, span=(1200, DURATION))  # e.g. the arterial line placed at 1200 s
    assert ev.kind.tolist() == [UNDER_WAY, SCORED]
    c = counts(track_with_alarm(3410, 3600), ev)
    assert (c.n_episodes, c.n_under_way) == (1, 1) and c.caught.tolist() == [1]
    assert c.scored_s == DURATION - 1200 and c.fa_s == DURATION - 1200 - 300 - 300  # the part of [1000, 1500)


def test_reading_track_counts_each_low_reading_as_an_alarm():
    ev = events([[3600, 3900]])
    times = np.arange(600, DURATION, 300)
    values = np.full(len(times), 80.0)
    values[times == 3300] = 60.0  # one low reading 5 min before onset: caught, lead 300
    values[times == 1500] = 62.0  # one far from any episode: false
    values[times == 1800] = 61.0  # ... and the next: re-alarm, false again
    t, u = slots_of_readings(times, DURATION, 900)
    c = case_counts(Track(t, u, values, READING), ev, [65.0], CFG)
    assert c.caught.tolist() == [1] and c.lead.tolist() == [[300.0]]
    assert c.alarms.tolist() == [3] and c.false.tolist() == [2]


def test_many_thresholds_at_once_equal_one_at_a_time():
    rng = np.random.default_rng(3)
    ev = events([[1500, 1800], [3000, 3200], [5000, 6000]])
    ends = np.arange(59, DURATION, STRIDE)
    p = np.clip(rng.normal(0.3, 0.2, len(ends)), 0, 1)
    p[rng.random(len(ends)) < 0.05] = np.nan
    t, u = slots_on_grid(ends, DURATION, STRIDE)
    tr = Track(t, u, p, PROBABILITY)
    ths = np.array([0.2, 0.35, 0.5, 0.7])
    both = case_counts(tr, ev, ths, CFG)
    for i, th in enumerate(ths):
        one = case_counts(tr, ev, [th], CFG)
        for name in ("caught", "detected", "alarms", "false", "alarm_s"):
            assert getattr(both, name)[i] == getattr(one, name)[0], name
        np.testing.assert_array_equal(both.lead[i], one.lead[0])


# ------------------------------------------------------------------------------------------ events


def test_episodes_closer_than_5_min_are_merged():
    ep = np.array([[100, 200], [499, 600], [900, 1000], [1299, 1400]])
    assert merge_episodes(ep, 300).tolist() == [[100, 600], [900, 1400]]  # gaps 299: merged; 300: not
    assert merge_episodes(ep, 0).tolist() == ep.tolist()


def test_cuff_episodes_are_runs_of_low_readings():
    times = np.array([100, 400, 700, 1000, 1300, 1600])
    maps = np.array([70, 60, 62, 80, 64, 63])
    assert cuff_episodes(times, maps, 2000, 65).tolist() == [[400, 1000], [1300, 2000]]
    assert cuff_episodes(times, np.full(6, 80.0), 2000, 65).shape == (0, 2)


def test_art_events_use_the_label_rule_and_the_line_span():
    label = LabelConfig(source="art")
    t = np.arange(1200, 6000, 2.0)
    mbp = np.full(len(t), 80.0, np.float32)
    mbp[(t >= 3000) & (t < 3100)] = 55  # 100 s of hypotension
    mbp[(t >= 3300) & (t < 3400)] = 55  # 200 s later another: merged
    line = ArterialLine(t, mbp + 30, mbp, mbp - 20)
    ev = case_events("1", "s", 7000, label, 59, line=line, merge_gap_s=300)
    raw = hypotension_episodes(line, 7000, label)
    assert len(raw) == 2 and ev.episodes.tolist() == [[int(raw[0, 0]), int(raw[1, 1])]]
    assert ev.span == (1200, 5999) and ev.kind.tolist() == [SCORED]


def test_the_counting_episode_mask_equals_the_label_rule():
    rng = np.random.default_rng(0)
    label = LabelConfig(source="art")
    for _ in range(30):
        t = np.sort(rng.uniform(0, 3000, int(rng.integers(0, 1500))))
        mbp = rng.normal(66, 4, len(t)).astype(np.float32)
        mbp[rng.random(len(t)) < 0.01] = np.nan
        line = ArterialLine(t, mbp + 30, mbp, mbp - 20)
        centres = np.arange(0, 3000)
        assert hypotensive_centres(line, centres, label).tolist() == hypotensive_minutes(line, centres, label).tolist()


# ------------------------------------------------------------------------------------------ thresholds, intervals


def test_thresholds_are_chosen_on_the_curve_given():
    ths = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    c = {"sensitivity": np.array([1.0, 0.9, 0.8, 0.5, 0.2]), "fa_per_h": np.array([5.0, 2.0, 0.9, 0.4, 0.1])}
    chosen = select_thresholds(ths, c, AlarmConfig(fa_target_per_h=1.0, sens_target=0.85))
    assert chosen["fa_target"]["threshold"] == 0.3 and chosen["fa_target"]["met"]
    assert chosen["sens_target"]["threshold"] == 0.2 and chosen["sens_target"]["met"]
    chosen = select_thresholds(ths, c, AlarmConfig(fa_target_per_h=0.05, sens_target=1.0))
    assert chosen["fa_target"]["threshold"] == 0.5 and not chosen["fa_target"]["met"]  # fewest false alarms
    assert chosen["sens_target"]["threshold"] == 0.1 and chosen["sens_target"]["met"]


def test_sensitivity_at_a_false_alarm_rate_is_the_best_point_within_it():
    fa = np.array([5.0, 2.0, 0.9, 0.4, 0.1])
    sens = np.array([1.0, 0.9, 0.8, 0.5, 0.2])
    assert sensitivity_at_fa(fa, sens, [0.0, 0.5, 1.0, 10.0]).tolist() == [0.0, 0.5, 0.8, 1.0]


def test_threshold_grids_span_the_scores_and_include_a_silent_end():
    p = np.random.default_rng(1).random(5000)
    g = threshold_grid(p, PROBABILITY, 50)
    assert g[-1] > p.max() and g[0] <= np.quantile(p, 0.01) and np.all(np.diff(g) > 0)
    low = threshold_grid(p, PROBABILITY, 50, floor=0.3)
    assert low.min() > 0.3  # below the hysteresis an alarm, once on, would never end: no such threshold
    assert alarm_on([0.9, 0.0, 0.0], [0.04], m=1, hysteresis=0.05)[0].tolist() == [True, True, True]
    m = np.random.default_rng(1).normal(80, 10, 500)
    g = threshold_grid(m, READING, 50)
    assert g[0] == m.min() and not (m < g[0]).any() and (m < g[-1]).all()


def test_operating_point_intervals_come_from_whole_subjects():
    ev_a, ev_b = events([[3600, 3900]]), events([[3600, 3900]])
    caught = case_counts(track_with_alarm(3410, 3600), ev_a, [0.5], CFG)  # subject a: caught, lead 180
    missed = case_counts(track_with_alarm(0, 0), ev_b, [0.5], CFG)  # subject b: missed
    p = pool_counts([caught, missed], ["a", "b"], [0.5])
    w = np.array([[2, 0], [0, 2], [1, 1]], np.float64)  # replicates: a twice, b twice, one of each
    op = operating_point(p, 0, w)
    assert op["sensitivity"]["value"] == 0.5 and op["caught"] == 1 and op["episodes"] == 2
    assert op["sensitivity"]["lo"] == pytest.approx(0.025) and op["sensitivity"]["hi"] == pytest.approx(0.975)
    assert op["lead_median_s"]["value"] == 180.0 and op["lead_iqr_s"] == [180.0, 180.0]


def test_weighted_quantiles_repeat_values_by_their_weight():
    v = np.array([10.0, 20.0, 30.0])
    assert weighted_quantiles(v, np.array([[1, 1, 1], [0, 0, 3], [3, 1, 0]]), [0.5]).ravel().tolist() == [20, 30, 10]


# ------------------------------------------------------------------------------------------ alarms counted fairly


def test_an_alarm_on_in_the_warning_window_that_began_earlier_is_true_not_false():
    ev = events([[3600, 3900]])
    c = counts(track_with_alarm(3600 - 915, 3700), ev)  # starts 905 s before onset (m = 2), stays on into it
    assert c.caught.tolist() == [1] and c.lead.tolist() == [[900.0]]
    # no onset within 15 min of its start, yet true; still on 15 min after its start (by then inside the episode),
    # it counts again, neither true nor false
    assert c.alarms.tolist() == [2] and c.false.tolist() == [0]
    assert c.catching.tolist() == [1] and c.judged.tolist() == [1]
    far = counts(track_with_alarm(3600 - 1210, 3600 - 1080), ev)  # ends before the warning window: still false
    assert far.false.tolist() == [1] and far.catching.tolist() == [0]
    story = case_story(track_with_alarm(3600 - 915, 3700), ev, 0.5, CFG)
    assert [a["status"] for a in story["alarms"]] == ["true", "in episode"]


def test_an_alarm_that_stays_on_is_judged_again_every_lead_max():
    ev = events([[3600, 3900]])
    # on from 600 s to the end of a 2-hour recording: judged at its start and every 15 min after
    c = counts(track_with_alarm(600, DURATION), ev)
    story = case_story(track_with_alarm(600, DURATION), ev, 0.5, CFG)
    starts = [a["start"] for a in story["alarms"]]
    assert np.all(np.diff(starts) == CFG.lead_max_s) and len(starts) == c.alarms[0]
    statuses = [a["status"] for a in story["alarms"]]
    # judged at 610, 1510, ... s: those on during the warning window [2700, 3540] are true (2410 and 3310), the
    # others false, but the last (6910 s: within 15 min of the end, no onset after it), censored
    assert statuses == ["false", "false", "true", "true", "false", "false", "false", "censored"]
    assert c.false.tolist() == [5] and c.censored.tolist() == [1]
    assert c.caught.tolist() == [1] and c.lead.tolist() == [[900.0]]  # the lead still from the alarm's first start
    # a permanent alarm cannot meet a target of 1 false alarm per hour any more
    fa_h = c.false[0] / ((c.fa_s - c.censored_s[0]) / 3600)
    assert fa_h > 1.0


def test_an_alarm_too_near_the_end_to_judge_is_censored_and_its_time_left_out():
    ev = events([[3600, 3900]])
    tr = track_with_alarm(DURATION - 610, DURATION - 400)  # starts at 6600: 10 min before the end, no onset after
    c = counts(tr, ev)
    assert c.alarms.tolist() == [1] and c.false.tolist() == [0] and c.censored.tolist() == [1]
    assert c.judged.tolist() == [0] and c.censored_s.tolist() == [600.0]
    cur = curve(pool_counts([c], ["s1"], [0.5]))
    assert cur["fa_per_h"][0] == 0.0 and math.isnan(cur["ppv"][0])
    both = counts(Track(tr.t, tr.u, np.maximum(tr.score, track_with_alarm(1000, 1300).score), PROBABILITY), ev)
    assert both.false.tolist() == [1] and both.censored.tolist() == [1]
    cur = curve(pool_counts([both], ["s1"], [0.5]))  # one false alarm per hour outside episodes, less the tail
    assert cur["fa_per_h"][0] == pytest.approx(1 / ((DURATION - 900 - 600) / 3600))
    early = counts(track_with_alarm(DURATION - 1000, DURATION - 800), ev)  # 16 min before the end: judged, false
    assert early.false.tolist() == [1] and early.censored.tolist() == [0]
    assert [a["status"] for a in case_story(tr, ev, 0.5, CFG)["alarms"]] == ["censored"]


def test_a_short_gap_in_predictions_holds_the_alarm_a_long_one_ends_it():
    p = [0.9, 0.9, np.nan, 0.9, 0.9]
    assert alarm_on(p, [0.5], m=2, max_gap=3)[0].tolist() == [False, True, True, True, True]
    assert alarm_on([0.9, np.nan, 0.9], [0.5], m=2, max_gap=3)[0].tolist() == [False, False, True]  # run held
    long = [0.9, 0.9] + [np.nan] * 5 + [0.9, 0.9]
    assert alarm_on(long, [0.5], m=2, max_gap=3)[0].tolist() == [False, True, True, True, True, False, False,
                                                                  False, True]
    assert alarm_on([np.nan, 0.9, 0.9], [0.5], m=1, max_gap=3)[0].tolist() == [False, True, True]  # nothing to hold
    ev = events([])
    tr = track_with_alarm(2000, 2600)
    tr.score[(tr.t >= 2200) & (tr.t < 2220)] = np.nan  # 20 s without predictions inside the alarm
    assert counts(tr, ev).alarms.tolist() == [1]  # default: 30 s held
    assert counts(tr, ev, cfg=AlarmConfig(stride_s=STRIDE, max_gap_s=0)).alarms.tolist() == [2]
    tr.score[(tr.t >= 2200) & (tr.t < 2260)] = np.nan  # 60 s: longer than 30 s, the alarm ends and starts again
    assert counts(tr, ev).alarms.tolist() == [2]


def test_held_gaps_equal_the_loop():
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(0, 50))
        p = rng.random(n)
        p[rng.random(n) < 0.3] = np.nan
        m, h, g = int(rng.integers(1, 4)), float(rng.choice([0.0, 0.05])), int(rng.integers(0, 4))
        th = rng.random(3)
        got = alarm_on(p, th, m, h, g)
        for i, t in enumerate(th):
            assert got[i].tolist() == alarm_on_loop(p, t, m, h, g).tolist()


def test_cuff_episodes_end_one_cuff_interval_after_the_last_low_reading():
    times = np.array([100, 400, 700, 2500, 2800])
    maps = np.array([60, 62, 80, 63, 64])
    assert cuff_episodes(times, maps, 4000, 65, hold_s=300).tolist() == [[100, 700], [2500, 3100]]
    sparse = cuff_episodes(np.array([100, 1900]), np.array([60, 80]), 4000, 65, hold_s=300)
    assert sparse.tolist() == [[100, 400]]  # not until the next reading 30 min later
    ev = case_events("1", "s", 4000, LabelConfig(), 59, readings={"time": np.array([100, 1900]),
                                                                  "map": np.array([60.0, 80.0])}, cuff_hold_s=300)
    assert ev.episodes.tolist() == [[100, 400]] and ev.hypo_s == 300.0


def test_lead_median_is_the_same_median_for_the_point_and_the_replicates():
    evs = [events([[3600, 3900]]) for _ in range(2)]
    leads = (180, 300)  # an even count: the lower median, 180, both ways
    cs = [case_counts(track_with_alarm(3600 - lead - 10, 3600), ev, [0.5], CFG) for lead, ev in zip(leads, evs)]
    p = pool_counts(cs, ["a", "b"], [0.5])
    op = operating_point(p, 0, np.ones((3, 2)))
    assert op["lead_median_s"]["value"] == 180.0
    assert op["lead_median_s"]["lo"] == op["lead_median_s"]["hi"] == 180.0


def test_alarm_ppv_is_the_share_of_judged_alarms_that_catch_an_episode():
    ev = events([[3600, 3900]])
    tr = track_with_alarm(3410, 3600)
    tr.score = np.maximum(tr.score, track_with_alarm(1000, 1300).score)  # one true, one false
    c = counts(tr, ev)
    assert (c.alarms.tolist(), c.false.tolist(), c.catching.tolist()) == ([2], [1], [1])
    op = operating_point(pool_counts([c], ["s1"], [0.5]), 0, None)
    assert op["ppv"]["value"] == 0.5
