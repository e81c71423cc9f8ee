"""Hostile ``hypo evaluate`` inputs (issue 21, items 4, 5, 6, 12 and 14): the model is never overwritten, an
unwritable export path is refused before the work, the thresholds' dataset gets OTHER's checks, a failing alarm
evaluation writes nothing, and a row left no usable threshold says why."""

import errno
import os

import pytest
from cli_errors import one_line_error

from hypo.cli.evaluate import main as evaluate_main
from hypo.config import LabelConfig, SplitConfig, WindowConfig

from demo_experiment import build_demo_dataset, exported_demo_model

BOOT = ["--bootstrap", "20"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A model trained on simulated site A; site B's windows; datasets that differ from the model's."""
    root = tmp_path_factory.mktemp("hostile-evaluate")
    a = exported_demo_model(root, n_cases=30, epochs=1)
    paths = {"root": root, "model": a["model"], "exp": a["exp"], "a": a["data"]}
    for name, n, cfg in (("b", 24, None),
                         ("b_h600", 12, WindowConfig(label=LabelConfig(horizon_s=600))),
                         ("b_art", 12, WindowConfig(label=LabelConfig(source="art"))),
                         ("b_no_test", 12, WindowConfig(split=SplitConfig(0.5, 0.5, 0.0)))):
        paths[name] = str(root / name)
        build_demo_dataset(paths[name], n_cases=n, site="b", cfg=cfg)
    return paths


def _model_bytes(path):
    return open(path, "rb").read()


# ------------------------------------------------------------------------------------------ item 5


@pytest.mark.parametrize("how", ["same path", "another spelling", "symlink", "hard link"])
def test_write_export_onto_the_model_evaluated_is_refused(tmp_path, capsys, how):
    model = tmp_path / "model.pt"
    model.write_bytes(b"frozen model")
    target = {"same path": str(model), "another spelling": str(tmp_path / "sub" / ".." / "model.pt"),
              "symlink": str(tmp_path / "link.pt"), "hard link": str(tmp_path / "hard.pt")}[how]
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        os.symlink(model, target)
    elif how == "hard link":
        os.link(model, target)
    err = one_line_error(capsys, evaluate_main, [str(model), "--data", str(tmp_path), "--recalibrate", "temperature",
                                                 "--write-export", target, "--out", str(tmp_path / "ev")])
    assert f"--write-export {target} is the model being evaluated ({model})" in err, err
    assert model.read_bytes() == b"frozen model" and not (tmp_path / "ev").exists()


@pytest.mark.parametrize("name", ["model.pth", "model.json"])
def test_write_export_onto_the_model_evaluated_sidecar_is_refused(tmp_path, capsys, name):
    model = tmp_path / "model.pt"
    model.write_bytes(b"frozen model")
    err = one_line_error(capsys, evaluate_main, [str(model), "--data", str(tmp_path), "--recalibrate", "temperature",
                                                 "--write-export", str(tmp_path / name)])
    assert f"would overwrite {tmp_path / 'model.json'}, the sidecar of the model being evaluated" in err, err


# ------------------------------------------------------------------------------------------ item 12


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_an_export_path_the_kernel_refuses_is_refused_before_the_work(tmp_path, capsys, monkeypatch, code):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_open = os.open

    def refusing_open(path, flags, *args, **kw):
        if os.path.dirname(os.fspath(path)) == str(folder) and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", refusing_open)  # root ignores permissions; a read-only mount or /sys does not
    err = one_line_error(capsys, evaluate_main, ["nowhere.pt", "--data", str(tmp_path), "--recalibrate", "vector",
                                                 "--write-export", str(folder / "m.pt"), "--out", str(tmp_path / "ev")])
    assert err.startswith(f"hypo evaluate: error: --write-export: cannot write into {folder}: "
                          f"{os.strerror(code)}"), err
    assert "--out" not in err and not (tmp_path / "ev").exists()  # before the model was even looked for


def test_an_export_path_that_is_a_folder_names_write_export(tmp_path, capsys):
    err = one_line_error(capsys, evaluate_main, ["nowhere.pt", "--data", str(tmp_path), "--recalibrate", "vector",
                                                 "--write-export", str(tmp_path)])
    assert f"--write-export {tmp_path} is a folder" in err, err


# ------------------------------------------------------------------------------------------ item 6


@pytest.mark.parametrize("thresholds, needle", [
    ("b_h600", "is labelled with horizon_s 600, the model predicts horizon_s 300: rebuild it with --horizon 300"),
])
def test_alarm_thresholds_from_a_dataset_of_other_labels_gets_the_checks_of_data(setup, tmp_path, capsys,
                                                                                   thresholds, needle):
    err = one_line_error(capsys, evaluate_main, [setup["model"], "--data", setup["b"], "--alarms",
                                                 "--alarm-thresholds-from", setup[thresholds],
                                                 "--out", str(tmp_path / "ev")])
    assert err.startswith("hypo evaluate: error: --alarm-thresholds-from: ") and needle in err, err
    assert not (tmp_path / "ev").exists()
    err = one_line_error(capsys, evaluate_main, [setup["model"], "--data", setup[thresholds],  # as --data refuses it
                                                 "--out", str(tmp_path / "ev")])
    assert needle in err, err


def test_alarm_thresholds_from_another_label_source_is_said_as_data_says_it(setup):
    from hypo.evaluate.external.job import check_alarm_inputs
    from hypo.evaluate.external.request import EvaluateRequest
    from hypo.evaluate.external.validation import check_compatible, prepare_external

    req = EvaluateRequest(setup["model"], setup["b"], alarms=True, thresholds_from=setup["b_art"])
    prepared = prepare_external(req)
    lines = []
    check_alarm_inputs(req, prepared, setup["b_art"], lines.append)
    want = (f"note: --alarm-thresholds-from: the model was trained on labels from cuff readings (mode reading), "
            f"{setup['b_art']} has labels from the arterial line")
    assert any(line.startswith(want) for line in lines), lines
    from hypo.data.dataset import read_manifest

    assert any(n.startswith(f"note: the model was trained on labels from cuff readings (mode reading), "
                            f"{setup['b_art']} has labels from the arterial line")
               for n in check_compatible(prepared.model.sidecar, read_manifest(setup["b_art"]), setup["b_art"]))


# ------------------------------------------------------------------------------------------ item 14


def test_alarms_on_an_empty_test_split_are_refused_before_any_work(setup, tmp_path, capsys):
    err = one_line_error(capsys, evaluate_main, [setup["model"], "--data", setup["b_no_test"], "--alarms",
                                                 "--alarm-thresholds-from", "other", "--out", str(tmp_path / "ev")])
    assert (f"--alarms: --data {setup['b_no_test']}: the test split is empty because the dataset was built with "
            "--split 0.5 0.5 0") in err, err
    assert "(0 failed: )" not in err and not (tmp_path / "ev").exists()


def test_alarms_on_recordings_whose_source_changed_are_refused_before_any_work(setup, tmp_path, capsys):
    import shutil

    from hypo.data.manifest import read_manifest, write_manifest

    data = tmp_path / "b"
    shutil.copytree(setup["b"], data)
    m = read_manifest(str(data))  # as if a recording changed after the build: the source yields something else
    write_manifest(str(data), m.model_copy(update={"source": m.source.model_copy(update={"fingerprint": "0" * 16})}))
    err = one_line_error(capsys, evaluate_main, [setup["model"], "--data", str(data), "--alarms",
                                                 "--alarm-thresholds-from", "other", "--out", str(tmp_path / "ev")])
    assert f"--alarms: --data {data}: the demo source no longer yields the recordings the dataset was built" in err
    assert not (tmp_path / "ev").exists()


def test_a_failing_alarm_evaluation_writes_no_results(setup, tmp_path, capsys, monkeypatch):
    from hypo.data.sources.demo import DemoSource
    from hypo.errors import CaseRejected

    def gone(self, ref):
        raise CaseRejected("missing file", f"case {ref['caseid']}: the recording is gone")

    monkeypatch.setattr(DemoSource, "load_case", gone)  # every recording fails to load when replayed
    out = tmp_path / "ev"
    err = one_line_error(capsys, evaluate_main, [setup["model"], "--data", setup["b"], "--alarms", *BOOT,
                                                 "--recalibrate", "temperature", "--write-export",
                                                 str(tmp_path / "m.pt"), "--alarm-thresholds-from", "other",
                                                 "--out", str(out)])
    assert "no val case could be replayed to choose the alarm thresholds: all" in err, err
    assert "failed (missing file" in err and "the recording is gone" in err
    assert os.listdir(out) == [] and not (tmp_path / "m.pt").exists()  # no evaluation.json, figures or export


# ------------------------------------------------------------------------------------------ item 4


def test_a_row_left_no_usable_threshold_says_why():
    import numpy as np

    from hypo.evaluate.alarms.evaluation import no_usable_threshold
    from hypo.evaluate.alarms.metrics import PROBABILITY, READING, AlarmConfig

    cfg = AlarmConfig(hysteresis=0.5)
    why = no_usable_threshold(np.array([0.1, 0.4, 0.5, np.nan]), PROBABILITY, cfg)
    assert "every validation p(hypotension) is at or below the hysteresis 0.5 (the highest is 0.500)" in why
    assert "lower --alarm-hysteresis" in why
    assert no_usable_threshold(np.array([0.1, 0.6]), PROBABILITY, cfg) is None
    assert no_usable_threshold(np.array([60.0, 70.0]), READING, cfg) is None
    assert "no score on the validation split" in no_usable_threshold(np.array([np.nan]), PROBABILITY, cfg)


def test_the_alarm_table_says_why_a_row_has_no_usable_threshold():
    from hypo.evaluate.alarms.metrics import AlarmConfig
    from hypo.evaluate.alarms.result import AlarmResult, alarm_table_cells, format_alarm_table

    why = "every validation p(hypotension) is at or below the hysteresis 0.9 (the highest is 0.700), ..."
    cases = {"listed": 1, "chosen": 1, "scored": 1, "failed": 0, "failures": [], "hours": 1.0, "subjects": 1,
             "episodes": {"scored": 1, "induction": 0, "under way": 0}}
    row = {"role": "model", "kind": "probability", "description": "", "threshold_unit": "p(hypotension)",
           "operating_points": {}, "curve": {}}
    result = AlarmResult.model_validate({
        "created": "now", "data": "d", "dataset_fingerprint": "f", "split": "test", "thresholds_from": "val",
        "label_source": "cuff", "events": "e", "policy": "p", "scoring": "s", "config": AlarmConfig(hysteresis=0.9),
        "simulated": True, "cases": cases, "validation_cases": None, "n_boot": 0, "seed": 0, "timings": {},
        "rows": [{**row, "name": "model", "thresholds": {op: {"threshold": 1.0, "met": False, "unusable": why}
                                                         for op in ("fa_target", "sens_target")}},
                 {**row, "name": "other", "thresholds": {"fa_target": {"threshold": 0.3, "met": True}}}]})
    text = format_alarm_table(result)
    assert f"no usable threshold for model: {why}" in text and "no usable threshold for other" not in text
    from hypo.evaluate.alarms.result import _threshold_text

    assert _threshold_text(result.rows[0], "fa_target") == "p>=1.000 (none usable: below)"
    assert alarm_table_cells(result)[0][0] == "model"


def test_a_split_nothing_was_replayed_from_says_why(setup):
    from hypo.data.dataset import read_manifest
    from hypo.errors import HypoError
    from hypo.evaluate.alarms.evaluation import require_replayed
    from hypo.evaluate.alarms.replay import Recordings, ReplayedSplit

    data = setup["b_no_test"]
    rec = Recordings(data, read_manifest(data), None)
    empty = ReplayedSplit("test", [], {}, {}, [], n_listed=0, n_chosen=0, timings={})
    with pytest.raises(HypoError) as exc:
        require_replayed(empty, rec)
    assert str(exc.value) == (f"{data}: the test split is empty because the dataset was built with --split 0.5 0.5 0 "
                              "(a test share of 0); rebuild it with a test share above 0")
    failed = ReplayedSplit("val", [], {}, {}, [{"caseid": "3", "reason": "missing file", "detail": "gone"},
                                               {"caseid": "4", "reason": "missing file", "detail": "gone"}],
                           n_listed=2, n_chosen=2, timings={})
    with pytest.raises(HypoError, match=r"no val case could be replayed: all 2 failed \(missing file 2; case 3: gone"):
        require_replayed(failed, rec)
