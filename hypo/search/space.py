"""The search spaces: Optuna's define-by-run space, and the study's own grid for a side-by-side replication.

Constants at the top say what is searched. Gamma exists only when the loss is focal (a plain ``if``, the
define-by-run way); the learning rate is searched only when asked.
"""

from __future__ import annotations

from typing import Any

MODELS: tuple[str, ...] = ("lstm", "cnn", "cnn_cnn", "cnn_lstm")
LOSSES: tuple[str, ...] = ("ce", "focal")
K_RANGE = (8, 128)  # width k, log scale; the paper's CNN*CNN is k = 42
GAMMA_RANGE = (0.5, 5.0)  # focal gamma
LR_RANGE = (1e-4, 1e-2)  # Adam learning rate (Keras default 1e-3) when --search-lr

# The study's grid: 4 models x its scales of k x 2 losses (gamma 2, the focal-loss paper's default).
PAPER_KS: tuple[int, ...] = (21, 42, 84)
PAPER_GAMMA = 2.0


def define_space(trial, search_lr: bool = False) -> dict[str, Any] | None:
    """Optuna define-by-run space (passed to ``OptunaSearch(space=...)``).

    Args:
        trial: An ``optuna.Trial``.
        search_lr: Also search the learning rate.

    Returns:
        Constants to add to the config (``gamma`` = 0 for cross entropy, so every trial has the key).
    """
    trial.suggest_categorical("model", MODELS)
    trial.suggest_int("k", *K_RANGE, log=True)
    loss = trial.suggest_categorical("loss", LOSSES)
    if loss == "focal":
        trial.suggest_float("gamma", *GAMMA_RANGE)
    if search_lr:
        trial.suggest_float("lr", *LR_RANGE, log=True)
    return None if loss == "focal" else {"gamma": 0.0}


def paper_grid() -> list[dict[str, Any]]:
    """Every configuration of the study's grid, as explicit dicts (24 of them)."""
    return [
        {"model": m, "k": k, "loss": loss, "gamma": PAPER_GAMMA if loss == "focal" else 0.0}
        for m in MODELS
        for k in PAPER_KS
        for loss in LOSSES
    ]


def planned_trials(space: str, samples: int) -> int:
    """How many trials a search of ``space`` runs when nothing stops it (the paper's grid has its own count)."""
    return len(paper_grid()) if space == "paper" else int(samples)
