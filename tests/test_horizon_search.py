"""The search on a multi-horizon dataset: the head as a choice, the objective horizon, every horizon per trial."""

import pytest

from hypo.config import LabelConfig, WindowConfig
from hypo.data.dataset import read_manifest
from hypo.errors import ConfigError
from hypo.search.leaderboard import load_trials
from hypo.search.tuner import SearchConfig, check_horizon_request, run_search, trial_train_config

from demo_experiment import build_demo_dataset

HORIZONS = (60, 300, 600)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("hs")
    build_demo_dataset(str(root / "multi"), 8, cfg=WindowConfig(label=LabelConfig(horizons_s=HORIZONS)))
    build_demo_dataset(str(root / "single"), 6)
    return str(root / "multi"), str(root / "single")


def test_requests_the_dataset_cannot_give_are_refused_in_one_line(datasets):
    multi, single = datasets
    for kw, msg in (({"head": "hazard"}, "needs a dataset built with hypo windows --horizons"),
                    ({"objective_horizon": 600}, "labelled at 300 s only"),):
        with pytest.raises(ConfigError, match=msg) as info:
            check_horizon_request(SearchConfig(data=single, **kw), read_manifest(single))
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="labelled at 60,300,600 s"):
        check_horizon_request(SearchConfig(data=multi, objective_horizon=900), read_manifest(multi))
    check_horizon_request(SearchConfig(data=multi, head="either", objective_horizon=600), read_manifest(multi))
    with pytest.raises(ConfigError, match="needs an Optuna sampler"):
        SearchConfig(data=multi, head="either", space="paper")
    assert SearchConfig(data=multi, objective_horizon=600).rank_metrics == ("val_h600_auroc", "val_h600_auprc")
    assert SearchConfig(data=multi).rank_metrics == ("val_mean_auroc", "val_sum_auprc")


def test_trial_config_takes_the_head_and_the_dataset_horizons():
    base = {"model": "cnn", "k": 8, "loss": "ce", "batch_size": 64, "epochs": 1, "seed": 0}
    assert trial_train_config(base, n_horizons=3).model.head == "class"
    cfg = trial_train_config({**base, "head": "hazard"}, n_horizons=3).model
    assert (cfg.head, cfg.n_horizons) == ("hazard", 3)


@pytest.mark.slow  # a real Ray Tune search
def test_search_chooses_the_head_ranks_on_the_objective_horizon_and_records_every_horizon(ray_local, datasets,
                                                                                          tmp_path):
    multi, _ = datasets
    cfg = SearchConfig(data=multi, storage=str(tmp_path), name="h", samples=3, max_concurrent=2, epochs=2,
                       batch_size=256, grace_period=2, head="either", objective_horizon=600, sampler="random")
    trials = load_trials(run_search(cfg, log=lambda s: None))
    assert len(trials) == 3
    assert {t.params["head"] for t in trials} <= {"hazard", "independent"}
    for t in trials:
        for h in HORIZONS:
            assert f"val_h{h}_auroc" in t.history[-1] and f"val_h{h}_auprc" in t.history[-1]


def test_the_board_ranks_a_search_on_its_objective_horizon():
    from types import SimpleNamespace

    from hypo.search.board import objective_rank

    rank = ("val_mean_auroc", "val_sum_auprc")
    assert objective_rank(SimpleNamespace(search={"objective_horizon": 600}), rank) == \
        ("val_h600_auroc", "val_h600_auprc")
    assert objective_rank(SimpleNamespace(search={}), rank) == rank
    assert objective_rank(SimpleNamespace(search={"objective_horizon": 600}), ("val_loss",)) == ("val_loss",)
    assert objective_rank(None, rank) == rank
