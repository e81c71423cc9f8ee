"""Hostile datasets (issue 21, items 2, 3 and 8): a damaged folder is repaired by re-running its build, an edited
z-score is refused, and a partial subjects file is said and a collision refused."""

import glob
import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from cli_errors import one_line_error

from hypo.cli.train import main as train_main
from hypo.config import WindowConfig
from hypo.data.dataset import load_split, read_manifest
from hypo.data.integrity import check_done_cases
from hypo.data.preprocess import build_windows
from hypo.errors import DatasetError

from fake_sources import FakeSource
from synthetic_windows import write_synthetic_dataset

N = 8


def _rows(out):
    tables = [pq.read_table(f, columns=["caseid", "t_end", "x"]) for f in _shards(out)]
    return sorted((c, t, hash(np.asarray(x, np.float32).tobytes()))
                  for tab in tables
                  for c, t, x in zip(tab["caseid"].to_pylist(), tab["t_end"].to_pylist(), tab["x"].to_pylist()))


def _shards(out):
    return sorted(glob.glob(f"{out}/windows/*/*.parquet"))


@pytest.fixture(scope="module")
def intact(ray_local, tmp_path_factory):
    """One build left alone: what a repaired folder must equal."""
    out = str(tmp_path_factory.mktemp("intact") / "w")
    manifest = build_windows(FakeSource(N), WindowConfig(), out, progress=False, log=lambda s: None)
    return out, manifest, _rows(out)


def _damage(out, summary=False):
    """Delete one shard, cut another in half (and, with ``summary``, a third case's summary); returns their names."""
    shards = _shards(out)
    os.remove(shards[0])
    for path in [shards[1]] + ([f"{out}/cases/{os.path.basename(shards[2])[:-len('.parquet')]}.json"] if summary
                               else []):
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    return [os.path.basename(s)[: -len(".parquet")] for s in shards[: 3 if summary else 2]]


# ------------------------------------------------------------------------------------------ item 2


def test_a_rerun_repairs_a_damaged_dataset_to_the_intact_build(intact, tmp_path):
    want_dir, want, want_rows = intact
    out = str(tmp_path / "w")
    build_windows(FakeSource(N), WindowConfig(), out, progress=False, log=lambda s: None)
    gone, cut, summary = _damage(out, summary=True)
    with pytest.raises(DatasetError, match="re-run the hypo windows command that built it"):
        for split in ("train", "val", "test"):
            load_split(out, split)
    lines = []
    m = build_windows(FakeSource(N), WindowConfig(), out, progress=False, log=lines.append)
    repair = next(line for line in lines if line.startswith("repairing:"))
    assert f"3 of {N} done cases are missing or damaged on disk and are built again" in repair, repair
    assert f"{gone} (shard missing)" in repair and f"{cut} (shard damaged (" in repair, repair
    assert f"{summary} (summary unreadable)" in repair, repair
    assert any(f"resuming: {N - 3} of {N} cases already done" in line for line in lines), lines
    assert m.fingerprint == want.fingerprint and m.counts == want.counts and m.zscore == want.zscore
    assert _rows(out) == want_rows
    for split in ("train", "val", "test"):
        assert len(load_split(out, split)) == want.counts[split].windows
    again = []  # a second re-run finds nothing to repair
    build_windows(FakeSource(N), WindowConfig(), out, progress=False, log=again.append)
    assert not [line for line in again if line.startswith(("repairing", "note"))], again


def test_a_shard_of_the_same_size_with_other_bytes_is_caught_by_its_checksum(intact, tmp_path):
    out = str(tmp_path / "w")
    shutil.copytree(intact[0], out)
    a, b = _shards(out)[:2]
    data = bytearray(open(a, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one byte flipped: the size and perhaps the footer as written
    open(a, "wb").write(bytes(data))
    lines = []
    names = [os.path.basename(p)[: -len(".json")] for p in glob.glob(f"{out}/cases/*.json")]
    intact_cases = check_done_cases(out, names, lines.append)
    name = os.path.basename(a)[: -len(".parquet")]
    assert f"1 of {N} done cases" in lines[0] and f"{name} (shard damaged (its SHA-256 differs" in lines[0], lines
    assert name not in intact_cases and len(intact_cases) == N - 1
    assert not os.path.exists(a) and not os.path.exists(f"{out}/cases/{name}.json") and os.path.exists(b)


def test_an_old_dataset_without_shard_checksums_is_checked_for_rows_and_says_so(intact, tmp_path):
    want_dir, want, want_rows = intact
    out = str(tmp_path / "w")
    shutil.copytree(want_dir, out)
    for path in glob.glob(f"{out}/cases/*.json"):  # as hypo wrote them before shards were recorded
        summary = json.load(open(path))
        summary.pop("shard")
        json.dump(summary, open(path, "w"))
    gone, cut = _damage(out)
    lines = []
    m = build_windows(FakeSource(N), WindowConfig(), out, progress=False, log=lines.append)
    text = "\n".join(lines)
    assert f"{gone} (shard missing)" in text and f"{cut} (shard damaged (unreadable" in text, text
    assert f"note: {N} of {N} done cases were written before hypo recorded their shards' checksums" in text
    assert "checked for their row count only" in text
    assert m.fingerprint == want.fingerprint and _rows(out) == want_rows


# ------------------------------------------------------------------------------------------ item 3


@pytest.fixture()
def synthetic(tmp_path):
    data = str(tmp_path / "w")
    write_synthetic_dataset(data, n_train=60, n_val=30, n_test=30, seed=2)
    return data


def _edit_zscore(data, **values):
    path = os.path.join(data, "manifest.json")
    raw = json.load(open(path))
    for key, (i, v) in values.items():
        raw["zscore"][key][i] = v
    open(path, "w").write(json.dumps(raw))
    return raw


@pytest.mark.parametrize("edit, needle", [
    ({"std": (0, 0.0)}, "field zscore.std: every std must be finite and > 0, got 0 for ecg"),
    ({"std": (3, -2.0)}, "every std must be finite and > 0, got -2 for nibp_dbp"),
    ({"mean": (1, float("nan"))}, "field zscore.mean: every mean must be finite, got nan for nibp_sbp"),
])
def test_an_impossible_zscore_is_refused_in_one_line_new_or_old(synthetic, edit, needle):
    _edit_zscore(synthetic, **edit)  # the synthetic manifest records no checksum: as an old build's
    with pytest.raises(DatasetError) as exc:
        read_manifest(synthetic)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg and "re-run the hypo windows command" in msg, msg


def test_a_zscore_edited_in_a_new_manifest_is_refused_by_its_checksum(intact, tmp_path):
    out = str(tmp_path / "w")
    shutil.copytree(intact[0], out)
    assert read_manifest(out).zscore.checksum  # a build records it (and the fingerprint stays the build's)
    raw = _edit_zscore(out, std=(2, 5.0))
    with pytest.raises(DatasetError, match="field zscore: its means and standard deviations do not match their "
                                           "checksum") as exc:
        read_manifest(out)
    assert "\n" not in str(exc.value)
    m = build_windows(FakeSource(N), WindowConfig(), out, progress=False, log=lambda s: None)  # the repair
    assert m.zscore == intact[1].zscore and m.zscore.std[2] != raw["zscore"]["std"][2]
    assert read_manifest(out).fingerprint == intact[1].fingerprint


def test_a_zscore_edited_in_an_old_manifest_is_caught_against_the_train_windows(synthetic, capsys):
    load_split(synthetic, "train")  # intact: its z-score is the train windows' own
    _edit_zscore(synthetic, std=(2, 5.0))
    read_manifest(synthetic)  # plausible values, no checksum to check them against
    with pytest.raises(DatasetError, match="its z-score is not the train windows' own"):
        load_split(synthetic, "train")
    err = one_line_error(capsys, train_main, ["--data", synthetic, "--epochs", "1", "--device", "cpu"])
    assert "its z-score is not the train windows' own (nibp_mbp: mean" in err and "std 5 in the manifest" in err


# ------------------------------------------------------------------------------------------ item 8


@pytest.fixture(scope="module")
def vital_files(tmp_path_factory):
    from hypo.data.sources.demo_files import write_demo_vital_files

    folder = tmp_path_factory.mktemp("vital") / "files"
    write_demo_vital_files(str(folder), 3)
    return folder


def test_a_partial_subjects_file_is_said_on_the_console_with_the_count(ray_local, vital_files, tmp_path):
    from hypo.data.sources.vital import VitalDirSource

    csv = tmp_path / "subjects.csv"
    csv.write_text("caseid,subjectid\n1,patient-a\n")
    src = VitalDirSource(vital_files, subjects=csv)
    assert [r["subjectid"] for r in src.case_refs()] == ["patient-a", "2", "3"]  # as before: unlisted files own
    lines = []
    m = build_windows(src, WindowConfig(), str(tmp_path / "w"), progress=False, log=lines.append)
    note = f"note: 2 of 3 .vital files are not in the subjects file {csv}: each is its own subject"
    assert any(line.startswith(note) for line in lines), lines
    assert m.source.report["n_own_subject"] == 2
    assert VitalDirSource(vital_files).notes() == []  # no subjects file: every file its own subject, as documented
    csv.write_text("caseid,subjectid\n1,p\n2,p\n3,q\n")
    assert VitalDirSource(vital_files, subjects=csv).notes() == []  # every file listed


@pytest.mark.parametrize("rows, needle", [
    ("1,2\n", "2.vital is not listed, so it would be its own subject '2', a subject the file gives to case 1"),
    ("1,3\n2,3\n", "3.vital is not listed, so it would be its own subject '3', a subject the file gives to case 1, 2"),
])
def test_a_case_id_colliding_with_a_subject_id_is_refused_in_one_line(vital_files, tmp_path, capsys, rows, needle):
    from hypo.cli.windows import main as windows_main

    csv = tmp_path / "subjects.csv"
    csv.write_text("caseid,subjectid\n" + rows)
    err = one_line_error(capsys, windows_main, ["--source", "vital-dir", "--path", str(vital_files), "--subjects",
                                                str(csv), "--out", str(tmp_path / "w")])
    assert needle in err and "they would become one patient" in err, err
    assert not (tmp_path / "w").exists()


def test_damaged_shards_on_cloud_storage_are_found_and_removed(tmp_path):
    import pyarrow.fs as pafs

    from hypo import storage
    from hypo.data.pipeline import run_case

    from s3_server import new_bucket, s3_server

    with s3_server():
        out = new_bucket() + "/w"
        src = FakeSource(3)
        summaries = [run_case(ref, src, WindowConfig(), out) for ref in src.case_refs()]
        shards = [storage.join(out, *s["shard"]["path"].split("/")) for s in summaries]
        fs, first = storage.resolve(shards[0])
        fs.delete_file(first)
        with fs.open_output_stream(storage.resolve(shards[1])[1]) as f:
            f.write(b"not a shard")
        lines = []
        intact_cases = check_done_cases(out, [f"case_{i}" for i in (1, 2, 3)], lines.append)
        assert list(intact_cases) == ["case_3"] and intact_cases["case_3"] == summaries[2]
        assert "case_1 (shard missing)" in lines[0] and "case_2 (shard damaged (11 bytes" in lines[0], lines
        for name in ("case_1", "case_2"):
            assert fs.get_file_info(storage.resolve(storage.join(out, "cases", name + ".json"))[1]).type == \
                pafs.FileType.NotFound


def test_a_damaged_folder_config_is_one_line(tmp_path):
    from hypo.errors import ConfigError

    out = tmp_path / "w"
    out.mkdir()
    (out / "config.json").write_text('{"config": {"window_s"')
    with pytest.raises(ConfigError, match=r"config.json: unreadable \(JSONDecodeError: .*restore it, or build into"):
        build_windows(FakeSource(2), WindowConfig(), str(out), progress=False, log=lambda s: None)
