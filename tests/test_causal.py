"""The causal pipeline: a window is prepared from the past only (the recording cut at its end gives the same window),
groups and units are judged with what is known then, and the arterial line's baselines read the line as it was
known (spikes found only once they are over, the line's interval so far)."""

import numpy as np
import pytest

from hypo.config import LabelConfig, WindowConfig
from hypo.data.art import ArterialLine, KnownLine, clean_arterial, last_minute
from hypo.data.signals import BIS, MAY_BE_MISSING, SBP
from hypo.data.sources.demo import simulate_case
from hypo.infer.causal import KNOWN_COLUMNS, known_at, prepare_windows, tally_rows, units_problem


def gate_signals(tmp_path):
    from hypo.data.sources.vital import read_vital_case

    from live_helpers import gate_recording

    return read_vital_case(gate_recording(tmp_path / "g.vital"), "g", "g", allow_missing=MAY_BE_MISSING).signals


def test_a_window_is_the_same_when_the_recording_ends_with_it(tmp_path):
    """Nothing after a window's end changes it: the gate recording (merged cuff values, artefacts, gaps, a group
    starting late, a restart) cut at each window's end gives that window, its completeness and its decisions."""
    sig = gate_signals(tmp_path)
    cfg = WindowConfig(stride_s=10, allow_missing=("mac", "bis"))
    ends = np.arange(59, len(sig), 10)
    whole = prepare_windows(sig, cfg, ends)
    for i in range(0, len(ends), 7):
        e = int(ends[i])
        cut = prepare_windows(sig[:e + 1], cfg, np.array([e]))
        assert cut.complete[0] == whole.complete[i] and cut.units[0] == whole.units[i], e
        assert (cut.absent_at[0] == whole.absent_at[i]).all(), e
        np.testing.assert_array_equal(cut.windows[0], whole.windows[i], err_msg=str(e))
    assert whole.complete.mean() > 0.6 and whole.absent_at[:, 1].any() and not whole.absent_at[-1, 1]


def test_what_is_known_adds_up_second_by_second():
    sig = simulate_case(2).signals[:3000]
    ends = np.array([59, 1000, 2999])
    known = known_at(sig, ends)
    assert known.shape == (3, len(KNOWN_COLUMNS))
    np.testing.assert_array_equal(known[1], tally_rows(sig[:1001]).sum(axis=0))
    np.testing.assert_array_equal(known_at(sig[1001:], [1998], before=known[1])[0], known[2])


def test_units_are_judged_on_the_values_so_far():
    sig = simulate_case(2).signals[:9000].copy()
    sig[:3600, BIS] /= 100  # a BIS on a 0-1 scale for the first hour, then a monitor in the right units
    cfg = WindowConfig(stride_s=60)
    prep = prepare_windows(sig, cfg, np.arange(59, 9000, 60))
    waiting = prep.units != ""
    first = int(np.flatnonzero(np.isfinite(sig[:, BIS]))[0]) // 60  # from the first BIS value on
    assert waiting[first:60].all() and not waiting[:first].any()
    assert "bis" in prep.units[first] and "wrong units" in prep.units[first]
    assert not prep.complete[waiting].any()
    assert not waiting[-1]  # once most values so far are plausible (here after 2.5 hours), windows are scored
    assert units_problem(known_at(simulate_case(3).signals, [3000])[0]) == ""
    zeros = sig.copy()
    zeros[:, BIS] = np.where(np.isfinite(zeros[:, BIS]), 0.0, np.nan)  # an idle sensor reads 0: never a unit
    assert units_problem(known_at(zeros, [8999])[0]) == ""
    kpa = simulate_case(3).signals.copy()
    kpa[:, SBP] *= 0.133
    assert "nibp_sbp" in units_problem(known_at(kpa, [3000])[0])


# ------------------------------------------------------------------------------------------- the arterial line


def regular_line(seconds=3600, interval=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(0, seconds, interval) + rng.uniform(0, 0.01, int(seconds / interval))
    mbp = 75 + 10 * np.sin(t / 600) + rng.normal(0, 1, len(t))
    return ArterialLine(t, mbp + 35, mbp, mbp - 20)


def stats_equal(a, b, rows=slice(None), rows_b=None):
    for f in ("n_valid", "label", "map_median", "sbp_median"):
        np.testing.assert_array_equal(getattr(a, f)[rows], getattr(b, f)[rows if rows_b is None else rows_b],
                                      err_msg=f)


def test_the_known_line_is_the_cleaned_line_where_causality_changes_nothing():
    raw = regular_line()
    cfg = LabelConfig(source="art")
    ends = np.arange(59, 3600, 10)
    stats_equal(KnownLine.of(raw).last_minute(ends, cfg), last_minute(clean_arterial(raw)[0], ends, cfg))


def test_a_spike_counts_as_a_value_until_the_sample_that_ends_it_has_come():
    raw = regular_line()
    j = int(np.searchsorted(raw.time, 1006.0))  # its return at ~1010: the window ending at 1009 cannot know
    raw.mbp[j:j + 2] += 60  # a flush: two samples 60 mmHg up, then back
    raw.sbp[j:j + 2] += 60
    raw.dbp[j:j + 2] += 60
    cfg = LabelConfig(source="art")
    ends = np.arange(59, 3600, 10)
    known = KnownLine.of(raw)
    back = raw.time[j + 2]
    assert np.isfinite(known.spike).sum() == 2 and known.spike[np.isfinite(known.spike)][0] == back
    got, whole = known.last_minute(ends, cfg), last_minute(clean_arterial(raw)[0], ends, cfg)
    unknown = (ends + 1 > raw.time[j]) & (ends + 1 <= back)  # the spike in the minute, its end not yet come
    assert unknown.sum() >= 1
    stats_equal(got, whole, ~unknown)
    for i in np.flatnonzero(unknown):  # what the line said then: the spike's samples still in
        now = raw.time < ends[i] + 1
        cut = ArterialLine(raw.time[now], raw.sbp[now], raw.mbp[now], raw.dbp[now])
        stats_equal(got, last_minute(clean_arterial(cut)[0], ends[i:i + 1], cfg), slice(i, i + 1), slice(0, 1))
        assert got.n_valid[i] == whole.n_valid[i] + int((raw.time[j:j + 2] >= ends[i] + 1 - 60).sum())


def test_the_lines_interval_is_the_one_known_so_far():
    slow = regular_line(1800, 4.0)
    fast = regular_line(1800, 1.0, seed=1)
    raw = ArterialLine(np.r_[slow.time, 1800 + fast.time], np.r_[slow.sbp, fast.sbp], np.r_[slow.mbp, fast.mbp],
                       np.r_[slow.dbp, fast.dbp])
    known = KnownLine.of(raw)
    iv = known.interval_at([100.0, 1700.0, 3500.0])
    assert iv[0] == pytest.approx(4.0, abs=0.02) and iv[1] == pytest.approx(4.0, abs=0.02)
    assert iv[2] == pytest.approx(1.0, abs=0.02)  # most gaps so far are 1 s by then
    assert raw.interval_s == pytest.approx(iv[2], abs=0.02)  # the whole line's, known only at its end
    assert np.isnan(known.interval_at([0.0])[0])
