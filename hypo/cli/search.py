"""``hypo search`` (also ``python tune/search.py``): with no arguments, the whole job on the embedded demo cohort."""

from __future__ import annotations

import argparse
import datetime
import os
from typing import Any

from hypo import storage
from hypo.errors import ConfigError
from hypo.runtime import OneLineParser
from hypo.search.tuner import SPACES, SearchConfig

DEMO_DATA = "data/demo"
DEFAULT_SAMPLES = 12
DEMO_CASES = 200
DEMO_BATCH = 512  # the demo cohort has ~20k training windows: 4096 would leave a handful of steps per epoch
PAPER_BATCH = 4096
PROG = "hypo search"
SMOKE = {"cases": 24, "samples": 2, "epochs": 2, "data": "data/demo-smoke"}


def parse_args(argv: list[str] | None = None, prog: str = PROG) -> argparse.Namespace:
    """Arguments of ``hypo search``."""
    p = OneLineParser(
        prog=prog,
        description="Search model, width k, loss and focal gamma with Ray Tune + Optuna; print the leaderboard.",
    )
    p.add_argument("--data", default=None, help=f"window dataset folder (default: build the demo one in {DEMO_DATA})")
    p.add_argument("--samples", type=int, default=None,
                   help=f"number of trials (optuna space; default {DEFAULT_SAMPLES}); the paper grid has its own")
    p.add_argument("--max-concurrent", type=int, default=2, help="trials running at once")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial; 0.25 runs 4 trials per GPU")
    p.add_argument("--epochs", type=int, default=10, help="epochs per trial (the paper: 35)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"batch size (default {PAPER_BATCH} as in the paper; {DEMO_BATCH} on the built-in demo data)")
    p.add_argument("--storage", default="runs", help="experiment storage: local folder, shared folder or s3://...")
    p.add_argument("--name", default=None, help="experiment name (default: search-<date>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="restore a stopped or killed search (--name, or latest) with its own data and settings")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial")
    p.add_argument("--space", choices=SPACES, default="optuna", help="optuna: define-by-run; paper: the study's grid")
    p.add_argument("--search-lr", action="store_true", help="also search the learning rate")
    p.add_argument("--grace-period", type=int, default=2, help="ASHA: epochs before a trial can be stopped")
    p.add_argument("--reduction-factor", type=int, default=3, help="ASHA: reduction factor")
    p.add_argument("--optuna-storage", default=None, help="Optuna storage URL (default: SQLite in the experiment)")
    p.add_argument("--mlflow", default=None, metavar="URI", help="also log to MLflow at this tracking URI")
    p.add_argument("--demo-cases", type=int, default=DEMO_CASES, help="cases of the demo dataset built when needed")
    p.add_argument("--address", default=None, help="Ray cluster address (default $RAY_ADDRESS, else local)")
    p.add_argument("--smoke-test", action="store_true", help="a tiny search end to end, for checking a set-up")
    return p.parse_args(argv)


def _latest_experiment(storage_path: str) -> str:
    if storage.is_uri(storage_path):
        raise ConfigError(f"--resume with --storage {storage_path}: name the search with --name")
    root = os.path.abspath(os.path.expanduser(storage_path))
    names = [n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n))] if os.path.isdir(root) else []
    if not names:
        raise ConfigError(f"--resume: no experiment under {root}; pass --name")
    return max(names, key=lambda n: os.path.getmtime(os.path.join(root, n)))


def ensure_demo_data(path: str, cases: int, log=print) -> None:
    """Build the demo window dataset at ``path`` unless a manifest is already there."""
    if storage.exists(storage.join(path, "manifest.json")):
        return
    from hypo.config import WindowConfig
    from hypo.data.preprocess import build_windows
    from hypo.data.sources.demo import DemoSource

    log(f"building the demo window dataset ({cases} simulated cases) in {path}")
    build_windows(DemoSource(n_cases=cases, seed=0), WindowConfig(), path, log=log)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The SearchConfig the arguments describe (validated)."""
    name = args.name
    if name is None:
        if args.resume:
            name = _latest_experiment(args.storage)
        else:
            name = "search-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.space == "paper" and args.samples is not None:
        raise ConfigError("--samples does not apply to --space paper: it runs the study's whole grid")
    samples = DEFAULT_SAMPLES if args.samples is None else args.samples
    return SearchConfig(
        data=args.data, name=name, storage=args.storage, space=args.space, samples=samples,
        max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, search_lr=args.search_lr,
        grace_period=args.grace_period, reduction_factor=args.reduction_factor, optuna_storage=args.optuna_storage,
        mlflow=args.mlflow,
    )


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo search``."""
    from hypo.cli.leaderboard import show_leaderboard
    from hypo.runtime import init_ray, one_line_errors
    from hypo.search.tuner import preflight, resumed_config, run_search

    args = parse_args(argv, prog)
    # Trials checkpoint every epoch by design (resume, ASHA); Tune's note that this snapshots often is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    with one_line_errors(prog):
        if args.smoke_test:
            args.epochs, args.demo_cases = SMOKE["epochs"], SMOKE["cases"]
            args.samples = None if args.space == "paper" else SMOKE["samples"]
            args.data = args.data or SMOKE["data"]
        if args.resume:  # the data and settings the search started with
            cfg = resumed_config(args.storage, args.name or _latest_experiment(args.storage), args.data)
            init_ray(args.address)
            return show_leaderboard(run_search(cfg, resume=True))
        demo = args.data is None or args.smoke_test
        args.data = args.data or DEMO_DATA
        if args.batch_size is None:
            args.batch_size = DEMO_BATCH if demo else PAPER_BATCH
        cfg = config_from_args(args)  # every flag checked before Ray starts
        if not demo:
            preflight(cfg.data)  # the dataset too, when it exists already
        init_ray(args.address)
        if demo:
            ensure_demo_data(args.data, args.demo_cases)
        return show_leaderboard(run_search(cfg))
