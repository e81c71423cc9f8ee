"""hypo leaderboard without a search behind it: the latest experiment, --test bounds, partial searches marked."""

import json
import os
import time

import pytest

from hypo.cli.leaderboard import main
from hypo.search.experiments import SEARCH_META, resolve_experiment
from hypo.search.leaderboard import load_trials, search_status
from hypo.search.record import read_search_record


def fake_experiment(path, n_trials=7, done=True, planned=None, epochs=2):
    """An experiment folder in Ray Tune's layout, with results but no checkpoints (nothing needs training)."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, SEARCH_META), "w") as f:
        json.dump({"search": {"space": "optuna", "samples": planned or n_trials}, "data": None,
                   "baseline": {"val_mean_auroc": 0.7, "val_sum_auprc": 0.5}}, f)
    for i in range(n_trials):
        tdir = os.path.join(path, f"train_trial_{i:08x}_{i + 1}_k={i}_2026-11-30_00-00-00")
        os.makedirs(tdir)
        with open(os.path.join(tdir, "params.json"), "w") as f:
            json.dump({"model": "cnn", "k": 8 + i, "loss": "ce", "gamma": 0.0}, f)
        with open(os.path.join(tdir, "result.json"), "w") as f:
            for e in range(1, epochs + 1):
                last = e == epochs
                f.write(json.dumps({"trial_id": f"{i:08x}", "epoch": e, "training_iteration": e,
                                    "val_mean_auroc": 0.6 + 0.01 * i + 0.001 * e, "val_sum_auprc": 0.4 + 0.01 * i,
                                    "done": bool(done and last)}) + "\n")
    return str(path)


@pytest.mark.parametrize("n, needle", [(-1, "--test must be between 1 and"), (0, "--test must be between 1 and"),
                                       (99, "--test must be between 1 and the number of ranked trials (7)"),
                                       (6, "add --yes")])
def test_test_count_is_bounded_and_checked_before_any_look(tmp_path, capsys, n, needle):
    exp = fake_experiment(tmp_path / "exp")
    with pytest.raises(SystemExit) as exc:
        main([exp, "--test", str(n)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and needle in err, err
    assert not os.path.exists(os.path.join(exp, "test_looks.jsonl"))  # no look was taken or recorded
    assert not os.path.exists(os.path.join(exp, "leaderboard.csv"))


def test_latest_experiment_is_shown_by_default_and_the_others_listed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    old = fake_experiment(tmp_path / "runs" / "search-old", n_trials=2)
    time.sleep(0.05)
    new = fake_experiment(tmp_path / "runs" / "search-new", n_trials=3)
    os.utime(old, (time.time() - 100, time.time() - 100))
    res = main([])
    out = capsys.readouterr().out
    assert "latest experiment under runs: search-new" in out and "others (newest first): search-old" in out
    assert len(res["frame"].dropna(subset=["rank"])) == 3
    assert os.path.exists(os.path.join(new, "leaderboard.csv"))
    assert resolve_experiment("runs", log=lambda s: None) == os.path.join("runs", "search-new")
    assert resolve_experiment(old, log=lambda s: None) == old


def test_no_experiment_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no experiment under" in err and err.count("\n") == 1


def test_a_search_with_unfinished_trials_marks_every_output_partial(tmp_path, capsys):
    exp = fake_experiment(tmp_path / "exp", n_trials=3, done=False, planned=12)
    status = search_status(load_trials(exp), read_search_record(exp))
    assert status["partial"] and status["finished"] == 0 and status["planned"] == 12
    res = main([exp])
    out = capsys.readouterr().out
    assert "PARTIAL: 0 of 12 planned trials finished (3 unfinished)" in out
    assert set(res["frame"].dropna(subset=["rank"])["status"]) == {"unfinished"}
    import pandas as pd

    assert pd.read_csv(res["paths"]["csv"])["partial"].all()
    assert "PARTIAL" in open(res["paths"]["md"]).read()


def test_a_complete_search_is_not_marked_partial(tmp_path, capsys):
    exp = fake_experiment(tmp_path / "exp", n_trials=3)
    res = main([exp])
    assert "PARTIAL" not in capsys.readouterr().out and not res["status"]["partial"]
    import pandas as pd

    assert not pd.read_csv(res["paths"]["csv"])["partial"].any()
    assert "PARTIAL" not in open(res["paths"]["md"]).read()


def test_fewer_trials_than_planned_is_partial_even_when_all_finished(tmp_path):
    exp = fake_experiment(tmp_path / "exp", n_trials=2, planned=5)
    status = search_status(load_trials(exp), read_search_record(exp))
    assert status["partial"] and status["finished"] == 2 and status["trials"] == 2


def test_a_search_its_trial_epoch_budget_ended_is_complete_not_partial(tmp_path, capsys):
    exp = fake_experiment(tmp_path / "exp", n_trials=3, done=False, planned=12)
    meta_path = os.path.join(exp, SEARCH_META)
    meta = json.load(open(meta_path))
    meta["search"]["trial_epoch_budget"] = 7  # 3 trials x 2 epochs reported: short of the budget
    json.dump(meta, open(meta_path, "w"))
    assert search_status(load_trials(exp), read_search_record(exp))["partial"]
    meta["search"]["trial_epoch_budget"] = 6  # spent: the budget, not an interruption, ended the search
    json.dump(meta, open(meta_path, "w"))
    status = search_status(load_trials(exp), read_search_record(exp))
    assert not status["partial"] and status["budget_spent"] and status["finished"] == 0
    res = main([exp])
    out = capsys.readouterr().out
    assert "PARTIAL" not in out
    assert "its budget of 6 trial-epochs spent (0 trials finished, 3 stopped by the budget)" in out
    assert not res["status"]["partial"]
