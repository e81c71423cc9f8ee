import numpy as np
import pytest

from hypo.config import FillConfig, LabelConfig, WindowConfig
from hypo.data.signals import DBP, MBP, N_SIGNALS, SBP
from hypo.data.windows import Readings, classify, make_windows, window_ends

nan = np.nan


def _cfg(label, max_carry_s):
    """60-s windows every 60 s under ``label``, the cuff carried forward at most ``max_carry_s``."""
    return WindowConfig(label=label, fill=FillConfig(nibp_max_carry_s=max_carry_s))


def _case(n, readings):
    """A case whose signals are all 1.0 except NIBP, which holds only the given readings {t: (sbp, map)}."""
    sig = np.ones((n, N_SIGNALS), dtype=np.float32)
    sig[:, [SBP, MBP, DBP]] = nan
    for t, (s, m) in readings.items():
        sig[t, [SBP, MBP, DBP]] = [s, m, m - 15]
    filled = sig.copy()
    filled[:, [SBP, MBP, DBP]] = 0.0  # "filled" input: nothing missing
    return sig, filled


def test_window_ends_are_last_seconds():
    np.testing.assert_array_equal(window_ends(200, 60, 60), [59, 119, 179])
    np.testing.assert_array_equal(window_ends(130, 60, 30), [59, 89, 119])
    assert len(window_ends(59, 60, 60)) == 0


def test_classify_thresholds_and_precedence():
    cfg = LabelConfig(hypo_map=65, hyper_sbp=160)
    np.testing.assert_array_equal(
        classify(np.array([64.9, 65, 80, 60]), np.array([100, 100, 161, 170]), cfg), [1, 0, 2, 1]
    )


def test_reading_mode_uses_only_readings_after_the_window_end():
    # Window 0..59 (t_end 59): target 359. A reading at 40 (inside the window) must never be the label.
    sig, filled = _case(1000, {40: (100, 50), 330: (120, 80), 420: (170, 90)})
    cfg = LabelConfig(mode="reading", horizon_s=300, tolerance_s=90)
    w = make_windows(sig, filled, _cfg(cfg, 900))
    assert w.t_end[0] == 59
    assert w.label_time[0] == 330 and w.label[0] == 0  # nearest to 359 within 90 s
    assert (w.label_time > w.t_end).all()
    # Last reading at or before t_end is the one inside the window (for the baseline), not the label.
    assert w.last_time[0] == 40 and w.last_map[0] == 50


def test_reading_mode_drops_windows_without_a_reading_in_tolerance():
    sig, filled = _case(1000, {700: (100, 80)})
    cfg = LabelConfig(mode="reading", horizon_s=300, tolerance_s=30)
    w = make_windows(sig, filled, _cfg(cfg, 900))
    # Only the window whose target (t_end + 300) is within 30 s of 700 survives: t_end 419 (target 719).
    np.testing.assert_array_equal(w.t_end, [419])
    assert w.dropped_no_label == len(window_ends(1000, 60, 60)) - 1
    assert np.isnan(w.last_map[0]) and w.last_time[0] == -1  # no reading before 419


def test_reading_mode_picks_the_earlier_reading_on_a_tie():
    sig, filled = _case(1000, {349: (100, 60), 369: (100, 80)})
    w = make_windows(sig, filled, _cfg(LabelConfig(tolerance_s=30), 900))
    assert w.label_time[0] == 349 and w.label[0] == 1


def test_ffill_mode_reproduces_the_paper_and_exposes_the_leak():
    # A reading inside the window at 40, next reading much later: the paper's label at 359 is the value
    # carried from 40, a reading the model can see.
    sig, filled = _case(1000, {40: (100, 50), 500: (120, 80)})
    cfg = LabelConfig(mode="ffill", horizon_s=300)
    w = make_windows(sig, filled, _cfg(cfg, 900))
    assert w.t_end[0] == 59 and w.label_time[0] == 40 and w.label[0] == 1
    assert w.label_time[0] <= w.t_end[0]
    # The honest mode drops that window instead (no reading within 90 s of 359).
    honest = make_windows(sig, filled, _cfg(LabelConfig(mode="reading"), 900))
    assert 59 not in honest.t_end


def test_ffill_respects_carry_limit_and_case_end():
    sig, filled = _case(700, {10: (100, 50)})
    w = make_windows(sig, filled, _cfg(LabelConfig(mode="ffill"), 400))
    # targets: 359 (age 349 ok), 419 (409 > 400 dropped); targets >= 700 are beyond the case.
    np.testing.assert_array_equal(w.t_end, [59])


def test_windows_with_nan_after_filling_are_dropped_and_counted():
    sig, filled = _case(1000, {t: (120, 80) for t in range(0, 1000, 30)})
    filled[130, 0] = nan  # inside the window 120..179
    w = make_windows(sig, filled, _cfg(LabelConfig(), 900))
    assert 179 not in w.t_end
    assert w.dropped_incomplete == 1


def test_window_content_is_time_major_physical_values():
    sig, filled = _case(800, {t: (120, 80) for t in range(0, 800, 30)})
    filled[:, 0] = np.arange(800)
    w = make_windows(sig, filled, _cfg(LabelConfig(), 900))
    assert w.x.shape[1:] == (60, N_SIGNALS) and w.x.dtype == np.float32
    k = 1
    np.testing.assert_array_equal(w.x[k, :, 0], np.arange(w.t_end[k] - 59, w.t_end[k] + 1))


@pytest.mark.parametrize("mode", ["reading", "ffill"])
def test_label_values_come_from_the_label_reading(mode):
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.integers(150, 300, size=40))
    readings = {int(t): (float(rng.uniform(90, 180)), float(rng.uniform(50, 100))) for t in times if t < 8000}
    sig, filled = _case(8000, readings)
    w = make_windows(sig, filled, _cfg(LabelConfig(mode=mode), 900))
    r = Readings.from_signals(sig)
    lookup = dict(zip(r.time.tolist(), zip(r.map.tolist(), r.sbp.tolist())))
    for t, m, s in zip(w.label_time, w.label_map, w.label_sbp):
        assert lookup[int(t)] == (pytest.approx(m), pytest.approx(s))
    if mode == "reading":
        assert (np.abs(w.label_time - (w.t_end + 300)) <= 90).all()


def test_a_waveform_gap_open_at_the_window_end_makes_it_incomplete():
    """Interpolation would fill seconds 176-182 from second 183, after the window ending at 179."""
    from hypo.config import FillConfig
    from hypo.data.filling import fill_gaps
    from hypo.data.signals import ECG, PLETH

    sig, _ = _case(1000, {t: (120, 80) for t in range(0, 1000, 30)})
    sig[:, ECG] = np.sin(np.arange(1000))
    sig[176:183, ECG] = nan  # a 7-s ECG dropout straddling the end of window 120..179
    sig[300:305, PLETH] = nan  # a 5-s pleth dropout closed inside window 300..359
    filled = fill_gaps(sig, FillConfig())
    assert not np.isnan(filled[:, [ECG, PLETH]]).any()  # both gaps are short enough to interpolate
    w = make_windows(sig, filled, _cfg(LabelConfig(), 900))
    assert 179 not in w.t_end and 359 in w.t_end and 239 in w.t_end
    assert w.dropped_incomplete == 1
