"""The typed records: the dataset manifest and the search record, their migrations and their one-line refusals.

``tests/data/`` holds a manifest and a search record written by the hypo before the records were typed (schema 1);
they load through their migrations. A file that cannot be migrated, or that is cut short, is refused in one line
naming the file and saying what to do, by every command that reads it.
"""

import json
import os
import shutil

import pytest

from hypo.config import WindowConfig, to_dict
from hypo.data.integrity import zscore_checksum
from hypo.data.manifest import SCHEMA_VERSION, Manifest, read_manifest, write_manifest
from hypo.data.preprocess import summary_lines
from hypo.data.sources.demo import DemoSource
from hypo.data.sources.factory import build_source, make_source, spec_from_flags
from hypo.data.sources.spec import SourceSpec
from hypo.data.sources.vital import VitalDirSource, load_track_map, write_vital_case
from hypo.errors import ConfigError, DatasetError, HypoError
from hypo.learn.baselines import FEATURE_MODEL, LAST_READING, BaselineRecord
from hypo.search.experiments import experiment_dataset
from hypo.search.record import SEARCH_META, SearchRecord, SearchRecordError, read_search_record, write_search_record

from fake_sources import synthetic_case
from synthetic_windows import write_synthetic_dataset

DATA = os.path.join(os.path.dirname(__file__), "data")
LEGACY_MANIFEST = os.path.join(DATA, "manifest-v1-demo-cuff.json")
LEGACY_SEARCH = os.path.join(DATA, "hypo_search-v1.json")
LEGACY_FINGERPRINT = "e3950b3a4973eb93"  # DemoSource(6, 0) with the default window config


def _dataset_with(tmp_path, raw: dict, name: str = "ds") -> str:
    d = tmp_path / name
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(raw))
    return str(d)


def _legacy() -> dict:
    return json.load(open(LEGACY_MANIFEST))


# ---------------------------------------------------------------------------------------------- the manifest


def test_a_manifest_from_before_the_schema_loads_through_its_migration(tmp_path):
    raw = _legacy()
    assert "schema_version" not in raw and raw["format"] == "hypo-windows/1"
    m = read_manifest(_dataset_with(tmp_path, raw))
    assert isinstance(m, Manifest) and m.schema_version == SCHEMA_VERSION
    assert m.fingerprint == raw["fingerprint"] == LEGACY_FINGERPRINT
    assert m.label == WindowConfig().label and m.config == WindowConfig()
    assert m.counts["train"].windows == raw["counts"]["train"]["windows"]
    assert m.zscore.mean == tuple(raw["zscore"]["mean"])
    # the source's description is made from its report, and builds the very source again
    assert m.source.spec == DemoSource(6, 0).describe()
    assert build_source(m.source.spec).fingerprint() == m.source.fingerprint
    assert summary_lines(m)[-1].startswith(f"fingerprint {LEGACY_FINGERPRINT}")
    # the file on disk keeps its content: the record writes what it read, with the schema and the description
    out = m.to_dict()
    assert out.pop("schema_version") == SCHEMA_VERSION and out["source"].pop("spec") == m.source.spec.to_dict()
    assert json.dumps(out) == json.dumps(raw)


def test_a_build_today_has_the_fingerprint_the_old_file_records(tmp_path):
    from hypo.data.pipeline import run_case
    from hypo.data.preprocess import make_manifest

    src, cfg = DemoSource(6, 0), WindowConfig()
    m = make_manifest([run_case(r, src, cfg, str(tmp_path)) for r in src.case_refs()], cfg, src, wall_s=0.0)
    assert m.fingerprint == LEGACY_FINGERPRINT
    write_manifest(str(tmp_path), m)
    again = read_manifest(str(tmp_path))
    assert again == m and json.load(open(tmp_path / "manifest.json"))["schema_version"] == SCHEMA_VERSION
    raw, new = _legacy(), json.load(open(tmp_path / "manifest.json"))
    for d in (raw, new):
        d.pop("created")
    new.pop("schema_version")
    new["source"].pop("spec")
    assert new["zscore"].pop("checksum") == zscore_checksum(raw["zscore"]["mean"], raw["zscore"]["std"])
    assert new == raw  # the JSON is what it was; the schema version, source description and z-score checksum aside


def test_old_folder_and_vitaldb_sources_migrate_to_their_descriptions(tmp_path):
    raw = _legacy()
    report = {"folder": "/data/vital", "n_files": 6, "track_map": {"ecg": ["Intellivue/ECG_II"]},
              "subjects_file": "/data/vital/subjects.csv", "allow_missing": ["mac"]}
    m = read_manifest(_dataset_with(tmp_path, {**raw, "source": {"name": "vital-dir", "fingerprint": "f",
                                                                  "report": report}}, "vital"))
    assert m.source.spec == SourceSpec(name="vital-dir", folder="/data/vital", subjects="/data/vital/subjects.csv",
                                       track_map={"ecg": ("Intellivue/ECG_II",)}, allow_missing=("mac",))
    # vitaldb with case ids given: every case the build listed, written or rejected
    d = _dataset_with(tmp_path, {**raw, "rejected": [{"caseid": "12", "reason": "not found", "detail": ""}],
                                 "source": {"name": "vitaldb", "fingerprint": "f",
                                            "report": {"caseids_given": True, "cache": "/c", "api_url": "http://x"}}},
                      "vitaldb")
    os.makedirs(os.path.join(d, "cases"))
    for cid in ("100", "9"):
        json.dump({"caseid": cid, "status": "ok"}, open(os.path.join(d, "cases", f"case_{cid}.json"), "w"))
    assert read_manifest(d).source.spec == SourceSpec(name="vitaldb", caseids=("9", "12", "100"), cache="/c",
                                                      api_url="http://x")
    # a source that never described itself is refused by the replay alone: everything else reads
    other = read_manifest(_dataset_with(tmp_path, {**raw, "source": {"name": "fake", "fingerprint": "f"}}, "fake"))
    assert other.source.spec is None and other.fingerprint == LEGACY_FINGERPRINT


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["config"].update(window_minutes=1), "field config: WindowConfig: unknown field(s) window_minutes"),
    (lambda r: r["counts"]["train"].update(windows="many"), "field counts.train.windows"),
    (lambda r: r.pop("fingerprint"), "field fingerprint"),
])
def test_a_manifest_that_cannot_be_migrated_is_refused_in_one_line_saying_how_to_rebuild(tmp_path, edit, field):
    raw = _legacy()
    edit(raw)
    d = _dataset_with(tmp_path, raw)
    with pytest.raises(DatasetError) as exc:
        read_manifest(d)
    msg = str(exc.value)
    assert msg.startswith(os.path.join(d, "manifest.json")) and field in msg and "\n" not in msg, msg
    assert "hypo windows ... --out NEWDIR" in msg and f"delete {d}" in msg


def test_a_manifest_of_a_newer_schema_or_format_is_refused(tmp_path):
    with pytest.raises(DatasetError, match=r"schema_version 99 is not one this hypo reads .*update hypo"):
        read_manifest(_dataset_with(tmp_path, {**_legacy(), "schema_version": 99}, "newer"))
    with pytest.raises(DatasetError, match=r"dataset format 'hypo-windows/2'.*hypo windows \.\.\. --out NEWDIR"):
        read_manifest(_dataset_with(tmp_path, {**_legacy(), "format": "hypo-windows/2"}, "format"))
    d = _dataset_with(tmp_path, {}, "cut")
    (tmp_path / "cut" / "manifest.json").write_text('{"format": "hypo-win')
    with pytest.raises(DatasetError, match=r"unreadable manifest \(JSONDecodeError.*\); rebuild it") as exc:
        read_manifest(d)
    assert "\n" not in str(exc.value)


# ---------------------------------------------------------------------------------------------- the source spec


def test_every_source_describes_itself_and_is_built_again_from_its_description(tmp_path):
    write_vital_case(make_case_for(tmp_path), tmp_path / "v" / "5.vital")
    (tmp_path / "map.json").write_text(json.dumps({"ecg": "SNUADC/ECG_II"}))
    (tmp_path / "subjects.csv").write_text("caseid,subjectid\n5,s5\n")
    sources = [DemoSource(4, seed=3, arterial=True, site="b"),
               VitalDirSource(tmp_path / "v", track_map=load_track_map(tmp_path / "map.json"),
                              subjects=tmp_path / "subjects.csv", allow_missing=("bis",))]
    for src in sources:
        spec = src.describe()
        again = build_source(SourceSpec.model_validate(json.loads(json.dumps(spec.to_dict()))))
        assert type(again) is type(src) and again.describe() == spec and again.fingerprint() == src.fingerprint()
    # the flags of hypo windows make the same description
    flags = spec_from_flags("vital-dir", path=str(tmp_path / "v"), track_map=str(tmp_path / "map.json"),
                            subjects=str(tmp_path / "subjects.csv"))
    assert build_source(flags.reading(False, ("bis",))).describe() == sources[1].describe()
    assert spec_from_flags("demo", cases=4, seed=3, site="b").reading(True, ()) == sources[0].describe()
    with pytest.raises(ConfigError, match="--source vital-dir needs --path"):
        make_source("vital-dir")


def make_case_for(tmp_path):
    from hypo.data.sources.base import Case

    return Case("5", "s5", synthetic_case(5, 1800))


# ---------------------------------------------------------------------------------------------- the search record


def test_a_search_record_from_before_the_schema_loads_and_writes_the_same_json(tmp_path):
    raw = json.load(open(LEGACY_SEARCH))
    shutil.copy(LEGACY_SEARCH, tmp_path / SEARCH_META)
    rec = read_search_record(str(tmp_path))
    assert isinstance(rec, SearchRecord) and rec.schema_version == 2 and rec.data == raw["data"]
    assert [b.name for b in rec.baselines] == [LAST_READING, FEATURE_MODEL]
    assert rec.baselines[1].params["candidate"] and to_dict(rec.label) == raw["label"]
    assert rec.planned_trials(0) == 2 and rec.trial_epoch_budget is None
    assert experiment_dataset(str(tmp_path)) == raw["data"]
    write_search_record(str(tmp_path / "again"), rec)
    out = json.load(open(tmp_path / "again" / SEARCH_META))
    assert out.pop("schema_version") == 2 and json.dumps(out) == json.dumps(raw)


def test_the_oldest_search_record_with_one_baseline_migrates(tmp_path):
    (tmp_path / SEARCH_META).write_text(json.dumps({"search": {"space": "optuna", "samples": 3},
                                                    "baseline": {"val_mean_auroc": 0.7, "val_n": 40}}))
    rec = read_search_record(str(tmp_path))
    assert rec.baselines == (BaselineRecord(name=LAST_READING, model="last-reading",
                                            description=rec.baselines[0].description,
                                            metrics={"val_mean_auroc": 0.7, "val_n": 40}),)
    assert rec.label is None and rec.planned_trials(0) == 3
    assert read_search_record(str(tmp_path / "nothing")) is None
    with pytest.raises(HypoError, match="no hypo_search.json naming the dataset"):
        experiment_dataset(str(tmp_path))
    assert experiment_dataset(str(tmp_path), required=False) is None


@pytest.mark.parametrize("text, why", [
    ('{"search": {"space": "optuna", "sam', "unreadable search record (JSONDecodeError"),
    ('{"search": [], "baselines": []}', "field search: Input should be a valid dictionary"),
    ('{"schema_version": 7}', "schema_version 7 is not one this hypo reads"),
])
def test_a_broken_search_record_is_one_line_naming_the_file(tmp_path, text, why):
    (tmp_path / SEARCH_META).write_text(text)
    with pytest.raises(SearchRecordError) as exc:
        read_search_record(str(tmp_path))
    msg = str(exc.value)
    assert msg.startswith(str(tmp_path / SEARCH_META)) and why in msg and "\n" not in msg, msg


@pytest.fixture(scope="module")
def cut_short(tmp_path_factory):
    """An experiment whose hypo_search.json was cut short (a disk that filled up), beside a dataset."""
    root = tmp_path_factory.mktemp("cut")
    data = str(root / "windows")
    write_synthetic_dataset(data, n_train=80, n_val=40, n_test=40, seed=1)
    exp = root / "runs" / "cut"
    trial = exp / "train_trial_00000000_1"
    os.makedirs(trial)
    (trial / "params.json").write_text(json.dumps({"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0}))
    (trial / "result.json").write_text(json.dumps({"trial_id": "00000000", "epoch": 1, "training_iteration": 1,
                                                   "val_mean_auroc": 0.7, "val_sum_auprc": 0.5, "done": True}) + "\n")
    text = open(LEGACY_SEARCH).read()
    (exp / SEARCH_META).write_text(text[: len(text) // 2])
    return {"exp": str(exp), "data": data, "root": root}


@pytest.mark.parametrize("command", ["leaderboard", "export", "report", "evaluate", "search --resume"])
def test_every_command_gives_the_one_line_for_a_search_record_cut_short(cut_short, command, tmp_path, capsys):
    from hypo.cli.main import main

    exp = cut_short["exp"]
    argv = {"leaderboard": ["leaderboard", exp],
            "export": ["export", exp, "--out", str(tmp_path / "m.pt")],
            "report": ["report", exp, "--out", str(tmp_path / "r")],
            "evaluate": ["evaluate", exp, "--data", cut_short["data"], "--out", str(tmp_path / "e")],
            "search --resume": ["search", "--resume", "--storage", str(cut_short["root"] / "runs"), "--name", "cut"],
            }[command]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert f"{os.path.join(exp, SEARCH_META)}: unreadable search record (JSONDecodeError" in err
    assert "restore the file, or run the search again under a new --name" in err
    assert "Traceback" not in err
