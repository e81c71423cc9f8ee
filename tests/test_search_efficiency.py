"""Search strategies on the paper's space (grid, random, TPE, TPE + ASHA), the trial-epoch budget, and the benchmark
``bench/search_efficiency.py`` that compares them."""

import json
import math
import os
import pickle
import subprocess
import sys

import pytest

from hypo.config import from_dict, to_dict
from hypo.errors import ConfigError
from hypo.learn.metrics import RANK_METRICS
from hypo.search.leaderboard import load_trials, search_status
from hypo.search.record import read_search_record
from hypo.search.space import paper_grid, planned_trials
from hypo.search.stoppers import TrialEpochBudget
from hypo.search.tuner import SearchConfig, _scheduler, _search_alg, run_search

from synthetic_windows import write_synthetic_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import search_efficiency as bench  # noqa: E402

# ---------------------------------------------------------------------------------------- the budget stopper


def test_the_budget_stops_the_search_at_exactly_its_trial_epochs():
    stop = TrialEpochBudget(5)
    calls = [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    for trial, epoch in calls:
        assert stop(trial, {"training_iteration": epoch}) is False and not stop.stop_all()
    # Tune hands a trial's last result to the stoppers again when its function returns: not a new epoch.
    assert stop("b", {"training_iteration": 2}) is False and not stop.stop_all() and stop.spent == 4
    assert stop("a", {"training_iteration": 3}) is True  # the fifth trial-epoch: that trial ends there...
    assert stop.stop_all() and stop.spent == 5  # ... and the search with it


def test_the_budget_count_survives_the_pickling_of_a_resume():
    stop = TrialEpochBudget(4)
    for epoch in (1, 2, 3):
        stop("a", {"training_iteration": epoch})
    again = pickle.loads(pickle.dumps(stop))
    assert again.spent == 3 and not again.stop_all()
    assert again("b", {"training_iteration": 1}) and again.stop_all()


# ------------------------------------------------------------------------------ samplers, schedulers, configs


def test_an_older_search_record_reads_back_as_the_search_it_was(tmp_path):
    for space, strategy in (("paper", "grid"), ("optuna", "tpe")):
        old = to_dict(SearchConfig(data="d", space=space))
        for key in ("sampler", "scheduler", "trial_epoch_budget", "n_startup_trials", "sampler_seed", "models",
                    "paper_ks"):
            old.pop(key, None)  # (a config may already leave a field at its default out)
        cfg = from_dict(SearchConfig, old)
        assert cfg.strategy == strategy and cfg.scheduler == "asha" and cfg.trial_epoch_budget is None
        assert cfg.planned_trials == (24 if space == "paper" else cfg.samples)
    new = SearchConfig(data="d", space="paper", sampler="random", samples=9, models=("cnn", "lstm"), paper_ks=(21,))
    assert from_dict(SearchConfig, to_dict(new)) == new  # tuples come back as tuples


@pytest.mark.parametrize("kw, needle", [
    ({"sampler": "grid"}, "--sampler grid needs --space paper"),
    ({"sampler": "hyperband"}, "--sampler must be one of"),
    ({"scheduler": "pbt"}, "--scheduler must be one of"),
    ({"trial_epoch_budget": 0}, "--trial-epoch-budget must be >= 1"),
    ({"models": ("cnn", "resnet")}, "models must be distinct names"),
    ({"paper_ks": (21,)}, "paper_ks applies to --space paper only"),
    ({"space": "paper", "optuna_storage": "sqlite:///x.db"}, "--optuna-storage does not apply"),
])
def test_bad_strategy_settings_are_one_line_errors(kw, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        SearchConfig(data="d", **kw)


def test_planned_trials_follow_the_sampler_and_the_grid_restriction():
    assert planned_trials("paper", 5) == 24 and planned_trials("paper", 5, "grid") == 24
    assert planned_trials("paper", 5, "random") == 5 and planned_trials("paper", 5, "tpe") == 5
    assert planned_trials("paper", 5, None, ("cnn",), (21, 42)) == 4
    assert len(paper_grid(("cnn",), (21,))) == 2


def test_the_scheduler_is_asha_or_none():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    assert isinstance(_scheduler(SearchConfig(data="d")), ASHAScheduler)
    none = _scheduler(SearchConfig(data="d", scheduler="none"))
    assert isinstance(none, FIFOScheduler) and not isinstance(none, ASHAScheduler)


def _propose(cfg, exp, n):
    """``n`` configurations from the search's own searcher, each told a made-up result so TPE leaves its start-up."""
    searcher = _search_alg(cfg, str(exp))
    out = []
    for i in range(n):
        tid = f"t{i}"
        config = searcher.suggest(tid)
        out.append(config)
        score = 0.9 if config["model"] == "cnn_cnn" else 0.6
        searcher.on_trial_complete(tid, {RANK_METRICS[0]: score, RANK_METRICS[1]: score, "training_iteration": 1})
    return out


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_random_and_tpe_on_the_paper_space_propose_only_its_configurations(sampler, tmp_path):
    cfg = SearchConfig(data="d", space="paper", sampler=sampler, samples=40, n_startup_trials=5, sampler_seed=1)
    proposed = _propose(cfg, tmp_path / "exp", 40)
    grid = [tuple(sorted(g.items())) for g in paper_grid()]
    for c in proposed:
        assert tuple(sorted((k, c[k]) for k in ("model", "k", "loss", "gamma"))) in grid, c
    assert {c["model"] for c in proposed} == {"lstm", "cnn", "cnn_cnn", "cnn_lstm"}
    assert {c["k"] for c in proposed} == {21, 42, 84} and {c["gamma"] for c in proposed} == {0.0, 2.0}
    if sampler == "tpe":  # past its start-up, TPE goes where the made-up scores were high
        assert sum(c["model"] == "cnn_cnn" for c in proposed[20:]) > 10


def test_a_restricted_paper_space_and_the_sampler_seed(tmp_path):
    cfg = SearchConfig(data="d", space="paper", sampler="random", models=("cnn",), paper_ks=(21,), sampler_seed=3)
    proposed = _propose(cfg, tmp_path / "a", 8)
    assert {(c["model"], c["k"]) for c in proposed} == {("cnn", 21)}
    assert {c["loss"] for c in proposed} == {"ce", "focal"}
    same = _propose(SearchConfig(data="d", space="paper", sampler="random", models=("cnn",), paper_ks=(21,),
                                 sampler_seed=3, seed=7, name="b"), tmp_path / "b", 8)
    assert [c["loss"] for c in same] == [c["loss"] for c in proposed]  # the sampler follows sampler_seed, not seed
    wide = _propose(SearchConfig(data="d", sampler="random", models=("lstm",), name="w"), tmp_path / "w", 8)
    assert {c["model"] for c in wide} == {"lstm"} and len({c["k"] for c in wide}) > 3  # k on the wide scale


# ------------------------------------------------------------------------------------- the benchmark's analysis


class _Trial:
    def __init__(self, rows):
        self.history = rows


def test_anytime_curves_follow_report_order_and_stop_at_the_budget():
    trials = [_Trial([{"reported_at": 101.0, "val_mean_auroc": 0.70}, {"reported_at": 104.0, "val_mean_auroc": 0.66}]),
              _Trial([{"reported_at": 102.0, "val_mean_auroc": float("nan")},
                      {"reported_at": 103.0, "val_mean_auroc": 0.80}, {"reported_at": 105.0, "val_mean_auroc": 0.9}])]
    by_epoch, by_time = bench.anytime_curves(trials, budget=4, start=100.0)
    assert by_epoch == [0.70, 0.70, 0.80, 0.80]  # the 0.9 came after the budget
    assert [t for t, _ in by_time] == [1.0, 2.0, 3.0, 4.0]
    assert bench.epochs_to_reach(by_epoch, 0.8) == 3 and bench.epochs_to_reach(by_epoch, 0.81) is None


def test_comparing_with_random_counts_only_budgets_past_the_first_fifth():
    ours = [0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    rand = [0.9, 0.6, 0.6, 0.8, 0.8, 0.9, 0.8, 0.8, 0.8, 0.8]  # behind at budget 1 (ignored) and at budget 6
    c = bench.compare_to_random(ours, rand)
    assert c["budgets"] == 9 and (c["ahead"], c["behind"], c["level"]) == (1, 1, 7)
    assert math.isclose(c["worst_gap"], 0.1)


def _run(key, seed, curve, val, test):
    return bench.Run(key, seed, f"/x/{key}-{seed}", curve, [(float(i), v) for i, v in enumerate(curve, 1)],
                     float(len(curve)), {"val": val, "test": test})


def test_table_and_goals_give_median_and_range_over_seeds_and_never(tmp_path):
    args = bench.parse_args(["--seeds", "2"])
    order = bench.strategies(args, n_configs=2)
    budget = 4
    runs = [_run("grid", 0, [0.70, 0.80, 0.80, 0.84], 0.84, 0.83),
            _run("random", 0, [0.70, 0.72, 0.836, 0.836], 0.836, 0.82),
            _run("random", 1, [0.60, 0.70, 0.70, 0.70], 0.70, 0.69),  # never within 0.005 of 0.84
            _run("tpe", 0, [0.84] * 4, 0.84, 0.83), _run("tpe", 1, [0.8, 0.84, 0.84, 0.84], 0.84, 0.83),
            _run("tpe_asha", 0, [0.80, 0.84, 0.84, 0.84], 0.84, 0.83),
            _run("tpe_asha", 1, [0.80, 0.80, 0.84, 0.84], 0.84, float("nan"))]
    stats = bench.summary(runs, order, budget)
    assert math.isclose(stats["grid"]["target"], 0.835)
    md = bench.table(stats, budget)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines()[2:]}
    assert "| 4 |" in rows["grid (the paper's)"]  # the grid in its own order reaches its best at the end
    assert "| never [3-never] |" in rows["random"] and "| 0.7680 [0.7000-0.8360] |" in rows["random"]
    assert "| 1.5 [1-2] |" in rows["TPE"] and "| 2.5 [2-3] |" in rows["TPE + ASHA"]
    assert "| 0.8300 |" in rows["TPE + ASHA"]  # a run without a test figure is left out, not averaged as 0
    verdicts = bench.goals(stats, runs, budget)
    assert verdicts[0].startswith("TPE + ASHA reaches within 0.005") and "62%" in verdicts[0]
    assert verdicts[0].endswith("MISSED") and verdicts[1].endswith("MET")
    png = tmp_path / "fig.png"
    bench.figure(runs, order, stats, budget, str(png), "test")
    assert png.stat().st_size > 10_000


def test_gpu_packing_on_a_machine_without_a_gpu_says_so_and_exits_0(monkeypatch, tmp_path, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--gpu", "--storage", str(tmp_path / "runs")]) == 0
    assert capsys.readouterr().out.startswith("no GPU")
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


# ----------------------------------------------------------------------------------------- real Ray searches


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data") / "windows")
    write_synthetic_dataset(d, n_train=400, n_val=200, n_test=200, seed=0)
    return d


@pytest.mark.slow
def test_the_quick_benchmark_runs_end_to_end(data_dir, tmp_path):
    png, storage = tmp_path / "search_efficiency.png", tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "search_efficiency.py"), "--quick",
                           "--data", data_dir, "--storage", str(storage), "--png", str(png)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for label in ("grid (the paper's)", "random", "TPE", "TPE + ASHA"):
        assert f"\n| {label} | paper | 1 | " in out, out
    assert "2 configurations x 1 epochs = 2 trial-epochs per run" in out
    assert "judged on validation mean AUROC" in out and "(goal <= 30%)" in out and "goal: never behind" in out
    assert png.stat().st_size > 10_000
    for run in ("grid-seed0", "random-seed0", "tpe-seed0", "tpe_asha-seed0"):
        exp = storage / run
        looks = [json.loads(x) for x in open(exp / "test_looks.jsonl")]
        assert len(looks) == 1 and looks[0]["by"] == "bench/search_efficiency.py"  # one look, on the record
        assert sum(len(t.history) for t in load_trials(str(exp))) == 2
    saved = json.load(open(storage / "search_efficiency.json"))
    assert len(saved["runs"]) == 4 and all(len(r["by_epoch"]) == 2 for r in saved["runs"])


@pytest.mark.slow
def test_no_scheduler_trains_every_trial_to_full_length_and_the_budget_ends_a_search(ray_local, data_dir, tmp_path):
    common = dict(data=data_dir, storage=str(tmp_path), space="paper", epochs=3, batch_size=256, max_concurrent=2,
                  models=("cnn",), paper_ks=(8, 16), grace_period=1, reduction_factor=2)
    exp = run_search(SearchConfig(name="full", sampler="grid", scheduler="none", **common), log=lambda s: None)
    trials = load_trials(exp)
    assert len(trials) == 4  # cnn x 2 widths x 2 losses
    for t in trials:
        assert [r["training_iteration"] for r in t.history] == [1, 2, 3] and t.finished
    assert not search_status(trials, read_search_record(exp))["partial"]

    lines = []
    exp = run_search(SearchConfig(name="budget", sampler="random", scheduler="none", samples=10,
                                  trial_epoch_budget=5, **common), log=lines.append)
    trials = load_trials(exp)
    assert sum(len(t.history) for t in trials) == 5  # 10 trials x 3 epochs planned, ended at 5 trial-epochs
    status = search_status(trials, read_search_record(exp))
    assert status["budget_spent"] and not status["partial"]
    assert "its budget of 5 trial-epochs spent" in lines[-1]
