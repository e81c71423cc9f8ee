"""Labels from the arterial line: artefact rules, the sustained-minute event, the 80% native-rate coverage rule,
windows labelled from it (never fed by it), and the config that keeps cuff datasets as they were."""

import numpy as np
import pytest

from hypo.config import FillConfig, LabelConfig, WindowConfig, fingerprint, from_dict, to_dict
from hypo.data.art import (
    ART_RULES,
    ArterialLine,
    clean_arterial,
    hypotension_episodes,
    hypotensive_minutes,
    samples_needed,
    stretch_stats,
)
from hypo.data.filling import fill_gaps
from hypo.data.pipeline import process_case, usable_arterial_line, windows_table
from hypo.data.signals import BIS, DBP, ECG, MAC, MBP, N_SIGNALS, PLETH, SBP
from hypo.data.sources.base import Case
from hypo.data.sources.demo import simulate_case
from hypo.data.windows import make_windows
from hypo.errors import CaseRejected, ConfigError

ART = LabelConfig(source="art")

# Computed on the code before label sources existed (commit e90f870): a cuff config must keep them, or every
# folder built before would refuse to resume.
DEFAULT_FINGERPRINT = "79828cee3f8ccb06"
DEFAULT_DICT = {
    "window_s": 60, "stride_s": 60, "min_case_s": 1200,
    "label": {"mode": "reading", "horizon_s": 300, "tolerance_s": 90, "hypo_map": 65.0, "hyper_sbp": 160.0},
    "fill": {"waveform_max_gap_s": 10, "nibp_max_carry_s": 900, "numeric_max_carry_s": 300},
    "split": {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 0},
}


def line_at(times, mbp, pp=40.0):
    """A line with the given MAP at the given times (SBP = MAP + 0.65 PP, DBP = MAP - 0.35 PP)."""
    mbp = np.asarray(mbp, np.float64) * np.ones(len(times))
    return ArterialLine(np.asarray(times, np.float64), mbp + 0.65 * pp, mbp, mbp - 0.35 * pp)


# ------------------------------------------------------------------------------------------------- config


def test_default_config_keeps_its_dict_and_fingerprint():
    assert to_dict(WindowConfig()) == DEFAULT_DICT
    assert fingerprint(WindowConfig()) == DEFAULT_FINGERPRINT
    ffill = WindowConfig(label=LabelConfig(mode="ffill"))
    assert "source" not in to_dict(ffill)["label"] and from_dict(WindowConfig, to_dict(ffill)) == ffill


def test_art_config_is_written_whole_and_checked():
    cfg = WindowConfig(label=ART)
    d = to_dict(cfg)
    assert d["label"]["source"] == "art" and d["label"]["event_s"] == 60 and d["label"]["min_coverage"] == 0.8
    assert from_dict(WindowConfig, d) == cfg and fingerprint(cfg) != DEFAULT_FINGERPRINT
    with pytest.raises(ConfigError, match="cuff labels"):
        LabelConfig(source="art", mode="ffill")
    with pytest.raises(ConfigError, match="cuff labels"):
        LabelConfig(source="art", tolerance_s=30)
    with pytest.raises(ConfigError, match="after the window end"):
        LabelConfig(source="art", horizon_s=30)  # the minute would start at the window end
    LabelConfig(source="art", horizon_s=31)
    with pytest.raises(ConfigError, match="label source"):
        LabelConfig(source="invasive")
    with pytest.raises(ConfigError, match="min_coverage"):
        LabelConfig(source="art", min_coverage=0)


# ---------------------------------------------------------------------------------------------- artefacts


def test_each_artefact_rule_removes_whole_samples_and_counts_them():
    t = np.arange(0.0, 200.0, 2.0)
    line = line_at(t, 80.0)
    sbp, mbp, dbp = line.sbp.copy(), line.mbp.copy(), line.dbp.copy()
    mbp[3] = np.nan  # incomplete
    sbp[10:13] = mbp[10:13] = dbp[10:13] = 300  # flush: square jump, no pulse pressure
    sbp[20:25], mbp[20:25], dbp[20:25] = 1, 0, 0  # zeroing: open to air
    mbp[30] = 240  # out of range
    sbp[40], dbp[40] = 60, 70  # SBP <= DBP: inverted, in range
    sbp[45], dbp[45] = 60, 60.0  # no pulse pressure at all: flush/zero comes first
    dbp[50] = 2  # DBP below 5 mmHg
    mbp[60] += 45  # a one-sample spike up
    sbp[60] += 45
    dbp[60] += 45
    mbp[70:72] -= 40  # a two-sample dip that comes back
    sbp[70:72] -= 40
    dbp[70:72] -= 40
    mbp[85:] -= 35  # a real step: it does not come back, so it stays
    sbp[85:] -= 35
    dbp[85:] -= 35
    clean, counts = clean_arterial(ArterialLine(t, sbp, mbp, dbp))
    assert list(counts) == list(ART_RULES)
    assert counts == {"art_incomplete": 1, "art_flush_or_zero": 3 + 5 + 1, "art_out_of_range": 2,
                      "art_sbp_le_dbp": 1, "art_spike": 3}
    removed = set(np.round(t, 1)) - set(np.round(clean.time, 1))
    want = {t[i] for i in (3, 10, 11, 12, 20, 21, 22, 23, 24, 30, 40, 45, 50, 60, 70, 71)}
    assert removed == want
    assert clean.interval_s == 2.0 and (np.diff(clean.time) > 0).all()
    assert (clean.mbp[clean.time >= t[85]] == 45).all()  # the step survives


def test_equal_pressures_are_a_flush_and_inverted_ones_a_swap():
    t = np.arange(0.0, 20.0, 2.0)
    line = line_at(t, 80.0)
    line.sbp[4], line.dbp[4] = 70.0, 70.0
    line.sbp[6], line.dbp[6] = 60.0, 90.0
    _, counts = clean_arterial(line)
    assert counts["art_flush_or_zero"] == 1 and counts["art_sbp_le_dbp"] == 1


def test_tracks_merge_on_their_times():
    t = np.array([0.0, 2.0, 4.0])
    line = ArterialLine.from_tracks({"art_sbp": (t, [120, 121, 122]), "art_mbp": (t[[0, 2]], [80, 82]),
                                     "art_dbp": (t, [60, 61, 62])})
    assert line.time.tolist() == [0.0, 2.0, 4.0] and np.isnan(line.mbp[1]) and line.mbp[2] == 82
    _, counts = clean_arterial(line)
    assert counts["art_incomplete"] == 1


# ------------------------------------------------------------------------------- event definition, coverage


def hand_minute(line, centre, half=30):
    """The valid samples of [centre - 30, centre + 30), picked by hand."""
    m = (line.time >= centre - half) & (line.time < centre + half)
    return line.mbp[m], line.sbp[m]


def test_samples_needed_counts_at_the_native_rate():
    assert samples_needed(2.0, ART) == 24  # 80% of 30
    assert samples_needed(1.0, ART) == 48  # a 1-s line needs 48 of 60
    assert samples_needed(5.0, ART) == 10
    one = ArterialLine([100.0], [110.0], [60.0], [45.0])  # no rate to judge coverage by: nothing is covered
    assert np.isnan(one.interval_s) and stretch_stats(one, [100], ART).label.tolist() == [-1]


def test_minute_class_and_median_against_hand_computation():
    rng = np.random.default_rng(3)
    t = np.arange(0.0, 1200.0, 2.0) + rng.uniform(-0.05, 0.05, 600)
    mbp = np.full(600, 80.0)
    mbp[(t >= 300) & (t < 420)] = 60 + rng.integers(0, 4, int(((t >= 300) & (t < 420)).sum()))  # 2 min < 65
    mbp[(t >= 600) & (t < 660)] = 62
    mbp[np.argmin(np.abs(t - 640))] = 66  # one sample at 66 breaks "every sample < 65"
    line = line_at(t, mbp, pp=rng.uniform(30, 60, 600))
    sbp = line.sbp.copy()
    sbp[(t >= 900) & (t < 1000)] = 170 + rng.integers(0, 10, int(((t >= 900) & (t < 1000)).sum()))
    line = ArterialLine(t, sbp, line.mbp, line.dbp)
    clean, _ = clean_arterial(line)
    centres = np.array([150, 330, 360, 390, 630, 930, 960, 270])
    st = stretch_stats(clean, centres, ART)
    for c, lab, med_map, med_sbp in zip(centres, st.label, st.map_median, st.sbp_median):
        m, s = hand_minute(clean, c)
        assert np.isclose(med_map, np.median(m)) and np.isclose(med_sbp, np.median(s))
        want = 1 if (m < 65).all() else 2 if (s > 160).all() else 0
        assert lab == want
    assert st.label.tolist() == [0, 1, 1, 1, 0, 2, 2, 0]
    assert hypotensive_minutes(clean, centres, ART).tolist() == [False, True, True, True, False, False, False, False]


def test_coverage_rule_counts_valid_samples_at_native_times():
    t = np.arange(0.0, 600.0, 2.0)
    line = line_at(t, 60.0)
    minute = np.flatnonzero((t >= 270) & (t < 330))
    assert len(minute) == 30
    keep = np.ones(len(t), bool)
    keep[minute[:6]] = False  # 24 of 30 left: enough
    short = ArterialLine(t[keep], line.sbp[keep], line.mbp[keep], line.dbp[keep], interval_s=2.0)
    assert stretch_stats(short, [300], ART).label.tolist() == [1]
    keep[minute[6]] = False  # 23: not enough
    shorter = ArterialLine(t[keep], line.sbp[keep], line.mbp[keep], line.dbp[keep], interval_s=2.0)
    st = stretch_stats(shorter, [300], ART)
    assert st.label.tolist() == [-1] and st.n_valid.tolist() == [23] and np.isnan(st.map_median[0])
    # artefacts do not count: 7 flushed samples in an otherwise full minute leave 23 valid ones
    sbp, mbp, dbp = line.sbp.copy(), line.mbp.copy(), line.dbp.copy()
    sbp[minute[:7]] = mbp[minute[:7]] = dbp[minute[:7]] = 300
    clean, counts = clean_arterial(ArterialLine(t, sbp, mbp, dbp))
    assert counts["art_flush_or_zero"] == 7 and clean.interval_s == 2.0
    assert stretch_stats(clean, [300], ART).label.tolist() == [-1]
    # a 1-s line needs 48 samples: 30 (every other second) are not enough, as they would be at 2 s
    sparse = line_at(np.arange(0.0, 600.0, 2.0), 60.0)
    dense_rate = ArterialLine(sparse.time, sparse.sbp, sparse.mbp, sparse.dbp, interval_s=1.0)
    assert stretch_stats(dense_rate, [300], ART).label.tolist() == [-1]


def test_episodes_are_unions_of_hypotensive_minutes():
    t = np.arange(0.0, 1800.0, 2.0)
    mbp = np.where((t >= 600) & (t < 780), 55.0, 85.0)  # 3 min below 65
    mbp = np.where((t >= 1200) & (t < 1240), 55.0, mbp)  # 40 s: too short to be an event
    clean, _ = clean_arterial(line_at(t, mbp))
    # The first minute holding only low samples is [599, 659) (no sample in [599, 600)); the last [720, 780).
    assert hypotension_episodes(clean, 1800, ART).tolist() == [[599, 780]]


# ----------------------------------------------------------------------------------------- windows, cases


def plain_case(seconds=1800, seed=0):
    rng = np.random.default_rng(seed)
    sig = np.full((seconds, N_SIGNALS), np.nan, np.float32)
    sig[:, ECG] = rng.normal(0, 1, seconds)
    sig[:, PLETH] = 50 + rng.normal(0, 1, seconds)
    sig[:, MAC] = 1.0
    sig[:, BIS] = 45.0
    times = np.arange(40, seconds, 170)
    sig[times, MBP] = 80
    sig[times, SBP] = 120
    sig[times, DBP] = 60
    return sig


def test_windows_take_labels_and_last_minute_from_the_line_not_x():
    raw = plain_case()
    sig = fill_gaps(raw, FillConfig())
    rng = np.random.default_rng(1)
    t = np.arange(0.0, 1800.0, 2.0) + 0.3
    mbp = 80 + rng.normal(0, 2, len(t))
    mbp[(t >= 600) & (t < 700)] = 58
    line, _ = clean_arterial(line_at(t, mbp))
    cuff = make_windows(raw, sig, WindowConfig())
    art = make_windows(raw, sig, WindowConfig(label=ART), art=line)
    ends = art.t_end
    assert np.array_equal(cuff.x[np.isin(cuff.t_end, ends)], art.x[np.isin(art.t_end, cuff.t_end)])
    st = stretch_stats(line, ends + 300, ART)
    assert np.array_equal(art.label, st.label) and (art.label >= 0).all()
    assert np.array_equal(art.label_time, ends + 300)
    for i, e in enumerate(ends):
        m, s = hand_minute(line, e + 300)
        assert np.isclose(art.label_map[i], np.median(m)) and np.isclose(art.label_sbp[i], np.median(s))
        last_m, last_s = hand_minute(line, e + 1 - 30)  # the window's own last minute
        assert (last_m.size and np.isclose(art.art_last_map[i], np.median(last_m))
                and np.isclose(art.art_last_sbp[i], np.median(last_s)))
    assert art.t_end[art.label == 1].tolist() == [359]  # its minute [629, 689) lies in the dip [600, 700)
    # the cuff's last reading is still there, for the last-reading baseline
    assert np.array_equal(art.last_map, cuff.last_map[np.isin(cuff.t_end, ends)])
    assert cuff.art_last_map is None
    # windows whose minute runs past the line (fewer than 24 samples by hand) are dropped as no_label, counted
    assert art.dropped_incomplete == cuff.dropped_incomplete == 1  # the first: no cuff value to carry yet
    short = [e for e in range(119, 1800, 60) if len(hand_minute(line, e + 300)[0]) < 24]
    assert art.dropped_no_label == len(short) > 0 and not set(short) & set(ends)
    table = windows_table(art, "c", "s", "train", 60)
    assert table.column("art_last_map").to_numpy().tolist() == art.art_last_map.tolist()
    assert "art_last_map" not in windows_table(cuff, "c", "s", "train", 60).column_names


def test_changing_the_arterial_line_leaves_every_x_bit_identical():
    case = simulate_case(1, seed=0)
    assert case.art is not None
    cfg = WindowConfig(label=ART)
    win, summary = process_case(case, cfg)
    other = Case(case.caseid, case.subjectid, case.signals.copy(), art=ArterialLine(
        case.art.time + 0.5, case.art.sbp + 25, case.art.mbp + 25, case.art.dbp + 25))
    win2, _ = process_case(other, cfg)
    same = np.intersect1d(win.t_end, win2.t_end)
    assert len(same) > 0.9 * max(len(win), len(win2))  # coverage may keep a few other windows
    assert win.x[np.isin(win.t_end, same)].tobytes() == win2.x[np.isin(win2.t_end, same)].tobytes()
    a, b = win.label[np.isin(win.t_end, same)], win2.label[np.isin(win2.t_end, same)]
    assert (b == 2).sum() > (a == 2).sum()  # the labels did move: 25 mmHg higher, more hypertension
    cuff, _ = process_case(case, WindowConfig())
    both = np.isin(cuff.t_end, win.t_end)
    assert cuff.x[both].tobytes() == win.x[np.isin(win.t_end, cuff.t_end)].tobytes()
    assert summary["art"]["interval_s"] == 2.0 and set(summary["art"]["artefacts"]) == set(ART_RULES)


def test_cases_without_a_usable_line_are_rejected():
    sig = plain_case()
    with pytest.raises(CaseRejected) as info:
        process_case(Case("9", "9", sig), WindowConfig(label=ART))
    assert info.value.reason == "no arterial line"
    t = np.arange(0.0, 1800.0, 2.0)
    flushed = ArterialLine(t, np.full(len(t), 300.0), np.full(len(t), 300.0), np.full(len(t), 299.0))
    with pytest.raises(CaseRejected, match="artefacts") as info:
        usable_arterial_line(Case("9", "9", sig, art=flushed))
    assert info.value.reason == "no arterial line"
    process_case(Case("9", "9", sig), WindowConfig())  # cuff labels need no line
