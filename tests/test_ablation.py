"""Which signals matter: the ablation space (valid subsets only, leave-one-out first), trials on a subset of the
signals, and the leaderboard's signals column and importance summary."""

import json
import os

import numpy as np
import optuna
import pandas as pd
import pytest

from hypo.config import from_dict, to_dict
from hypo.data.signals import GROUP_NAMES, parse_groups
from hypo.errors import ConfigError
from hypo.search.board import show_leaderboard
from hypo.search.space import (
    ALL_SIGNALS,
    SIGNAL_SUBSETS,
    ablation_points,
    define_space,
    subset_groups,
)
from hypo.search.tuner import SearchConfig, _search_alg, trial_train_config

from demo_experiment import fake_search
from synthetic_windows import write_synthetic_dataset


def test_signal_subsets_are_every_nonempty_subset_once():
    assert len(SIGNAL_SUBSETS) == 2 ** len(GROUP_NAMES) - 1 == len(set(SIGNAL_SUBSETS))
    for s in SIGNAL_SUBSETS:
        groups = parse_groups(s)
        assert groups and "+".join(groups) == s  # canonical order, no unknown name
    assert SIGNAL_SUBSETS[0] == ALL_SIGNALS


def test_the_ablation_space_yields_only_valid_subsets():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(300):
        trial = study.ask()
        define_space(trial, search_signals=True)
        groups = subset_groups(trial.params["signals"])
        assert 1 <= len(groups) <= len(GROUP_NAMES) and set(groups) <= set(GROUP_NAMES)
        assert trial.params["signals"] == "+".join(groups)
        seen.add(trial.params["signals"])
        study.tell(trial, 0.5)
    assert seen == set(SIGNAL_SUBSETS)
    trial = study.ask()
    define_space(trial)
    assert "signals" not in trial.params  # only when asked


def test_an_ablation_search_runs_all_groups_then_each_left_out_first(tmp_path):
    cfg = SearchConfig(data="x", space="ablation", samples=9, name="abl", storage=str(tmp_path), max_concurrent=9)
    searcher = _search_alg(cfg, str(tmp_path / "abl"))
    suggested = [searcher.suggest(f"t{i}") for i in range(9)]
    points = [p["signals"] for p in ablation_points()]
    assert [s["signals"] for s in suggested[:6]] == points
    assert points[0] == ALL_SIGNALS and all(len(subset_groups(p)) == 4 for p in points[1:])
    assert {g for p in points[1:] for g in GROUP_NAMES if g not in subset_groups(p)} == set(GROUP_NAMES)
    for s in suggested:  # the model settings are searched alongside
        assert {"model", "k", "loss", "gamma"} <= set(s) and s["signals"] in SIGNAL_SUBSETS


def test_search_config_checks_and_keeps_older_records():
    with pytest.raises(ConfigError, match="--search-signals does not apply to --space paper"):
        SearchConfig(data="x", space="paper", search_signals=True)
    with pytest.raises(ConfigError, match="--channel-dropout"):
        SearchConfig(data="x", channel_dropout=1.0)
    plain = SearchConfig(data="x")
    assert "search_signals" not in to_dict(plain) and "channel_dropout" not in to_dict(plain)
    old = {k: v for k, v in to_dict(plain).items()}  # a record written before these fields existed
    assert from_dict(SearchConfig, old) == plain and not plain.signals_searched
    assert SearchConfig(data="x", space="ablation").signals_searched


def test_a_trial_on_a_subset_reads_only_those_groups():
    cfg = trial_train_config({"model": "cnn", "k": 8, "loss": "ce", "epochs": 1, "batch_size": 64, "seed": 0,
                              "signals": "ecg+nibp"})
    assert cfg.model.signals == ("ecg", "nibp") and cfg.model.channels == [0, 1, 2, 3] and not cfg.model.mask
    assert set(cfg.model.tolerates_missing) == {"pleth", "mac", "bis"}
    full = trial_train_config({"model": "cnn", "k": 8, "loss": "ce", "epochs": 1, "batch_size": 64, "seed": 0})
    assert full.model.signals == GROUP_NAMES and "signals" not in to_dict(full.model)


TRIALS = (
    {"model": "cnn", "k": 6, "loss": "ce", "gamma": 0.0, "signals": ALL_SIGNALS},
    {"model": "cnn", "k": 6, "loss": "ce", "gamma": 0.0, "signals": "nibp+pleth+mac+bis"},
    {"model": "cnn", "k": 6, "loss": "ce", "gamma": 0.0, "signals": "ecg+pleth+mac+bis"},
    {"model": "cnn", "k": 8, "loss": "ce", "gamma": 0.0, "signals": "ecg+nibp"},
)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    write_synthetic_dataset(str(root / "data"), n_train=600, n_val=300, n_test=120)
    return fake_search(str(root / "data"), str(root / "exp"), trials=TRIALS, epochs=2, batch_size=128)


def test_the_leaderboard_shows_the_signals_and_what_each_group_is_worth(ablation, tmp_path):
    lines = []
    res = show_leaderboard(ablation, out_dir=str(tmp_path), log=lines.append)
    df = res["frame"]
    trials = df[df["rank"].notna()]
    assert sorted(trials["signals"]) == sorted(t["signals"] for t in TRIALS)
    table = next(line for line in lines if line.lstrip().startswith("rank"))
    assert "signals" in table.splitlines()[0].split()  # a column of the printed table
    csv = pd.read_csv(tmp_path / "leaderboard.csv")
    assert set(csv.loc[csv["rank"].notna(), "signals"]) == {t["signals"] for t in TRIALS}

    imp = res["importance"].set_index("condition")
    score = dict(zip(trials["signals"], trials["val_mean_auroc"]))
    full = score[ALL_SIGNALS]
    assert imp.loc["all groups", "best"] == pytest.approx(full)
    assert imp.loc["without ECG", "drop"] == pytest.approx(full - score["nibp+pleth+mac+bis"])
    assert imp.loc["without cuff (NIBP)", "drop"] == pytest.approx(full - score["ecg+pleth+mac+bis"])
    for group in ("PLETH", "MAC", "BIS"):  # no trial read all groups but that one: not guessed from others
        assert imp.loc[f"without {group}", "trials"] == 0 and np.isnan(imp.loc[f"without {group}", "drop"])
    md = open(tmp_path / "leaderboard.md").read()
    assert "## Which signals matter" in md and "without cuff (NIBP)" in md
    assert os.path.exists(tmp_path / "signal_importance.csv")
    assert any(line.startswith("signal importance:") for line in lines)


def test_a_search_that_did_not_choose_signals_has_no_signals_column(tmp_path):
    root = tmp_path
    write_synthetic_dataset(str(root / "data"), n_train=300, n_val=150, n_test=60)
    exp = fake_search(str(root / "data"), str(root / "exp"), trials=({"model": "cnn", "k": 4, "loss": "ce",
                                                                      "gamma": 0.0},), epochs=1, batch_size=128)
    res = show_leaderboard(exp, log=lambda _: None)
    assert "signals" not in res["frame"].columns and res["importance"] is None
    assert "Which signals matter" not in open(os.path.join(exp, "leaderboard.md")).read()
    with open(os.path.join(exp, "train_trial_fake_00000", "params.json")) as f:
        assert "signals" not in json.load(f)


@pytest.mark.slow
def test_a_real_ablation_search_runs_every_leave_one_out_subset(ray_local, tmp_path):
    from hypo.learn.checkpoint import load_checkpoint
    from hypo.search.leaderboard import load_trials
    from hypo.search.tuner import run_search

    write_synthetic_dataset(str(tmp_path / "data"), n_train=400, n_val=200, n_test=100)
    cfg = SearchConfig(data=str(tmp_path / "data"), storage=str(tmp_path), name="abl", space="ablation", samples=6,
                       max_concurrent=2, epochs=1, batch_size=256, grace_period=1, channel_dropout=0.1)
    exp = run_search(cfg, log=lambda _: None)
    trials = load_trials(exp)
    assert sorted(t.params["signals"] for t in trials) == sorted(p["signals"] for p in ablation_points())
    for t in trials:
        ckpt = load_checkpoint(t.checkpoint_for(1))
        model = ckpt["config"]["model"]
        assert ckpt["config"]["channel_dropout"] == 0.1 and model["mask"] is True
        assert "+".join(model.get("signals", GROUP_NAMES)) == t.params["signals"]
    res = show_leaderboard(exp, log=lambda _: None)
    imp = res["importance"]
    assert (imp["trials"] == 1).all() and imp["best"].notna().all()
    assert json.load(open(os.path.join(exp, "hypo_search.json")))["search"]["space"] == "ablation"
