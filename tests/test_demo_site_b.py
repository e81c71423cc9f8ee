"""Demo site B: a second simulated hospital for external validation, and its .vital files."""

import json

import numpy as np
import pytest

from hypo.cli.demo_files import main as demo_files_main
from hypo.cli.windows import main as windows_main
from hypo.config import WindowConfig
from hypo.data.pipeline import process_case
from hypo.data.signals import DBP, MAC, MBP, NIBP, SBP, SIGNALS
from hypo.data.sources.demo import DemoSource, case_subjectid, is_tiva, simulate_case
from hypo.data.sources.demo_sites import SITE_B
from hypo.data.sources.factory import make_source
from hypo.data.sources.vital import VitalDirSource, load_track_map, read_vital_case
from hypo.errors import CaseRejected, ConfigError

N = 40


@pytest.fixture(scope="module")
def sites():
    """Per-site figures over cases 1..N: cuff stamps, pulse pressures, TIVA cases, window labels."""
    out = {}
    for site in ("a", "b"):
        stamps, spreads, pp, tiva, labels, rejected = [], [], [], 0, [], {}
        for cid in range(1, N + 1):
            case = simulate_case(cid, 0, site=site)
            s = case.signals
            present = np.isfinite(s[:, NIBP])
            full = np.flatnonzero(present.all(axis=1))
            sbp_only = np.flatnonzero(present[:, 0] & ~present[:, 1] & ~present[:, 2])
            stamps.append((len(full), len(sbp_only)))
            for t in sbp_only:  # the mean and diastolic of a staggered reading follow within the spread
                m = t + np.flatnonzero(np.isfinite(s[t:t + 3, MBP]))
                d = t + np.flatnonzero(np.isfinite(s[t:t + 3, DBP]))
                spreads.append((m[0] - t, d[0] - t) if len(m) and len(d) else (-1, -1))
            pp += list(s[full, SBP] - s[full, DBP])
            tiva += int(not np.isfinite(s[:, MAC]).any())
            try:
                win, _ = process_case(case, WindowConfig())
                labels.append(win.label)
            except CaseRejected as exc:
                rejected[exc.reason] = rejected.get(exc.reason, 0) + 1
        out[site] = {"stamps": np.array(stamps), "spreads": np.array(spreads), "pp": np.array(pp), "tiva": tiva,
                     "labels": np.concatenate(labels), "rejected": rejected}
    return out


def test_site_b_is_another_cohort_with_its_own_subjects_and_fingerprint():
    a, b = simulate_case(3, 0), simulate_case(3, 0, site="b")
    assert a.subjectid == "100003" and b.subjectid.startswith("2") and b.subjectid == case_subjectid(3, 0, "b")
    assert a.duration_s != b.duration_s or not np.array_equal(a.signals, b.signals, equal_nan=True)
    assert DemoSource(10, site="b").fingerprint() != DemoSource(10).fingerprint()
    assert DemoSource(10, site="a").fingerprint() == DemoSource(10).fingerprint()  # site A as before sites existed
    rep = DemoSource(10, site="b").report()
    assert rep["simulated"] and rep["site"] == "b" and rep["simulator_version"] == SITE_B.simulator_version
    assert rep["n_tiva"] == sum(is_tiva(i, 0, "b") for i in range(1, 11))
    assert "site" not in DemoSource(10).report()
    with pytest.raises(ConfigError, match="unknown site 'c'"):
        DemoSource(10, site="c")


def test_site_b_stamps_cuff_values_apart_in_about_half_the_readings(sites):
    full_a, apart_a = sites["a"]["stamps"].sum(axis=0)
    full_b, apart_b = sites["b"]["stamps"].sum(axis=0)
    assert apart_a == 0 and full_a > 0
    assert 0.4 < apart_b / (full_b + apart_b) < 0.6
    sp = sites["b"]["spreads"]
    assert len(sp) == apart_b and (sp >= 1).all() and (sp <= SITE_B.nibp_stagger_s).all()
    assert (sp[:, 1] >= sp[:, 0]).all()  # diastolic at or after the mean


def test_site_b_cuff_cycles_every_three_minutes():
    s = simulate_case(4, 0, site="b").signals
    t = np.flatnonzero(np.isfinite(s[:, SBP]))
    gaps = np.diff(t)
    assert np.median(gaps) == pytest.approx(180, abs=5)
    assert ((gaps >= 175) & (gaps <= 185) | (gaps > 360)).mean() > 0.95


def test_site_b_mix_is_older_and_sicker_and_has_tiva_cases_without_mac(sites):
    a, b = sites["a"], sites["b"]
    assert np.median(b["pp"]) > np.median(a["pp"]) + 8  # stiffer arteries: wider pulse pressure
    assert (b["labels"] == 1).mean() > (a["labels"] == 1).mean() + 0.03  # more hypotension
    assert a["tiva"] == 0 and 0.1 * N <= b["tiva"] <= 0.35 * N
    assert sum(is_tiva(i, 0, "b") for i in range(1, 201)) == pytest.approx(0.2 * 200, abs=15)
    # Until TIVA cases can be kept (--allow-missing), each is a counted rejection, never a crash.
    assert b["rejected"] == {"all-NaN signal": b["tiva"]}


def test_site_b_files_need_their_track_map_and_read_back_exactly(tmp_path, capsys):
    demo_files_main(["--site", "b", "--out", str(tmp_path), "--cases", "4"])
    assert "track_map.json (pass it as --track-map)" in capsys.readouterr().out
    tmap = json.loads((tmp_path / "track_map.json").read_text())
    assert tmap["nibp_sbp"] == ["Intellivue/NIBP_SYS"] and set(SIGNALS) <= set(tmap)
    with pytest.raises(CaseRejected, match="missing track.*Solar8000/NIBP_SBP"):
        read_vital_case(tmp_path / "1.vital", "1", "1")
    src = VitalDirSource(tmp_path, track_map=load_track_map(tmp_path / "track_map.json"),
                         subjects=tmp_path / "subjects.csv")
    for ref in src.case_refs():
        cid = int(ref["caseid"])
        want = simulate_case(cid, 0, site="b")
        if is_tiva(cid, 0, "b"):  # TIVA: the file has no MAC track at all
            with pytest.raises(CaseRejected, match="missing track: case .*: no mac"):
                src.load_case(ref)
            continue
        got = src.load_case(ref)
        assert got.subjectid == want.subjectid
        assert np.array_equal(got.signals, want.signals, equal_nan=True)  # values stamped apart stay apart


def test_site_is_for_the_demo_source_only(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--site chooses a simulated hospital of the demo source"):
        make_source("vital-dir", path=str(tmp_path), site="b")
    assert make_source("demo", cases=3, site="b").site == "b"
    with pytest.raises(SystemExit) as exc:
        windows_main(["--source", "vital-dir", "--path", str(tmp_path), "--site", "b", "--out", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "--site chooses a simulated hospital" in err, err


def test_demo_files_are_marked_simulated_and_keep_their_cohort(tmp_path):
    from hypo.data.sources.demo_files import write_demo_vital_files

    from synthetic_windows import manifest_record

    for site in ("a", "b"):
        folder = tmp_path / site
        write_demo_vital_files(str(folder), 2, seed=5, site=site)
        kw = {"track_map": load_track_map(folder / "track_map.json")} if site == "b" else {}
        src = VitalDirSource(folder, **kw)
        fp = src.fingerprint()
        manifest = manifest_record(source={"name": src.name, "fingerprint": fp, "report": src.report()})
        demo = DemoSource(7, seed=5, site=site)
        as_demo = manifest_record(source={"name": "demo", "fingerprint": demo.fingerprint(), "report": demo.report()})
        assert manifest.simulated
        assert manifest.cohort == as_demo.cohort  # the same simulated subjects, whatever the format
        (folder / "hypo_simulated.json").unlink()
        assert VitalDirSource(folder, **kw).fingerprint() == fp  # the marker is not data
        assert not manifest_record(source={"name": src.name, "report": VitalDirSource(folder, **kw).report()}).simulated
    assert manifest_record(source={"name": "demo", "report": DemoSource(3, seed=5, site="b").report()}).cohort != \
        manifest_record(source={"name": "demo", "report": DemoSource(3, seed=5).report()}).cohort
