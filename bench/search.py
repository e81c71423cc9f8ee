"""Search benchmark on the demo cohort: concurrency scaling, ASHA's savings, time to the first leaderboard row.

    python bench/search.py                 # builds data/demo if missing (100 simulated cases)
    python bench/search.py --trials 6 --epochs 6

Prints (figures, not a timed test):
- trials per hour with 1 and with 2 concurrent trials on this machine (goal: ratio >= 1.7 on 2 cores);
- trial-epochs spent by ASHA versus the same trials run to full length, and the best validation mean AUROC
  of each (goals: at most 40% of the epochs, best within 0.005);
- time from the search's start to its first leaderboard row (the first reported epoch).
The same fixed configurations run in every mode (a grid, not the sampler), so the comparisons are like for like.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hypo.leaderboard import load_trials  # noqa: E402
from hypo.search import SearchConfig, _callbacks, _trainable, load_search_data  # noqa: E402
from hypo.search_cli import ensure_demo_data  # noqa: E402

BATCH = 512  # the demo dataset has ~16k training windows (see tune/search.py)

CONFIGS = [  # a spread of sizes and both losses
    {"model": "cnn_cnn", "k": 42, "loss": "focal", "gamma": 2.0},
    {"model": "cnn", "k": 32, "loss": "ce", "gamma": 0.0},
    {"model": "cnn_lstm", "k": 32, "loss": "focal", "gamma": 1.0},
    {"model": "lstm", "k": 16, "loss": "ce", "gamma": 0.0},
    {"model": "cnn_cnn", "k": 16, "loss": "ce", "gamma": 0.0},
    {"model": "cnn", "k": 8, "loss": "focal", "gamma": 3.0},
    {"model": "cnn_cnn", "k": 84, "loss": "ce", "gamma": 0.0},
    {"model": "cnn_lstm", "k": 64, "loss": "ce", "gamma": 0.0},
    {"model": "lstm", "k": 32, "loss": "focal", "gamma": 2.0},
]


def run(data, configs, epochs, concurrent, asha, storage, name, grace=1, rf=3):
    """Run ``configs`` once; return wall time, trials and the first report's delay."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from hypo.search_space import LOSSES, MODELS

    cfg = SearchConfig(data="-", storage=storage, name=name, epochs=epochs, max_concurrent=concurrent,
                       batch_size=BATCH)
    sched = (ASHAScheduler(metric="val_mean_auroc", mode="max", max_t=epochs, grace_period=grace, reduction_factor=rf)
             if asha else FIFOScheduler())
    tuner = tune.Tuner(
        _trainable(cfg, data),
        param_space={"epochs": epochs, "batch_size": BATCH, "seed": 0, "model": tune.choice(MODELS),
                     "k": tune.randint(8, 129), "loss": tune.choice(LOSSES), "gamma": tune.uniform(0, 5)},
        tune_config=tune.TuneConfig(scheduler=sched, max_concurrent_trials=concurrent, num_samples=len(configs),
                                    search_alg=BasicVariantGenerator(points_to_evaluate=configs)),
        run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=_callbacks(cfg), verbose=0),
    )
    start = time.time()
    tuner.fit()
    wall = time.time() - start
    trials = load_trials(os.path.join(storage, name))
    first = min(r["timestamp"] for t in trials for r in t.history) - start
    return wall, trials, first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/demo")
    p.add_argument("--demo-cases", type=int, default=100)
    p.add_argument("--trials", type=int, default=6, help="configurations for the concurrency comparison")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--asha-trials", type=int, default=9)
    p.add_argument("--asha-epochs", type=int, default=9)
    args = p.parse_args()

    import ray

    ray.init(num_cpus=os.cpu_count(), logging_level="ERROR", log_to_driver=False)
    ensure_demo_data(args.data, args.demo_cases)
    data = load_search_data(args.data)
    print(f"dataset {args.data}: {len(data['train'])} train / {len(data['val'])} val windows; "
          f"{os.cpu_count()} CPUs")
    storage = tempfile.mkdtemp(prefix="hypo-bench-search-")
    cfgs = [dict(c) for c in CONFIGS[: args.trials]]
    rows = {}
    for conc in (1, 2):
        wall, trials, first = run(data, cfgs, args.epochs, conc, False, storage, f"conc{conc}")
        rows[conc] = (wall, len(trials) * 3600 / wall, first)
        print(f"{conc} concurrent: {len(trials)} trials x {args.epochs} epochs in {wall:.1f} s = "
              f"{rows[conc][1]:.1f} trials/hour; first leaderboard row after {first:.1f} s")
    ratio = rows[2][1] / rows[1][1]
    print(f"trials/hour ratio 2 vs 1 concurrent: {ratio:.2f} (goal >= 1.7: {'PASS' if ratio >= 1.7 else 'MISS'})")

    acfgs = [dict(c) for c in CONFIGS[: args.asha_trials]]
    _, full, _ = run(data, acfgs, args.asha_epochs, 2, False, storage, "full")
    _, asha, _ = run(data, acfgs, args.asha_epochs, 2, True, storage, "asha")
    e_full = sum(len(t.history) for t in full)
    e_asha = sum(len(t.history) for t in asha)
    best_full = max(r["val_mean_auroc"] for t in full for r in t.history)
    best_asha = max(r["val_mean_auroc"] for t in asha for r in t.history)
    share = e_asha / e_full
    print(f"ASHA: {e_asha} trial-epochs vs {e_full} at full length = {100 * share:.0f}% "
          f"(goal <= 40%: {'PASS' if share <= 0.4 else 'MISS'})")
    print(f"best val mean AUROC: ASHA {best_asha:.4f} vs full {best_full:.4f} (diff {best_full - best_asha:+.4f}; "
          f"goal within 0.005: {'PASS' if best_full - best_asha <= 0.005 else 'MISS'})")
    print(f"time to first leaderboard row: {rows[2][2]:.1f} s (2 concurrent)")
    ray.shutdown()


if __name__ == "__main__":
    main()
