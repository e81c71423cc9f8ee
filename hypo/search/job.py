"""``hypo search`` as one job: start or resume a search, on the data and resources it needs, and show its board.

search_job(SearchRequest(config=SearchConfig(data="data/demo"), demo=True))
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypo.errors import Interrupted
from hypo.search.tuner import SearchConfig


@dataclasses.dataclass(frozen=True)
class SearchRequest:
    """What ``hypo search`` was asked to do.

    Attributes:
        config: The search (a new one); None with ``resume``.
        resume: Restore the search ``name`` under ``storage`` with its own data and settings.
        name: The search to resume.
        storage: Where the experiments are (for ``resume``).
        data: With ``resume``: the dataset, when it moved since the search started.
        demo: Build the demo dataset at ``config.data`` when it is missing (the zero-argument search).
        demo_cases: Cases of that demo dataset.
        gpus_per_trial: A number, or ``"auto"`` (resolved once Ray has started).
        address: The Ray cluster (``runtime.init_ray``).
        cluster_config: The cluster YAML whose node types the autoscaler may add.
        verbose: Tune's per-trial boxes and the workers' logs.
        command: How the user runs the search, for the resume line (``hypo search`` or ``python tune/search.py``).
    """

    config: SearchConfig | None = None
    resume: bool = False
    name: str | None = None
    storage: str = "runs"
    data: str | None = None
    demo: bool = False
    demo_cases: int = 200
    gpus_per_trial: str | float = "auto"
    address: str | None = None
    cluster_config: str | None = None
    verbose: bool = False
    command: str = "hypo search"


def search_job(req: SearchRequest, log=print) -> dict[str, Any]:
    """Run (or resume) the search and show its leaderboard.

    Every check that needs no Ray (flags, the name, the dataset's manifest) comes before Ray starts, and so does the
    new search's claim on its name (:mod:`hypo.search.claim`).

    Returns:
        What :func:`hypo.search.board.show_leaderboard` returns.

    Raises:
        Interrupted: After Ctrl-C, once the partial leaderboard is shown; the message says how to resume.
    """
    from hypo.data.dataset import describe_dataset, read_manifest
    from hypo.runtime import init_ray
    from hypo.search.claim import claim_experiment
    from hypo.search.resources import plan_trial_resources
    from hypo.search.tuner import check_name_free, preflight, resumed_config

    def with_resources(cfg: SearchConfig, gpus: str | float) -> SearchConfig:
        gpus = plan_trial_resources(cfg.cpus_per_trial, gpus, cfg.pending_timeout_s, req.cluster_config, log=log)
        return dataclasses.replace(cfg, gpus_per_trial=gpus)

    if req.resume:  # the data, settings and resolved resources the search started with
        cfg = resumed_config(req.storage, req.name, req.data)
        init_ray(req.address, quiet=not req.verbose)
        log(f"data {cfg.data}: {describe_dataset(read_manifest(cfg.data))}")
        cfg = with_resources(cfg, cfg.gpus_per_trial)
        return _run(cfg, req, log)
    cfg = req.config
    check_name_free(cfg)  # --name too: a search already there is refused before any work
    if not req.demo:
        preflight(cfg)  # the dataset too, when it exists already
    claim = claim_experiment(cfg.experiment_path)  # atomic: of two searches started at once, one goes on
    try:
        init_ray(req.address, quiet=not req.verbose)
        cfg = with_resources(cfg, req.gpus_per_trial)
        if req.demo:
            from hypo.data.demo_dataset import ensure_demo_dataset

            ensure_demo_dataset(cfg.data, req.demo_cases, log=log)
        log(f"data {cfg.data}: {describe_dataset(read_manifest(cfg.data))}")
    except BaseException:
        claim.release()
        raise
    return _run(cfg, req, log, claim)


def _run(cfg: SearchConfig, req: SearchRequest, log, claim=None) -> dict[str, Any]:
    """Run or resume the search; on Ctrl-C show the partial leaderboard and say how to resume."""
    from hypo.search.board import show_leaderboard
    from hypo.search.tuner import SearchInterrupted, run_search

    try:
        exp_path = run_search(cfg, resume=req.resume, verbose=req.verbose, claim=claim)
    except SearchInterrupted as exc:
        show_leaderboard(exc.exp_path, log=log)
        storage_flag = "" if cfg.storage == "runs" else f" --storage {cfg.storage}"
        raise Interrupted(f"interrupted after {exc.finished} of {exc.planned} trials; resume with: {req.command} "
                          f"--resume --name {cfg.name}{storage_flag}") from None
    return show_leaderboard(exp_path, log=log)
