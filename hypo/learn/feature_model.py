"""The feature-model baseline: window summary statistics into scikit-learn, the comparator reviewers ask for.

Each window is summarised by :func:`hypo.learn.features.window_features` (mean, std, min, max, last value and
slope of each of the 7 signals: 42 numbers) and classified by a standardised multinomial logistic regression
and by ``HistGradientBoostingClassifier`` over a small grid of learning rate x iterations. Every candidate is
fitted on the **train split only** (a seeded subsample of at most ``max_train`` windows, so a search's start-up
stays short on a big cohort) and the one with the best **validation mean AUROC** (then summed AUPRC; the first
candidate on a tie) is kept. Deterministic: the same splits and config give the same model and scores.
The booster runs on one OpenMP thread (:data:`OPENMP_THREADS`): on a shared, busy machine libgomp's spinning
threads made it 10-50x slower, while one thread fits the demo cohort's whole grid in seconds.

    fm = fit_feature_model(train, val)         # FeatureModel
    scores = fm.scores(test.x)                 # [n, 3] class probabilities
    fm.params                                  # the choice, the grid's validation scores, the config
    again = FeatureModel.refit(fm.params, train, val)   # the same model, without trying the grid again
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from hypo.config import from_dict, to_dict
from hypo.data.signals import CLASSES, N_SIGNALS
from hypo.errors import ConfigError, HypoError
from hypo.learn.features import STATISTICS, window_features
from hypo.learn.metrics import evaluate_scores

OPENMP_THREADS = 1


@dataclasses.dataclass(frozen=True)
class FeatureModelConfig:
    """The feature model's candidates and training budget.

    Attributes:
        learning_rates: Learning rates of the booster grid.
        max_iters: Boosting iterations of the booster grid.
        logreg_c: Inverse L2 strength of the logistic regression.
        max_train: Training windows used at most (a seeded subsample beyond it).
        seed: Seed of the subsample and of the boosters.
    """

    learning_rates: tuple[float, ...] = (0.03, 0.1)
    max_iters: tuple[int, ...] = (50, 150)
    logreg_c: float = 1.0
    max_train: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.learning_rates or not self.max_iters:
            raise ConfigError("feature model: the booster grid needs at least one learning rate and one max_iter")
        if self.max_train < 2:
            raise ConfigError(f"feature model: max_train must be >= 2, got {self.max_train}")


def candidates(cfg: FeatureModelConfig) -> list[dict[str, Any]]:
    """The candidates in selection order: the logistic regression, then the booster grid."""
    out: list[dict[str, Any]] = [{"kind": "logreg", "C": float(cfg.logreg_c)}]
    out += [{"kind": "hgb", "learning_rate": float(lr), "max_iter": int(it)}
            for lr in cfg.learning_rates for it in cfg.max_iters]
    return out


def candidate_name(candidate: dict[str, Any]) -> str:
    """Short name of a candidate (``logreg`` or ``hgb lr=0.1 iter=50``)."""
    if candidate["kind"] == "logreg":
        return "logreg"
    return f"hgb lr={candidate['learning_rate']:g} iter={candidate['max_iter']}"


def make_estimator(candidate: dict[str, Any], seed: int = 0):
    """The unfitted scikit-learn estimator of a candidate.

    Args:
        candidate: From :func:`candidates`.
        seed: ``random_state`` of the booster.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if candidate["kind"] == "logreg":
        # Windows of cases lacking a group (--allow-missing) have NaN statistics: the training mean stands in (a
        # no-op otherwise); the booster takes NaN as it is.
        return make_pipeline(SimpleImputer(keep_empty_features=True), StandardScaler(),
                             LogisticRegression(C=candidate["C"], max_iter=2000))
    if candidate["kind"] == "hgb":
        # No early stopping: it would hold out part of train at random; the grid's iterations are the budget.
        return HistGradientBoostingClassifier(learning_rate=candidate["learning_rate"],
                                              max_iter=candidate["max_iter"], early_stopping=False,
                                              random_state=seed)
    raise ConfigError(f"feature model: unknown candidate kind {candidate['kind']!r}")


def train_rows(n: int, max_train: int, seed: int) -> np.ndarray:
    """Indices of the training windows used: all of them, or a seeded subsample of ``max_train`` (sorted)."""
    if n <= max_train:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_train, replace=False))


def _threads():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(OPENMP_THREADS, user_api="openmp")


def class_scores(estimator, features: np.ndarray) -> np.ndarray:
    """``predict_proba`` as [n, 3] in class order (0 for a class the training windows lacked)."""
    with _threads():
        p = estimator.predict_proba(features)
    out = np.zeros((len(features), len(CLASSES)), np.float64)
    out[:, np.asarray(estimator.classes_, np.int64)] = p
    return out


@dataclasses.dataclass
class FeatureModel:
    """A fitted feature model: the chosen estimator and how it was chosen.

    Attributes:
        candidate: The chosen candidate (:func:`candidates`).
        estimator: The fitted scikit-learn estimator.
        config: The config it was fitted under.
        selection: Per candidate tried: ``{"candidate", "name", "val_mean_auroc", "val_sum_auprc"}``.
        n_train: Training windows of the split.
        n_used: Training windows it was fitted on.
    """

    candidate: dict[str, Any]
    estimator: Any
    config: FeatureModelConfig
    selection: list[dict[str, Any]]
    n_train: int
    n_used: int

    @property
    def model_name(self) -> str:
        """The leaderboard's model column: ``features+logreg`` or ``features+hgb``."""
        return f"features+{self.candidate['kind']}"

    @property
    def description(self) -> str:
        """One sentence: what was fitted on what, and how it was chosen."""
        what = ("logistic regression (standardised inputs)" if self.candidate["kind"] == "logreg"
                else f"gradient boosting ({candidate_name(self.candidate)})")
        used = (f"all {self.n_train:,} training windows" if self.n_used == self.n_train
                else f"a seeded subsample of {self.n_used:,} of {self.n_train:,} training windows")
        grid = (f"{len(self.selection)} candidates (logistic regression; boosters at learning rate "
                f"{'/'.join(f'{v:g}' for v in self.config.learning_rates)} x "
                f"{'/'.join(str(v) for v in self.config.max_iters)} iterations)")
        chosen = (f"chosen on validation mean AUROC among {grid}" if len(self.selection) > 1
                  else "the only candidate")
        return (f"{what} on {N_SIGNALS * len(STATISTICS)} window statistics ({', '.join(STATISTICS)} of each "
                f"signal), fitted on {used}; {chosen}")

    @property
    def params(self) -> dict[str, Any]:
        """JSON-ready record of the choice (enough to refit it: ``fit_feature_model(..., only=candidate)``)."""
        return {"candidate": dict(self.candidate), "config": to_dict(self.config), "selection": self.selection,
                "n_train": self.n_train, "n_used": self.n_used}

    @classmethod
    def refit(cls, params: dict[str, Any], train, val) -> FeatureModel:
        """Fit again the candidate a search chose (from :attr:`params`), without trying the grid again.

        Deterministic, so the refitted model scores every window as the one the search chose did; the record of
        the grid (``selection``) is kept for the description.
        """
        cfg = from_dict(FeatureModelConfig, params["config"])
        fm = fit_feature_model(train, val, cfg, only=params["candidate"])
        fm.selection = list(params.get("selection") or fm.selection)
        return fm

    def scores(self, x) -> np.ndarray:
        """Class probabilities [n, 3] of windows ``x`` [n, window_s, 7]."""
        if len(x) == 0:
            return np.zeros((0, len(CLASSES)), np.float64)
        return class_scores(self.estimator, window_features(x))


def _rank(entry: dict[str, Any]) -> tuple[float, float]:
    return tuple(v if isinstance(v, float) and math.isfinite(v) else -math.inf
                 for v in (entry["val_mean_auroc"], entry["val_sum_auprc"]))


def fit_feature_model(train, val, cfg: FeatureModelConfig | None = None,
                      only: dict[str, Any] | None = None) -> FeatureModel:
    """Fit every candidate on the train split and keep the best on the validation split.

    Args:
        train: Training windows (``.x`` [n, window_s, 7], ``.label`` [n]), e.g. from ``load_split``.
        val: Validation windows (the same fields): the choice is made on them, never on test.
        cfg: Candidates and budget (defaults: :class:`FeatureModelConfig`).
        only: Fit just this candidate (a choice recorded earlier in :attr:`FeatureModel.params`).

    Returns:
        The chosen, fitted model.

    Raises:
        HypoError: When the training windows hold fewer than two classes.
    """
    cfg = cfg or FeatureModelConfig()
    y_all = np.asarray(train.label, np.int64)
    rows = train_rows(len(y_all), cfg.max_train, cfg.seed)
    y = y_all[rows]
    if len(np.unique(y)) < 2:
        raise HypoError(f"feature model: the {len(y):,} training windows hold fewer than two classes; "
                        "build the dataset from more cases")
    f_train = window_features(np.asarray(train.x)[rows])
    f_val = window_features(val.x)
    tried, best = [], None
    for cand in [only] if only is not None else candidates(cfg):
        est = make_estimator(cand, cfg.seed)
        with _threads():
            est.fit(f_train, y)
        m = evaluate_scores(val.label, class_scores(est, f_val), warn=False) if len(val.label) else {}
        entry = {"candidate": dict(cand), "name": candidate_name(cand),
                 "val_mean_auroc": float(m.get("mean_auroc", math.nan)),
                 "val_sum_auprc": float(m.get("sum_auprc", math.nan))}
        tried.append(entry)
        if best is None or _rank(entry) > _rank(best[0]):
            best = (entry, est)
    return FeatureModel(candidate=dict(best[0]["candidate"]), estimator=best[1], config=cfg, selection=tried,
                        n_train=len(y_all), n_used=len(rows))
