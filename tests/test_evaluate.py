"""hypo evaluate: a frozen model on another site's windows, recalibration there, and the recalibrated export."""

import json
import math
import os

import numpy as np
import pytest
import torch

from hypo.cli.evaluate import main
from hypo.config import LabelConfig, WindowConfig
from hypo.data.dataset import read_manifest
from hypo.data.signals import HYPOTENSION
from hypo.data.sources.demo import is_tiva, simulate_case
from hypo.data.sources.demo_files import write_demo_vital_files
from hypo.evaluate.calibration import class_calibration, decision_curve
from hypo.evaluate.external.request import EvaluateRequest
from hypo.evaluate.external.result import ExternalResult
from hypo.evaluate.external.validation import calibration_subjects, default_sections, evaluate_external, pooled_windows
from hypo.infer.export import load_exported
from hypo.infer.model import ExportedModel
from hypo.infer.predict import predict_file
from hypo.learn.metrics import evaluate_scores
from hypo.learn.recalibration import apply_recalibration, fit_recalibration

from demo_experiment import build_demo_dataset, exported_demo_model

BOOT = ["--bootstrap", "40"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A model trained on simulated site A (cases 1-40) and exported; site B's windows (cases 1-60)."""
    root = tmp_path_factory.mktemp("evaluate")
    a = exported_demo_model(root, epochs=2)
    build_demo_dataset(str(root / "b"), n_cases=60, site="b")
    return {"root": root, "exp": a["exp"], "model": a["model"], "a": a["data"], "b": str(root / "b")}


def run(argv, capsys=None):
    res = main(argv)
    if capsys is not None:
        return res, capsys.readouterr().out
    return res


def test_an_export_is_scored_on_every_window_of_the_other_site(setup, tmp_path, capsys):
    res, out = run([setup["model"], "--data", setup["b"], "--out", str(tmp_path), *BOOT], capsys)
    r = res.results
    manifest = read_manifest(setup["b"])
    arrays = pooled_windows(setup["b"], manifest)
    assert r.data.n_windows == len(arrays) == sum(c.windows for c in manifest.counts.values())
    assert r.data.n_subjects == len(np.unique(arrays.subjectid))
    probs = ExportedModel.load(setup["model"]).predict_proba(arrays.x)
    y = arrays.label
    want = evaluate_scores(y, probs, warn=False)
    d = r.sections["discrimination"]["model"]
    assert math.isclose(d["mean_auroc"]["value"], want["mean_auroc"], rel_tol=1e-9)
    assert math.isclose(d["sum_auprc"]["value"], want["sum_auprc"], rel_tol=1e-9)
    assert d["mean_auroc"]["lo"] <= d["mean_auroc"]["value"] <= d["mean_auroc"]["hi"]
    assert d["n_subjects"] == r.data.n_subjects and d["n_boot"] == 40
    assert math.isfinite(d["reference"]["mean_auroc"]["value"])  # the last-reading baseline on the same windows
    cal = r.sections["calibration"]["model"]
    want_cal = class_calibration(y, probs)
    for name in ("hypotension", "hypertension"):
        for key in ("ece", "brier", "slope", "intercept"):
            assert math.isclose(cal[name][key], want_cal[name][key], rel_tol=1e-9), (name, key)
    assert r.sections["decision_curve"]["model"] == decision_curve(y == HYPOTENSION, probs[:, HYPOTENSION])
    for name in ("evaluation.json", "evaluation.md", "calibration.png", "decision_curve.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    on_disk = json.loads((tmp_path / "evaluation.json").read_text())
    assert on_disk["format"] == "hypo-external/1" and on_disk["data"]["simulated"] is True
    assert ExternalResult.read(str(tmp_path / "evaluation.json")).data == r.data  # read back as the record
    assert "all splits pooled; no retraining" in out and "[simulated data]" in out and "mean AUROC" in out


def test_a_run_is_evaluated_and_recalibrated_as_its_export(setup, tmp_path):
    argv = ["--data", setup["b"], "--recalibrate", "temperature", *BOOT]
    a = run([setup["model"], *argv, "--out", str(tmp_path / "x"), "--write-export", str(tmp_path / "a.pt")])
    b = run([setup["exp"], *argv, "--out", str(tmp_path / "y"), "--write-export", str(tmp_path / "b.pt")])
    ra, rb = a.results, b.results
    assert rb.model.origin == "run" and ra.model.origin == "export"
    for stage in ("before", "after"):
        da, db = ra.sections["discrimination"][stage], rb.sections["discrimination"][stage]
        for key in ("mean_auroc", "sum_auprc"):
            assert math.isclose(da[key]["value"], db[key]["value"], abs_tol=1e-9)
    x = torch.as_tensor(pooled_windows(setup["b"], read_manifest(setup["b"])).x[:200])
    with torch.no_grad():
        pa, pb = load_exported(str(tmp_path / "a.pt"))[0](x), load_exported(str(tmp_path / "b.pt"))[0](x)
    np.testing.assert_allclose(pa.numpy(), pb.numpy(), atol=1e-6)


def test_recalibration_is_fitted_on_a_share_of_subjects_and_reported_on_the_others(setup, tmp_path, capsys):
    res, out = run([setup["model"], "--data", setup["b"], "--out", str(tmp_path), "--recalibrate", "temperature",
                    "--calibration-share", "0.4", "--seed", "3", *BOOT], capsys)
    r = res.results
    arrays = pooled_windows(setup["b"], read_manifest(setup["b"]))
    cal = calibration_subjects(arrays.subjectid, 0.4, 3)
    assert not set(arrays.subjectid[cal]) & set(arrays.subjectid[~cal])  # split by subject
    rec = r.recalibration
    assert rec.fitted_on.n_windows == cal.sum() and rec.reported_on["n_windows"] == (~cal).sum()
    assert rec.fitted_on.n_subjects == len(set(arrays.subjectid[cal]))
    assert set(r.evaluation_sets) == {"before", "after"}
    probs = ExportedModel.load(setup["model"]).predict_proba(arrays.x)
    calib = fit_recalibration("temperature", probs[cal], arrays.label[cal])
    assert math.isclose(rec.parameters["temperature"], calib.describe()["temperature"], rel_tol=1e-6)
    y = arrays.label[~cal]
    after = apply_recalibration(calib, probs[~cal])
    for stage, p in (("before", probs[~cal]), ("after", after)):
        got = r.sections["calibration"][stage]["hypotension"]
        assert math.isclose(got["ece"], class_calibration(y, p)["hypotension"]["ece"], rel_tol=1e-6), stage
        assert math.isclose(r.sections["discrimination"][stage]["mean_auroc"]["value"],
                            evaluate_scores(y, p, warn=False)["mean_auroc"], rel_tol=1e-9), stage
    assert "recalibration temperature: fitted on" in out and "before" in out and "after" in out


@pytest.mark.parametrize("method", ["temperature", "vector", "isotonic"])
def test_the_recalibrated_export_is_what_hypo_predict_runs(setup, tmp_path, method):
    new = str(tmp_path / f"model-{method}.pt")
    res = run([setup["model"], "--data", setup["b"], "--out", str(tmp_path / "ev"), "--recalibrate", method,
               "--write-export", new, *BOOT])
    assert res.export["path"] == new and os.path.exists(new[:-3] + ".json")
    module, sidecar = load_exported(new)
    rec = sidecar.recalibration
    assert rec.method == method and rec.parameters["method"] == method
    assert rec.fitted_on.dataset_fingerprint == read_manifest(setup["b"]).fingerprint
    assert sidecar.thresholds.chosen_on.startswith("calibration subjects of")
    assert sidecar.thresholds.before_recalibration["chosen_on"] == "validation"
    assert method in sidecar.output.meaning
    # Along a site-B recording (with its track map), the new model's probabilities are the old ones mapped.
    vital = tmp_path / "vital"
    cid = next(i for i in range(61, 200) if not is_tiva(i, 0, "b") and simulate_case(i, 0, site="b").duration_s > 3600)
    write_demo_vital_files(str(vital), 1, first=cid, site="b")
    kw = {"track_map": str(vital / "track_map.json"), "plot": False, "log": lambda s: None}
    old = predict_file(str(vital / f"{cid}.vital"), setup["model"], out_dir=str(tmp_path / "p0"), **kw)["prediction"]
    got = predict_file(str(vital / f"{cid}.vital"), new, out_dir=str(tmp_path / "p1"), **kw)["prediction"]
    ok = np.isfinite(old.probs).all(axis=1)
    assert ok.sum() > 10 and np.array_equal(ok, np.isfinite(got.probs).all(axis=1))
    calib = fit_recalibration(method, *_calibration_set(setup))
    np.testing.assert_allclose(got.probs[ok], apply_recalibration(calib, old.probs[ok]), atol=1e-5)
    np.testing.assert_allclose(got.probs[ok].sum(axis=1), 1.0, atol=1e-5)
    x = torch.zeros((2, 60, 7))
    x[1] = float("nan")
    with torch.no_grad():
        out = module(x).numpy()
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()  # NaN in, NaN out, as before


def test_a_recalibrated_export_is_not_scored_on_its_own_calibration_data(setup, tmp_path, capsys):
    new = str(tmp_path / "model-b.pt")
    run([setup["model"], "--data", setup["b"], "--out", str(tmp_path / "ev"), "--recalibrate", "temperature",
         "--write-export", new, *BOOT])
    capsys.readouterr()
    err = error([new, "--data", setup["b"], "--out", str(tmp_path / "ev2")], capsys)
    assert "the model was recalibrated on" in err and "evaluate the model it came from with --recalibrate" in err


def _calibration_set(setup):
    arrays = pooled_windows(setup["b"], read_manifest(setup["b"]))
    cal = calibration_subjects(arrays.subjectid, 0.3, 0)
    return ExportedModel.load(setup["model"]).predict_proba(arrays.x[cal]), arrays.label[cal]


def test_sections_are_a_list_further_ones_slot_into(setup, tmp_path):
    seen = []

    def extra(es):
        seen.append((es.stage, es.thresholds["hypotension"], len(es.arrays)))
        return {"windows": len(es.arrays), "alarms": int((es.probs[:, 1] >= es.thresholds["hypotension"]).sum())}

    res = evaluate_external(EvaluateRequest(setup["model"], setup["b"], recalibrate="vector", out=str(tmp_path)),
                            log=lambda s: None, sections=[*default_sections(n_boot=20), ("extra", extra)])
    r = res.results
    assert set(r.sections["extra"]) == {"before", "after"}
    (s0, t0, n0), (s1, t1, n1) = seen
    assert (s0, s1) == ("before", "after") and n0 == n1 == r.recalibration.reported_on["n_windows"]
    assert t1 == r.recalibration.thresholds["after"]["hypotension"] != t0  # fixed again after the map


@pytest.fixture(scope="module")
def other_builds(setup):
    root = setup["root"]
    build_demo_dataset(str(root / "a12"), n_cases=12)  # site A again: the same subjects as the training data
    build_demo_dataset(str(root / "b60"), n_cases=14, site="b", cfg=WindowConfig(label=LabelConfig(hypo_map=60.0)))
    return {"a12": str(root / "a12"), "b60": str(root / "b60")}


def error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("hypo evaluate: error: "), err
    return err


@pytest.mark.parametrize("case", [
    ("missing model", ["{root}/nope.pt", "--data", "{b}"], "no model file or experiment folder at"),
    ("not a dataset", ["{model}", "--data", "{root}"], "no window dataset at"),
    ("share without a map", ["{model}", "--data", "{b}", "--calibration-share", "0.2"],
     "--calibration-share sets the subjects a recalibration is fitted on; it needs --recalibrate"),
    ("export without a map", ["{model}", "--data", "{b}", "--write-export", "{root}/x.pt"],
     "--write-export writes a recalibrated model; it needs --recalibrate"),
    ("share out of range", ["{model}", "--data", "{b}", "--recalibrate", "vector", "--calibration-share", "1.5"],
     "--calibration-share must be in (0, 1), got 1.5"),
    ("share too small", ["{model}", "--data", "{b}", "--recalibrate", "vector", "--calibration-share", "0.001"],
     "in the calibration share and"),
    ("trial of a file", ["{model}", "--data", "{b}", "--trial", "fake_00000"], "--trial chooses a trial of an"),
    ("unknown trial", ["{exp}", "--data", "{b}", "--trial", "nope"], "no trial 'nope'"),
    ("bootstrap", ["{model}", "--data", "{b}", "--bootstrap", "0"], "--bootstrap must be >= 1"),
    ("unknown map", ["{model}", "--data", "{b}", "--recalibrate", "platt"], "argument --recalibrate: invalid choice"),
    ("training data", ["{model}", "--data", "{a}"], "is the dataset the model was trained on"),
    ("same cohort", ["{model}", "--data", "{a12}"], "draws its subjects from the cohort the model was trained on"),
    ("other labels", ["{model}", "--data", "{b60}"], "rebuild it with --hypo-map 65"),
], ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_one_line_errors(setup, other_builds, tmp_path, capsys, case):
    _, argv, needle = case
    paths = {**setup, **other_builds, "root": str(setup["root"])}
    argv = [a.format(**paths) for a in argv] + ["--out", str(tmp_path / "ev")]
    err = error(argv, capsys)
    assert needle in err, err


def test_an_unwritable_export_path_is_refused_before_any_work(setup, tmp_path, capsys):
    err = error([setup["model"], "--data", setup["b"], "--recalibrate", "temperature", "--write-export",
                 str(tmp_path), "--out", str(tmp_path / "ev")], capsys)
    assert "is a folder" in err and not (tmp_path / "ev").exists()


def test_alarm_thresholds_from_a_folder_without_a_dataset_is_refused_before_any_work(setup, tmp_path, capsys):
    err = error([setup["model"], "--data", setup["b"], "--alarms", "--alarm-thresholds-from", str(tmp_path / "none"),
                 "--out", str(tmp_path / "ev")], capsys)
    assert err.startswith("hypo evaluate: error: --alarm-thresholds-from: no window dataset at"), err
    assert not (tmp_path / "ev").exists()


@pytest.mark.slow  # end to end; CI runs it (pytest -m slow)
def test_alarms_score_the_frozen_model_on_the_other_sites_recordings(setup, tmp_path, capsys):
    """--alarms: OTHER's test recordings replayed; thresholds fixed on the development data's validation split."""
    out = tmp_path / "ev"
    res, text = run([setup["model"], "--data", setup["b"], "--out", str(out), *BOOT, "--alarms",
                     "--alarm-stride", "60"], capsys)
    a = res.alarms
    assert a.thresholds_fixed_on.startswith("the development dataset's validation split")
    assert setup["a"] in a.thresholds_fixed_on
    assert a.cases.scored >= 1 and [r.name for r in a.rows][0] == "model"
    assert "as an alarm on" in text and (out / "alarms.json").exists()
    # thresholds fixed on OTHER's own validation split are reported as the local threshold they are
    res = run([setup["model"], "--data", setup["b"], "--out", str(tmp_path / "ev2"), *BOOT, "--alarms",
               "--alarm-stride", "60", "--alarm-thresholds-from", "other"])
    assert res.alarms.thresholds_fixed_on.startswith("OTHER's own validation split")
