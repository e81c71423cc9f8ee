"""Each bed's 1-s grid: a recording streamed in 1-s messages (parsed from the recorder's JSON) gives exactly the
[seconds, 7] array read_vital_case gives for the same file; late, duplicated, out-of-order and far-ahead records;
the incremental alarm step equals the alarm state machine."""

import json
import math
import time

import numpy as np
import pytest

from hypo.data.signals import ECG, MBP, N_SIGNALS, SBP
from hypo.data.sources.demo import simulate_case
from hypo.data.sources.demo_files import TRACK_MAP_FILE, write_demo_vital_files
from hypo.data.sources.vital import read_vital_case, write_vital_case
from hypo.infer.alarm_policy import AlarmState, alarm_on, alarm_on_loop, alarm_step
from hypo.serve.bed import Bed, full_track_map
from hypo.serve.grid import SecondGrid
from hypo.serve.protocol import parse_json
from hypo.serve.replay import encode_payload, read_recording, room_messages

from live_helpers import monitor_rate_vital


def stream_into_bed(path, track_map=None, shift=0.0):
    """Stream a .vital file as the recorder's JSON into a Bed; return the final rows [seconds, 7] and the bed."""
    rec = read_recording(path, "OR1")
    bed = Bed("OR1", rec.dtstart + shift, full_track_map(track_map), 60, 10, 1200)
    out = np.full((rec.duration_s + 2, N_SIGNALS), np.nan, np.float32)
    n_due = 0
    for room in room_messages(rec, shift):
        payload = parse_json(encode_payload("tok", [room]))
        acc = bed.accept(payload.rooms[0], time.time(), math.inf)
        for fin in acc.finals:
            out[fin.seconds] = fin.rows
        n_due += len(acc.due)
    return out, bed, n_due


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    a = write_demo_vital_files(str(root / "a"), 1, first=3)[0]  # 3255 s, site a (VitalDB names, 1-Hz waves)
    b = write_demo_vital_files(str(root / "b"), 1, first=2, site="b")[0]  # TIVA (no MAC track), other names
    case = simulate_case(5)
    case.signals, case.art = case.signals[:900], None
    fast = write_vital_case(case, root / "100hz.vital", wave_srate=100)
    odd = write_vital_case(case, root / "7hz.vital", wave_srate=7, dtstart=4102444800.25)  # a start off the second
    monitor = monitor_rate_vital(case, root / "monitor.vital")
    return {"a": a, "b": b, "b_map": str(root / "b" / TRACK_MAP_FILE), "fast": str(fast), "odd": str(odd),
            "monitor": monitor}


def test_demo_recording_streamed_gives_read_vital_case_exactly(recordings):
    ref = read_vital_case(recordings["a"], "x", "x").signals
    got, bed, n_due = stream_into_bed(recordings["a"])
    np.testing.assert_array_equal(got[:len(ref)], ref)  # NaN where NaN, every value bit for bit
    assert np.isnan(got[len(ref):]).all() and not bed.counts
    assert n_due == (len(ref) - 60) // 10 + 1  # a window every 10 s, as predict_case's window_ends


def test_other_site_with_its_track_map_and_no_mac_track(recordings):
    tmap = json.load(open(recordings["b_map"]))
    ref = read_vital_case(recordings["b"], "x", "x", tmap, allow_missing=("mac",)).signals
    got, bed, _ = stream_into_bed(recordings["b"], tmap)
    np.testing.assert_array_equal(got[:len(ref)], ref)
    assert "mac" not in bed.tracks.chosen and bed.tracks.chosen["nibp_mbp"] == "Intellivue/NIBP_MEAN"


@pytest.mark.parametrize("which", ["fast", "odd", "monitor"])
def test_faster_waves_and_a_start_off_the_second(recordings, which):
    ref = read_vital_case(recordings[which], "x", "x").signals
    got, _, _ = stream_into_bed(recordings[which], shift=86400 * 365)  # a live shift keeps the grid
    np.testing.assert_array_equal(got[:len(ref)], ref)
    if which == "monitor":  # each second's first sample: the one a live stream knows as soon as the second begins
        held = simulate_case(5).signals[:900, ECG]
        assert np.isfinite(ref[:, ECG]).mean() > 0.99 and not np.array_equal(ref[:, ECG], held)


def test_late_duplicate_out_of_order_and_far_ahead_records_are_refused():
    g = SecondGrid(origin=1000.0, history_s=100, ahead_s=20)
    assert g.add_number(SBP, 1000.4, 120.0) and g.add_number(SBP, 1000.9, 121.0)  # the last in a second wins
    assert not g.add_number(SBP, 1000.9, 121.0)  # the same record again
    assert not g.add_number(SBP, 1000.5, 119.0)  # older than the track's last
    assert not g.add_number(SBP, 1030.0, 119.0)  # beyond the ring's future
    assert not g.add_number(SBP, 998.0, 119.0)  # before the case start
    assert g.add_wave(ECG, 1000.0, 10, np.arange(20.0)) == 2
    assert g.add_wave(ECG, 1001.5, 10, np.arange(20.0) + 100) == 2  # 5 samples overlap: dropped, not used twice
    fin = g.complete(1002.0)
    assert (fin.first, fin.stop) == (0, 2) and fin.seconds.tolist() == [0, 1]
    assert fin.rows[0, SBP] == 121.0 and fin.rows[:, ECG].tolist() == [0.0, 10.0]
    assert not g.add_number(MBP, 1001.2, 80.0)  # second 1 is final: nothing the model saw is rewritten
    assert g.add_wave(ECG, 1000.0, 10, np.arange(20.0)) == 0
    assert g.dropped == {"duplicate record": 1, "out of order": 1, "too far ahead of the stream": 1,
                         "before the case start": 1, "duplicate samples": 25, "late record": 1}
    w = g.window(1, 5)
    assert w.shape == (5, N_SIGNALS) and np.isnan(w[:3]).all() and w[4, ECG] == 10.0
    with pytest.raises(ValueError):
        g.window(2, 5)  # not final yet


def test_a_gap_of_minutes_leaves_nan_and_the_ring_does_not_leak():
    g = SecondGrid(origin=0.0, history_s=30, ahead_s=10)
    g.add_number(MBP, 5.0, 70.0)
    g.complete(8)
    g.add_number(MBP, 600.0, 71.0)  # beyond the ring: refused until the stream gets there
    g.complete(600)  # a monitor restart: ten minutes without data
    assert g.add_number(MBP, 600.5, 72.0)
    fin = g.complete(601)
    assert fin.seconds.tolist() == [600] and fin.rows[0, MBP] == 72.0
    assert np.isnan(g.window(600, 30)[:-1]).all()


def test_alarm_step_equals_the_state_machine():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        p = rng.uniform(0, 1, n)
        p[rng.uniform(size=n) < 0.1] = np.nan
        th, m, h = float(rng.uniform(0.2, 0.8)), int(rng.integers(1, 4)), float(rng.choice([0, 0.05, 0.2]))
        g = int(rng.integers(0, 4))  # missing predictions held after a prediction
        state, on = AlarmState(), []
        for x in p:
            state = alarm_step(state, x, th, m, h, g)
            on.append(state.on)
        assert on == alarm_on_loop(p, th, m, h, g).tolist() == alarm_on(p, [th], m, h, g)[0].tolist()
    ended = alarm_step(AlarmState(True, 5, seen=True), float("nan"), 0.5)
    assert (ended.on, ended.run) == (False, 0)
    held = alarm_step(AlarmState(True, 5, seen=True), float("nan"), 0.5, max_gap=3)
    assert (held.on, held.run, held.gap) == (True, 5, 1)
    with pytest.raises(ValueError):
        alarm_step(AlarmState(), 0.5, 0.5, m=0)
