"""The benchmark's pandas reference must cut exactly the windows hypo.data.pipeline cuts (no Ray needed)."""

import numpy as np
import pytest

from bench import pandas_reference as ref
from hypo.config import LabelConfig, WindowConfig
from hypo.data.pipeline import process_case
from hypo.data.signals import BIS, DBP, ECG, MAC, MBP, PLETH, SBP
from hypo.data.sources.base import Case
from hypo.errors import CaseRejected

from fake_sources import synthetic_case


def _messy_case(caseid: int, seconds: int = 4000) -> Case:
    """A synthetic case with every artefact rule and short and long gaps planted."""
    sig = synthetic_case(caseid, seconds, max_gap=420)
    rng = np.random.default_rng(caseid)
    sig[rng.choice(seconds, 20, replace=False), ECG] = np.nan  # short waveform gaps
    sig[500:503, PLETH] = np.nan  # interpolated
    sig[900:930, PLETH] = np.nan  # longer than the limit: stays NaN, windows dropped
    sig[1200, ECG] = np.inf
    sig[:40, BIS] = np.nan  # leading gap, never filled
    sig[1300:1310:2, BIS] = 120.0
    sig[1400, MAC] = -0.1
    readings = np.flatnonzero(np.isfinite(sig[:, MBP]))
    sig[readings[5], DBP] = np.nan  # incomplete reading
    sig[readings[6], MBP] = 250.0  # MAP out of range
    sig[readings[7], DBP] = sig[readings[7], SBP] + 1  # SBP <= DBP
    sig[-60:, ECG] = np.nan  # trailing waveform gap
    return Case(str(caseid), f"s{caseid}", sig)


CASES = [
    Case("1", "a", synthetic_case(1, 3600)),
    Case("2", "b", synthetic_case(2, 2000, max_gap=600)),
    _messy_case(3),
]


@pytest.mark.parametrize("mode", ["reading", "ffill"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.caseid)
def test_reference_cuts_the_same_windows_as_the_pipeline(case, mode):
    cfg = WindowConfig(stride_s=30, label=LabelConfig(mode=mode))
    win, summary = process_case(case, cfg)
    df, ref_summary = ref.process_case(case, cfg)

    for key in ("split", "n_windows", "class_counts", "dropped", "artefacts", "duration_s"):
        assert ref_summary[key] == summary[key], key
    np.testing.assert_array_equal(df["t_end"], win.t_end)
    np.testing.assert_array_equal(df["label"], win.label)
    np.testing.assert_array_equal(df["label_time"], win.label_time)
    np.testing.assert_array_equal(df["last_time"], win.last_time)
    for col in ("label_map", "label_sbp", "last_map", "last_sbp"):
        np.testing.assert_allclose(df[col].to_numpy(np.float32), getattr(win, col), equal_nan=True)
    x = np.stack(df["x"].to_list()).reshape(win.x.shape)
    np.testing.assert_allclose(x, win.x, rtol=1e-6, atol=1e-6)


def test_messy_case_exercises_every_rule_and_both_drop_kinds():
    _, summary = ref.process_case(CASES[2], WindowConfig())
    assert all(summary["artefacts"][rule] > 0 for rule in ref.RULES)
    assert summary["dropped"]["incomplete"] > 0 and summary["dropped"]["no_label"] > 0


def test_reference_rejects_like_the_pipeline():
    short = Case("4", "d", synthetic_case(4, 2000)[:600])
    empty = Case("5", "e", synthetic_case(5, 2000))
    empty.signals[:, MAC] = np.nan
    for case, reason in ((short, "too short"), (empty, "all-NaN signal")):
        for fn in (process_case, ref.process_case):
            with pytest.raises(CaseRejected) as exc:
                fn(case, WindowConfig())
            assert exc.value.reason == reason
