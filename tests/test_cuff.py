"""The cuff simulated from the arterial line: readings computed by hand on synthetic lines (timing, inflation,
spikes as known then, failed inflations), the published error model's bias and SD over many readings, the
schedule config, and the case whose cuff it replaces."""

from pathlib import Path

import numpy as np
import pytest

from hypo.config import CuffModel, CuffSchedule, LabelConfig, WindowConfig, fingerprint, from_dict, to_dict
from hypo.data.art import ArterialLine, KnownLine
from hypo.data.cuff import PUBLISHED_ERROR, case_rng, schedule_times, simulate_readings, with_simulated_cuff
from hypo.data.signals import DBP, MBP, N_SIGNALS, SBP
from hypo.data.sources.base import Case
from hypo.errors import CaseRejected, ConfigError
from hypo.evaluate.alarms.metrics import AlarmConfig
from hypo.evaluate.alarms.replay import frequent_cuff

IDEAL = CuffModel(inflation_s=40, error="none")


def ramp_line(duration=600, step=2.0):
    """ART every ``step`` s from 0: MAP = 50 + t / 10, SBP = MAP + 30, DBP = MAP - 15."""
    t = np.arange(0, duration, step)
    m = 50 + t / 10
    return ArterialLine(t, m + 30, m, m - 15)


def test_schedule_times_are_half_open():
    assert schedule_times(10, 310, 150).tolist() == [10, 160]
    assert schedule_times(10, 311, 150).tolist() == [10, 160, 310]
    assert schedule_times(10, 10, 150).tolist() == []
    with pytest.raises(ValueError):
        schedule_times(0, 100, 0)


def test_readings_by_hand_on_a_ramp():
    line = KnownLine.of(ramp_line())
    r = simulate_readings(line, schedule_times(0, 300, 150), IDEAL)
    # inflation [0, 40): samples 0, 2, ..., 38, median time 19 -> MAP 51.9, reported at 40;
    # inflation [150, 190): median time 169 -> MAP 66.9, reported at 190
    assert r.time.tolist() == [40, 190]
    np.testing.assert_allclose(r.map, [51.9, 66.9], atol=1e-4)
    np.testing.assert_allclose(r.sbp, [81.9, 96.9], atol=1e-4)
    np.testing.assert_allclose(r.dbp, [36.9, 51.9], atol=1e-4)


def test_inflation_length_moves_report_and_value():
    line = KnownLine.of(ramp_line())
    r = simulate_readings(line, [100], CuffModel(inflation_s=30, error="none"))
    # [100, 130): samples 100 .. 128, median time 114 -> MAP 61.4, reported at 130
    assert r.time.tolist() == [130]
    np.testing.assert_allclose(r.map, [61.4], atol=1e-4)


def test_a_spike_is_in_the_reading_until_it_is_found():
    t = np.arange(0, 200, 2.0)
    m = np.full(len(t), 70.0)
    m[t == 36] = 140  # a one-sample spike: found at 38, when MAP is back
    raw = ArterialLine(t, m + 30, m, m - 15)
    line = KnownLine.of(raw)
    # inflation [0, 38) reports at 38: the spike's end (the sample at 38) is not known yet, so it is in
    early = simulate_readings(line, [0], CuffModel(inflation_s=38, error="none"))
    assert early.time.tolist() == [38]
    inside = np.r_[np.full(18, 70.0), 140.0]  # samples 0 .. 36
    np.testing.assert_allclose(early.map, [np.median(inside)])
    # inflation [0, 40) reports at 40: the spike was found at 38, so it is out
    late = simulate_readings(line, [0], IDEAL)
    np.testing.assert_allclose(late.map, [70.0])


def test_an_inflation_over_no_valid_sample_fails():
    t = np.r_[np.arange(0, 100, 2.0), np.arange(200, 400, 2.0)]  # no line in [100, 200)
    m = np.full(len(t), 75.0)
    line = KnownLine.of(ArterialLine(t, m + 30, m, m - 15))
    r = simulate_readings(line, [50, 120, 250], IDEAL)
    assert r.time.tolist() == [90, 160, 290]
    assert np.isfinite(r.map[[0, 2]]).all() and np.isnan(r.map[1]) and np.isnan(r.sbp[1]) and np.isnan(r.dbp[1])


def test_published_error_has_its_bias_and_sd():
    t = np.arange(0, 200_100, 2.0)
    line = KnownLine.of(ArterialLine(t, np.full(len(t), 120.0), np.full(len(t), 80.0), np.full(len(t), 60.0)))
    n = 4000
    requests = schedule_times(0, n * 50, 50)
    r = simulate_readings(line, requests, CuffModel(inflation_s=40, error="published"), case_rng(3, "x"))
    for values, truth, name in ((r.sbp, 120.0, "sbp"), (r.map, 80.0, "map"), (r.dbp, 60.0, "dbp")):
        bias, sd = PUBLISHED_ERROR[name]
        err = values.astype(np.float64) - truth
        assert abs(err.mean() - bias) < 4 * sd / np.sqrt(n), name
        assert abs(err.std() / sd - 1) < 0.06, name
    again = simulate_readings(line, requests, CuffModel(error="published"), case_rng(3, "x"))
    other = simulate_readings(line, requests, CuffModel(error="published"), case_rng(3, "y"))
    np.testing.assert_array_equal(again.map, r.map)
    assert not np.allclose(other.map, r.map)
    with pytest.raises(ValueError, match="random generator"):
        simulate_readings(line, requests, CuffModel(error="published"))


def test_frequent_cuff_is_the_simulation_ideal():
    line = KnownLine.of(ramp_line())
    cuff = frequent_cuff(line, AlarmConfig(cuff_cycle_s=150, cuff_measure_s=30))
    # requests 0, 150, 300, 450 (reports <= the last sample, 598); [0, 30): median time 14 -> MAP 51.4
    assert cuff.time.tolist() == [30, 180, 330, 480]
    np.testing.assert_allclose(cuff.map, [51.4, 66.4, 81.4, 96.4], atol=1e-4)
    np.testing.assert_allclose(cuff.dbp, cuff.map - 15, atol=1e-4)


def _case(art=None, duration=600):
    signals = np.full((duration, N_SIGNALS), 1.0, np.float32)
    signals[:, (SBP, MBP, DBP)] = np.nan
    signals[::120, SBP], signals[::120, MBP], signals[::120, DBP] = 110, 80, 60  # the recorded cuff
    return Case("7", "s7", signals, art=art)


def test_with_simulated_cuff_replaces_the_nibp_readings():
    case = _case(ramp_line())
    out, counts = with_simulated_cuff(case, CuffSchedule(interval_s=150, cuff=IDEAL))
    rows = np.flatnonzero(np.isfinite(out.signals[:, MBP]))
    assert rows.tolist() == [40, 190, 340, 490]  # requests 0, 150, 300, 450 (< 600 - 40)
    np.testing.assert_allclose(out.signals[rows, MBP], [51.9, 66.9, 81.9, 96.9], atol=1e-4)
    np.testing.assert_allclose(out.signals[rows, SBP] - out.signals[rows, DBP], 45, atol=1e-4)
    assert counts.to_dict() == {"requested": 4, "failed": 0, "readings": 4}
    assert out.art is case.art and np.isfinite(case.signals[::120, MBP]).all()  # the source's case untouched
    other = np.delete(np.arange(N_SIGNALS), [SBP, MBP, DBP])
    np.testing.assert_array_equal(out.signals[:, other], case.signals[:, other])
    with pytest.raises(CaseRejected, match="no arterial"):
        with_simulated_cuff(_case(None), CuffSchedule(interval_s=150))


def test_cuff_schedule_config():
    art = LabelConfig(source="art")
    plain = WindowConfig(label=art)
    cfg = WindowConfig(label=art, cuff_from_art=CuffSchedule(interval_s=120, cuff=CuffModel(error="none")))
    assert "cuff_from_art" not in to_dict(plain)
    assert to_dict(cfg)["cuff_from_art"] == {"interval_s": 120, "cuff": {"inflation_s": 40, "error": "none"},
                                             "seed": 0}
    assert from_dict(WindowConfig, to_dict(cfg)) == cfg and fingerprint(cfg) != fingerprint(plain)
    with pytest.raises(ConfigError, match="longer than one inflation"):
        CuffSchedule(interval_s=40)
    with pytest.raises(ConfigError, match="> 0"):
        CuffSchedule(interval_s=0)
    with pytest.raises(ConfigError, match="cuff error"):
        CuffModel(error="typical")
    with pytest.raises(ConfigError, match="ART labels"):
        WindowConfig(cuff_from_art=CuffSchedule(interval_s=120))


# ------------------------------------------------------------------------------------- built and replayed


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from demo_experiment import build_demo_dataset

    out = str(tmp_path_factory.mktemp("cuff") / "d")
    schedule = CuffSchedule(interval_s=120, cuff=CuffModel(error="published"), seed=5)
    manifest = build_demo_dataset(out, n_cases=10, cfg=WindowConfig(label=LabelConfig(source="art"),
                                                                     cuff_from_art=schedule))
    return {"data": out, "manifest": manifest, "schedule": schedule}


def _simulated(caseid, schedule):
    from hypo.data.sources.demo import simulate_case

    case = simulate_case(int(caseid), 0, arterial=True)
    return case, with_simulated_cuff(case, schedule)[0]


def test_a_dataset_built_with_a_simulated_cuff_reads_it(built):
    import pandas as pd

    from hypo.data.dataset import read_manifest
    from hypo.data.preprocess import summary_lines

    manifest = read_manifest(built["data"])
    assert manifest.config.cuff_from_art == built["schedule"]
    assert any("SIMULATED" in line and "every 120 s" in line for line in summary_lines(manifest))
    shard = next(Path(built["data"], "windows").rglob("*.parquet"))
    df = pd.read_parquet(shard)
    _, sim = _simulated(df.caseid.iloc[0], built["schedule"])
    rows = np.flatnonzero(np.isfinite(sim.signals[:, MBP]))
    assert len(rows) > 5 and (np.diff(rows) % 120 == 0).all()  # every 120 s (or a failed inflation left out)
    seen = df[df.last_time >= 0]
    assert len(seen) and set(seen.last_time) <= set(rows.tolist())
    np.testing.assert_allclose(seen.last_map, sim.signals[seen.last_time, MBP], atol=1e-4)


def test_the_replay_simulates_the_datasets_cuff_or_the_one_asked(built):
    from hypo.errors import HypoError
    from hypo.evaluate.alarms.replay import LAST_READING, replay_case, replay_cuff, split_cases

    manifest = built["manifest"]
    info = next(c for split in ("train", "val", "test") for c in split_cases(built["data"], split))
    case, sim = _simulated(info["caseid"], built["schedule"])
    _, tracks = replay_case(case, info, {}, manifest, AlarmConfig(stride_s=60))
    rows = np.flatnonzero(np.isfinite(sim.signals[:, MBP]))
    assert set(tracks[LAST_READING].t.tolist()) <= set(rows.tolist())
    np.testing.assert_allclose(tracks[LAST_READING].score, sim.signals[tracks[LAST_READING].t, MBP], atol=1e-4)
    other = CuffSchedule(interval_s=300, cuff=IDEAL)
    _, tracks = replay_case(case, info, {}, manifest, AlarmConfig(stride_s=60, cuff_from_art=other))
    assert set(np.diff(tracks[LAST_READING].t)) == {300}
    cuff_labels = manifest.model_copy(update={"label": LabelConfig(), "config": WindowConfig()})
    with pytest.raises(HypoError, match="arterial line"):
        replay_cuff(cuff_labels, AlarmConfig(cuff_from_art=other))


# ------------------------------------------------------------------------------------------------ the flags


def test_windows_flags_make_the_schedule_and_refuse_in_one_line():
    from hypo.cli.windows import config_from_args, parse_args

    base = ["--source", "demo", "--out", "x", "--label-source", "art"]
    cfg = config_from_args(parse_args([*base, "--cuff-from-art", "150", "--cuff-error", "none"]))
    assert cfg.cuff_from_art == CuffSchedule(interval_s=150, cuff=CuffModel(inflation_s=40, error="none"))
    assert config_from_args(parse_args(base)).cuff_from_art is None
    for extra, match in ((["--cuff-from-art", "40"], "longer than one inflation"),
                         (["--cuff-from-art", "-5"], "> 0"),
                         (["--cuff-error", "none"], "add it or leave it out"),
                         (["--cuff-from-art", "90", "--cuff-inflation", "0"], "--cuff-inflation")):
        with pytest.raises(ConfigError, match=match):
            config_from_args(parse_args([*base, *extra]))
    with pytest.raises(ConfigError, match="--label-source art"):
        config_from_args(parse_args(["--source", "demo", "--out", "x", "--cuff-from-art", "150"]))


def test_alarm_flags_carry_the_schedule_to_the_replay():
    import argparse

    from hypo.cli.alarm_args import add_alarm_arguments, alarm_config, alarm_flags_given

    p = argparse.ArgumentParser()
    add_alarm_arguments(p)
    args = p.parse_args(["--cuff-from-art", "60", "--cuff-inflation", "30"])
    assert alarm_config(args).cuff_from_art == CuffSchedule(interval_s=60, cuff=CuffModel(inflation_s=30))
    assert alarm_flags_given(args) == ["--cuff-from-art", "--cuff-inflation"]  # refused where nothing replays
    assert alarm_config(p.parse_args([])).cuff_from_art is None
    assert "cuff_from_art" not in to_dict(alarm_config(p.parse_args([])))  # results keep their dict
