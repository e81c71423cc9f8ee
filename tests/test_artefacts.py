import numpy as np

from hypo.data.artefacts import RULES, remove_artefacts
from hypo.data.signals import BIS, DBP, ECG, MAC, MBP, N_SIGNALS, SBP

nan = np.nan


def _case(rows):
    sig = np.full((len(rows), N_SIGNALS), nan, dtype=np.float32)
    for i, (s, m, d) in enumerate(rows):
        sig[i, [SBP, MBP, DBP]] = [s, m, d]
    return sig


def test_each_rule_removes_the_whole_reading_and_is_counted_once():
    sig = _case([(120, 85, 60), (0, 0, 0), (120, 250, 60), (60, 55, 70), (120, nan, 60), (0, 300, 60)])
    out, counts = remove_artefacts(sig)
    np.testing.assert_array_equal(out[0, [SBP, MBP, DBP]], [120, 85, 60])
    assert np.isnan(out[1:, [SBP, MBP, DBP]]).all()
    assert counts["nibp_zero"] == 2  # the zero in row 5 wins over its out-of-range MAP
    assert counts["map_out_of_range"] == 1
    assert counts["sbp_le_dbp"] == 1
    assert counts["nibp_incomplete"] == 1
    assert set(counts) == set(RULES)


def test_bis_mac_and_non_finite_samples_are_removed():
    sig = np.full((4, N_SIGNALS), nan, dtype=np.float32)
    sig[:, BIS] = [50, 101, -1, 100]
    sig[:, MAC] = [0.0, -0.1, 1.2, 0.8]
    sig[:, ECG] = [0.1, np.inf, -np.inf, 0.2]
    out, counts = remove_artefacts(sig)
    np.testing.assert_array_equal(np.isnan(out[:, BIS]), [False, True, True, False])
    np.testing.assert_array_equal(np.isnan(out[:, MAC]), [False, True, False, False])
    np.testing.assert_array_equal(np.isnan(out[:, ECG]), [False, True, True, False])
    assert counts["bis_out_of_range"] == 2 and counts["mac_negative"] == 1 and counts["non_finite"] == 2


def test_input_is_not_modified():
    sig = _case([(0, 0, 0)])
    remove_artefacts(sig)
    assert sig[0, SBP] == 0
