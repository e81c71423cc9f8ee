"""hypo.infer.export: TorchScript with normalisation inside, verified against the eager model, and its sidecar."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from hypo.cli.export import main
from hypo.config import fingerprint, to_dict
from hypo.data.dataset import load_split, read_manifest
from hypo.data.signals import SIGNALS
from hypo.errors import HypoError
from hypo.evaluate.testsplit.report import ReportRequest, choose_trial, make_report, sha256_file
from hypo.infer.export import EXTRA_FILE, dataset_window_config, load_exported, max_difference, trace_model
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import SCHEMA_VERSION
from hypo.learn.checkpoint import load_model
from hypo.learn.models import MODELS, ModelConfig, build_model, predict_proba
from hypo.learn.operating_point import alarm_thresholds
from hypo.search.leaderboard import load_trials

from demo_experiment import build_demo_dataset, fake_search, write_legacy_export
from synthetic_windows import manifest_record


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


def test_torchscript_runs_without_hypo_and_matches_the_eager_model(exp, exported, tmp_path):
    out, sidecar = exported
    chosen = choose_trial(exp)
    model, cfg = load_model(chosen.checkpoint)
    test = load_split(chosen.data_dir, "test")
    # In a fresh process where hypo cannot be imported: plain torch, normalisation and softmax inside.
    np.save(tmp_path / "x.npy", test.x)
    code = ("import sys; sys.modules['hypo'] = None; import numpy as np, torch; m = torch.jit.load(sys.argv[1]); "
            "np.save(sys.argv[3], m(torch.from_numpy(np.load(sys.argv[2]))).detach().numpy())")
    subprocess.run([sys.executable, "-c", code, out, str(tmp_path / "x.npy"), str(tmp_path / "p.npy")], check=True,
                   cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    got = np.load(tmp_path / "p.npy")
    want = predict_proba(model, test.x)
    scripted = torch.jit.load(out)
    assert got.shape == (len(test), 3)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():  # batch size is free: one window, and more than the trace saw
        np.testing.assert_allclose(scripted(torch.from_numpy(test.x[:1])).numpy(), want[:1], atol=1e-6)
    assert sidecar.verification.max_abs_difference <= 1e-5
    assert sidecar.model.name == cfg.model.name == chosen.row["model"]


def test_sidecar_says_how_to_feed_the_model_and_what_produced_it(exp, exported):
    out, sidecar = exported
    on_disk = json.load(open(out[:-3] + ".json"))
    assert on_disk == sidecar.to_dict()
    chosen = choose_trial(exp)
    manifest = read_manifest(chosen.data_dir)
    model, cfg = load_model(chosen.checkpoint)
    assert sidecar.signals == list(SIGNALS) and sidecar.units["nibp_mbp"] == "mmHg"
    assert sidecar.window_s == 60 and sidecar.horizon_s == 300
    assert (sidecar.to_dict()["fill"] == to_dict(manifest.config.fill)
            and sidecar.min_case_s == manifest.config.min_case_s)
    val = load_split(chosen.data_dir, "val")
    want = alarm_thresholds(val.label, predict_proba(model, val.x))
    th = sidecar.thresholds
    assert np.isclose(th.p_hypotension, want["hypotension"]) and np.isclose(th.p_hypertension,
                                                                            want["hypertension"])
    assert (th.hypo_map, th.hyper_sbp, th.chosen_on) == (65.0, 160.0, "validation")
    fp = sidecar.fingerprints
    assert fp.dataset == manifest.fingerprint == fp.checkpoint_dataset
    assert fp.config == fingerprint(cfg)
    assert fp.checkpoint_sha256 == sha256_file(os.path.join(chosen.checkpoint, "checkpoint.pt"))
    assert sidecar.model_sha256 == sha256_file(out)
    assert sidecar.trial.id == chosen.trial_id and sidecar.trial.epoch == chosen.epoch
    assert sidecar.source.to_dict() == {"name": "demo", "simulated": True,
                                        "cohort": {"source": "demo", "simulator": "demo-sim-1", "seed": 0}}
    assert 0 < sidecar.metrics.val["mean_auroc"] <= 1
    assert sidecar.metrics.test is None  # no report yet: export never touches the test split itself


def test_the_model_file_alone_carries_its_sidecar(exported, tmp_path):
    out, sidecar = exported
    lone = tmp_path / "lone.pt"
    lone.write_bytes(open(out, "rb").read())
    module, side = load_exported(str(lone))
    assert side == sidecar.model_copy(update={"model_sha256": None})
    extra = {EXTRA_FILE: ""}
    torch.jit.load(str(lone), _extra_files=extra)
    assert json.loads(extra[EXTRA_FILE])["thresholds"] == sidecar.to_dict()["thresholds"]


def test_other_trial_and_test_metrics_from_its_report(exp, tmp_path):
    other = next(t.trial_id for t in load_trials(exp) if t.trial_id != choose_trial(exp).trial_id)
    make_report(ReportRequest(exp, trial=other, n_boot=20), log=lambda s: None)  # writes EXP/report/report.json
    out = str(tmp_path / "other.pt")
    side = main([exp, "--out", out, "--trial", other])
    assert side.trial.id == other
    rep = json.load(open(os.path.join(exp, "report", "report.json")))
    assert side.metrics.test["mean_auroc"] == rep["bootstrap"]["mean_auroc"]
    assert side.metrics.test["n_windows"] == rep["n_windows"]


def test_one_line_errors(exp, tmp_path, capsys):
    for argv, needle in (([str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt")], "no experiment folder"),
                         ([exp, "--out", str(tmp_path / "m.pt"), "--trial", "nope"], "no trial 'nope'")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("hypo export: error:") and needle in err and "\n" not in err
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    with pytest.raises(HypoError, match="not a TorchScript model"):
        load_exported(str(bad))
    with pytest.raises(HypoError, match="no model at"):
        load_exported(str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("name", MODELS)
def test_every_model_type_exports_behind_an_input_guard(name):
    net = build_model(ModelConfig(name, 8), [0.0, 120, 85, 70, 50, 1, 45], [0.4, 15, 10, 9, 14, 0.2, 8])
    x = torch.randn(8, 60, 7)
    scripted = trace_model(net, x)
    assert max_difference(scripted, net, np.random.default_rng(0).normal(size=(40, 60, 7)).astype(np.float32)) < 1e-6
    out = scripted(x.double())  # any float dtype in, float32 probabilities out, no autograd graph
    assert out.dtype == torch.float32 and not out.requires_grad
    for bad in (torch.randn(2, 59, 7), torch.randn(2, 60, 6), torch.randn(60, 7)):
        with pytest.raises(torch.jit.Error, match="expected windows"):
            scripted(bad)


def test_a_sidecar_beside_that_is_not_the_models_is_rewritten_from_the_embedded_copy(exp, exported, tmp_path):
    out, sidecar = exported
    model = tmp_path / "model.pt"
    model.write_bytes(open(out, "rb").read())
    side = tmp_path / "model.json"
    fresh = open(out.replace(".pt", ".json")).read()  # what the export wrote beside it
    stale = dict(sidecar.to_dict(), thresholds=dict(sidecar.to_dict()["thresholds"], p_hypotension=0.5))
    for damaged in (json.dumps(stale), json.dumps(dict(sidecar.to_dict(), model_sha256="0" * 64)), "", "{\"form"):
        side.write_text(damaged)  # another export's, a wrong hash, emptied or cut short by a kill
        lines = []
        assert load_exported(str(model), log=lines.append)[1].thresholds == sidecar.thresholds  # the embedded copy
        assert side.read_text() == fresh and len(lines) == 1 and "rewritten from the sidecar embedded in" in lines[0]
    lines = []
    load_exported(str(model), log=lines.append)
    assert lines == [] and side.read_text() == fresh  # a matching sidecar is left alone
    side.unlink()
    load_exported(str(model), log=lines.append)
    assert not side.exists() and lines == []  # none is left none: the model alone is a whole export


def test_out_is_checked_before_any_work_and_leaves_nothing_behind(exp, tmp_path, capsys):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(SystemExit) as exc:
        main([exp, "--out", str(folder)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "is a folder" in err and "\n" not in err
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob("*.tmp-*"))


def test_a_dataset_without_its_window_config_cannot_be_exported():
    with pytest.raises(HypoError, match="records no window config"):
        dataset_window_config(manifest_record(window_s=60, label={"horizon_s": 300}))  # no config recorded


# ------------------------------------------------------------------------------- sidecar schema versions


def schema_1(sidecar) -> dict:
    """A sidecar in the dict form exports had before schema_version (and before the fields added since)."""
    old = {k: v for k, v in sidecar.to_dict().items()
           if k not in ("schema_version", "tolerates_missing", "signals_read", "nibp_merge_s", "model_sha256")}
    old["input"] = {k: v for k, v in old["input"].items() if k != "missing_values"}
    old["trial"] = {k: v for k, v in old["trial"].items() if k != "channel_dropout"}
    old["metrics"] = {k: v for k, v in old["metrics"].items() if k != "val_baselines"}
    old["source"] = {k: v for k, v in old["source"].items() if k != "cohort"}
    return {**old, "window_config_from": "manifest config"}  # a key the first exports wrote


def test_a_legacy_export_is_migrated_and_predicts_the_same(exported, tmp_path):
    out, sidecar = exported
    module, _ = load_exported(out)
    legacy, _ = write_legacy_export(module, schema_1(sidecar), str(tmp_path / "legacy" / "model.pt"))
    model = ExportedModel.load(legacy)
    s = model.sidecar
    assert s.schema_version == SCHEMA_VERSION == sidecar.schema_version == 3  # 3: the alarm policy with the model
    assert s.tolerates_missing == [] and "tolerates_missing" not in s.model_fields_set  # what those models did
    assert s.alarm_policy is None and sidecar.alarm_policy is not None  # no policy was validated with those
    assert s.nibp_merge_s == 3 and s.input.missing_values is None and s.trial.channel_dropout is None
    assert (s.thresholds, s.label, s.fill, s.window_s) == (sidecar.thresholds, sidecar.label, sidecar.fill, 60)
    x = np.random.default_rng(0).normal(80, 20, size=(16, 60, 7)).astype(np.float32)
    np.testing.assert_array_equal(model.predict_proba(x), ExportedModel.load(out).predict_proba(x))
    assert "trial" in model.describe() and model.predict(x).shape == (16,)


@pytest.mark.parametrize("case", [
    ("too old", lambda d: {k: v for k, v in d.items() if k != "fill"},
     "field fill: missing; an export made by an older hypo (sidecar schema 1); re-export it: hypo export RUN --out "
     "model.pt"),
    ("a wrong value", lambda d: {**d, "schema_version": 2, "window_s": "sixty"}, "field window_s: "),
    ("a wrong nested value", lambda d: {**d, "schema_version": 2, "thresholds": {**d["thresholds"], "hypo_map": []}},
     "field thresholds.hypo_map: "),
    ("a newer schema", lambda d: {**d, "schema_version": 99}, "its sidecar has schema 99, this hypo reads up to 4"),
], ids=lambda c: c[0] if isinstance(c, tuple) else None)
def test_a_sidecar_that_cannot_be_read_is_refused_in_one_line(exported, tmp_path, case):
    _, how, needle = case
    out, sidecar = exported
    module, _ = load_exported(out)
    bad, _ = write_legacy_export(module, how(schema_1(sidecar)), str(tmp_path / "bad" / "model.pt"))
    with pytest.raises(HypoError) as exc:
        ExportedModel.load(bad)
    msg = str(exc.value)
    assert msg.startswith(f"{bad}: ") and needle in msg and "\n" not in msg, msg


def test_the_export_carries_the_alarm_policy_the_evaluation_validates(exp, exported):
    """The policy stored with the model is the one the alarm evaluation scores on validation, and hypo serve runs
    it (flags override it and say so)."""
    from hypo.evaluate.alarms.evaluation import AlarmOptions, choose_thresholds
    from hypo.evaluate.alarms.metrics import AlarmConfig
    from hypo.evaluate.alarms.replay import Recordings
    from hypo.evaluate.export_trial import trial_model
    from hypo.infer.alarm_policy import deployed_policy

    out, sidecar = exported
    policy = ExportedModel.load(out).sidecar.alarm_policy
    cfg = AlarmConfig()
    assert (policy.m, policy.hysteresis, policy.max_gap_s, policy.stride_s) == (cfg.m, cfg.hysteresis, cfg.max_gap_s,
                                                                                 cfg.stride_s)
    model = trial_model(exp)[0]
    chosen, _, val = choose_thresholds({"model": model}, Recordings.of(choose_trial(exp).data_dir),
                                       AlarmOptions(feature_model=None), None)
    assert policy.threshold == chosen["model"]["fa_target"]["threshold"]
    assert policy.validation["recordings"] == val.scored
    assert policy.chosen_on["split"] == "val" and policy.operating_point == "fa_target"
    run, notes = deployed_policy(sidecar)
    assert (run.threshold, run.m, run.max_gap) == (policy.threshold, 2, 3) and "validated with the model" in notes[0]
    run, notes = deployed_policy(sidecar, threshold=0.9, stride_s=30)
    assert run.threshold == 0.9 and run.max_gap == 1
    assert any("overrides the validated" in n for n in notes) and any("validated at 10 s" in n for n in notes)
