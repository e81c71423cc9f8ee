"""The search spaces: Optuna's define-by-run space, and the study's own grid for a side-by-side replication.

Constants at the top say what is searched. Gamma exists only when the loss is focal (a plain ``if``, the
define-by-run way); the learning rate is searched only when asked, and so are the signals. The study's grid
can also be sampled (:func:`define_paper_space`) instead of run whole, so grid, random and TPE search compare
on one space.

``signals`` (``--search-signals``, and the ``ablation`` space) chooses which signal groups a model reads: one of
the 31 non-empty subsets of ECG, cuff (NIBP as one group), PLETH, MAC and BIS, as a ``+``-joined string such as
``ecg+nibp+pleth``. The ablation space starts with the subsets its summary compares (:func:`ablation_points`):
all five groups, then each group left out in turn; the model settings of those trials are sampled as usual.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypo.data.signals import GROUP_NAMES

MODELS: tuple[str, ...] = ("lstm", "cnn", "cnn_cnn", "cnn_lstm")
LOSSES: tuple[str, ...] = ("ce", "focal")
HORIZON_HEADS: tuple[str, ...] = ("hazard", "independent")  # the per-horizon heads (hypo.learn.models)
K_RANGE = (8, 128)  # width k, log scale; the paper's CNN*CNN is k = 42
GAMMA_RANGE = (0.5, 5.0)  # focal gamma
LR_RANGE = (1e-4, 1e-2)  # Adam learning rate (Keras default 1e-3) when --search-lr

# The study's grid: 4 models x its scales of k x 2 losses (gamma 2, the focal-loss paper's default).
PAPER_KS: tuple[int, ...] = (21, 42, 84)
PAPER_GAMMA = 2.0


ALL_SIGNALS = "+".join(GROUP_NAMES)


def signal_subsets() -> tuple[str, ...]:
    """Every non-empty subset of the signal groups as a ``+``-joined string, largest first (31 of them)."""
    return tuple("+".join(c) for r in range(len(GROUP_NAMES), 0, -1) for c in itertools.combinations(GROUP_NAMES, r))


SIGNAL_SUBSETS = signal_subsets()


def ablation_points() -> list[dict[str, str]]:
    """The subsets an ablation search runs first: all groups, then each group left out (leave-one-out)."""
    return [{"signals": ALL_SIGNALS}] + [{"signals": "+".join(g for g in GROUP_NAMES if g != out)}
                                         for out in GROUP_NAMES]


def define_space(trial, search_lr: bool = False, search_signals: bool = False,
                 models: tuple[str, ...] | None = None, search_head: bool = False) -> dict[str, Any] | None:
    """Optuna define-by-run space (passed to ``OptunaSearch(space=...)``).

    Args:
        trial: An ``optuna.Trial``.
        search_lr: Also search the learning rate.
        search_signals: Also search the signal groups the model reads (:data:`SIGNAL_SUBSETS`).
        models: The model types searched (default: all of :data:`MODELS`).
        search_head: Also search the per-horizon head (:data:`HORIZON_HEADS`; datasets built with --horizons).

    Returns:
        Constants to add to the config (``gamma`` = 0 for cross entropy, so every trial has the key).
    """
    if search_head:
        trial.suggest_categorical("head", HORIZON_HEADS)
    if search_signals:
        trial.suggest_categorical("signals", SIGNAL_SUBSETS)
    trial.suggest_categorical("model", tuple(models or MODELS))
    trial.suggest_int("k", *K_RANGE, log=True)
    loss = trial.suggest_categorical("loss", LOSSES)
    if loss == "focal":
        trial.suggest_float("gamma", *GAMMA_RANGE)
    if search_lr:
        trial.suggest_float("lr", *LR_RANGE, log=True)
    return None if loss == "focal" else {"gamma": 0.0}


def define_paper_space(trial, models: tuple[str, ...] | None = None,
                       ks: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Optuna define-by-run function over the study's grid: its models, its k scales, both losses, gamma 2.

    For sampling the paper's space (random or TPE) instead of running it whole, so only the strategy differs.

    Args:
        trial: An ``optuna.Trial``.
        models: The model types (default: all of :data:`MODELS`).
        ks: The widths (default: :data:`PAPER_KS`).

    Returns:
        The focal gamma as a constant: :data:`PAPER_GAMMA` for focal loss, 0 for cross entropy.
    """
    trial.suggest_categorical("model", tuple(models or MODELS))
    trial.suggest_categorical("k", tuple(ks or PAPER_KS))
    loss = trial.suggest_categorical("loss", LOSSES)
    return {"gamma": PAPER_GAMMA if loss == "focal" else 0.0}


def paper_grid(models: tuple[str, ...] | None = None, ks: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Every configuration of the study's grid, as explicit dicts (24 of them; fewer when restricted).

    Args:
        models: The model types (default: all of :data:`MODELS`).
        ks: The widths (default: :data:`PAPER_KS`).
    """
    return [
        {"model": m, "k": k, "loss": loss, "gamma": PAPER_GAMMA if loss == "focal" else 0.0}
        for m in (models or MODELS)
        for k in (ks or PAPER_KS)
        for loss in LOSSES
    ]


def subset_groups(signals: str | None) -> tuple[str, ...]:
    """The groups of a ``signals`` value (``None``: all of them)."""
    return GROUP_NAMES if not signals else tuple(g for g in GROUP_NAMES if g in str(signals).split("+"))


def planned_trials(space: str, samples: int, sampler: str | None = None, models: tuple[str, ...] | None = None,
                   paper_ks: tuple[int, ...] | None = None) -> int:
    """How many trials a search runs when nothing stops it: the grid's size when it runs the paper's grid whole.

    Args:
        space: ``optuna``, ``paper`` or ``ablation``.
        samples: Trials to sample (``--samples``).
        sampler: ``grid``, ``tpe``, ``random``, or None for the space's own (grid for paper, TPE for optuna).
        models: Model types searched (None: all).
        paper_ks: Widths of the paper's grid (None: :data:`PAPER_KS`).
    """
    if space == "paper" and (sampler or "grid") == "grid":
        return len(paper_grid(models, paper_ks))
    return int(samples)
