"""Issue 14's halves together: hypo evaluate on site-B windows that lack MAC (TIVA cases kept with
--allow-missing), a channel-dropout model scoring them, a model without dropout leaving them out and counting them,
and the recalibrated export of a channel-dropout model predicting along a site-B TIVA recording."""

import json

import numpy as np
import pytest

from hypo.cli.evaluate import main
from hypo.cli.predict import main as predict_main
from hypo.config import WindowConfig
from hypo.data.dataset import read_manifest
from hypo.data.signals import MAC
from hypo.data.sources.demo import is_tiva, simulate_case
from hypo.data.sources.demo_files import write_demo_vital_files
from hypo.evaluate.external.validation import LEFT_OUT, SCORED, calibration_subjects, check_compatible, pooled_windows
from hypo.infer.export import load_exported
from hypo.infer.model import ExportedModel
from hypo.infer.predict import predict_file
from hypo.learn.metrics import evaluate_scores
from hypo.learn.recalibration import apply_recalibration, fit_recalibration

from demo_experiment import build_demo_dataset, plain_and_dropout_exports

BOOT = ["--bootstrap", "30"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Site A (cases 1-40): one model without and one with channel dropout; site B (cases 1-60) with TIVA kept."""
    root = tmp_path_factory.mktemp("evaluate-missing")
    build_demo_dataset(str(root / "a"), n_cases=40)
    out = {"root": root, **plain_and_dropout_exports(str(root / "a"), str(root))}
    build_demo_dataset(str(root / "b"), n_cases=60, site="b", cfg=WindowConfig(allow_missing=("mac",)))
    out["b"] = str(root / "b")
    arrays = pooled_windows(out["b"], read_manifest(out["b"]))
    out["no_mac"] = ~np.isfinite(arrays.x[:, :, MAC]).all(axis=1)
    assert 0 < out["no_mac"].sum() < len(arrays)  # site B keeps TIVA cases: some windows lack MAC
    return out


def test_a_channel_dropout_model_scores_the_windows_without_mac(setup, tmp_path, capsys):
    res = main([setup["dropout"], "--data", setup["b"], "--out", str(tmp_path), *BOOT])
    out = capsys.readouterr().out
    r = res.results
    arrays = pooled_windows(setup["b"], read_manifest(setup["b"]))
    assert r.data.n_windows == len(arrays) and r.data.n_windows_left_out == 0
    mac = r.data.missing_groups["mac"]
    assert mac.windows == setup["no_mac"].sum() and mac.treatment == SCORED
    probs = ExportedModel.load(setup["dropout"]).predict_proba(arrays.x)
    assert np.isfinite(probs).all()
    want = evaluate_scores(arrays.label, probs, warn=False)["mean_auroc"]
    assert np.isclose(r.sections["discrimination"]["model"]["mean_auroc"]["value"], want, rtol=1e-9)
    assert "lack MAC; the model takes it as missing" in out and "left out" not in out


def test_a_model_without_dropout_leaves_them_out_and_counts_them(setup, tmp_path, capsys):
    res = main([setup["plain"], "--data", setup["b"], "--out", str(tmp_path), *BOOT])
    out = capsys.readouterr().out
    r = res.results
    arrays = pooled_windows(setup["b"], read_manifest(setup["b"]))
    n_out = int(setup["no_mac"].sum())
    assert r.data.n_windows_left_out == n_out and r.data.n_windows == len(arrays) - n_out
    mac = r.data.missing_groups["mac"]
    assert mac.treatment == LEFT_OUT and mac.cases == len(np.unique(arrays.caseid[setup["no_mac"]]))
    keep = ~setup["no_mac"]
    want = evaluate_scores(arrays.label[keep], ExportedModel.load(setup["plain"]).predict_proba(arrays.x[keep]),
                           warn=False)["mean_auroc"]
    assert np.isclose(r.sections["discrimination"]["model"]["mean_auroc"]["value"], want, rtol=1e-9)
    assert f"{n_out:,} windows left out" in out and "which the model cannot take" in out
    assert "which the model cannot take" in (tmp_path / "evaluation.md").read_text()
    saved = json.loads((tmp_path / "evaluation.json").read_text())["data"]["missing_groups"]["mac"]
    assert saved["windows"] == n_out and "mask" not in saved


def test_the_recalibrated_dropout_export_predicts_a_site_b_tiva_recording(setup, tmp_path, capsys):
    new = str(tmp_path / "model-b.pt")
    res = main([setup["dropout"], "--data", setup["b"], "--out", str(tmp_path / "ev"), "--recalibrate", "vector",
                "--write-export", new, *BOOT])
    assert res.results.data.n_windows_left_out == 0
    module, sidecar = load_exported(new)
    assert "mac" in sidecar.tolerates_missing and sidecar.recalibration.method == "vector"
    cid = next(i for i in range(61, 400) if is_tiva(i, 0, "b") and simulate_case(i, 0, site="b").duration_s > 3600)
    vital = tmp_path / "vital"
    write_demo_vital_files(str(vital), 1, first=cid, site="b")
    capsys.readouterr()
    kw = {"track_map": str(vital / "track_map.json"), "plot": False}
    got = predict_file(str(vital / f"{cid}.vital"), new, out_dir=str(tmp_path / "p1"), **kw)["prediction"]
    assert "the recording has no mac" in capsys.readouterr().out and got.absent == ("mac",)
    ok = np.isfinite(got.probs).all(axis=1)
    assert ok.sum() > 10
    base = predict_file(str(vital / f"{cid}.vital"), setup["dropout"], out_dir=str(tmp_path / "p0"), **kw)
    old = base["prediction"].probs
    arrays = pooled_windows(setup["b"], read_manifest(setup["b"]))
    cal = calibration_subjects(arrays.subjectid, 0.3, 0)  # the map as the evaluation fitted it
    calib = fit_recalibration("vector", ExportedModel.load(setup["dropout"]).predict_proba(arrays.x[cal]),
                              arrays.label[cal])
    np.testing.assert_allclose(got.probs[ok], apply_recalibration(calib, old[ok]), atol=1e-5)
    with pytest.raises(SystemExit):  # the model without dropout still refuses the recording, in one line
        predict_main([str(vital / f"{cid}.vital"), "--model", setup["plain"], "--track-map",
                      str(vital / "track_map.json"), "--out", str(tmp_path / "p2"), "--no-plot"])


def test_another_cuff_merge_window_is_noted(setup):
    _, sidecar = load_exported(setup["dropout"])
    manifest = read_manifest(setup["b"])
    assert not [n for n in check_compatible(sidecar, manifest, "b") if "--nibp-merge-s" in n]
    notes = check_compatible(sidecar, manifest.model_copy(update={"nibp_merge_s": 0}), "b")
    assert any("up to 0 s apart" in n and f"up to {sidecar.nibp_merge_s} s" in n for n in notes), notes
