"""The VitalDB open-dataset source against a local stand-in for the API (real clinical table, real and
synthetic .vital files)."""

import json
import pickle
import tempfile
import time

import numpy as np
import pytest
import vitaldb.dataset

from hypo.data.sources.base import Source
from hypo.data.sources.vital import write_vital_case
from hypo.data.sources.vitaldb_open import VitalDBSource
from hypo.errors import CaseRejected, ConfigError, HypoError

from vital_server import REAL_EXPORTS, SAMPLES, closed_port_url, export_to_vital, make_case, serve

V = vitaldb.dataset.DATASET_VERSION
SYNTHETIC = ("1", "2", "3")  # real caseids (eligible; subjects 5955, 2487, 2861) with synthetic signals


@pytest.fixture(scope="module")
def api_files(real_samples, tmp_path_factory):
    """URL path -> bytes for the stand-in API (the real clinical table and exports), and the synthetic cases."""
    root = tmp_path_factory.mktemp("api")
    files = {"/cases": (SAMPLES / "cases_clinical_information.csv").read_bytes()}
    cases = {}
    for i, cid in enumerate(SYNTHETIC):
        cases[cid] = make_case(cid, seconds=1500, seed=i)
        files[f"/{V}/{cid}.vital"] = write_vital_case(cases[cid], root / f"{cid}.vital").read_bytes()
    for cid, name in REAL_EXPORTS.items():
        export_to_vital(SAMPLES / name, root / f"{cid}.vital", crop_s=1800)
        files[f"/{V}/{cid}.vital"] = (root / f"{cid}.vital").read_bytes()
    files[f"/{V}/4.vital"] = b"this is not a vital file"
    return files, cases


@pytest.fixture
def api(api_files):
    files, _ = api_files
    with serve(files) as srv:
        yield srv


def source(srv, tmp_path, **kw):
    kw.setdefault("cache", str(tmp_path / "cache"))
    src = VitalDBSource(api_url=srv.url, **kw)
    src.backoff_s = 0.01
    return src


def test_eligibility_counts_on_the_real_table(api, tmp_path):
    src = source(api, tmp_path)
    rep = src.report()
    elig = rep["eligibility"]
    assert elig["total"] == 6388
    assert [s["removed"] for s in elig["steps"]] == [345, 54, 0]
    assert elig["total"] - sum(s["removed"] for s in elig["steps"]) == elig["eligible"] == 5989
    assert [s["remaining"] for s in elig["steps"]] == [6043, 5989, 5989]
    assert rep["n_subjects_eligible"] == 5744 and rep["n_selected"] == 5989
    assert rep["api_url"] == api.url and rep["dataset_version"] == V
    json.dumps(rep)
    refs = src.case_refs()
    assert len(refs) == 5989 and refs[0] == {"caseid": "1", "subjectid": "5955"}
    assert [int(r["caseid"]) for r in refs] == sorted(int(r["caseid"]) for r in refs)


def test_first_n_cases_with_subjects_and_cached_download(api, api_files, tmp_path):
    _, cases = api_files
    src = source(api, tmp_path, n_cases=3)
    assert isinstance(src, Source) and src.name == "vitaldb"
    refs = src.case_refs()
    assert refs == [{"caseid": "1", "subjectid": "5955"}, {"caseid": "2", "subjectid": "2487"},
                    {"caseid": "3", "subjectid": "2861"}]
    remote = pickle.loads(pickle.dumps(src))  # what a Ray task gets
    assert remote._selection is None
    for ref in refs:
        case = remote.load_case(ref)
        assert case.subjectid == ref["subjectid"]
        assert np.array_equal(case.signals, cases[ref["caseid"]].signals, equal_nan=True)
    remote.load_case(refs[0])
    source(api, tmp_path, n_cases=3).load_case(refs[0])  # a new source on the same cache
    assert api.hits[f"/{V}/1.vital"] == 1 and api.hits["/cases"] == 1
    assert (tmp_path / "cache" / V / "1.vital").is_file() and (tmp_path / "cache" / "cases.csv").is_file()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.startswith(".")]  # no temp files left


def test_not_found_and_corrupt(api, tmp_path):
    src = source(api, tmp_path)
    with pytest.raises(CaseRejected) as info:
        src.load_case({"caseid": "5", "subjectid": "4416"})
    assert info.value.reason == "not found"
    for _ in range(2):  # a corrupt download is not kept: the next run fetches it again
        with pytest.raises(CaseRejected) as info:
            src.load_case({"caseid": "4", "subjectid": "1903"})
        assert info.value.reason == "corrupt file"
    assert api.hits[f"/{V}/4.vital"] == 2


def test_real_cases_are_missing_the_study_tracks(api, tmp_path):
    src = source(api, tmp_path, caseids=[4481, 2272, 4255])
    refs = src.case_refs()
    assert refs == [{"caseid": "4481", "subjectid": "5982"}, {"caseid": "2272", "subjectid": "892"},
                    {"caseid": "4255", "subjectid": "1413"}]
    assert src.report()["n_selected_ineligible"] == 0
    for ref in refs:
        with pytest.raises(CaseRejected) as info:
            src.load_case(ref)
        assert info.value.reason == "missing track"
        assert "nibp_mbp (Solar8000/NIBP_MBP)" in info.value.detail and "ecg (" not in info.value.detail


def test_unknown_caseids_are_a_config_error(api, tmp_path):
    with pytest.raises(ConfigError, match="99999"):
        source(api, tmp_path, caseids=[1, 99999]).case_refs()


def test_unreachable_api_is_one_clear_line(tmp_path):
    url = closed_port_url()
    src = VitalDBSource(api_url=url, cache=str(tmp_path / "c"), retries=1, timeout=2)
    src.backoff_s = 0.01
    start = time.perf_counter()
    with pytest.raises(HypoError) as info:
        src.case_refs()
    msg = str(info.value)
    assert time.perf_counter() - start < 10
    assert "\n" not in msg and not isinstance(info.value, CaseRejected)
    assert msg.startswith(f"cannot reach the VitalDB API at {url} (")
    assert "refused" in msg.lower() and "--source vital-dir" in msg and "HYPO_VITALDB_URL" in msg
    with pytest.raises(HypoError, match="cannot reach"):
        src.load_case({"caseid": "1", "subjectid": "5955"})


def test_works_offline_once_cached(api_files, tmp_path):
    files, cases = api_files
    with serve(files) as srv:
        src = source(srv, tmp_path, n_cases=1)
        ref = src.case_refs()[0]
        src.load_case(ref)
    offline = VitalDBSource(api_url=closed_port_url(), cache=str(tmp_path / "cache"), n_cases=1, retries=0)
    assert offline.case_refs() == [ref]
    assert np.array_equal(offline.load_case(ref).signals, cases["1"].signals, equal_nan=True)


def test_transient_errors_are_retried(api_files, tmp_path):
    files, _ = api_files
    with serve(files, fail={f"/{V}/2.vital": 2, "/cases": 1}) as srv:
        src = source(srv, tmp_path, retries=2)
        assert src.load_case({"caseid": "2", "subjectid": "2487"}).caseid == "2"
        assert srv.hits[f"/{V}/2.vital"] == 3
        assert len(src.case_refs()) == 5989 and srv.hits["/cases"] == 2
    with serve(files, fail={f"/{V}/3.vital": 5}) as srv:
        src = source(srv, tmp_path, retries=1)
        with pytest.raises(HypoError, match="HTTP 503"):
            src.load_case({"caseid": "3", "subjectid": "2861"})
        assert srv.hits[f"/{V}/3.vital"] == 2


def test_api_url_from_vitaldb_and_environment(api, tmp_path, monkeypatch):
    monkeypatch.delenv("HYPO_VITALDB_URL", raising=False)
    monkeypatch.setattr(vitaldb.dataset, "api_url", api.url)
    assert VitalDBSource(cache=str(tmp_path / "a")).api_url == api.url
    monkeypatch.setenv("HYPO_VITALDB_URL", api.url + "/")
    monkeypatch.setattr(vitaldb.dataset, "api_url", "http://127.0.0.1:9")
    src = VitalDBSource(cache=str(tmp_path / "b"), n_cases=2)
    assert src.api_url == api.url
    assert [r["caseid"] for r in src.case_refs()] == ["1", "2"]
    assert VitalDBSource(api_url="http://elsewhere").api_url == "http://elsewhere"


def test_fingerprint_follows_content_not_url(api_files, tmp_path):
    files, _ = api_files
    with serve(files) as a, serve(files) as b:
        fa = source(a, tmp_path / "a", n_cases=3).fingerprint()
        assert source(b, tmp_path / "b", n_cases=3).fingerprint() == fa
        assert source(b, tmp_path / "b", n_cases=4).fingerprint() != fa
        assert source(b, tmp_path / "b", caseids=[1, 2, 3]).fingerprint() == fa
    edited = dict(files)
    edited["/cases"] = files["/cases"].replace(b"\n1,5955,", b"\n1,5956,", 1)
    assert edited["/cases"] != files["/cases"]
    with serve(edited) as c:
        assert source(c, tmp_path / "c", n_cases=3).fingerprint() != fa


@pytest.mark.parametrize("scheme", ["file", "s3"])
def test_uri_cache_goes_through_pyarrow(api, api_files, tmp_path, monkeypatch, request, scheme):
    from hypo import storage

    _, cases = api_files
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the local copies go
    (tmp_path / "tmp").mkdir()
    if scheme == "s3":  # --cache s3://... on a real S3 API server (moto)
        request.getfixturevalue("s3_endpoint")
        from s3_server import new_bucket

        uri = new_bucket() + "/vitaldb"
    else:
        uri = (tmp_path / "bucket").as_uri()  # file:// goes the same way (copy in and out)
    src = source(api, tmp_path, cache=uri, n_cases=1)
    ref = src.case_refs()[0]
    src.load_case(ref)
    assert storage.is_file(f"{uri}/{V}/1.vital") and storage.is_file(f"{uri}/cases.csv")
    for p in (tmp_path / "tmp").rglob("*.vital"):  # lose the local copies: they come back from the "bucket"
        p.unlink()
    case = source(api, tmp_path, cache=uri, n_cases=1).load_case(ref)
    assert np.array_equal(case.signals, cases["1"].signals, equal_nan=True)
    assert api.hits[f"/{V}/1.vital"] == 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError):
        VitalDBSource(n_cases=0)
    with pytest.raises(ConfigError):
        VitalDBSource(caseids=["x"])
