import optuna

from hypo.search.space import GAMMA_RANGE, K_RANGE, MODELS, PAPER_KS, define_space, paper_grid


def test_define_by_run_space_has_gamma_only_for_focal():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        const = define_space(trial)
        p = trial.params
        seen.add(p["model"])
        assert K_RANGE[0] <= p["k"] <= K_RANGE[1]
        if p["loss"] == "focal":
            assert GAMMA_RANGE[0] <= p["gamma"] <= GAMMA_RANGE[1] and const is None
        else:
            assert "gamma" not in p and const == {"gamma": 0.0}
        assert "lr" not in p
        study.tell(trial, 0.5)
    assert seen == set(MODELS)


def test_learning_rate_is_searched_on_request():
    study = optuna.create_study()
    trial = study.ask()
    define_space(trial, search_lr=True)
    assert 1e-4 <= trial.params["lr"] <= 1e-2


def test_paper_grid_is_models_by_scales_by_losses():
    grid = paper_grid()
    assert len(grid) == len(MODELS) * len(PAPER_KS) * 2
    assert {"model": "cnn_cnn", "k": 42, "loss": "focal", "gamma": 2.0} in grid
    assert len({tuple(sorted(g.items())) for g in grid}) == len(grid)
