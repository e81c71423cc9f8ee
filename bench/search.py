"""Search benchmark on the demo cohort: concurrency scaling, ASHA's savings, time to the first leaderboard row.

    python bench/search.py                 # builds data/demo800 if missing (800 simulated cases, ~65k windows)
    python bench/search.py --trials 6 --epochs 8 --skip-asha

Prints (figures, not a timed test):
- trials per hour with 1 and with 2 concurrent trials on this machine (goal: ratio >= 1.7 on 2 cores), beside
  the ratio two plain one-thread training processes reach outside Ray (the machine's own ceiling);
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

from hypo.data.demo_dataset import ensure_demo_dataset  # noqa: E402
from hypo.search.leaderboard import load_trials  # noqa: E402
from hypo.search.tuner import SearchConfig, _callbacks, _trainable, load_search_data  # noqa: E402

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


def draw_configs(n: int, seed: int = 0) -> list[dict]:
    """``n`` configurations: :data:`CONFIGS` first, then seeded draws from the search space, in a seeded order."""
    import numpy as np

    from hypo.search.space import LOSSES, MODELS

    rng = np.random.default_rng(seed)
    out = [dict(c) for c in CONFIGS[:n]]
    while len(out) < n:
        loss = str(rng.choice(LOSSES))
        out.append({"model": str(rng.choice(MODELS)), "k": int(round(np.exp(rng.uniform(np.log(8), np.log(128))))),
                    "loss": loss, "gamma": round(float(rng.uniform(0.5, 5)), 2) if loss == "focal" else 0.0})
    return [out[i] for i in rng.permutation(n)] if n > len(CONFIGS) else out


def _train_alone(configs: list[dict], n: int, batch: int, epochs: int) -> float:
    """Train ``configs`` in turn on ``n`` random windows with one torch thread, outside Ray; return the seconds."""
    import torch

    from hypo.learn.losses import make_loss
    from hypo.learn.models import ModelConfig, build_model
    from hypo.learn.train import TrainStep, epoch_generator, train_epoch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.randn(n, 60, 7), torch.randint(0, 3, (n,))
    t0 = time.perf_counter()
    for c in configs:
        model = build_model(ModelConfig(c["model"], c["k"]), [0.0] * 7, [1.0] * 7)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = make_loss(c["loss"], c["gamma"])
        for e in range(epochs):
            train_epoch(TrainStep(model, opt, loss_fn), x, y, batch, epoch_generator(0, e, torch.device("cpu")))
    return time.perf_counter() - t0


def hardware_ceiling(configs: list[dict], n: int = 16_384, epochs: int = 2) -> float:
    """Throughput of two one-thread training processes side by side over that of one alone.

    The most two concurrent trials can gain on this machine, with no Ray, Tune or checkpointing involved.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        pool.submit(_train_alone, configs[:1], 1024, BATCH, 1).result()  # warm the pool's imports
        alone = pool.submit(_train_alone, configs, n, BATCH, epochs).result()
        pair = [pool.submit(_train_alone, configs, n, BATCH, epochs) for _ in range(2)]
        both = max(f.result() for f in pair)
    return 2 * alone / both


def run(data, configs, epochs, concurrent, asha, storage, name, grace=1, rf=3):
    """Run ``configs`` once; return wall time, trials and the first report's delay."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from hypo.search.space import LOSSES, MODELS

    cfg = SearchConfig(data="-", storage=storage, name=name, epochs=epochs, max_concurrent=concurrent,
                       batch_size=BATCH)
    sched = (ASHAScheduler(metric="val_mean_auroc", mode="max", max_t=epochs, grace_period=grace, reduction_factor=rf)
             if asha else FIFOScheduler())
    tuner = tune.Tuner(
        _trainable(cfg, data),
        param_space={"epochs": epochs, "batch_size": BATCH, "seed": 0, "model": tune.choice(MODELS),
                     "k": tune.randint(8, 129), "loss": tune.choice(LOSSES), "gamma": tune.uniform(0, 5)},
        tune_config=tune.TuneConfig(scheduler=sched, max_concurrent_trials=concurrent, num_samples=len(configs),
                                    reuse_actors=True,
                                    search_alg=BasicVariantGenerator(points_to_evaluate=configs,
                                                                     max_concurrent=concurrent)),
        run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=_callbacks(cfg), verbose=0),
    )
    start = time.time()
    tuner.fit()
    wall = time.time() - start
    trials = load_trials(os.path.join(storage, name))
    first = min(r["timestamp"] for t in trials for r in t.history) - start
    # Steady-state span: from the first trial's start to the last report (Tune's fixed start-up excluded).
    t0 = min(t.history[0]["timestamp"] - t.history[0]["time_this_iter_s"] for t in trials)
    span = max(r["timestamp"] for t in trials for r in t.history) - t0
    return wall, trials, first, span


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/demo800", help="window dataset (built from the demo if missing)")
    p.add_argument("--demo-cases", type=int, default=800, help="cases of the demo dataset built when needed")
    p.add_argument("--trials", type=int, default=6, help="configurations for the concurrency comparison")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--asha-trials", type=int, default=18, help="configurations for the ASHA comparison")
    p.add_argument("--asha-epochs", type=int, default=9)
    p.add_argument("--grace-period", type=int, default=1, help="ASHA grace period (epochs)")
    p.add_argument("--reduction-factor", type=int, default=3, help="ASHA reduction factor")
    p.add_argument("--skip-asha", action="store_true", help="only the concurrency comparison")
    args = p.parse_args()

    import ray

    ray.init(address="local", num_cpus=os.cpu_count(), logging_level="ERROR", log_to_driver=False)
    ensure_demo_dataset(args.data, args.demo_cases)
    data = load_search_data(args.data)
    print(f"dataset {args.data}: {len(data.train)} train / {len(data.val)} val windows; "
          f"{os.cpu_count()} CPUs")
    storage = tempfile.mkdtemp(prefix="hypo-bench-search-")
    cfgs = [dict(c) for c in CONFIGS[: args.trials]]
    rows = {}
    for conc in (1, 2):
        wall, trials, first, span = run(data, cfgs, args.epochs, conc, False, storage, f"conc{conc}")
        rows[conc] = (wall, len(trials) * 3600 / wall, first, len(trials) * 3600 / span)
        print(f"{conc} concurrent: {len(trials)} trials x {args.epochs} epochs: {rows[conc][3]:.0f} trials/hour "
              f"while trials run ({span:.1f} s), {rows[conc][1]:.0f} over the whole fit ({wall:.1f} s); "
              f"first leaderboard row after {first:.1f} s")
    ratio = rows[2][3] / rows[1][3]
    ceiling = hardware_ceiling(cfgs)
    print(f"hardware ceiling: two one-thread training processes side by side, no Ray, do {ceiling:.2f}x the work "
          "of one alone")
    print(f"trials/hour ratio 2 vs 1 concurrent: {ratio:.2f} while trials run, {rows[2][1] / rows[1][1]:.2f} over "
          f"the whole fit (goal >= 1.7: {'PASS' if ratio >= 1.7 else 'MISS'})")

    if args.skip_asha:
        ray.shutdown()
        return
    acfgs = draw_configs(args.asha_trials)
    _, full, _, _ = run(data, acfgs, args.asha_epochs, 2, False, storage, "full")
    _, asha, _, _ = run(data, acfgs, args.asha_epochs, 2, True, storage, "asha", grace=args.grace_period,
                        rf=args.reduction_factor)
    e_full = sum(len(t.history) for t in full)
    e_asha = sum(len(t.history) for t in asha)
    best_full = max(r["val_mean_auroc"] for t in full for r in t.history)
    best_asha = max(r["val_mean_auroc"] for t in asha for r in t.history)
    share = e_asha / e_full
    print(f"ASHA (grace period {args.grace_period}, reduction factor {args.reduction_factor}, {len(acfgs)} trials, "
          f"2 concurrent): {e_asha} trial-epochs vs {e_full} at full length = {100 * share:.0f}% "
          f"(goal <= 40%: {'PASS' if share <= 0.4 else 'MISS'})")
    print(f"best val mean AUROC: ASHA {best_asha:.4f} vs full {best_full:.4f} (diff {best_full - best_asha:+.4f}; "
          f"goal within 0.005: {'PASS' if best_full - best_asha <= 0.005 else 'MISS'})")
    print(f"time to first leaderboard row: {rows[2][2]:.1f} s (2 concurrent)")
    ray.shutdown()


if __name__ == "__main__":
    main()
