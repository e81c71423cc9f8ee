"""The search end to end on a tiny synthetic dataset: leaderboard, worker death, and --resume after a kill."""

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest

from hypo.cli.search import main as search_main
from hypo.data.dataset import load_split
from hypo.errors import ConfigError, DatasetError
from hypo.evaluate.testsplit.looks import read_looks
from hypo.learn.feature_model import FeatureModel
from hypo.learn.metrics import evaluate_scores
from hypo.search.board import show_leaderboard
from hypo.search.leaderboard import load_trials
from hypo.search.tuner import FAIL_MARKER_KEY, SearchConfig, resumed_config, run_search

from synthetic_windows import write_synthetic_dataset

pytestmark = pytest.mark.slow  # real Ray Tune searches, kill-and-resume

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data") / "windows")
    write_synthetic_dataset(d, n_train=600, n_val=300, n_test=200, seed=0)
    return d


def _cfg(data_dir, storage, name, **kw):
    base = dict(samples=3, max_concurrent=2, epochs=3, batch_size=256, grace_period=3, seed=0)
    base.update(kw)
    return SearchConfig(data=data_dir, storage=str(storage), name=name, **base)


def _epochs(trial):
    return [r["epoch"] for r in trial.history]


def _reported_epochs(trial):
    """Every epoch the trial reported, in order, as its result file holds them (retrained epochs twice)."""
    with open(os.path.join(trial.path, "result.json")) as f:
        return [json.loads(x)["epoch"] for x in f if x.strip()]


def test_search_end_to_end_writes_leaderboard_tensorboard_and_optuna_study(ray_local, data_dir, tmp_path, capsys):
    cfg = _cfg(data_dir, tmp_path, "e2e")
    exp = run_search(cfg, log=lambda s: None)
    trials = load_trials(exp)
    assert len(trials) == 3
    for t in trials:
        assert _epochs(t) == [1, 2, 3]  # grace period = epochs: ASHA stops nobody
        assert {"val_mean_auroc", "val_sum_auprc", "val_auprc_hypotension", "node_id"} <= set(t.history[-1])
        assert glob.glob(os.path.join(t.path, "events.out.tfevents*")), "TensorBoard events missing"
        assert t.checkpoint_for(t.best()["epoch"]) is not None
    lines = []
    res = show_leaderboard(exp, log=lines.append)
    df = res["frame"]
    assert list(df["rank"].iloc[:3]) == [1, 2, 3]
    ranked = df.iloc[:3]
    assert list(ranked["val_mean_auroc"]) == sorted(ranked["val_mean_auroc"], reverse=True)
    base = df[df["rank"].isna()]
    assert list(base["trial"]) == ["baseline: last reading", "baseline: feature model"]
    assert base["val_mean_auroc"].between(0, 1).all() and list(base["model"])[1].startswith("features+")
    # the feature model's row is the model the search chose on validation, refitted here by hand
    meta = json.load(open(os.path.join(exp, "hypo_search.json")))
    fm_params = meta["baselines"][1]["params"]
    train, val = load_split(data_dir, "train"), load_split(data_dir, "val")
    fm = FeatureModel.refit(fm_params, train, val)
    assert np.isclose(base.iloc[1]["val_mean_auroc"], evaluate_scores(val.label, fm.scores(val.x))["mean_auroc"])
    assert ranked["pareto"].any()
    for path in res["paths"].values():
        assert os.path.getsize(path) > 0
    md = open(res["paths"]["md"]).read()
    assert "baseline: last reading" in md and "baseline: feature model" in md and "window statistics" in md
    assert any("baseline: feature model = " in x for x in lines)
    assert "**Simulated data**" in md and any("simulated data (synthetic source)" in x for x in lines)
    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{exp}/optuna.db")
    assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert len(study.directions) == 2  # multi-objective: mean AUROC and summed AUPRC
    with pytest.raises(ConfigError, match="already holds a search"):
        run_search(cfg, log=lambda s: None)

    # --rank-by any reported metric: ranked by it, shown as a column; an unknown one is a single line.
    by_hypo = show_leaderboard(exp, ("val_auroc_hypotension",), out_dir=str(tmp_path / "lb_hypo"), log=lines.append)
    ranked = by_hypo["frame"].iloc[:3]["val_auroc_hypotension"]
    assert list(ranked) == sorted(ranked, reverse=True) and "auroc_hypotension" in lines[-4]
    from hypo.cli.leaderboard import main as leaderboard_main

    with pytest.raises(SystemExit):
        leaderboard_main([exp, "--rank-by", "val_mean_aurco", "--out", str(tmp_path / "lb_bad")])
    assert "--rank-by: unknown metric(s) val_mean_aurco" in capsys.readouterr().err

    # --test: the top 2 once on the test split, in the study's layout beside the paper's figures.

    out = leaderboard_main([exp, "--test", "2", "--out", str(tmp_path / "lb")])
    test = out["test"]
    assert len(test) == 4 and list(test["trial"][2:]) == ["baseline: last reading", "baseline: feature model"]
    assert test["test_mean_auroc"].between(0, 1).all()
    test_split = load_split(data_dir, "test")
    by_hand = evaluate_scores(test_split.label, fm.scores(test_split.x), warn=False)
    assert np.isclose(test.iloc[3]["test_mean_auroc"], by_hand["mean_auroc"])
    assert np.isclose(test.iloc[3]["test_sum_auprc"], by_hand["sum_auprc"])
    table = open(tmp_path / "lb" / "test_table.md").read()
    assert "0.9198" in table and "CNN*CNN" in table  # the paper's best, beside ours
    assert "| baseline: feature model |" in table and "| baseline: last reading |" in table
    assert os.path.exists(tmp_path / "lb" / "leaderboard.png")
    (look,) = read_looks(exp)  # the look at the test split is on the record
    assert look["by"] == "leaderboard --test 2" and [t["trial"] for t in look["trials"]] == list(test["trial"][:2])
    assert "first look at this experiment's test split" in table


def test_a_trial_whose_worker_dies_resumes_from_its_checkpoint(ray_local, data_dir, tmp_path):
    marker = str(tmp_path / "died")
    cfg = _cfg(data_dir, tmp_path, "dies", samples=1, epochs=3)
    exp = run_search(cfg, extra_params={FAIL_MARKER_KEY: (1, marker)}, log=lambda s: None)
    assert os.path.exists(marker), "the failure was not injected"
    (trial,) = load_trials(exp)
    epochs = _reported_epochs(trial)
    # Epoch 1 was reported, then the worker died; training went on from that checkpoint at epoch 2
    # (restarting from scratch would report epoch 1 twice).
    assert epochs == [1, 2, 3], epochs
    assert _epochs(trial) == epochs and trial.history[-1]["training_iteration"] == 3 and trial.finished


def test_a_trial_restored_from_a_checkpoint_before_its_last_result_still_trains_every_epoch(ray_local, data_dir,
                                                                                          tmp_path):
    # The worker reports epoch 2 but Tune never records its checkpoint (the node is lost between the result and
    # the checkpoint), then dies: the trial restarts from epoch 1's checkpoint and reports epoch 2 again.
    marker = str(tmp_path / "died")
    cfg = _cfg(data_dir, tmp_path, "unrecorded", samples=1, epochs=4, grace_period=4)
    exp = run_search(cfg, extra_params={FAIL_MARKER_KEY: (1, marker, True)}, log=lambda s: None)
    assert os.path.exists(marker), "the failure was not injected"
    (trial,) = load_trials(exp)
    reported = _reported_epochs(trial)
    assert reported[:2] == [1, 2] and reported.count(2) == 2, reported  # epoch 2 trained twice...
    assert _epochs(trial) == [1, 2, 3, 4]  # ... the leaderboard's record holds it once, from the run that went on
    assert trial.finished and trial.history[-1]["training_iteration"] == 4  # stopped at its last epoch, not one short


def _finished(exp):
    done = 0
    for f in glob.glob(os.path.join(exp, "*", "result.json")):
        rows = [json.loads(x) for x in open(f) if x.strip()]
        done += bool(rows) and rows[-1].get("epoch") == 4
    return done


def test_resume_restores_a_killed_search_with_its_optuna_history(ray_local, data_dir, tmp_path):
    name, samples = "killed", 4
    cmd = [sys.executable, os.path.join(ROOT, "tune", "search.py"), "--data", data_dir, "--storage", str(tmp_path),
           "--name", name, "--samples", str(samples), "--max-concurrent", "1", "--epochs", "4",
           "--batch-size", "256", "--grace-period", "4"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    exp = os.path.join(str(tmp_path), name)
    deadline = time.time() + 240
    while _finished(exp) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)  # kill soon after the second trial ends, before a third can
    os.killpg(proc.pid, signal.SIGKILL)  # the search and its Ray die at once
    proc.wait()
    before = {t.trial_id: _epochs(t) for t in load_trials(exp) if _epochs(t) and _epochs(t)[-1] == 4}
    assert 2 <= len(before) < samples, before
    study_before = optuna.load_study(study_name=name, storage=f"sqlite:///{exp}/optuna.db")
    complete_before = {t.number: t.params for t in study_before.trials if t.state.name == "COMPLETE"}

    # The resumed search takes its data and settings from the experiment, as `search.py --resume --name` does.
    cfg = resumed_config(str(tmp_path), name)
    assert (cfg.data, cfg.samples, cfg.epochs, cfg.batch_size) == (data_dir, samples, 4, 256)
    with pytest.raises(ConfigError, match="drop --data"):
        resumed_config(str(tmp_path), name, data=str(tmp_path / "other"))
    other = str(tmp_path / "other")
    write_synthetic_dataset(other, n_train=100, n_val=60, n_test=0, seed=5)
    with pytest.raises(DatasetError, match="the search started on"):
        run_search(dataclasses.replace(cfg, data=other), resume=True, log=lambda s: None)
    search_main(["--storage", str(tmp_path), "--name", name, "--resume"])  # no --data: the search's own
    after = {t.trial_id: _epochs(t) for t in load_trials(exp)}
    assert len(after) == samples
    for tid, epochs in before.items():
        assert after[tid] == epochs  # finished trials were not re-run
    assert all(e[-1] == 4 for e in after.values())
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{exp}/optuna.db")
    complete = {t.number: t.params for t in study.trials if t.state.name == "COMPLETE"}
    assert len(complete) == samples
    for num, params in complete_before.items():
        assert complete[num] == params  # the study's history was kept, not restarted


def test_mlflow_logging_when_asked(ray_local, data_dir, tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"  # a database backend, as MLflow now asks
    cfg = _cfg(data_dir, tmp_path, "mlf", samples=1, epochs=2, grace_period=2, mlflow=uri)
    run_search(cfg, log=lambda s: None)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mlf")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "val_mean_auroc")
    assert len(history) == 2


def test_data_path_is_absolute_and_patient_data_has_no_simulation_notice(ray_local, data_dir, tmp_path):
    cfg = _cfg(os.path.relpath(data_dir), tmp_path, "patients", samples=1, epochs=1, grace_period=1)
    exp = run_search(cfg, log=lambda s: None)
    meta_path = os.path.join(exp, "hypo_search.json")
    meta = json.load(open(meta_path))
    assert meta["simulated"] is True and meta["source"] == "synthetic"
    assert meta["data"] == data_dir  # absolute, so report/export find it from any folder
    meta.update(simulated=False, source="vital-dir")  # as a search over a hospital's .vital folder records it
    json.dump(meta, open(meta_path, "w"))
    lines = []
    res = show_leaderboard(exp, log=lines.append)
    assert "imulated" not in open(res["paths"]["md"]).read() and not any("simulated" in x for x in lines)
