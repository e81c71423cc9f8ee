"""Does the search pay? The paper's grid, random search, Optuna TPE and TPE + ASHA: same space, same budget.

    python bench/search_efficiency.py            # 400 demo cases, 4 epochs, 3 seeds (sized for < 30 min on 2 cores)
    python bench/search_efficiency.py --wide     # also random and TPE + ASHA on the wider default space
    python bench/search_efficiency.py --quick    # 2 configurations, 1 epoch, 1 seed: the benchmark end to end, fast
    python bench/search_efficiency.py --gpu      # trials/hour and GPU memory at 1, 2, 4, 8 trials per GPU

Every strategy searches the paper's space (4 models x k in 21, 42, 84 x cross entropy / focal with gamma 2) on one
fixed demo window dataset, with the same epochs per trial, batch size, concurrent trials and resources, through
the package's own search (``hypo.search.tuner.run_search``), so only the strategy differs:

1. grid: every configuration, full length, no early stopping (``--sampler grid --scheduler none``); its
   trial-epochs (configurations x epochs) are the budget of every other strategy;
2. random: Optuna's random sampler over the same space, no early stopping;
3. TPE: Optuna TPE (multi-objective, as ``tune/search.py`` runs it), no early stopping;
4. TPE + ASHA: as ``tune/search.py`` runs it (``--grace-period``, ``--reduction-factor``); a stopper counting
   trial-epochs over all trials ends each run at the budget.

Every strategy is judged on the validation mean AUROC (the first of the search's two objectives). Trials train
with seed 0 under every strategy, so a configuration learns the same whatever chose it; the strategies'
sampler seeds vary (3 seeds; the grid is deterministic: one run). For each run: the best validation mean AUROC
found against cumulative trial-epochs and against wall time (the anytime curve), and the test mean AUROC of its
best configuration, evaluated once at the end (recorded in the run's ``test_looks.jsonl``). Prints a Markdown
table and writes ``docs/img/search_efficiency.png``. Simulated data: the figures measure the search, not a
clinical model.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hypo.data.demo_dataset import ensure_demo_dataset  # noqa: E402
from hypo.errors import HypoError  # noqa: E402
from hypo.search.tuner import SearchConfig  # noqa: E402

DEFAULTS = {f.name: f.default for f in dataclasses.fields(SearchConfig)}
DATA, DEMO_CASES, EPOCHS, SEEDS, BATCH = "data/demo400", 400, 4, 3, 512
QUICK = {"data": "data/demo-smoke", "demo_cases": 24, "epochs": 1, "seeds": 1, "models": ("cnn",), "ks": (21,)}
PNG = "docs/img/search_efficiency.png"
TOLERANCE = 0.005  # "within 0.005 of the grid's best validation mean AUROC"
GOAL_SHARE = 0.30  # TPE + ASHA should get there within 30% of the grid's trial-epochs
AHEAD_FROM = 0.20  # ... and be ahead of random search at every budget past the first 20%
METRIC = "val_mean_auroc"


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One search strategy of the comparison: SearchConfig fields and the sampler seeds it runs with."""

    key: str
    label: str
    fields: dict[str, Any]
    seeds: tuple[int, ...]


@dataclasses.dataclass
class Run:
    """One run of a strategy: its anytime curves and its best configuration's one test look."""

    strategy: str
    seed: int
    exp_path: str
    by_epoch: list[float]  # best validation mean AUROC after 1, 2, ... trial-epochs
    by_time: list[tuple[float, float]]  # (seconds since the run started, best so far)
    wall_s: float
    best: dict[str, Any] = dataclasses.field(default_factory=dict)  # model, k, loss, gamma, val and test AUROC


# ------------------------------------------------------------------------------------------------ the strategies


def strategies(args: argparse.Namespace, n_configs: int) -> list[Strategy]:
    """The strategies compared (``--wide`` and ``--asha-variant`` add some), each on the same trial-epoch budget."""
    seeds = tuple(range(args.seeds))
    paper = {"space": "paper"}
    asha = {"scheduler": "asha", "grace_period": args.grace_period, "reduction_factor": args.reduction_factor,
            "n_startup_trials": args.n_startup_trials}
    full = {"scheduler": "none", "samples": n_configs}  # as many full-length trials as the grid runs
    budget = n_configs * args.epochs
    out = [
        Strategy("grid", "grid (the paper's)", {**paper, "sampler": "grid", "scheduler": "none"}, (0,)),
        Strategy("random", "random", {**paper, **full, "sampler": "random"}, seeds),
        Strategy("tpe", "TPE", {**paper, **full, "sampler": "tpe", "n_startup_trials": args.n_startup_trials}, seeds),
        # Each trial trains at least one epoch: that many samples cannot run out before the budget does.
        Strategy("tpe_asha", "TPE + ASHA", {**paper, **asha, "sampler": "tpe", "samples": budget}, seeds),
    ]
    for v in args.asha_variant:
        g, rf, n = v
        out.append(Strategy(f"tpe_asha_g{g}_rf{rf}_n{n}", f"TPE + ASHA (grace {g}, rf {rf}, startup {n})",
                            {**paper, "sampler": "tpe", "samples": budget, "scheduler": "asha", "grace_period": g,
                             "reduction_factor": rf, "n_startup_trials": n}, seeds))
    if args.wide:
        wide = {"space": "optuna"}
        out += [
            Strategy("random_wide", "random, wide space", {**wide, "sampler": "random", "scheduler": "none",
                                                           "samples": n_configs}, seeds),
            Strategy("tpe_asha_wide", "TPE + ASHA, wide space", {**wide, **asha, "sampler": "tpe",
                                                                 "samples": budget}, seeds),
        ]
    return out


def search_config(strategy: Strategy, seed: int, args: argparse.Namespace, storage: str, budget: int) -> SearchConfig:
    """The SearchConfig of one run: the strategy's fields on the common settings; trials always train with seed 0."""
    fields = dict(strategy.fields)
    paper = fields.get("space") == "paper"
    return SearchConfig(
        data=args.data, storage=storage, name=f"{strategy.key}-seed{seed}", epochs=args.epochs,
        batch_size=args.batch_size, max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, seed=0, sampler_seed=seed, trial_epoch_budget=budget,
        models=args.models, paper_ks=args.ks if paper else None, **fields,
    )


def run_one(cfg: SearchConfig, log_path: str) -> tuple[str, float]:
    """Run one search through ``run_search``, its console output into ``log_path``; the experiment and seconds."""
    from hypo.search.tuner import run_search

    start = time.time()
    with open(log_path, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            exp = run_search(cfg, verbose=False)
        except HypoError as exc:  # e.g. an errored trial: the trials that reported still count
            print(f"search ended early: {exc}")
            exp = cfg.experiment_path
    return exp, start


# -------------------------------------------------------------------------------------------------- the curves


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def anytime_curves(records, budget: int, start: float) -> tuple[list[float], list[tuple[float, float]]]:
    """Best validation mean AUROC so far after each trial-epoch (all trials, in the order they were reported).

    Args:
        records: The run's trials (``hypo.search.leaderboard.load_trials``).
        budget: Trial-epochs counted (later ones, if any, are left out).
        start: When the run started (``time.time()``).

    Returns:
        The curve against trial-epochs (NaN until the first finite score) and against seconds since ``start``.
    """
    rows = sorted((r.get("reported_at", r.get("timestamp", 0.0)), r.get(METRIC)) for rec in records
                  for r in rec.history)[:budget]
    best, by_epoch, by_time = -math.inf, [], []
    for t, v in rows:
        if _finite(v) and v > best:
            best = v
        value = best if best > -math.inf else math.nan
        by_epoch.append(value)
        by_time.append((t - start, value))
    return by_epoch, by_time


def epochs_to_reach(curve: list[float], target: float) -> int | None:
    """Trial-epochs until the curve first reaches ``target`` (None: never)."""
    for i, v in enumerate(curve, 1):
        if _finite(v) and v >= target - 1e-12:
            return i
    return None


def median_curve(curves: list[list[float]], length: int) -> list[float]:
    """Point-wise median of curves padded to ``length`` with their last value (a run ended by the budget stays)."""
    import numpy as np

    padded = np.array([(c + [c[-1] if c else math.nan] * (length - len(c)))[:length] for c in curves], dtype=float)
    with np.errstate(all="ignore"), _quiet_nan():
        return list(np.nanmedian(padded, axis=0))


@contextlib.contextmanager
def _quiet_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before any trial reported
        yield


def compare_to_random(ours: list[float], random: list[float], from_share: float = AHEAD_FROM) -> dict[str, Any]:
    """Where one median curve stands against random search's at every budget past ``from_share`` of it.

    Returns:
        ``{"ahead", "level", "behind", "budgets", "worst_gap"}``: counts of budgets (trial-epochs) where ``ours``
        is above, equal to or below ``random``, and the largest shortfall (0 when never behind).
    """
    n = min(len(ours), len(random))
    first = max(1, math.ceil(from_share * n))
    out = {"ahead": 0, "level": 0, "behind": 0, "budgets": 0, "worst_gap": 0.0}
    for i in range(first, n + 1):
        a, b = ours[i - 1], random[i - 1]
        a, b = (a if _finite(a) else -math.inf), (b if _finite(b) else -math.inf)
        out["budgets"] += 1
        if math.isclose(a, b, abs_tol=1e-12):
            out["level"] += 1
        elif a > b:
            out["ahead"] += 1
        else:
            out["behind"] += 1
            out["worst_gap"] = max(out["worst_gap"], b - a)
    return out


# --------------------------------------------------------------------------------------------- the test look


def best_configuration(exp_path: str, data_dir: str, by: str = "bench/search_efficiency.py") -> dict[str, Any]:
    """The run's best trial on validation (the leaderboard's top row), evaluated once on the test split.

    The look is recorded in the experiment's ``test_looks.jsonl``, as every look at a test split is.
    """
    from hypo.evaluate.testsplit.looks import record_look
    from hypo.evaluate.testsplit.top_trials import evaluate_checkpoint
    from hypo.learn.metrics import MetricWarning
    from hypo.search.leaderboard import leaderboard_frame, load_trials
    from hypo.storage import sha256_file

    records = {r.trial_id: r for r in load_trials(exp_path)}
    frame = leaderboard_frame(list(records.values()))
    top = frame[frame["rank"] == 1]
    if top.empty:
        return {}
    row = top.iloc[0]
    params = records[row["trial"]].params
    out = {"trial": row["trial"], "model": params["model"], "k": int(params["k"]), "loss": params["loss"],
           "gamma": float(params.get("gamma") or 0.0), "val": float(row[METRIC]), "epoch": int(row["best_epoch"]),
           "test": math.nan}
    ckpt = records[row["trial"]].checkpoint_for(out["epoch"])
    if ckpt is None:
        print(f"{exp_path}: the checkpoint of trial {row['trial']} epoch {out['epoch']} was not kept; no test look")
        return out
    with warnings.catch_warnings():  # strata with an absent class: NaN there, and only the overall AUROC is used
        warnings.simplefilter("ignore", MetricWarning)
        out["test"] = evaluate_checkpoint(ckpt, data_dir, "test")["mean_auroc"]
    record_look(exp_path, by, [{"trial": row["trial"], "rank": 1,
                                "checkpoint_sha256": sha256_file(os.path.join(ckpt, "checkpoint.pt"))}])
    return out


# ------------------------------------------------------------------------------------------- table and figure


def _spread(values: list[float | None], fmt: str) -> str:
    """``median [min-max]`` over seeds.

    None (never reached) counts as worse than any number and shows as 'never'; NaN (nothing to show) is left out.
    """
    keyed = sorted(math.inf if v is None else v for v in values if v is None or not math.isnan(v))
    if not keyed:
        return "n/a"

    def show(v: float) -> str:
        return "never" if math.isinf(v) else format(v, fmt)

    med = statistics.median_high(keyed) if math.isinf(keyed[-1]) else statistics.median(keyed)
    return show(med) if len(keyed) == 1 else f"{show(med)} [{show(keyed[0])}-{show(keyed[-1])}]"


def summary(runs: list[Run], order: list[Strategy], budget: int) -> dict[str, dict[str, Any]]:
    """Per strategy: trial-epochs to within the tolerance of the grid's best, best validation and test AUROC."""
    grid = [r for r in runs if r.strategy == "grid"]
    target = (max(v for v in grid[0].by_epoch if _finite(v)) - TOLERANCE) if grid and grid[0].by_epoch else math.nan
    out = {}
    for s in order:
        mine = [r for r in runs if r.strategy == s.key]
        if not mine:
            continue
        reach = [epochs_to_reach(r.by_epoch, target) for r in mine]
        reached = sorted(math.inf if x is None else x for x in reach)
        out[s.key] = {
            "label": s.label, "space": "paper" if s.fields.get("space") == "paper" else "wide", "runs": len(mine),
            "reach": reach, "reach_median": statistics.median(reached) if reached else math.inf,
            "val": [r.best.get("val", math.nan) for r in mine], "test": [r.best.get("test", math.nan) for r in mine],
            "wall": [r.wall_s for r in mine], "target": target, "budget": budget,
            "best": [r.best for r in mine],
        }
    return out


def table(stats: dict[str, dict[str, Any]], budget: int) -> str:
    """The Markdown table of the summary."""
    lines = ["| strategy | space | runs | trial-epochs to within 0.005 of the grid's best val AUROC | share of the "
             "grid's trial-epochs (%) | best val mean AUROC at the full budget | test mean AUROC of that configuration "
             "| wall time (s) |", "|---|---|---|---|---|---|---|---|"]
    for s in stats.values():
        share = [None if x is None else 100 * x / budget for x in s["reach"]]
        lines.append(f"| {s['label']} | {s['space']} | {s['runs']} | {_spread(s['reach'], 'g')} | "
                     f"{_spread(share, '.0f')} | {_spread(s['val'], '.4f')} | {_spread(s['test'], '.4f')} | "
                     f"{_spread(s['wall'], '.0f')} |")
    return "\n".join(lines)


def goals(stats: dict[str, dict[str, Any]], runs: list[Run], budget: int) -> list[str]:
    """The issue's two goals for TPE + ASHA, each with its verdict."""
    if "tpe_asha" not in stats or "random" not in stats:
        return []
    s = stats["tpe_asha"]
    share = s["reach_median"] / budget
    lines = [f"TPE + ASHA reaches within {TOLERANCE} of the grid's best validation mean AUROC after a median "
             f"{'never' if math.isinf(share) else f'{100 * share:.0f}%'} of the grid's {budget} trial-epochs "
             f"(goal <= {100 * GOAL_SHARE:.0f}%): {'MET' if share <= GOAL_SHARE else 'MISSED'}"]
    med = {k: median_curve([r.by_epoch for r in runs if r.strategy == k], budget) for k in ("tpe_asha", "random")}
    c = compare_to_random(med["tpe_asha"], med["random"])
    lines.append(f"TPE + ASHA against random search, median curves, at each of the {c['budgets']} budgets past the "
                 f"first {100 * AHEAD_FROM:.0f}%: ahead at {c['ahead']}, level at {c['level']}, behind at "
                 f"{c['behind']} (largest shortfall {c['worst_gap']:.4f}; goal: never behind): "
                 f"{'MET' if c['behind'] == 0 else 'MISSED'}")
    return lines


def figure(runs: list[Run], order: list[Strategy], stats: dict[str, dict[str, Any]], budget: int, path: str,
           subtitle: str) -> None:
    """Anytime curves (median over seeds, band from min to max) against trial-epochs and against wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_e, ax_t) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    target = next(iter(stats.values()))["target"] if stats else math.nan
    lows, highs = [], []
    for i, s in enumerate(order):
        mine = [r for r in runs if r.strategy == s.key]
        if not mine:
            continue
        color, style = f"C{i}", "--" if s.fields.get("space") == "optuna" else "-"
        x = np.arange(1, budget + 1)
        curves = np.array([(r.by_epoch + [r.by_epoch[-1] if r.by_epoch else math.nan] * budget)[:budget]
                           for r in mine], dtype=float)
        with _quiet_nan():
            med, lo, hi = np.nanmedian(curves, 0), np.nanmin(curves, 0), np.nanmax(curves, 0)
        label = s.label + (f" ({len(mine)} seeds)" if len(mine) > 1 else "")
        ax_e.plot(x, med, style, color=color, label=label, drawstyle="steps-post")
        if len(mine) > 1:
            ax_e.fill_between(x, lo, hi, color=color, alpha=0.15, step="post")
        t_end = max(r.by_time[-1][0] for r in mine if r.by_time) if any(r.by_time for r in mine) else 1.0
        grid_t = np.linspace(0, t_end, 200)
        on_t = np.array([_at_times(r.by_time, grid_t) for r in mine])
        with _quiet_nan():
            ax_t.plot(grid_t, np.nanmedian(on_t, 0), style, color=color, drawstyle="steps-post")
            if len(mine) > 1:
                ax_t.fill_between(grid_t, np.nanmin(on_t, 0), np.nanmax(on_t, 0), color=color, alpha=0.15,
                                  step="post")
        if np.isfinite(med).any():
            lows.append(np.nanmin(med[np.isfinite(med)]))
            highs.append(np.nanmax(hi[np.isfinite(hi)]))
    for ax in (ax_e, ax_t):
        if _finite(target):
            ax.axhline(target, color="grey", lw=0.8, ls=":", label=f"grid's best - {TOLERANCE}" if ax is ax_e else None)
        ax.set_ylabel("best validation mean AUROC so far")
        ax.grid(alpha=0.3)
    if _finite(target) and lows:  # the interesting part is near the top; the first random trials can be far off
        bottom = min(max(min(lows), target - 0.06), target - 0.002)
        for ax in (ax_e, ax_t):
            ax.set_ylim(bottom, max(max(highs), target + TOLERANCE) + 0.004)
    ax_t.set_xlim(left=0)
    ax_e.axvline(GOAL_SHARE * budget, color="black", lw=0.8, ls="--", label=f"{100 * GOAL_SHARE:.0f}% of the budget")
    ax_e.axvline(AHEAD_FROM * budget, color="black", lw=0.6, ls="-.", label=f"{100 * AHEAD_FROM:.0f}% of the budget")
    ax_e.set_xlabel(f"cumulative trial-epochs (budget: the grid's {budget})")
    ax_t.set_xlabel("wall time since the run started (s)")
    ax_e.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Search efficiency on the paper's space: {subtitle}", fontsize=10)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _at_times(by_time: list[tuple[float, float]], times) -> list[float]:
    """A best-so-far curve read at ``times`` (NaN before its first report)."""
    out, j, cur = [], 0, math.nan
    for t in times:
        while j < len(by_time) and by_time[j][0] <= t:
            cur = by_time[j][1]
            j += 1
        out.append(cur)
    return out


# ---------------------------------------------------------------------------------------------- GPU packing


class GpuMemoryPoll:
    """The most memory ``nvidia-smi`` saw used on the GPUs (MiB, summed over GPUs) while the block ran."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s, self.peak_mib, self._stop = every_s, None, threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=10).stdout
                used = sum(float(x) for x in out.split())
                self.peak_mib = used if self.peak_mib is None else max(self.peak_mib, used)
            except (OSError, ValueError, subprocess.SubprocessError):
                return
            self._stop.wait(self.every_s)

    def __enter__(self) -> GpuMemoryPoll:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def gpu_packing(args: argparse.Namespace, storage: str) -> int:
    """Trials per hour and GPU memory at 1, 2, 4 and 8 trials per GPU (the paper's grid, no early stopping)."""
    import ray

    _init_ray()
    n_gpus = int(ray.cluster_resources().get("GPU", 0))
    if n_gpus == 0:
        print("no GPU: Ray sees no GPU on this cluster; exiting")
        return 0
    cpus = ray.cluster_resources().get("CPU", 1)
    _data(args)
    from hypo.search.leaderboard import load_trials

    print("| trials per GPU | GPUs | trials | epochs each | trials/hour | per-trial peak GPU memory reserved by "
          "PyTorch, median [max] (MiB) | peak GPU memory used, all GPUs (MiB) |\n|---|---|---|---|---|---|---|")
    for per_gpu in (1, 2, 4, 8):
        concurrent = per_gpu * n_gpus
        cfg = SearchConfig(data=args.data, storage=storage, name=f"gpu-{per_gpu}", space="paper", sampler="grid",
                           scheduler="none", epochs=args.gpu_epochs, batch_size=args.batch_size,
                           max_concurrent=concurrent, cpus_per_trial=min(1.0, cpus / concurrent),
                           gpus_per_trial=1.0 / per_gpu, models=args.models, paper_ks=args.ks)
        with GpuMemoryPoll() as poll:
            exp, _ = run_one(cfg, os.path.join(storage, f"gpu-{per_gpu}.log"))
        trials = [t for t in load_trials(exp) if t.history]
        t0 = min(t.history[0]["reported_at"] - t.history[0]["time_this_iter_s"] for t in trials)
        span = max(r["reported_at"] for t in trials for r in t.history) - t0
        peaks = sorted(max(r.get("gpu_peak_mib", 0.0) for r in t.history) for t in trials)
        used = "n/a" if poll.peak_mib is None else f"{poll.peak_mib:,.0f}"
        print(f"| {per_gpu} | {n_gpus} | {len(trials)} | {args.gpu_epochs} | {len(trials) * 3600 / span:,.0f} | "
              f"{statistics.median(peaks):,.0f} [{peaks[-1]:,.0f}] | {used} |")
    print("trials/hour over the span from the first trial's start to the last report (Tune's start-up excluded)")
    ray.shutdown()
    return 0


# ------------------------------------------------------------------------------------------------------ main


def _init_ray() -> None:
    from hypo.runtime import init_ray

    init_ray("local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")


def _data(args: argparse.Namespace) -> None:
    """Build the demo dataset at ``--data`` when it is the default one and missing."""
    if args.data in (DATA, QUICK["data"]) or not os.path.exists(os.path.join(args.data, "manifest.json")):
        ensure_demo_dataset(args.data, args.demo_cases)


def _variant(text: str) -> tuple[int, int, int]:
    try:
        g, rf, n = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GRACE:RF:STARTUP (e.g. 1:3:5), got {text!r}") from None
    return g, rf, n


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's arguments (``--quick`` fills in its own small settings)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help=f"window dataset (default {DATA}, built from the demo if missing)")
    p.add_argument("--demo-cases", type=int, default=None, help=f"demo cases when building it (default {DEMO_CASES})")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs per trial (default {EPOCHS})")
    p.add_argument("--seeds", type=int, default=None, help=f"sampler seeds of each non-grid strategy (default {SEEDS})")
    p.add_argument("--batch-size", type=int, default=BATCH)
    p.add_argument("--max-concurrent", type=int, default=2, help="trials at once, for every strategy")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", default="auto",
                   help="a number, or auto (as hypo search: a share of a GPU when there is one, else 0)")
    p.add_argument("--grace-period", type=int, default=DEFAULTS["grace_period"], help="TPE + ASHA's grace period")
    p.add_argument("--reduction-factor", type=int, default=DEFAULTS["reduction_factor"],
                   help="TPE + ASHA's reduction factor")
    p.add_argument("--n-startup-trials", type=int, default=DEFAULTS["n_startup_trials"],
                   help="TPE's random trials before its model")
    p.add_argument("--asha-variant", type=_variant, action="append", default=[], metavar="GRACE:RF:STARTUP",
                   help="also run TPE + ASHA with these settings (repeatable), e.g. 1:3:5")
    p.add_argument("--wide", action="store_true",
                   help="also random and TPE + ASHA on the default, wider space (k on a log scale, gamma searched)")
    p.add_argument("--quick", action="store_true", help="2 configurations (cnn, k 21, both losses), 1 epoch, 1 seed")
    p.add_argument("--gpu", action="store_true", help="only the GPU packing figures ('no GPU' and exit 0 without one)")
    p.add_argument("--gpu-epochs", type=int, default=2, help="epochs per trial in --gpu")
    p.add_argument("--storage", default=None, help="where the runs' experiments go (default: a new temporary folder)")
    p.add_argument("--png", default=PNG, help=f"the figure (default {PNG})")
    args = p.parse_args(argv)
    q = args.quick
    args.data = args.data or (QUICK["data"] if q else DATA)
    args.demo_cases = args.demo_cases or (QUICK["demo_cases"] if q else DEMO_CASES)
    args.epochs = args.epochs or (QUICK["epochs"] if q else EPOCHS)
    args.seeds = args.seeds or (QUICK["seeds"] if q else SEEDS)
    args.models, args.ks = (QUICK["models"], QUICK["ks"]) if q else (None, None)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every strategy, print the table and the goals, write the figure."""
    args = parse_args(argv)
    # Trials checkpoint every epoch by design; Tune's note that this snapshots often is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            print("no GPU: torch sees no CUDA device here, so there is nothing to pack; exiting")
            return 0
    storage = os.path.abspath(args.storage or tempfile.mkdtemp(prefix="hypo-bench-search-efficiency-"))
    os.makedirs(storage, exist_ok=True)
    if args.gpu:
        return gpu_packing(args, storage)

    import ray

    from hypo.data.dataset import read_manifest
    from hypo.search.leaderboard import load_trials
    from hypo.search.space import paper_grid

    _init_ray()
    import optuna

    from hypo.search.resources import plan_trial_resources

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per study created, ten times over

    args.gpus_per_trial = plan_trial_resources(args.cpus_per_trial, _gpus(args.gpus_per_trial),
                                               DEFAULTS["pending_timeout_s"], log=lambda s: None)
    _data(args)
    manifest = read_manifest(args.data)
    windows = {split: manifest.split_counts(split).windows for split in ("train", "val")}
    n_configs = len(paper_grid(args.models, args.ks))
    budget = n_configs * args.epochs
    order = strategies(args, n_configs)
    settings = (f"{windows['train']:,} training / {windows['val']:,} validation windows ({args.data}), "
                f"{n_configs} configurations x {args.epochs} epochs = {budget} trial-epochs per run, batch "
                f"{args.batch_size}, {args.max_concurrent} trials at once, {args.cpus_per_trial:g} CPU"
                + (f" and {args.gpus_per_trial:g} GPU" if args.gpus_per_trial else "") + " per trial")
    print(f"search efficiency: {settings}; {os.cpu_count()} CPUs; runs in {storage}")
    runs: list[Run] = []
    started = time.time()
    total = sum(len(s.seeds) for s in order)
    for s in order:
        for seed in s.seeds:
            if len(runs) == 1:  # every run spends the same budget: the first one says how long the rest take
                took = time.time() - started
                print(f"  ({total - 1} more runs of the same budget: roughly {(total - 1) * took / 60:.0f} more "
                      "minutes)")
            cfg = search_config(s, seed, args, storage, budget)
            exp, start = run_one(cfg, os.path.join(storage, f"{cfg.name}.log"))
            records = load_trials(exp)
            by_epoch, by_time = anytime_curves(records, budget, start)
            run = Run(s.key, seed, exp, by_epoch, by_time, wall_s=by_time[-1][0] if by_time else math.nan)
            run.best = best_configuration(exp, args.data)
            runs.append(run)
            b = run.best
            print(f"{s.label}, seed {seed}: {len(by_epoch)} trial-epochs over {len(records)} trials in "
                  f"{run.wall_s:.0f} s; best val mean AUROC {b.get('val', math.nan):.4f} ({b.get('model')} k "
                  f"{b.get('k')} {b.get('loss')}), its test mean AUROC {b.get('test', math.nan):.4f}")
    ray.shutdown()
    stats = summary(runs, order, budget)
    md = table(stats, budget)
    verdicts = goals(stats, runs, budget)
    grid_best = stats["grid"]["target"] + TOLERANCE
    print(f"\njudged on validation mean AUROC (the first of the search's two objectives); grid's best "
          f"{grid_best:.4f}; medians [min-max] over seeds; 'never' = not within {TOLERANCE} at the full budget")
    print(md)
    for line in verdicts:
        print(line)
    subtitle = (f"{n_configs} configurations x {args.epochs} epochs, {args.seeds} seed(s), "
                f"{args.max_concurrent} trials at once; simulated demo data")
    figure(runs, order, stats, budget, args.png, subtitle)
    with open(os.path.join(storage, "search_efficiency.json"), "w") as f:
        json.dump({"settings": settings, "when": datetime.datetime.now().isoformat(timespec="seconds"),
                   "args": vars(args), "table": md, "goals": verdicts,
                   "runs": [dataclasses.asdict(r) for r in runs]}, f, indent=1, default=str)
    with open(os.path.join(storage, "search_efficiency.md"), "w") as f:
        f.write(md + "\n\n" + "\n".join(verdicts) + "\n")
    print(f"wrote {args.png}, {storage}/search_efficiency.md and .json in {time.time() - started:.0f} s")
    return 0


def _gpus(value: str) -> str | float:
    return value if value == "auto" else float(value)


if __name__ == "__main__":
    sys.exit(main())
