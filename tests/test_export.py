"""hypo.export: TorchScript with normalisation inside, verified against the eager model, and its sidecar."""

import json
import os

import numpy as np
import pytest
import torch

from hypo.checkpoint import load_model
from hypo.config import fingerprint
from hypo.dataset import load_split, read_manifest
from hypo.errors import HypoError
from hypo.export import EXTRA_FILE, load_exported, main
from hypo.leaderboard import load_trials
from hypo.models import predict_proba
from hypo.operating_point import alarm_thresholds
from hypo.report import choose_trial, make_report, sha256_file
from hypo.signals import SIGNALS

from demo_experiment import build_demo_dataset, fake_search


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = str(root / "demo")
    build_demo_dataset(data, n_cases=40)
    return fake_search(data, str(root / "exp"))


@pytest.fixture(scope="module")
def exported(exp, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("model") / "model.pt")
    sidecar = main([exp, "--out", out])
    return out, sidecar


def test_torchscript_runs_without_hypo_and_matches_the_eager_model(exp, exported):
    out, sidecar = exported
    chosen = choose_trial(exp)
    model, cfg = load_model(chosen.checkpoint)
    test = load_split(chosen.data_dir, "test")
    scripted = torch.jit.load(out)  # plain torch: normalisation and softmax are inside
    with torch.no_grad():
        got = scripted(torch.from_numpy(test.x)).numpy()
    want = predict_proba(model, test.x)
    assert got.shape == (len(test), 3)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():  # batch size is free: one window, and more than the trace saw
        np.testing.assert_allclose(scripted(torch.from_numpy(test.x[:1])).numpy(), want[:1], atol=1e-6)
    assert sidecar["verification"]["max_abs_difference"] <= 1e-5
    assert sidecar["model"]["name"] == cfg.model.name == chosen.row["model"]


def test_sidecar_says_how_to_feed_the_model_and_what_produced_it(exp, exported):
    out, sidecar = exported
    on_disk = json.load(open(out[:-3] + ".json"))
    assert on_disk == sidecar
    chosen = choose_trial(exp)
    manifest = read_manifest(chosen.data_dir)
    model, cfg = load_model(chosen.checkpoint)
    assert sidecar["signals"] == list(SIGNALS) and sidecar["units"]["nibp_mbp"] == "mmHg"
    assert sidecar["window_s"] == 60 and sidecar["horizon_s"] == 300
    assert sidecar["fill"] == manifest["config"]["fill"] and sidecar["min_case_s"] == manifest["config"]["min_case_s"]
    assert sidecar["window_config_from"] == "manifest"
    val = load_split(chosen.data_dir, "val")
    want = alarm_thresholds(val.label, predict_proba(model, val.x))
    th = sidecar["thresholds"]
    assert np.isclose(th["p_hypotension"], want["hypotension"]) and np.isclose(th["p_hypertension"],
                                                                               want["hypertension"])
    assert (th["hypo_map"], th["hyper_sbp"], th["chosen_on"]) == (65.0, 160.0, "validation")
    fp = sidecar["fingerprints"]
    assert fp["dataset"] == manifest["fingerprint"] == fp["checkpoint_dataset"]
    assert fp["config"] == fingerprint(cfg)
    assert fp["checkpoint_sha256"] == sha256_file(os.path.join(chosen.checkpoint, "checkpoint.pt"))
    assert sidecar["model_sha256"] == sha256_file(out)
    assert sidecar["trial"]["id"] == chosen.trial_id and sidecar["trial"]["epoch"] == chosen.epoch
    assert sidecar["source"] == {"name": "demo", "simulated": True}
    assert 0 < sidecar["metrics"]["val"]["mean_auroc"] <= 1
    assert sidecar["metrics"]["test"] is None  # no report yet: export never touches the test split itself


def test_the_model_file_alone_carries_its_sidecar(exported, tmp_path):
    out, sidecar = exported
    lone = tmp_path / "lone.pt"
    lone.write_bytes(open(out, "rb").read())
    module, side = load_exported(str(lone))
    assert side == {k: v for k, v in sidecar.items() if k != "model_sha256"}
    extra = {EXTRA_FILE: ""}
    torch.jit.load(str(lone), _extra_files=extra)
    assert json.loads(extra[EXTRA_FILE])["thresholds"] == sidecar["thresholds"]


def test_other_trial_and_test_metrics_from_its_report(exp, tmp_path):
    other = next(t.trial_id for t in load_trials(exp) if t.trial_id != choose_trial(exp).trial_id)
    make_report(exp, trial=other, n_boot=20, log=lambda s: None)  # writes EXP/report/report.json
    out = str(tmp_path / "other.pt")
    side = main([exp, "--out", out, "--trial", other])
    assert side["trial"]["id"] == other
    rep = json.load(open(os.path.join(exp, "report", "report.json")))
    assert side["metrics"]["test"]["mean_auroc"] == rep["bootstrap"]["mean_auroc"]
    assert side["metrics"]["test"]["n_windows"] == rep["n_windows"]


def test_one_line_errors(exp, tmp_path, capsys):
    for argv, needle in (([str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt")], "no experiment folder"),
                         ([exp, "--out", str(tmp_path / "m.pt"), "--trial", "nope"], "no trial 'nope'")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("hypo.export: error:") and needle in err and "\n" not in err
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    with pytest.raises(HypoError, match="not a TorchScript model"):
        load_exported(str(bad))
    with pytest.raises(HypoError, match="no model at"):
        load_exported(str(tmp_path / "missing.pt"))
