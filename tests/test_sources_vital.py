"""Reading and writing single .vital files, track maps, and the folder source, on synthetic and real data."""

import gzip
import json
import os
import pickle

import numpy as np
import pytest
import vitaldb

from hypo.data.signals import BIS, DBP, ECG, MAC, MBP, PLETH, SBP, SIGNALS, VITALDB_TRACKS
from hypo.data.sources.base import Case, Source
from hypo.data.sources.vital import (
    VitalDirSource,
    load_track_map,
    normalise_track_map,
    read_vital_case,
    write_vital_case,
)
from hypo.errors import CaseRejected, ConfigError

from vital_server import EXPORT_NUMERICS, EXPORT_WAVES, REAL_EXPORTS, SAMPLES, export_to_vital, make_case

OTHER_TRACKS = (
    "Intellivue/ECG_II",
    "Intellivue/NIBP_SYS",
    "Intellivue/NIBP_MEAN",
    "Intellivue/NIBP_DIA",
    "Intellivue/PLETH",
    "Primus/MAC",
    "BIS/BIS",
)


def assert_same(a: Case, b: Case):
    assert (a.caseid, a.subjectid, a.duration_s) == (b.caseid, b.subjectid, b.duration_s)
    assert np.array_equal(a.signals, b.signals, equal_nan=True)


def rejected(fn, *args, **kwargs) -> CaseRejected:
    with pytest.raises(CaseRejected) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


# -- round trip --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wave_srate", [1, 25])
def test_round_trip_is_exact(tmp_path, wave_srate):
    case = make_case()
    path = write_vital_case(case, tmp_path / "7.vital", wave_srate=wave_srate)
    assert path.stat().st_size < 200_000
    assert sorted(vitaldb.vital_trks(str(path))) == sorted(VITALDB_TRACKS)
    assert_same(read_vital_case(path, "7", "7"), case)


def test_written_file_is_a_genuine_vital_file(tmp_path):
    case = make_case(seconds=600)
    path = write_vital_case(case, tmp_path / "x.vital", wave_srate=10)
    with gzip.open(path) as f:
        assert f.read(4) == b"VITA"
    vf = vitaldb.VitalFile(str(path))
    assert vf.find_track("SNUADC/ECG_II").srate == 10 and vf.find_track("SNUADC/ECG_II").type == 1
    assert vf.find_track("Solar8000/NIBP_MBP").type == 2
    # numeric tracks hold only the recorded seconds
    assert len(vf.find_track("Solar8000/NIBP_MBP").recs) == np.isfinite(case.signals[:, MBP]).sum()


def test_wave_tracks_are_point_sampled_once_per_second(tmp_path):
    """vitaldb resamples a wave to 1 s by taking sample floor(i*(N-1)/(n-1)): one point inside second i."""
    n, srate = 40, 10
    vf = vitaldb.VitalFile()
    vf.dtstart, vf.dtend = 4102444800.0, 4102444800.0 + n
    vf.add_track("X/W", [{"dt": vf.dtstart, "val": np.arange(n * srate, dtype=np.float32)}], srate=srate)
    vf.to_vital(str(tmp_path / "w.vital"))
    got = vitaldb.VitalFile(str(tmp_path / "w.vital")).to_numpy(["X/W"], 1)[:, 0]
    want = np.floor(np.arange(n) * (n * srate - 1) / (n - 1))
    assert np.array_equal(got, want)
    assert np.all(got // srate == np.arange(n))  # always inside the right second, so held values round-trip


# -- track maps --------------------------------------------------------------------------------------------


def test_track_map_renames_other_devices(tmp_path):
    case = make_case(seconds=900)
    path = write_vital_case(case, tmp_path / "7.vital", tracks=OTHER_TRACKS)
    mapping = {
        "ecg": ["SNUADC/ECG_II", "Intellivue/ECG_II"],
        "nibp_sbp": ["Solar8000/NIBP_SBP", "Intellivue/NIBP_SYS"],
        "nibp_mbp": ["Solar8000/NIBP_MBP", "Intellivue/NIBP_MEAN"],
        "nibp_dbp": "Intellivue/NIBP_DIA",
        "pleth": ["Intellivue/PLETH"],
    }
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    tmap = load_track_map(tmp_path / "map.json")
    assert tmap["nibp_dbp"] == ("Intellivue/NIBP_DIA",)
    assert tmap["bis"] == ("BIS/BIS",)  # left out: VitalDB name
    assert_same(read_vital_case(path, "7", "7", tmap), case)

    exc = rejected(read_vital_case, path, "7", "7")  # default VitalDB names
    assert exc.reason == "missing track"
    assert "nibp_sbp" in exc.detail and "pleth" in exc.detail and "Intellivue/NIBP_SYS" in exc.detail


def test_first_present_candidate_wins(tmp_path):
    case = make_case(seconds=600)
    path = write_vital_case(case, tmp_path / "7.vital")
    other = case.signals.copy()
    other[:, BIS] = np.where(np.isfinite(other[:, BIS]), 99, np.nan)
    vf = vitaldb.VitalFile(str(path))
    idx = np.flatnonzero(np.isfinite(other[:, BIS]))
    vf.add_track("Other/BIS", [{"dt": vf.dtstart + float(t), "val": 99.0} for t in idx])
    vf.to_vital(str(path))
    got = read_vital_case(path, "7", "7", {"bis": ["Other/BIS", "BIS/BIS"]})
    assert np.array_equal(got.signals, other, equal_nan=True)
    got = read_vital_case(path, "7", "7", {"bis": ["Missing/BIS", "BIS/BIS"]})
    assert_same(got, case)


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        json.dumps({"nibp_sys": ["Intellivue/NIBP_SYS"]}),
        json.dumps({"ecg": []}),
        json.dumps({"ecg": 3}),
        json.dumps(["ecg"]),
    ],
)
def test_bad_track_map_is_one_line_config_error(tmp_path, text):
    (tmp_path / "map.json").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_track_map(tmp_path / "map.json")
    assert "\n" not in str(info.value) and "map.json" in str(info.value)


def test_missing_track_map_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_track_map(tmp_path / "nope.json")


def test_default_track_map_is_vitaldb_names():
    assert normalise_track_map(None) == {s: (t,) for s, t in zip(SIGNALS, VITALDB_TRACKS)}


# -- bad files ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert rejected(read_vital_case, tmp_path / "9.vital", "9", "9").reason == "missing file"


def test_random_bytes_are_corrupt(tmp_path):
    path = tmp_path / "9.vital"
    path.write_bytes(np.random.default_rng(0).bytes(4000))
    exc = rejected(read_vital_case, path, "9", "9")
    assert exc.reason == "corrupt file" and "gzip" in exc.detail


def test_truncated_file_is_corrupt(tmp_path):
    full = write_vital_case(make_case(), tmp_path / "full.vital").read_bytes()
    path = tmp_path / "9.vital"
    path.write_bytes(full[: len(full) // 2])
    # vitaldb itself reads the first half without complaint
    assert vitaldb.VitalFile(str(path), ["Solar8000/NIBP_MBP"]).find_track("Solar8000/NIBP_MBP") is not None
    exc = rejected(read_vital_case, path, "9", "9")
    assert exc.reason == "corrupt file" and "truncated" in exc.detail


def test_bad_signature_is_corrupt(tmp_path):
    path = tmp_path / "9.vital"
    with gzip.open(path, "wb") as f:
        f.write(b"NOPE" + bytes(100))
    exc = rejected(read_vital_case, path, "9", "9")
    assert exc.reason == "corrupt file" and "signature" in exc.detail


def test_file_without_tracks_is_corrupt(tmp_path):
    path = tmp_path / "9.vital"
    vf = vitaldb.VitalFile()
    vf.dtend = vf.dtstart + 100
    assert vf.to_vital(str(path))
    exc = rejected(read_vital_case, path, "9", "9")
    assert exc.reason == "corrupt file" and "no tracks" in exc.detail


def test_missing_track(tmp_path):
    tracks = list(VITALDB_TRACKS)
    tracks[MAC] = None
    path = write_vital_case(make_case(seconds=300), tmp_path / "9.vital", tracks=tracks)
    exc = rejected(read_vital_case, path, "9", "9")
    assert exc.reason == "missing track"
    assert "mac (Primus/MAC)" in exc.detail and "file has 6" in exc.detail


def _declare_unit(path, track: str, unit: str) -> None:
    vf = vitaldb.VitalFile(str(path))
    vf.find_track(track).unit = unit
    assert vf.to_vital(str(path))


@pytest.mark.parametrize("signal, unit", [(SBP, "kPa"), (MAC, "%"), (ECG, "uV")])
def test_a_track_declaring_an_incompatible_unit_is_rejected(tmp_path, signal, unit):
    path = write_vital_case(make_case(seconds=300), tmp_path / "9.vital")
    _declare_unit(path, VITALDB_TRACKS[signal], unit)
    exc = rejected(read_vital_case, path, "9", "9")
    assert exc.reason == "wrong units" and f"{VITALDB_TRACKS[signal]} (used as {SIGNALS[signal]}) is in {unit}" in \
        exc.detail


@pytest.mark.parametrize("unit", ["", "mmHg", "mm Hg", "MMHG"])
def test_an_empty_or_equivalent_unit_is_accepted(tmp_path, unit):
    case = make_case(seconds=300)
    path = write_vital_case(case, tmp_path / "9.vital")
    _declare_unit(path, VITALDB_TRACKS[SBP], unit)
    np.testing.assert_array_equal(read_vital_case(path, "9", "9").signals, case.signals)


@pytest.mark.parametrize("col", [BIS, PLETH])
def test_all_nan_signal(tmp_path, col):
    case = make_case(seconds=300)
    case.signals[:, col] = np.nan
    path = write_vital_case(case, tmp_path / "9.vital")
    exc = rejected(read_vital_case, path, "9", "9")
    assert exc.reason == "all-NaN signal" and SIGNALS[col] in exc.detail


# -- folder source -----------------------------------------------------------------------------------------


def test_vital_dir_needs_a_folder_with_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        VitalDirSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="no .vital files"):
        VitalDirSource(tmp_path / "empty")


def test_vital_dir_lists_loads_and_fingerprints(tmp_path):
    root = tmp_path / "vital"
    cases = {cid: make_case(cid, seconds=600, seed=i) for i, cid in enumerate(["b12", "a3", "c1"])}
    write_vital_case(cases["b12"], root / "b12.vital")
    write_vital_case(cases["a3"], root / "a3.vital")
    write_vital_case(cases["c1"], root / "sub" / "c1.vital")
    (root / "readme.txt").write_text("not a case")
    (tmp_path / "subjects.csv").write_text("caseid,subjectid\na3,p1\nc1,p1\n")

    src = VitalDirSource(root, subjects=tmp_path / "subjects.csv")
    assert isinstance(src, Source) and src.name == "vital-dir"
    refs = src.case_refs()
    assert [r["caseid"] for r in refs] == ["a3", "b12", "c1"]
    assert [r["subjectid"] for r in refs] == ["p1", "b12", "p1"]
    assert refs[2]["path"] == "sub/c1.vital"
    got = pickle.loads(pickle.dumps(src)).load_case(refs[0])
    assert np.array_equal(got.signals, cases["a3"].signals, equal_nan=True) and got.subjectid == "p1"
    rep = src.report()
    assert rep["n_files"] == 3 and rep["n_mapped_to_subject"] == 2 and rep["n_subjects"] == 2
    assert rep["track_map"]["ecg"] == ["SNUADC/ECG_II"]
    json.dumps(rep)

    fp = src.fingerprint()
    assert fp == VitalDirSource(root, subjects=tmp_path / "subjects.csv").fingerprint()
    assert VitalDirSource(root).fingerprint() != fp  # the subject mapping is part of it
    assert VitalDirSource(root, track_map={"bis": "X/BIS"}, subjects=tmp_path / "subjects.csv").fingerprint() != fp

    changed = cases["b12"].signals.copy()
    changed[0, BIS] = 1.0
    before = os.stat(root / "b12.vital")
    write_vital_case(Case("b12", "b12", changed), root / "b12.vital")
    os.utime(root / "b12.vital", ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime: content still counts
    fp2 = src.fingerprint()
    assert fp2 != fp
    write_vital_case(make_case("d4", seconds=300), root / "d4.vital")
    assert src.fingerprint() not in (fp, fp2)
    assert [r["caseid"] for r in src.case_refs()] == ["a3", "b12", "c1", "d4"]


def test_vital_dir_rejects_duplicate_stems(tmp_path):
    write_vital_case(make_case("5", seconds=60), tmp_path / "x" / "5.vital")
    write_vital_case(make_case("5", seconds=60), tmp_path / "y" / "5.vital")
    with pytest.raises(ConfigError, match="two files for case 5"):
        VitalDirSource(tmp_path)


def test_vital_dir_bad_subjects_file(tmp_path):
    write_vital_case(make_case("5", seconds=60), tmp_path / "5.vital")
    (tmp_path / "s.csv").write_text("case,subject\n5,1\n")
    with pytest.raises(ConfigError, match="caseid,subjectid"):
        VitalDirSource(tmp_path, subjects=tmp_path / "s.csv")
    with pytest.raises(ConfigError, match="cannot read"):
        VitalDirSource(tmp_path, subjects=tmp_path / "missing.csv")


# -- real VitalDB data (1-second exports rebuilt as .vital files) ------------------------------------------

needs_samples = pytest.mark.usefixtures("real_samples")


@pytest.fixture(scope="module")
def real_vital(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    frames = {cid: export_to_vital(SAMPLES / name, root / f"{cid}.vital") for cid, name in REAL_EXPORTS.items()}
    return root, frames


# Borrow other real tracks for the signals these cases lack, to read ECG and BIS through the normal path.
BORROWED = {"ecg": "SNUADC/ECG_II", "bis": "BIS/BIS", "pleth": "SNUADC/ART", "mac": "BIS/SQI",
            "nibp_sbp": "Solar8000/BT", "nibp_mbp": "Solar8000/BT", "nibp_dbp": "Solar8000/BT"}


@needs_samples
def test_real_cases_read_back_their_values(real_vital):
    root, frames = real_vital
    for cid, df in frames.items():
        assert sorted(vitaldb.vital_trks(str(root / f"{cid}.vital"))) == sorted(EXPORT_WAVES + EXPORT_NUMERICS)
        case = read_vital_case(root / f"{cid}.vital", cid, "s" + cid, BORROWED)
        assert case.duration_s == len(df) == 5400
        ecg, bis = df["SNUADC/ECG_II"].to_numpy(), df["BIS/BIS"].to_numpy()
        assert np.array_equal(case.signals[:, ECG], ecg, equal_nan=True)
        assert np.array_equal(case.signals[:, BIS], bis, equal_nan=True)
        assert np.array_equal(case.signals[:, SBP], case.signals[:, DBP], equal_nan=True)
        assert np.isfinite(ecg).sum() > 5000 and np.isfinite(bis).sum() > 5000
        assert 0 <= np.nanmin(bis) and np.nanmax(bis) <= 100


@needs_samples
def test_real_cases_lack_the_study_tracks(real_vital):
    root, _ = real_vital
    src = VitalDirSource(root)
    assert [r["caseid"] for r in src.case_refs()] == sorted(REAL_EXPORTS)
    for ref in src.case_refs():
        exc = rejected(src.load_case, ref)
        assert exc.reason == "missing track"
        for sig in ("nibp_sbp", "nibp_mbp", "nibp_dbp", "pleth", "mac"):
            assert sig in exc.detail
        assert "ecg (" not in exc.detail and "bis (" not in exc.detail
        assert "file has 5: " in exc.detail and "SNUADC/ECG_II" in exc.detail


def test_factory_builds_the_folder_source(tmp_path):
    from hypo.data.sources.factory import make_source

    write_vital_case(make_case("5", seconds=120), tmp_path / "v" / "5.vital", tracks=OTHER_TRACKS)
    (tmp_path / "map.json").write_text(json.dumps({"ecg": "Intellivue/ECG_II", "pleth": "Intellivue/PLETH",
                                                   "nibp_sbp": "NIBP_SYS", "nibp_mbp": "NIBP_MEAN",
                                                   "nibp_dbp": "NIBP_DIA"}))
    src = make_source("vital-dir", path=str(tmp_path / "v"), track_map=str(tmp_path / "map.json"))
    assert isinstance(src, VitalDirSource)
    assert src.load_case(src.case_refs()[0]).duration_s == 120  # short names match as the end of device/track
