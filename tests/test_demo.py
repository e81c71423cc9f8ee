"""The demo cohort simulator: shape, determinism, cuff timing, cohort statistics, artefacts, foreshadowing, speed."""

import pickle
import time
import warnings

import numpy as np
import pytest

from hypo.data.signals import BIS, DBP, ECG, MAC, MBP, N_SIGNALS, NIBP, PLETH, SBP
from hypo.data.sources.base import Source
from hypo.data.sources.demo import (
    NOT_CLINICAL,
    DemoSource,
    case_duration_s,
    case_subjectid,
    simulate_case,
)
from hypo.errors import CaseRejected, ConfigError

N_COHORT = 300


def _valid(sbp, mbp, dbp):
    """Readings that are not artefacts (the rules of PITFALLS.md 8)."""
    return (sbp != 0) & (mbp != 0) & (dbp != 0) & (mbp >= 20) & (mbp <= 200) & (sbp > dbp)


def _cls(sbp, mbp):
    return np.where(mbp < 65, 1, np.where(sbp > 160, 2, 0))


@pytest.fixture(scope="module")
def cohort():
    """Per-reading statistics of the first N_COHORT cases (signals are not kept, to spare memory)."""
    rows, art, gaps, drops = [], dict.fromkeys(("bis", "bis_n", "mac", "mac_n"), 0), [], 0
    for cid in range(1, N_COHORT + 1):
        s = simulate_case(cid, seed=0).signals
        r = np.flatnonzero(np.isfinite(s[:, NIBP]).all(axis=1))
        gaps.append(np.diff(r))
        sbp, mbp, dbp = s[r, SBP], s[r, MBP], s[r, DBP]
        ok = _valid(sbp, mbp, dbp)
        bis, mac = s[:, BIS].copy(), s[:, MAC].copy()
        bis_bad, mac_bad = (bis < 0) | (bis > 100), mac < 0
        art["bis"] += int(bis_bad.sum())
        art["bis_n"] += int(np.isfinite(bis).sum())
        art["mac"] += int(mac_bad.sum())
        art["mac_n"] += int(np.isfinite(mac).sum())
        bis[bis_bad], mac[mac_bad] = np.nan, np.nan
        nan_ecg = np.concatenate(([0], np.isnan(s[:, ECG]).astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(nan_ecg))
        drops += int(((edges[1::2] - edges[::2]) >= 20).sum())
        prev_cls = -1
        for k, t in enumerate(r):
            c = _cls(sbp[k], mbp[k]) if ok[k] else -1
            with warnings.catch_warnings():  # all-NaN slices (dropped segments) give NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                pre_bis = np.nanmean(bis[t - 600:t - 300]) if t >= 600 else np.nan
                pre_mac = np.nanmean(mac[t - 600:t - 300]) if t >= 600 else np.nan
            rows.append((cid, t, sbp[k], mbp[k], dbp[k], ok[k], c, prev_cls, pre_bis, pre_mac))
            if ok[k]:
                prev_cls = c
    dt = [("cid", int), ("t", int), ("sbp", float), ("mbp", float), ("dbp", float), ("ok", bool),
          ("cls", int), ("prev", int), ("pre_bis", float), ("pre_mac", float)]
    return {"r": np.array(rows, dtype=dt), "art": art, "gaps": np.concatenate(gaps), "drops": drops}


def test_case_shape_dtype_and_ranges():
    case = simulate_case(1, seed=0)
    assert case.caseid == "1" and isinstance(case.subjectid, str)
    assert case.signals.dtype == np.float32 and case.signals.shape == (case_duration_s(1, 0), N_SIGNALS)
    assert case.duration_s == case.signals.shape[0]
    s = case.signals
    assert np.isfinite(s[:, ECG]).mean() > 0.9 and np.isfinite(s[:, PLETH]).mean() > 0.9
    assert np.nanmax(np.abs(s[:, ECG])) < 2.5
    assert 0 <= np.nanmin(s[:, PLETH]) and np.nanmax(s[:, PLETH]) <= 100
    mac, bis = s[:, MAC], s[:, BIS]
    assert 0.1 < np.isfinite(mac).mean() < 0.6 and 0.1 < np.isfinite(bis).mean() < 0.8  # numerics with gaps
    assert np.nanpercentile(mac, 99) < 1.8 and np.nanmedian(bis) < 70
    case.check_signals()


def test_determinism_and_prefix_property():
    a, b = simulate_case(7, seed=3), simulate_case(7, seed=3)
    assert a.subjectid == b.subjectid and np.array_equal(a.signals, b.signals, equal_nan=True)
    assert not np.array_equal(a.signals[:100], simulate_case(7, seed=4).signals[:100], equal_nan=True)
    small, big = DemoSource(5, seed=1), DemoSource(20, seed=1)
    for ref in small.case_refs():
        x, y = small.load_case(ref), big.load_case(ref)
        assert x.subjectid == y.subjectid and np.array_equal(x.signals, y.signals, equal_nan=True)


def test_source_protocol_fingerprint_report_pickle():
    src = DemoSource(12, seed=2)
    assert isinstance(src, Source) and src.name == "demo"
    assert src.case_refs() == [{"caseid": str(i)} for i in range(1, 13)]
    fp = src.fingerprint()
    assert fp == DemoSource(12, seed=2).fingerprint()
    assert len({fp, DemoSource(13, seed=2).fingerprint(), DemoSource(12, seed=3).fingerprint()}) == 3
    rep = src.report()
    assert rep["simulated"] is True and rep["note"] == NOT_CLINICAL and "not clinical" in rep["note"]
    assert rep["n_cases"] == 12 and rep["seed"] == 2 and 1 <= rep["n_subjects"] <= 12 and rep["simulator_version"]
    clone = pickle.loads(pickle.dumps(src))
    assert clone.fingerprint() == fp
    assert np.array_equal(clone.load_case({"caseid": "3"}).signals, src.load_case({"caseid": "3"}).signals,
                          equal_nan=True)
    for bad in ("0", "13", "x"):
        with pytest.raises(CaseRejected, match="unknown case"):
            src.load_case({"caseid": bad})
    for n in (0, -1, 2.5):
        with pytest.raises(ConfigError):
            DemoSource(n)


def test_cuff_readings_are_sparse_and_timed_like_a_cuff():
    s = simulate_case(11, seed=0).signals
    present = np.isfinite(s[:, NIBP])
    assert (present.all(axis=1) == present.any(axis=1)).all()  # the three values come together
    assert present[:, 0].mean() < 0.01


def test_reading_intervals(cohort):
    g = cohort["gaps"]
    assert g.min() >= 150
    assert ((g >= 150) & (g <= 300)).mean() > 0.85
    assert 0.01 < (g > 360).mean() < 0.15  # occasional long gaps


def test_sbp_map_dbp_order_on_valid_readings(cohort):
    r = cohort["r"]
    ok = r[r["ok"]]
    assert (ok["sbp"] > ok["mbp"]).all() and (ok["mbp"] > ok["dbp"]).all()
    assert (ok["mbp"] >= 30).all() and (ok["sbp"] < 260).all()


def test_durations_match_vitaldb_quantiles():
    h = np.array([case_duration_s(i, 0) for i in range(1, 1001)]) / 3600
    assert 2.5 < np.median(h) < 3.05
    assert h.min() >= 0.456 - 1e-3 and h.max() <= 17.36 + 1e-3
    assert 1.5 < np.quantile(h, 0.25) < 1.95 and 3.8 < np.quantile(h, 0.75) < 4.6


def test_subject_repetition_ratio():
    n = 5064
    subjects = [case_subjectid(i, 0) for i in range(1, n + 1)]
    ratio = len(set(subjects)) / n
    assert abs(ratio - 6090 / 6388) < 0.012
    assert subjects[:50] == [case_subjectid(i, 0) for i in range(1, 51)]
    assert simulate_case(42, 0).subjectid == subjects[41]
    assert DemoSource(300).report()["n_subjects"] == len(set(subjects[:300]))
    assert not set(subjects) & {str(i) for i in range(1, n + 1)}  # subject ids never look like case ids


def test_class_balance(cohort):
    r = cohort["r"]
    cls = r["cls"][r["ok"]]
    hypo, hyper = (cls == 1).mean(), (cls == 2).mean()
    print(f"readings {len(cls)}: hypotension {hypo:.3f}, hypertension {hyper:.3f}")
    assert 0.12 < hypo + hyper < 0.30
    assert hypo > hyper > 0.03


def test_artefacts_present_at_low_rates(cohort):
    r, art = cohort["r"], cohort["art"]
    zero = (r["sbp"] == 0) | (r["mbp"] == 0)
    spike = (r["mbp"] > 200) | ((r["mbp"] < 20) & ~zero)
    swap = (r["sbp"] <= r["dbp"]) & ~zero
    for hit in (zero, spike, swap):
        assert 0 < hit.sum() < 0.02 * len(r)
    assert 0 < art["bis"] < 0.005 * art["bis_n"] and 0 < art["mac"] < 0.005 * art["mac_n"]
    assert cohort["drops"] > 0  # dropped segments of tens of seconds or more


def test_onsets_are_foreshadowed(cohort):
    r = cohort["r"]
    r = r[r["ok"] & (r["prev"] == 0) & (r["t"] >= 1200) & np.isfinite(r["pre_bis"]) & np.isfinite(r["pre_mac"])]
    normal, hypo, hyper = r[r["cls"] == 0], r[r["cls"] == 1], r[r["cls"] == 2]
    assert len(hypo) > 50 and len(hyper) > 50
    # 5-10 min before a hypotension onset anaesthesia deepens; before hypertension it lightens.
    assert hypo["pre_bis"].mean() < normal["pre_bis"].mean() - 3
    assert hypo["pre_mac"].mean() > normal["pre_mac"].mean() + 0.1
    assert hyper["pre_bis"].mean() > normal["pre_bis"].mean() + 3
    assert hyper["pre_mac"].mean() < normal["pre_mac"].mean() - 0.05


def test_simulation_is_fast():
    cid = next(i for i in range(1, 1000) if 2.5 * 3600 < case_duration_s(i, 0) < 3.5 * 3600)
    simulate_case(cid, 0)
    best = min(_timed(cid) for _ in range(5))
    print(f"simulate_case: {best * 1000:.2f} ms for a {case_duration_s(cid, 0) / 3600:.2f} h case")
    assert best < 0.05


def _timed(cid):
    t0 = time.perf_counter()
    simulate_case(cid, 0)
    return time.perf_counter() - t0
