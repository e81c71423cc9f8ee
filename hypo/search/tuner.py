"""The search: Ray Tune + Optuna over model type, width k, loss and focal gamma, ranked by a leaderboard.

``run_search`` loads the window dataset once on the driver and hands it to every trial through the Ray object
store (``tune.with_parameters``): each node fetches it once and its trials read it without copying. Trials
report every epoch with a checkpoint; ASHA stops weak ones early (``scheduler="none"``: every trial runs its
epochs); a budget of trial-epochs (``trial_epoch_budget``) can end the search; a trial whose worker dies
restarts from its last checkpoint (``FailureConfig``); ``resume=True`` restores a stopped or killed search with
``Tuner.restore``, keeping finished trials and the Optuna study (also kept in an Optuna storage, a SQLite file
in the experiment folder by default, for ``optuna-dashboard``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import posixpath
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

from hypo import storage
from hypo.config import fingerprint, to_dict
from hypo.data.manifest import SplitCounts
from hypo.errors import ConfigError, DatasetError, HypoError
from hypo.learn.metrics import RANK_METRICS
from hypo.search.experiments import SEARCH_META, local_experiment
from hypo.search.leaderboard import ORPHANED, load_trials, mark_orphans, search_status
from hypo.search.record import SearchRecord, read_search_record, write_search_record
from hypo.search.resources import CPU_FALLBACK_ENV, NoCudaError

if TYPE_CHECKING:
    from hypo.learn.train import TrainingData
    from hypo.search.claim import Claim

SPACES = ("optuna", "paper", "ablation")
SAMPLERS = ("grid", "tpe", "random")  # grid: the paper's grid whole; tpe, random: Optuna samplers
SCHEDULERS = ("asha", "none")  # none: no early stopping, every trial runs all its epochs
# Model heads: class (3 logits of the primary horizon), hazard or independent per-horizon risks (datasets built
# with --horizons), or either: the per-horizon head is a searched choice (hypo.learn.models).
SEARCH_HEADS = ("class", "hazard", "independent", "either")
# Tests: (epoch, marker[, unrecorded]): the worker dies once after reporting that epoch; with ``unrecorded`` it
# reports one more epoch whose checkpoint never reaches Tune first, as when a node is lost between the two.
FAIL_MARKER_KEY = "_fail_once_at_epoch"


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything one search needs; saved in the experiment folder as ``hypo_search.json``.

    ``space`` is ``optuna`` (model, k, loss, gamma; the learning rate with ``search_lr``, the signal groups with
    ``search_signals``), ``paper`` (the study's grid) or ``ablation`` (the optuna space with the signal groups,
    starting with all groups and each one left out: :func:`hypo.search.space.ablation_points`).
    ``channel_dropout`` is every trial's (:class:`hypo.learn.train_config.TrainConfig`). The newer fields are
    written only when set, so older searches keep their record, and read back as the search they were:
    ``sampler`` None is the space's own (the whole grid for ``paper``, TPE otherwise), ``scheduler`` is ASHA,
    no budget, Optuna's 10 random start-up trials, the sampler seeded with ``seed``, all four models and the
    paper's widths, the class head, and ranking on the primary horizon's mean AUROC and summed AUPRC.
    ``head`` (:data:`SEARCH_HEADS`) and ``objective_horizon`` (rank on ``val_h<S>_auroc``, ``val_h<S>_auprc``:
    :attr:`rank_metrics`) need a dataset built with ``--horizons``.
    """

    data: str
    name: str = "hypo-search"
    storage: str = "runs"
    space: str = "optuna"
    samples: int = 8
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    epochs: int = 10
    batch_size: int = 4096
    seed: int = 0
    search_lr: bool = False
    grace_period: int = 2
    reduction_factor: int = 3
    max_failures: int = 2
    optuna_storage: str | None = None
    mlflow: str | None = None
    pending_timeout_s: float = 900.0
    sampler: str | None = None
    scheduler: str = "asha"
    trial_epoch_budget: int | None = None
    n_startup_trials: int = 10  # TPE: random trials before the model (Optuna's default)
    sampler_seed: int | None = None  # None: seed; set apart so trials train alike under every sampler seed
    models: tuple[str, ...] | None = None  # None: every model type
    paper_ks: tuple[int, ...] | None = None  # None: the paper's widths (21, 42, 84)
    search_signals: bool = False
    channel_dropout: float = 0.0
    head: str = "class"
    objective_horizon: int | None = None

    def omitted_fields(self) -> tuple[str, ...]:
        """Fields left out of ``to_dict`` while at their defaults."""
        return tuple(n for n, default in (("search_signals", False), ("channel_dropout", 0.0), ("sampler", None),
                                          ("scheduler", "asha"), ("trial_epoch_budget", None),
                                          ("n_startup_trials", 10), ("sampler_seed", None), ("models", None),
                                          ("paper_ks", None), ("head", "class"), ("objective_horizon", None))
                     if getattr(self, n) == default)

    @property
    def rank_metrics(self) -> tuple[str, ...]:
        """What trials are ranked on: :data:`RANK_METRICS`, or with ``objective_horizon`` S others.

        With ``objective_horizon`` S: the hypotension AUROC and AUPRC by S seconds (``val_h<S>_auroc``,
        ``val_h<S>_auprc``).
        """
        if self.objective_horizon is None:
            return RANK_METRICS
        return (f"val_h{self.objective_horizon}_auroc", f"val_h{self.objective_horizon}_auprc")

    @property
    def signals_searched(self) -> bool:
        """Whether trials choose their signal groups (``--search-signals`` or the ablation space)."""
        return self.search_signals or self.space == "ablation"

    def __post_init__(self) -> None:
        from hypo.search.space import MODELS

        checks = [
            (self.space in SPACES, f"--space must be one of {SPACES}, got {self.space!r}"),
            (self.samples >= 1, "--samples must be >= 1"),
            (self.max_concurrent >= 1, "--max-concurrent must be >= 1"),
            (self.cpus_per_trial > 0, "--cpus-per-trial must be > 0"),
            (self.gpus_per_trial >= 0, "--gpus-per-trial must be >= 0 (fractions such as 0.25 share a GPU)"),
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.grace_period >= 1, "--grace-period must be >= 1"),
            (self.reduction_factor >= 2, "--reduction-factor must be >= 2"),
            (self.pending_timeout_s > 0, "--pending-timeout must be > 0 seconds"),
            (self.sampler is None or self.sampler in SAMPLERS,
             f"--sampler must be one of {SAMPLERS}, got {self.sampler!r}"),
            (self.sampler != "grid" or self.space == "paper",
             "--sampler grid needs --space paper (the optuna space is continuous: it has no grid)"),
            (self.scheduler in SCHEDULERS, f"--scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}"),
            (self.trial_epoch_budget is None or self.trial_epoch_budget >= 1, "--trial-epoch-budget must be >= 1"),
            (self.n_startup_trials >= 0, "n_startup_trials must be >= 0"),
            (self.models is None or (len(self.models) > 0 and set(self.models) <= set(MODELS)
                                     and len(set(self.models)) == len(self.models)),
             f"models must be distinct names among {MODELS}, got {self.models!r}"),
            (self.paper_ks is None or self.space == "paper", "paper_ks applies to --space paper only"),
            (self.paper_ks is None or (len(self.paper_ks) > 0 and all(int(k) >= 1 for k in self.paper_ks)),
             f"paper_ks must be widths >= 1, got {self.paper_ks!r}"),
            (self.space != "paper" or not self.search_lr, "--search-lr does not apply to --space paper (lr 1e-3)"),
            (self.strategy != "grid" or self.optuna_storage is None,
             "--optuna-storage does not apply to the paper's grid (a fixed grid, no Optuna study)"),
            (self.space != "paper" or not self.search_signals,
             "--search-signals does not apply to --space paper (the study's grid reads all signals); use "
             "--space ablation"),
            (0 <= self.channel_dropout < 1, f"--channel-dropout must be in [0, 1), got {self.channel_dropout}"),
            (self.head in SEARCH_HEADS, f"--head must be one of {SEARCH_HEADS}, got {self.head!r}"),
            (self.head != "either" or self.strategy != "grid",
             "--head either is a searched choice: it needs an Optuna sampler (not the paper's grid)"),
            (self.objective_horizon is None or self.objective_horizon > 0,
             f"--objective-horizon must be > 0 seconds, got {self.objective_horizon}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    @property
    def strategy(self) -> str:
        """The sampler in effect: ``sampler``, else the space's own (``grid`` for paper, ``tpe`` for optuna)."""
        return self.sampler or ("grid" if self.space == "paper" else "tpe")

    @property
    def planned_trials(self) -> int:
        """How many trials the search runs when nothing stops it (a budget may end it sooner)."""
        from hypo.search.space import planned_trials

        return planned_trials(self.space, self.samples, self.sampler, self.models, self.paper_ks)

    @property
    def experiment_path(self) -> str:
        """Where Tune writes this search (``storage/name``)."""
        return storage.join(storage.absolute(self.storage), self.name)


# --------------------------------------------------------------------------------------------- the trainable


CODE_LAYOUT = "layers-1"  # module layout Tune pickles into an experiment; a resume needs the same


def train_trial(config: dict[str, Any], data: TrainingData, allow_cpu_fallback: bool = False) -> None:
    """Tune trainable: train one configuration, reporting each epoch with a checkpoint.

    Args:
        config: Sampled parameters (model, k, loss, gamma, optionally lr) and the search's constants.
        data: The splits, manifest and baselines (:func:`load_search_data`), from the object store.
        allow_cpu_fallback: A GPU reserved on a node without CUDA trains on the CPU instead of failing the trial
            (``HYPO_ALLOW_CPU_FALLBACK`` on the driver: :func:`hypo.search.resources.trial_device`).
    """
    import ray
    import torch
    from ray import tune

    from hypo.learn.train import fit_arrays
    from hypo.search.resources import trial_device

    # Tune logs every persisted checkpoint at INFO; one per trial and epoch drowns the console of a search.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    ctx = ray.get_runtime_context()
    node_id = ctx.get_node_id()
    # One intra-op thread per reserved CPU, so concurrent trials on a node do not fight over cores.
    torch.set_num_threads(max(1, int(ctx.get_assigned_resources().get("CPU", 1))))
    ckpt = tune.get_checkpoint()
    resume_from = None
    if ckpt is not None:
        resume_dir = ckpt.to_directory()
        resume_from = os.path.join(resume_dir, "checkpoint.pt")
    fail = config.get(FAIL_MARKER_KEY)
    # The GPU only when Ray reserved one for this trial: Ray leaves CUDA visible to CPU-only trials on a GPU node,
    # where "auto" would crowd the reserved trials' GPU outside Ray's accounting.
    gpu_ids = ray.get_gpu_ids()
    device = trial_device(gpu_ids, torch.cuda.is_available(), allow_cpu_fallback, where=f"node {node_id}")
    if device == "cuda":  # a reused actor keeps the previous trial's peak
        torch.cuda.reset_peak_memory_stats()
    # In the worker's log (on the console with --verbose); the leaderboard's device column says the same.
    fallback = " (a GPU reserved, CUDA not available: CPU fallback)" if gpu_ids and device == "cpu" else ""
    print(f"hypo: trial {tune.get_context().get_trial_id()} trains on {device} on node {node_id[:8]}{fallback}",
          file=sys.stderr, flush=True)

    def on_epoch(epoch: int, metrics: dict[str, Any], ckpt_dir: str) -> None:
        with open(os.path.join(ckpt_dir, "meta.json"), "w") as f:
            params = ("model", "k", "loss", "gamma", "signals", "head")
            json.dump({"epoch": epoch, "params": {k: config.get(k) for k in params if k in config}}, f)
        # Stratified and baseline figures stay in the checkpoint's history; Tune gets the ranking view.
        report = {k: v for k, v in metrics.items() if not k.startswith(("val_bylast_", "baseline_"))
                  and (isinstance(v, (int, float, str, bool)) or v is None)}
        report["node_id"] = node_id
        report["device"] = device
        report["reported_at"] = time.time()  # Tune's own timestamp is whole seconds; anytime curves need better
        if device == "cuda":  # what this trial holds on its GPU (the packing benchmark reads it)
            report["gpu_peak_mib"] = torch.cuda.max_memory_reserved() / 2**20
        if fail and epoch > fail[0] and not os.path.exists(fail[1]):
            if epoch == fail[0] + 1 + bool(fail[2:] and fail[2]):
                # The worker dies while training this epoch, as a lost node would: Tune must restart from the
                # checkpoint of ``fail[0]``. (Dying right after its report raced with the driver's logging of it.)
                open(fail[1], "w").close()
                time.sleep(1.0)
                os._exit(1)
            tune.report(report)  # ``unrecorded``: Tune has this epoch's result but never gets its checkpoint
            return
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(ckpt_dir))

    from hypo.data.dataset import absent_groups

    fit_arrays(trial_train_config(config, device, window_s=data.manifest.window_s,
                                  absent=absent_groups(data.manifest), n_horizons=len(data.manifest.horizons_s)),
               data, on_epoch=on_epoch, resume_from=resume_from)


def trial_train_config(config: dict[str, Any], device: str = "auto", window_s: int = 60, absent=(),
                       n_horizons: int = 1):
    """The TrainConfig of one trial's parameters.

    Args:
        config: The trial's parameters and the search's constants (``signals``, ``channel_dropout`` optional).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        window_s: Window length of the dataset (the model's input length).
        absent: Signal groups some windows of the dataset lack; a model reading them takes missing groups.
        n_horizons: The dataset's horizons (a ``head`` other than ``class`` gives a risk for each).
    """
    from hypo.learn.train import ModelConfig, TrainConfig
    from hypo.learn.train_config import needs_mask
    from hypo.search.space import subset_groups

    loss = config["loss"]
    signals = subset_groups(config.get("signals"))
    dropout = float(config.get("channel_dropout", 0.0))
    head = str(config.get("head", "class"))
    return TrainConfig(
        model=ModelConfig(name=config["model"], k=int(config["k"]), window_s=window_s, signals=signals,
                          mask=needs_mask(dropout, absent, signals), head=head,
                          n_horizons=0 if head == "class" else n_horizons),
        channel_dropout=dropout,
        loss=loss,
        gamma=float(config.get("gamma", 0.0)) if loss == "focal" else 0.0,
        lr=float(config.get("lr", 1e-3)),
        batch_size=int(config["batch_size"]),
        epochs=int(config["epochs"]),
        seed=int(config["seed"]),
        device=device,
    )


# ---------------------------------------------------------------------------------------------- the search


def check_val_classes(val_label, data_dir: str) -> None:
    """Refuse a validation split that lacks a class: its mean AUROC and summed AUPRC would be NaN.

    ASHA and Optuna rank trials on those two numbers; handed NaN they would stop or steer trials on nothing.

    Args:
        val_label: The validation split's labels, or the manifest's counts of it.
        data_dir: The dataset, for the message.

    Raises:
        HypoError: Naming the missing classes, in one line.
    """
    import numpy as np

    from hypo.data.signals import CLASSES

    if isinstance(val_label, SplitCounts):
        missing = [name for name in CLASSES if not val_label.of(name) > 0]
    else:
        y = np.asarray(val_label)
        missing = [name for c, name in enumerate(CLASSES) if not (y == c).any()]
    if missing:
        raise HypoError(f"{data_dir}: the validation split has no {' and no '.join(missing)} window, so its mean "
                        "AUROC and summed AUPRC are undefined and ASHA and Optuna would rank trials on NaN; build "
                        "the dataset from more cases (or another --split)")


def preflight(cfg: SearchConfig) -> None:
    """The checks a search can make from the dataset's manifest alone, before Ray starts.

    Raises:
        HypoError: No dataset there, its validation split lacks a class (:func:`check_val_classes`), or it cannot
            give the head or objective horizon asked for (:func:`check_horizon_request`).
    """
    from hypo.data.dataset import read_manifest

    manifest = read_manifest(cfg.data)
    counts = manifest.counts.get("val")
    if counts is not None:
        check_val_classes(counts, cfg.data)
    check_horizon_request(cfg, manifest)


def check_horizon_request(cfg: SearchConfig, manifest) -> None:
    """Refuse a per-horizon head or objective the dataset cannot give (built without --horizons, or not S).

    Raises:
        ConfigError: One line naming the flag and the dataset's horizons.
    """
    have = manifest.horizons_s if manifest.horizons is not None else ()
    if cfg.head != "class" and not have:
        raise ConfigError(f"--head {cfg.head} needs a dataset built with hypo windows --horizons; {cfg.data} has one "
                          f"horizon ({manifest.label.horizon_s} s)")
    if cfg.objective_horizon is not None and cfg.objective_horizon not in have:
        raise ConfigError(f"--objective-horizon {cfg.objective_horizon}: {cfg.data} is labelled at "
                          f"{','.join(map(str, have or (manifest.label.horizon_s,)))} s"
                          + ("" if have else " only (build it with --horizons)"))


def check_name_free(cfg: SearchConfig) -> None:
    """Refuse to start a new search where one is already (its ``hypo_search.json``, a Tune experiment, or a claim).

    Searches started one after the other meet here; two started at the same moment meet at the atomic claim
    (:func:`hypo.search.claim.claim_experiment`).

    Raises:
        ConfigError: Saying to pass ``--resume`` or another ``--name``.
    """
    from ray import tune

    from hypo.search.claim import unrecorded_claim

    exp_path = cfg.experiment_path
    if storage.exists(storage.join(exp_path, SEARCH_META)) or tune.Tuner.can_restore(exp_path):
        raise ConfigError(f"{exp_path} already holds a search: pass --resume, or choose another --name")
    claimed = unrecorded_claim(exp_path)
    if claimed:
        raise ConfigError(claimed)


def load_search_data(data_dir: str, seed: int = 0, log=None, feature_model: bool = True) -> TrainingData:
    """Read the train and validation splits once, with the manifest and every baseline's validation metrics.

    Args:
        data_dir: The window dataset.
        seed: Seed of the feature model (its training subsample).
        log: Where a line about the baselines goes (silent when None).
        feature_model: Fit the feature model (a resumed search has its record already and skips it).

    Returns:
        The splits and manifest, with ``baselines`` every named baseline's record
        (:func:`hypo.learn.baselines.baseline_records`; the first, the last reading, is reported beside each trial).

    Raises:
        HypoError: When a split is empty or the validation split lacks a class.
    """
    from hypo.data.dataset import empty_split_reason, load_split, read_manifest
    from hypo.learn.baselines import baseline_records
    from hypo.learn.feature_model import FeatureModelConfig, fit_feature_model
    from hypo.learn.train import TrainingData

    manifest = read_manifest(data_dir)
    train, val = load_split(data_dir, "train", manifest), load_split(data_dir, "val", manifest)
    for name, split in (("train", train), ("val", val)):
        if len(split.label) == 0:
            raise DatasetError(f"{data_dir}: {empty_split_reason(manifest, name)}")
    check_val_classes(val.label, data_dir)
    start = time.perf_counter()
    fm = fit_feature_model(train, val, FeatureModelConfig(seed=seed)) if feature_model else None
    baselines = baseline_records(val, manifest, fm, where="val", prefix="val_", warn=True)
    if log:
        log(f"baselines on validation ({time.perf_counter() - start:.1f} s): "
            + ", ".join(f"{b['name']} mean AUROC {b['metrics']['val_mean_auroc']:.4f}" for b in baselines))
    return TrainingData(train, val, manifest, storage.absolute(data_dir), tuple(baselines))


def _param_space(cfg: SearchConfig) -> dict[str, Any]:
    from ray import tune

    from hypo.search.space import PAPER_GAMMA, PAPER_KS, paper_grid

    const = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "seed": cfg.seed}
    if cfg.channel_dropout:
        const["channel_dropout"] = cfg.channel_dropout
    if cfg.head not in ("class", "either"):  # either: a searched parameter (hypo.search.space.define_space)
        const["head"] = cfg.head
    if cfg.strategy == "grid":
        models = sorted({g["model"] for g in paper_grid(cfg.models)})
        return {
            **const,
            "model": tune.grid_search(models),
            "k": tune.grid_search(list(cfg.paper_ks or PAPER_KS)),
            "loss": tune.grid_search(["ce", "focal"]),
            "gamma": tune.sample_from(lambda spec: PAPER_GAMMA if spec.config.loss == "focal" else 0.0),
        }
    return const


def _search_alg(cfg: SearchConfig, exp_path: str):
    """The Optuna searcher of ``cfg`` (TPE or random, over its space), or None for the paper's grid."""
    if cfg.strategy == "grid":
        return None
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from hypo.search.space import ablation_points, define_paper_space, define_space

    url = cfg.optuna_storage
    if url is None and not storage.is_uri(exp_path):
        os.makedirs(exp_path, exist_ok=True)
        url = f"sqlite:///{os.path.join(exp_path, 'optuna.db')}"
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if cfg.space == "paper":
        space = functools.partial(define_paper_space, models=cfg.models, ks=cfg.paper_ks)
    else:
        space = functools.partial(define_space, search_lr=cfg.search_lr, search_signals=cfg.signals_searched,
                                  models=cfg.models, search_head=cfg.head == "either")
    seed = cfg.seed if cfg.sampler_seed is None else cfg.sampler_seed
    if cfg.strategy == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                             n_startup_trials=cfg.n_startup_trials)
    searcher = OptunaSearch(
        space=space,
        # The ablation's summary compares all groups with each left out: those subsets run first.
        points_to_evaluate=ablation_points()[: cfg.samples] if cfg.space == "ablation" else None,
        metric=list(cfg.rank_metrics),
        mode=["max", "max"],
        sampler=sampler,
        study_name=cfg.name,
        # On an object store (no SQLite file there) the study lives in memory and in Tune's searcher state, which
        # Tune saves in the experiment; --resume restores it from there.
        storage=_optuna_storage(url, given=cfg.optuna_storage is not None) if url is not None else None,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=cfg.max_concurrent)


def _optuna_storage(url: str, given: bool):
    """Optuna's RDB storage at ``url``; a URL it cannot open (no such dialect or driver, no database) is one line.

    Raises:
        ConfigError: Naming ``--optuna-storage`` when ``given`` (the user's URL), else the experiment's own file.
    """
    import optuna

    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # SQLAlchemy's errors, or optuna's ImportError for a driver not installed
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = f"--optuna-storage {url}" if given else f"the search's Optuna storage {url}"
        raise ConfigError(f"{where}: {reason}") from exc


def _callbacks(cfg: SearchConfig) -> list:
    from ray.tune.logger import TBXLoggerCallback

    from hypo.search.result_logs import ProgressCsvLog, ResultJsonLog

    callbacks = [ResultJsonLog(), ProgressCsvLog(), TBXLoggerCallback()]
    if cfg.mlflow:
        try:
            from ray.air.integrations.mlflow import MLflowLoggerCallback
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ConfigError("--mlflow needs the mlflow package: pip install 'hypo[mlflow]'") from exc
        callbacks.append(MLflowLoggerCallback(tracking_uri=cfg.mlflow, experiment_name=cfg.name))
    return callbacks


def _no_cuda(error: BaseException | None) -> NoCudaError | None:
    """The :class:`NoCudaError` a trial failed with, or None.

    Ray hands the driver its own error (``RayTaskError``, an instance of the trial's error class too, with the
    remote traceback as its text); the trial's own error, with its one-line message, is its ``cause``.
    """
    seen, wrapped = set(), None
    while error is not None and id(error) not in seen:
        if type(error) is NoCudaError:
            return error
        if isinstance(error, NoCudaError):
            wrapped = error
        seen.add(id(error))
        error = getattr(error, "cause", None) or error.__cause__
    if wrapped is not None:  # no cause kept: the traceback's last line is the message
        return NoCudaError(str(wrapped).strip().splitlines()[-1].split("NoCudaError: ", 1)[-1])
    return None


def device_lines(records, gpus_per_trial: float) -> list[str]:
    """Console lines on where the trials ran.

    One line of trials per node, when more than one node ran them; one line naming the trials that reserved a GPU
    but trained on the CPU (``HYPO_ALLOW_CPU_FALLBACK``), so that never goes unnoticed.
    """
    per_node: dict[str, int] = {}
    for rec in records:
        for node in dict.fromkeys(r["node_id"] for r in rec.history if r.get("node_id")):
            per_node[node] = per_node.get(node, 0) + 1
    lines = []
    if len(per_node) > 1:
        short = {n[:8] for n in per_node}
        name = (lambda n: n[:8]) if len(short) == len(per_node) else (lambda n: n)
        lines.append("trials per node: " + ", ".join(f"{name(n)} {k}" for n, k in per_node.items()))
    fell_back = [rec.trial_id for rec in records if gpus_per_trial > 0
                 and any(r.get("device") == "cpu" for r in rec.history)]
    if fell_back:
        lines.append(f"warning: {len(fell_back)} trial(s) reserved a GPU but trained on the CPU, CUDA not being "
                     f"available on their node ({CPU_FALLBACK_ENV}=1): {', '.join(fell_back)}")
    return lines


class SearchInterrupted(HypoError):
    """The search stopped before all its trials finished (Ctrl-C); the experiment can be resumed."""

    def __init__(self, exp_path: str, finished: int, planned: int) -> None:
        self.exp_path, self.finished, self.planned = exp_path, finished, planned
        super().__init__(f"interrupted after {finished} of {planned} trials")


class PendingTimeout(HypoError):
    """No trial could start within the pending timeout (the autoscaler added no node that holds one)."""


def _stopper(cfg: SearchConfig):
    """Tune's one stopper: the pending timeout, the trial-epoch budget if any, and each trial's last epoch.

    Stopping a trial at its last epoch marks that result ``done``, which is how the leaderboard tells a trial
    that ran to its end from one cut short (ASHA does so at its ``max_t``; without ASHA this stopper does).
    """
    from ray.tune.stopper import CombinedStopper

    from hypo.search.stoppers import LastEpoch, NoTrialStarted, TrialEpochBudget

    # CombinedStopper stops asking at the first True: the counting stopper comes before the one that ends trials.
    stoppers = [NoTrialStarted(cfg.pending_timeout_s)]
    if cfg.trial_epoch_budget is not None:
        stoppers.append(TrialEpochBudget(cfg.trial_epoch_budget))
    stoppers.append(LastEpoch(cfg.epochs))
    return CombinedStopper(*stoppers)


def _scheduler(cfg: SearchConfig):
    """ASHA (stops weak trials at its rungs), or Tune's FIFO scheduler: every trial runs all its epochs."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if cfg.scheduler == "none":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=cfg.rank_metrics[0],
        mode="max",
        max_t=cfg.epochs,
        grace_period=min(cfg.grace_period, cfg.epochs),
        reduction_factor=cfg.reduction_factor,
    )


def _trainable(cfg: SearchConfig, data: TrainingData):
    from ray import tune

    from hypo.search.resources import cpu_fallback_allowed

    return tune.with_resources(
        tune.with_parameters(train_trial, data=data, allow_cpu_fallback=cpu_fallback_allowed()),
        {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial},
    )


def _progress_reporter(cfg: SearchConfig):
    """Tune's progress table, a line per trial with its parameters and best-so-far metrics, every 30 s."""
    from hypo.search.console import ProgressTable

    columns = {"model": "model", "k": "k", "loss": "loss", "gamma": "gamma"}
    if cfg.signals_searched:
        columns["signals"] = "signals"
    if cfg.head == "either":
        columns["head"] = "head"
    return ProgressTable(
        cfg.experiment_path,
        parameter_columns=columns,
        metric_columns={"training_iteration": "epoch", cfg.rank_metrics[0]: "val AUROC",
                        cfg.rank_metrics[1]: "val sumAUPRC" if cfg.objective_horizon is None else "val AUPRC"},
        max_report_frequency=30,
        sort_by_metric=False,
        max_column_length=24,  # the signal groups' longest value, ecg+nibp+pleth+mac+bis, is 22 characters
        metric=cfg.rank_metrics[0],
        mode="max",
    )


def build_tuner(cfg: SearchConfig, data: TrainingData, extra_params: dict[str, Any] | None = None,
                verbose: bool = True):
    """A fresh ``tune.Tuner`` for ``cfg`` (``extra_params`` merge into the param space, e.g. for tests).

    ``verbose`` False shows only Tune's progress table (see :func:`set_console`), not a box per trial.
    """
    from ray import tune

    exp_path = cfg.experiment_path
    search_alg = _search_alg(cfg, exp_path)
    tune_config = tune.TuneConfig(
        search_alg=search_alg,
        scheduler=_scheduler(cfg),
        num_samples=1 if cfg.strategy == "grid" else cfg.samples,
        # The Optuna searcher is already wrapped in a ConcurrencyLimiter; the grid needs Tune's own limit.
        max_concurrent_trials=cfg.max_concurrent if search_alg is None else None,
        reuse_actors=True,  # a trial's worker keeps torch imported for the next trial
    )
    run_config = tune.RunConfig(
        name=cfg.name,
        storage_path=os.path.dirname(exp_path) if not storage.is_uri(exp_path) else cfg.storage,
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=2, checkpoint_score_attribute=cfg.rank_metrics[0], checkpoint_score_order="max"
        ),
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        callbacks=_callbacks(cfg),
        stop=_stopper(cfg),
        progress_reporter=None if verbose else _progress_reporter(cfg),
        verbose=1,
    )
    return tune.Tuner(
        _trainable(cfg, data),
        param_space={**_param_space(cfg), **(extra_params or {})},
        tune_config=tune_config,
        run_config=run_config,
    )


def check_layout(search: SearchRecord, name: str) -> None:
    """Refuse to resume a search started before hypo's layered layout.

    Tune pickles the searcher and trainable with their module paths (``hypo.search``, ``hypo.train``); those
    modules moved into layers, so such an experiment cannot be restored. Its leaderboard and report still read.

    Raises:
        HypoError: When ``search`` (an experiment's record) predates :data:`CODE_LAYOUT`.
    """
    if search.code_layout != CODE_LAYOUT:
        raise HypoError(f"--resume: {name} was started by an older hypo whose module paths Tune pickled are gone "
                        "(before the data/learn/search layers); its leaderboard and report still read, but to "
                        "continue it start a new search")


def resumed_config(storage_path: str, name: str, data: str | None = None) -> SearchConfig:
    """The settings a stopped search started with, read from its ``hypo_search.json``.

    A resumed search runs on the data and with the settings it started with (Ray Tune restores those too), so
    flags such as ``--epochs`` or ``--samples`` do not apply; a ``--data`` other than the search's is refused.

    Args:
        storage_path: Experiment storage (``--storage``).
        name: Experiment name.
        data: ``--data`` if given.

    Raises:
        HypoError: When there is no hypo search to resume there.
        ConfigError: When ``data`` names another dataset than the search's.
    """
    from hypo.config import from_dict

    exp_path = SearchConfig(data="-", storage=storage_path, name=name).experiment_path
    search = read_search_record(exp_path)
    if search is None:
        raise HypoError(f"nothing to resume at {exp_path} (no {SEARCH_META}: not a hypo search)")
    check_layout(search, name)
    saved = from_dict(SearchConfig, search.search)
    saved_data = search.data or storage.absolute(saved.data)
    if data is not None and storage.absolute(data) != saved_data:
        raise ConfigError(f"--resume: {name} ran on {saved_data}, not {storage.absolute(data)}; drop --data to "
                          "resume it")
    return dataclasses.replace(saved, storage=storage_path, name=name, data=saved_data)


def search_record(cfg: SearchConfig, data: TrainingData) -> SearchRecord:
    """What a new search records about itself: its settings, the dataset and every baseline on validation."""
    manifest = data.manifest
    return SearchRecord(search=to_dict(cfg), code_layout=CODE_LAYOUT, search_fingerprint=fingerprint(cfg),
                        data=storage.absolute(cfg.data), dataset_fingerprint=data.fingerprint, label=manifest.label,
                        source=manifest.source.name, simulated=manifest.simulated, baselines=data.baselines)


def set_console(verbose: bool) -> None:
    """Choose Tune's console output: its progress table (False) or a box per trial and event (True).

    Tune's newer console engine prints every trial's configuration and final result as a box (hundreds of lines
    for a search of a few dozen trials) and a ``tensorboard --logdir`` hint into Ray's temporary session folder;
    its classic engine prints one progress table. The experiment folder holds the TensorBoard files
    (``tensorboard --logdir EXPERIMENT``) either way.
    """
    os.environ["RAY_AIR_NEW_OUTPUT"] = "1" if verbose else "0"


def _restored_tuner(cfg: SearchConfig, data: TrainingData):
    """``Tuner.restore`` of the stopped search at ``cfg.experiment_path``, on the dataset it started on.

    Raises:
        HypoError: No Tune experiment there, or one started before the layered layout.
        DatasetError: ``data`` is not the dataset the search started on.
    """
    from ray import tune

    exp_path = cfg.experiment_path
    if not tune.Tuner.can_restore(exp_path):
        raise HypoError(f"nothing to resume at {exp_path} (no Tune experiment there)")
    started = read_search_record(exp_path) or SearchRecord()
    check_layout(started, cfg.name)
    started_on = started.dataset_fingerprint
    if started_on is not None and started_on != data.fingerprint:
        raise DatasetError(f"--resume: {cfg.data} holds dataset {data.fingerprint}, but the search started on "
                           f"{started_on}; rebuild that dataset or start a new search")
    return tune.Tuner.restore(exp_path, trainable=_trainable(cfg, data), resume_unfinished=True,
                              resume_errored=True)


def _new_tuner(cfg: SearchConfig, claim: Claim | None, extra_params: dict[str, Any] | None, log, verbose: bool):
    """A new search's tuner, its name claimed and its record written; the claim given back if it cannot start."""
    from hypo.search.claim import claim_experiment

    if claim is None:
        check_name_free(cfg)  # before the data work (the command line checks it before Ray starts too)
        claim = claim_experiment(cfg.experiment_path)
    try:
        data = load_search_data(cfg.data, cfg.seed, log)
        check_horizon_request(cfg, data.manifest)
        # The record last: a tuner that cannot be built (a bad --optuna-storage, --mlflow without the package)
        # must leave no hypo_search.json, or the folder could be neither started again nor resumed.
        tuner = build_tuner(cfg, data, extra_params, verbose=verbose)
        write_search_record(cfg.experiment_path, search_record(cfg, data))
    except BaseException:
        claim.release()
        raise
    return tuner


def run_search(cfg: SearchConfig, resume: bool = False, extra_params: dict[str, Any] | None = None,
               log=print, verbose: bool = True, claim: Claim | None = None) -> str:
    """Run (or resume) a search and write its leaderboard.

    Args:
        cfg: The search.
        resume: Restore the experiment at ``cfg.experiment_path`` with ``Tuner.restore``: finished trials are
            kept, unfinished and errored ones continue from their last checkpoint, the searcher continues.
        extra_params: Extra constants for every trial (tests use it for failure injection).
        log: Where summary lines go.
        verbose: Tune's per-trial boxes (True) or only its progress table (False).
        claim: The claim on a new search's name, taken before Ray started (:func:`hypo.search.claim.claim_experiment`;
            taken here when None).

    Returns:
        The experiment path.

    Raises:
        ConfigError: The name is taken, or another search claimed it at the same moment.
        SearchInterrupted: When the search stopped before all its trials finished (Ctrl-C).
        PendingTimeout: When no trial could start within ``cfg.pending_timeout_s``.
    """
    exp_path = cfg.experiment_path
    if resume:
        tuner = _restored_tuner(cfg, load_search_data(cfg.data, cfg.seed, log, feature_model=False))
    else:
        tuner = _new_tuner(cfg, claim, extra_params, log, verbose)
    set_console(verbose)
    # On Ctrl-C Tune logs how to resume with its Python API; the command line says how with ours instead.
    logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    errored = results.num_errors
    if resume:
        orphans = mark_orphans(exp_path, {posixpath.basename(str(r.path).rstrip("/")) for r in results})
        if orphans:
            log(f"{len(orphans)} trial folder(s) the killed run started after its last saved state, which this search "
                f"did not know (its searcher suggested trials in their place): marked {ORPHANED}, left out of the "
                f"leaderboard: {', '.join(orphans)}")
    # Tune marks the trials it stops on Ctrl-C as terminated too; a trial's own last result says whether it ended.
    local = local_experiment(exp_path, log=lambda _: None)
    try:
        records = load_trials(local)
    except HypoError:  # no trial folder yet: none ever started
        records = []
    refused = [str(e) for e in (_no_cuda(r.error) for r in results) if e is not None]
    if refused:  # a GPU without CUDA: never trained, and no retry elsewhere helped
        raise NoCudaError(f"{len(refused)} of {len(results)} trials refused: {refused[0]}")
    for line in device_lines(records, cfg.gpus_per_trial):
        log(line)
    status = search_status(records, read_search_record(local)) if records else {"finished": 0, "budget_spent": False}
    finished = status["finished"]
    if finished + errored < cfg.planned_trials and not status["budget_spent"]:
        if not any(r.history for r in records) and wall >= cfg.pending_timeout_s:
            raise PendingTimeout(f"no trial could start within --pending-timeout {cfg.pending_timeout_s:g} s (no "
                                 "node that holds one joined); stopped")
        raise SearchInterrupted(exp_path, finished, cfg.planned_trials)
    budget = f"; its budget of {cfg.trial_epoch_budget} trial-epochs spent" if status["budget_spent"] else ""
    log(f"search finished in {wall:.0f} s: {len(results)} trials, {errored} errored, {finished} finished{budget}")
    return exp_path
