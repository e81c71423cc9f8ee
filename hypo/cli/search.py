"""``hypo search`` (also ``python tune/search.py``): with no arguments, the whole job on the embedded demo cohort."""

from __future__ import annotations

import argparse
import datetime
import os
from typing import Any

from hypo.errors import ConfigError
from hypo.runtime import OneLineParser
from hypo.search.experiments import latest_search
from hypo.search.resources import AUTO_GPU_SHARE
from hypo.search.tuner import SAMPLERS, SCHEDULERS, SEARCH_HEADS, SPACES, SearchConfig

DEMO_DATA = "data/demo"
DEFAULT_SAMPLES = 12
DEMO_CASES = 200
DEMO_BATCH = 512  # the demo cohort has ~20k training windows: 4096 would leave a handful of steps per epoch
PAPER_BATCH = 4096
PROG = "hypo search"
ASHA_DEFAULTS = {"grace_period": SearchConfig.grace_period, "reduction_factor": SearchConfig.reduction_factor}
SMOKE = {"cases": 24, "samples": 2, "epochs": 2, "data": "data/demo-smoke"}


def parse_args(argv: list[str] | None = None, prog: str = PROG) -> argparse.Namespace:
    """Arguments of ``hypo search``."""
    p = OneLineParser(
        prog=prog,
        description="Search model, width k, loss and focal gamma with Ray Tune + Optuna; print the leaderboard.",
    )
    p.add_argument("--data", default=None, help=f"window dataset folder (default: build the demo one in {DEMO_DATA})")
    p.add_argument("--samples", type=int, default=None,
                   help=f"number of trials sampled (default {DEFAULT_SAMPLES}); the paper's grid runs its own 24")
    p.add_argument("--max-concurrent", type=int, default=2, help="trials running at once")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial")
    p.add_argument("--gpus-per-trial", type=_gpus, default="auto",
                   help="GPUs per trial: a number (0.25 runs 4 trials per GPU) or auto (the default): "
                        f"{AUTO_GPU_SHARE:g} when the cluster has or can add GPUs, else 0")
    p.add_argument("--epochs", type=int, default=10, help="epochs per trial (the paper: 35)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"batch size (default {PAPER_BATCH} as in the paper; {DEMO_BATCH} on the built-in demo data)")
    p.add_argument("--storage", default="runs", help="experiment storage: local folder, shared folder or s3://...")
    p.add_argument("--name", default=None, help="experiment name (default: search-<date>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="restore a stopped or killed search (--name, or latest) with its own data and settings")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial")
    p.add_argument("--space", choices=SPACES, default="optuna",
                   help="optuna: define-by-run; paper: the study's grid; ablation: which signal groups matter (the "
                        "optuna space plus the subset of ECG, NIBP, PLETH, MAC, BIS a model reads, starting with "
                        "all groups and each one left out)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="how configurations are chosen: grid (every one of --space paper), tpe (Optuna TPE) or random "
                        "(default: grid for --space paper, tpe for the others)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default="asha",
                   help="asha: stop weak trials early (default); none: every trial runs all its epochs")
    p.add_argument("--trial-epoch-budget", type=int, default=None, metavar="N",
                   help="end the search once its trials have trained N epochs in all")
    p.add_argument("--search-lr", action="store_true", help="also search the learning rate")
    p.add_argument("--search-signals", action="store_true",
                   help="also search the signal groups a model reads (as --space ablation does)")
    p.add_argument("--channel-dropout", type=float, default=0.0, metavar="P",
                   help="every trial trains with channel dropout P (each signal group of a window absent with "
                        "chance P), so its model predicts when a monitor lacks a signal")
    p.add_argument("--head", choices=SEARCH_HEADS, default="class",
                   help="class: the 3-class output only (default); hazard: also a discrete-time hazard head whose "
                        "risk by each horizon cannot fall as the horizon grows; independent: a risk per horizon; "
                        "either: hazard or independent, searched (datasets built with hypo windows --horizons)")
    p.add_argument("--objective-horizon", type=int, default=None, metavar="S",
                   help="rank trials on the hypotension AUROC and AUPRC by S seconds (a horizon of the dataset) "
                        "instead of the primary horizon's mean AUROC and summed AUPRC")
    p.add_argument("--grace-period", type=int, default=None,
                   help=f"ASHA: epochs before a trial can be stopped (default {ASHA_DEFAULTS['grace_period']})")
    p.add_argument("--reduction-factor", type=int, default=None,
                   help=f"ASHA: reduction factor (default {ASHA_DEFAULTS['reduction_factor']})")
    p.add_argument("--optuna-storage", default=None, help="Optuna storage URL (default: SQLite in the experiment)")
    p.add_argument("--mlflow", default=None, metavar="URI", help="also log to MLflow at this tracking URI")
    p.add_argument("--demo-cases", type=int, default=DEMO_CASES, help="cases of the demo dataset built when needed")
    p.add_argument("--address", default=None,
                   help="Ray cluster: HOST:PORT, auto or local (default $RAY_ADDRESS, else the cluster `ray start`"
                        " recorded on this machine if it answers, else a local Ray)")
    p.add_argument("--cluster-config", default=None, metavar="YAML",
                   help="cluster YAML whose node types the autoscaler may add (default: the head node's "
                        "~/ray_bootstrap_config.yaml when present)")
    p.add_argument("--pending-timeout", type=float, default=900.0, metavar="S",
                   help="stop cleanly when no trial could start within S seconds (an autoscaler that adds no node)")
    p.add_argument("--verbose", action="store_true", help="Tune's per-trial boxes and the workers' logs too")
    p.add_argument("--smoke-test", action="store_true", help="a tiny search end to end, for checking a set-up")
    return p.parse_args(argv)


def _gpus(value: str) -> str | float:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {value!r}") from None


def _asha_options(args: argparse.Namespace) -> dict[str, int]:
    """``--grace-period`` and ``--reduction-factor`` (ASHA's), refused with ``--scheduler none``, which ignores them."""
    given = {k: getattr(args, k) for k in ASHA_DEFAULTS if getattr(args, k) is not None}
    if given and args.scheduler == "none":
        flags = " and ".join("--" + k.replace("_", "-") for k in given)
        raise ConfigError(f"{flags} tune ASHA's early stopping; --scheduler none has none (leave them out, or use "
                          "--scheduler asha)")
    return {**ASHA_DEFAULTS, **given}


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The SearchConfig the arguments describe (validated)."""
    name = args.name
    if name is None:
        if args.resume:
            name = latest_search(args.storage)
        else:
            name = "search-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    grid = args.space == "paper" and args.sampler in (None, "grid")
    if grid and args.samples is not None:
        raise ConfigError("--samples does not apply to --space paper: it runs the study's whole grid (--sampler "
                          "tpe or random samples it instead)")
    samples = DEFAULT_SAMPLES if args.samples is None else args.samples
    return SearchConfig(
        data=args.data, name=name, storage=args.storage, space=args.space, samples=samples,
        max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=0.0 if args.gpus_per_trial == "auto" else args.gpus_per_trial,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, search_lr=args.search_lr,
        **_asha_options(args), optuna_storage=args.optuna_storage,
        mlflow=args.mlflow, pending_timeout_s=args.pending_timeout, search_signals=args.search_signals,
        channel_dropout=args.channel_dropout, sampler=args.sampler, scheduler=args.scheduler,
        trial_epoch_budget=args.trial_epoch_budget, head=args.head, objective_horizon=args.objective_horizon,
    )


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo search``; the work is :func:`hypo.search.job.search_job`."""
    from hypo.runtime import one_line_errors
    from hypo.search.job import SearchRequest, search_job

    args = parse_args(argv, prog)
    # Trials checkpoint every epoch by design (resume, ASHA); Tune's note that this snapshots often is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    command = "python tune/search.py" if prog.endswith("search.py") else "hypo search"
    with one_line_errors(prog):
        if args.smoke_test:
            args.epochs, args.demo_cases = SMOKE["epochs"], SMOKE["cases"]
            args.samples = None if args.space == "paper" and args.sampler in (None, "grid") else SMOKE["samples"]
            args.data = args.data or SMOKE["data"]
        if args.resume:
            req = SearchRequest(resume=True, name=args.name or latest_search(args.storage), storage=args.storage,
                                data=args.data, address=args.address, cluster_config=args.cluster_config,
                                verbose=args.verbose, command=command)
            return search_job(req)
        demo = args.data is None or args.smoke_test
        args.data = args.data or DEMO_DATA
        if args.batch_size is None:
            args.batch_size = DEMO_BATCH if demo else PAPER_BATCH
        req = SearchRequest(config=config_from_args(args), demo=demo, demo_cases=args.demo_cases,  # flags checked
                            gpus_per_trial=args.gpus_per_trial, address=args.address,
                            cluster_config=args.cluster_config, verbose=args.verbose, command=command)
        return search_job(req)
