import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT

from hypo.config import from_dict, to_dict
from hypo.data.dataset import load_split, read_manifest
from hypo.errors import ConfigError, DatasetError
from hypo.learn.checkpoint import FORMAT, load_checkpoint, load_model
from hypo.learn.models import predict_proba
from hypo.learn.train import ModelConfig, TrainConfig, fit_arrays, load_data, train

from synthetic_windows import write_synthetic_dataset

torch.set_num_threads(2)
FAST = dict(loss="focal", gamma=2.0, lr=1e-2, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("planted"))
    write_synthetic_dataset(d, n_train=1200, n_val=600, n_test=0, seed=0)
    return d


@pytest.fixture(scope="module")
def unplanted(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("unplanted"))
    write_synthetic_dataset(d, n_train=1200, n_val=600, n_test=0, seed=0, planted=False)
    return d


def test_train_config_round_trip_and_validation():
    cfg = TrainConfig(model=ModelConfig("lstm", 16), loss="focal", gamma=1.5, alpha=(1.0, 2.0, 2.0), epochs=3)
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg
    d = TrainConfig()
    assert (d.lr, d.betas, d.eps, d.batch_size, d.epochs) == (1e-3, (0.9, 0.999), 1e-7, 4096, 35)
    assert d.model == ModelConfig("cnn_cnn", 42)
    for bad, msg in [
        (dict(loss="ce", gamma=2.0), "focal loss only"),
        (dict(loss="mse"), "loss must be one of"),
        (dict(lr=0.0), "lr must be"),
        (dict(batch_size=0), "batch size"),
        (dict(epochs=0), "epochs"),
        (dict(device="tpu"), "device"),
        (dict(amp="fp8"), "amp"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            TrainConfig(**bad)


@pytest.mark.parametrize("name", ["cnn_cnn", "cnn_lstm"])
def test_learns_the_planted_pattern(planted, name):
    result = train(TrainConfig(model=ModelConfig(name, 16), epochs=5, **FAST), planted)
    best = result["best"]
    assert best["val_mean_auroc"] > 0.9, [h["val_mean_auroc"] for h in result["history"]]
    assert best["val_sum_auprc"] > 1.4
    assert result["history"][-1]["loss"] < result["history"][0]["loss"]
    # the baseline is computed once, on the same validation windows, and reported beside the model
    assert 0.5 < result["baseline"]["val_mean_auroc"] < 1
    assert best["baseline_val_mean_auroc"] == result["baseline"]["val_mean_auroc"]
    assert best["val_bylast_normal_n"] + best["val_bylast_none_n"] > 0


def test_read_only_arrays_and_bf16_autocast(planted):
    # Ray's object store hands trials read-only arrays; bf16 autocast is what CUDA runs (here on the CPU)
    import warnings

    data = load_data(planted)
    for split in ("train", "val"):
        for field in ("x", "label", "last_map", "last_sbp"):
            getattr(getattr(data, split), field).flags.writeable = False
    cfg = TrainConfig(model=ModelConfig("cnn_lstm", 8), epochs=1, amp="bf16", **FAST)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not writable")
        result = fit_arrays(cfg, data)
    assert result["amp"] is True and 0.5 < result["history"][0]["val_mean_auroc"] <= 1


def test_keep_freed_memory_applies_on_glibc():
    import platform

    from hypo.learn.train import keep_freed_memory

    assert keep_freed_memory() is (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")


def test_learns_nothing_without_a_pattern(unplanted):
    result = train(TrainConfig(model=ModelConfig("cnn_cnn", 16), epochs=4, **FAST), unplanted)
    assert max(h["val_mean_auroc"] for h in result["history"]) < 0.6


@pytest.fixture(scope="module")
def short_run(planted, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run"))
    cfg = TrainConfig(model=ModelConfig("cnn", 8), epochs=2, **FAST)
    seen = []

    def on_epoch(epoch, metrics, ckpt_dir):
        ck = load_checkpoint(os.path.join(ckpt_dir, "checkpoint.pt"))
        seen.append((epoch, metrics, ck["epoch"], sorted(os.listdir(ckpt_dir))))

    result = train(cfg, planted, out_dir=out, on_epoch=on_epoch)
    return cfg, out, result, seen


def test_on_epoch_gets_metrics_and_that_epochs_checkpoint(short_run):
    _, _, result, seen = short_run
    assert [s[0] for s in seen] == [1, 2] and [s[2] for s in seen] == [1, 2]
    assert all(s[3] == ["checkpoint.pt"] for s in seen)
    metrics = seen[-1][1]
    for key in ("epoch", "loss", "val_loss", "val_mean_auroc", "val_sum_auprc", "val_auprc_hypotension",
                "val_prevalence_hypertension", "windows_per_s", "val_bylast_hypotension_mean_auroc"):
        assert key in metrics
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    assert result["history"][-1] == metrics


def test_checkpoint_restores_identical_predictions(short_run, planted):
    cfg, out, result, _ = short_run
    path = os.path.join(out, "checkpoint.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["epoch"] == 2
    assert raw["config"] == to_dict(cfg) and raw["config"]["model"] == {"name": "cnn", "k": 8, "window_s": 60}
    manifest = read_manifest(planted)
    assert raw["dataset_fingerprint"] == manifest.fingerprint
    assert raw["zscore"]["mean"] == pytest.approx(manifest.zscore.mean)
    assert {"zscore.mean", "zscore.std"} <= set(raw["model_state"])
    assert "state" in raw["optimizer_state"] and len(raw["history"]) == 2

    model, cfg2 = load_model(path)
    assert cfg2 == cfg and not model.training
    val = load_split(planted, "val")
    probs = predict_proba(model, val.x)
    # the same model, scored again, gives the logged validation metric
    from hypo.learn.metrics import evaluate_scores

    assert math.isclose(evaluate_scores(val.label, probs, warn=False)["mean_auroc"],
                        result["history"][-1]["val_mean_auroc"], rel_tol=1e-6)
    model2, _ = load_model(path)
    np.testing.assert_array_equal(probs, predict_proba(model2, val.x))
    best, _ = load_model(os.path.join(out, "best.pt"))
    assert torch.load(os.path.join(out, "best.pt"), weights_only=True)["epoch"] == result["best_epoch"]
    assert math.isclose(evaluate_scores(val.label, predict_proba(best, val.x), warn=False)["mean_auroc"],
                        result["best"]["val_mean_auroc"], rel_tol=1e-6)


def test_metrics_json(short_run):
    cfg, out, result, _ = short_run
    with open(os.path.join(out, "metrics.json")) as f:
        m = json.load(f)  # strict JSON: NaN written as null
    assert m["config"] == to_dict(cfg) and m["dataset_fingerprint"] == result["dataset_fingerprint"]
    assert [h["epoch"] for h in m["history"]] == [1, 2]
    assert m["best_epoch"] in (1, 2) and m["baseline"]["val_mean_auroc"] > 0.5


def test_resume_continues_at_the_next_epoch(planted, tmp_path):
    cfg2 = TrainConfig(model=ModelConfig("cnn_lstm", 8), epochs=2, **FAST)
    data = load_data(planted)
    straight = fit_arrays(cfg2, data, out_dir=str(tmp_path / "straight"))
    first = fit_arrays(dataclass_replace(cfg2, epochs=1), data, out_dir=str(tmp_path / "first"))
    assert first["epochs_run"] == 1
    epochs = []
    resumed = fit_arrays(cfg2, data, out_dir=str(tmp_path / "resumed"),
                         resume_from=str(tmp_path / "first" / "checkpoint.pt"),
                         on_epoch=lambda e, m, d: epochs.append(e))
    assert epochs == [2] and [h["epoch"] for h in resumed["history"]] == [1, 2]
    # same batches, same optimizer state: the resumed run ends where the uninterrupted one does
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["model_state"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert math.isclose(straight["history"][-1]["val_mean_auroc"], resumed["history"][-1]["val_mean_auroc"],
                        rel_tol=1e-4)


def test_resume_refuses_another_model_or_dataset(planted, unplanted, tmp_path):
    cfg = TrainConfig(model=ModelConfig("cnn", 4), epochs=1, **FAST)
    fit_arrays(cfg, load_data(planted), out_dir=str(tmp_path))
    ckpt = str(tmp_path / "checkpoint.pt")
    with pytest.raises(ConfigError, match="model"):
        fit_arrays(dataclass_replace(cfg, model=ModelConfig("cnn", 5), epochs=2), load_data(planted),
                   resume_from=ckpt)
    with pytest.raises(DatasetError, match="trained on dataset"):
        fit_arrays(dataclass_replace(cfg, epochs=2), load_data(unplanted), resume_from=ckpt)


def dataclass_replace(cfg, **changes):
    import dataclasses

    return dataclasses.replace(cfg, **changes)


# ---------------------------------------------------------------------------------------------------- the CLI


def run_cli(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "hypo", "train", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


def test_cli_end_to_end(planted, tmp_path):
    out = tmp_path / "cli"
    p = run_cli("--data", planted, "--model", "cnn", "--k", "8", "--loss", "focal", "--gamma", "2", "--epochs", "2",
                "--batch-size", "128", "--lr", "0.01", "--seed", "1", "--device", "cpu", "--out", str(out))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert any(line.startswith("epoch   1/2") and "val mean AUROC" in line and "windows/s" in line for line in lines)
    assert any(line.startswith("epoch   2/2") for line in lines)
    header = next(line for line in lines if "validation" in line)
    assert "model" in header and "baseline" in header
    assert any(line.strip().startswith("mean AUROC") for line in lines)
    assert {"checkpoint.pt", "best.pt", "metrics.json"} <= set(os.listdir(out))
    with open(out / "metrics.json") as f:
        m = json.load(f)
    assert len(m["history"]) == 2 and m["best_epoch"] in (1, 2)
    assert m["config"]["model"]["name"] == "cnn" and m["config"]["seed"] == 1 and m["config"]["gamma"] == 2.0
    assert m["dataset_fingerprint"] == read_manifest(planted).fingerprint
    assert "val_mean_auroc" in m["baseline"]
    # --resume with more epochs continues at epoch 3
    p = run_cli("--data", planted, "--model", "cnn", "--k", "8", "--epochs", "3", "--batch-size", "128", "--lr",
                "0.01", "--seed", "1", "--device", "cpu", "--out", str(out), "--resume")
    assert p.returncode == 0, p.stderr
    assert "epoch   3/3" in p.stdout and "epoch   1/3" not in p.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--data", "{missing}"], "manifest.json missing"),
        (["--data", "{sixsignals}"], "signals"),
        (["--data", "{planted}", "--k", "0"], "k must be"),
        (["--data", "{planted}", "--k", "abc"], "invalid int value"),
        (["--data", "{planted}", "--model", "gru"], "invalid choice"),
        (["--data", "{planted}", "--loss", "ce", "--gamma", "2"], "focal loss only"),
        (["--data", "{planted}", "--device", "tpu"], "device must be"),
    ],
)
def test_cli_errors_are_one_line(planted, tmp_path, args, needle, capsys):
    """In-process (the subprocess path is test_cli_end_to_end): the same one line on stderr, exit status 2."""
    from hypo.cli.train import main
    six = tmp_path / "six"
    write_synthetic_dataset(str(six), n_train=40, n_val=40, n_test=0)
    with open(six / "manifest.json") as f:
        m = json.load(f)
    m["signals"] = m["signals"][:6]
    with open(six / "manifest.json", "w") as f:
        json.dump(m, f)
    fill = {"missing": str(tmp_path / "nothing"), "sixsignals": str(six), "planted": planted}
    with pytest.raises(SystemExit) as exc:
        main([*[a.format(**fill) for a in args], "--out", str(tmp_path / "out"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("hypo train: error:") and needle in err


def test_cli_trains_any_window_length_and_resumes_into_its_default_folder(tmp_path, monkeypatch, capsys):
    """30-s windows train as they are; --resume with more epochs finds the run's default folder again."""
    from hypo.cli.train import main
    from hypo.config import WindowConfig

    from demo_experiment import build_demo_dataset

    data = str(tmp_path / "w30")
    build_demo_dataset(data, n_cases=12, cfg=WindowConfig(window_s=30, stride_s=30))
    monkeypatch.chdir(tmp_path)
    args = ["--data", data, "--model", "cnn_cnn", "--k", "4", "--batch-size", "256", "--device", "cpu"]
    first = main(args + ["--epochs", "1"])
    assert first["config"]["model"]["window_s"] == 30
    again = main(args + ["--epochs", "2", "--resume"])
    assert [h["epoch"] for h in again["history"]] == [1, 2]
    out = capsys.readouterr().out
    assert "epoch   2/2" in out and "epoch   1/2" not in out
    assert len(os.listdir(tmp_path / "runs" / "train")) == 1


@pytest.mark.parametrize("resume", [False, True])
def test_cli_ctrl_c_says_to_add_resume(planted, tmp_path, monkeypatch, capsys, resume):
    """Re-running ``hypo train`` as it was starts again at epoch 1: the interrupt line says to add --resume."""
    import hypo.cli.train as cli
    import hypo.learn.train as work

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(work, "fit_arrays", interrupted)
    out = tmp_path / "out"
    if resume:  # a checkpoint to resume from (the flag is checked before training)
        out.mkdir()
        (out / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(SystemExit) as exc:
        cli.main(["--data", planted, "--out", str(out), "--epochs", "1"] + (["--resume"] if resume else []))
    err = capsys.readouterr().err
    assert exc.value.code == 130 and err.count("\n") == 1, err
    if resume:
        assert err == "hypo train: interrupted; re-run the same command to resume\n"
    else:
        assert err.startswith("hypo train: interrupted; re-run it with --resume added"), err


@pytest.mark.parametrize("args, needle", [
    (["--signals", "ecg,foo"], "--signals"),
    (["--epochs", "0"], "epochs"),
    (["--channel-dropout", "2"], "channel"),
    (["--resume"], "--resume: no checkpoint at"),
])
def test_cli_checks_flags_before_reading_the_splits(planted, tmp_path, monkeypatch, capsys, args, needle):
    import hypo.cli.train as cli
    import hypo.learn.train as work

    def no_splits(*a, **kw):
        raise AssertionError("the splits were read before the flags were checked")

    monkeypatch.setattr(work, "load_data", no_splits)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--data", planted, "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("hypo train: error:") and needle in err, err
