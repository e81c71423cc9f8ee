import numpy as np

from hypo.config import FillConfig
from hypo.data.filling import carry_forward, fill_gaps, interpolate_gaps
from hypo.data.signals import BIS, ECG, MAC, MBP, N_SIGNALS, PLETH

nan = np.nan


def test_interpolate_fills_short_interior_gaps_linearly():
    v = np.array([nan, 1, nan, nan, 4, 5], dtype=np.float32)
    out = interpolate_gaps(v, max_gap=2)
    assert np.isnan(out[0])  # leading gap stays
    np.testing.assert_allclose(out[1:], [1, 2, 3, 4, 5])


def test_interpolate_leaves_long_and_trailing_gaps():
    v = np.array([0, nan, nan, nan, 4, nan], dtype=np.float32)
    out = interpolate_gaps(v, max_gap=2)
    assert np.isnan(out[1:4]).all()
    assert np.isnan(out[5])
    assert out[0] == 0 and out[4] == 4


def test_interpolate_handles_all_nan_and_no_nan():
    assert np.isnan(interpolate_gaps(np.full(4, nan), 3)).all()
    np.testing.assert_array_equal(interpolate_gaps(np.arange(4.0), 3), np.arange(4.0))


def test_carry_forward_respects_limit_and_leading_gap():
    v = np.array([nan, 7, nan, nan, nan, 9, nan], dtype=np.float32)
    out = carry_forward(v, max_carry=2)
    np.testing.assert_array_equal(np.isnan(out), [True, False, False, False, True, False, False])
    assert out[3] == 7 and out[6] == 9


def test_fill_gaps_uses_interpolation_for_waveforms_and_carry_forward_for_numerics():
    sig = np.full((10, N_SIGNALS), nan, dtype=np.float32)
    sig[[0, 4], ECG] = [0, 4]
    sig[[0, 4], PLETH] = [10, 50]
    sig[0, MBP] = 80
    sig[[0, 4], MAC] = [0.5, 1.0]
    sig[0, BIS] = 40
    out = fill_gaps(sig, FillConfig(waveform_max_gap_s=5, nibp_max_carry_s=9, numeric_max_carry_s=2))
    np.testing.assert_allclose(out[:5, ECG], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(out[:5, PLETH], [10, 20, 30, 40, 50])
    assert (out[:, MBP] == 80).all()  # carried 9 s
    np.testing.assert_allclose(out[:7, MAC], [0.5, 0.5, 0.5, nan, 1.0, 1.0, 1.0])
    assert np.isnan(out[3:, BIS]).all()
    assert np.isnan(out[5:, ECG]).all()  # trailing waveform gap stays
