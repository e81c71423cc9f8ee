"""The cluster on one machine: how soon the autoscaler gives a GPU search its nodes, and how long trials wait.

    python bench/cluster.py                 # 4 trials, 2 at a time, 2 epochs, --gpus-per-trial 1, up to 2 GPU nodes
    python bench/cluster.py --quick         # 2 trials, 1 epoch
    python bench/cluster.py --object-store  # shard write and read throughput: a local S3 server against the disk

Ray's fake multi-node provider (``tests/fake_cluster.py``) plays a cluster like ``cluster.yaml``: a head with no
GPU and ``gpu_worker`` nodes the autoscaler starts for pending trials and removes when idle (their GPUs have no
CUDA: the trials train on the CPU, ``HYPO_ALLOW_CPU_FALLBACK=1``). The search is the command a user runs
(``tune/search.py --gpus-per-trial 1``), on a synthetic window dataset. Printed:

- seconds from submitting the search to the first trial training on an autoscaled node (the command's start to
  the start of that trial's training function there: the driver's own start, the autoscaler and the node's
  start included), and the nodes started with the trials each ran;
- the share of the trials' time spent waiting: for each trial, from its creation (Tune's time stamp in its
  folder name, to the second) to its training function starting on a node, over its creation to its last
  epoch; summed over trials;
- seconds after the search until the autoscaler removed the idle nodes.

With ``--object-store`` it measures the object store instead: window shards as the preprocessing job writes them
(Parquet, zstd; :func:`hypo.storage.write_bytes`: a whole object per shard on the store, a temporary renamed and
fsynced on the disk) and reads them back as a search does (one Arrow dataset over a split's shards), on a local S3
API server (moto, ``tests/s3_server.py``, on 127.0.0.1) against a local folder: MB/s each way and the ratio. The
local server has no network in between: it is the cost of the S3 protocol and of the server, not of a real link.

The figures move with the machine's load (a fake node is a raylet and Python workers on the same 2 cores).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from hypo.search.leaderboard import TrialRecord, load_trials  # noqa: E402

SEARCH = os.path.join(ROOT, "tune", "search.py")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=4, help="trials of the search")
    p.add_argument("--max-concurrent", type=int, default=2, help="trials at once")
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial")
    p.add_argument("--gpus-per-trial", type=float, default=1.0, help="GPU share per trial (0.5: two per node)")
    p.add_argument("--max-workers", type=int, default=2, help="most GPU nodes the autoscaler may start")
    p.add_argument("--idle-timeout", type=float, default=10.0, metavar="S", help="seconds before an idle node goes")
    p.add_argument("--windows", type=int, default=2000, help="training windows of the synthetic dataset")
    p.add_argument("--quick", action="store_true", help="2 trials, 1 epoch: the benchmark end to end, fast")
    p.add_argument("--object-store", action="store_true",
                   help="shard write and read throughput on a local S3 server against the local disk")
    p.add_argument("--shards", type=int, default=40, help="--object-store: shards written and read")
    p.add_argument("--repeats", type=int, default=3, help="--object-store: runs of each; the median is shown")
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.epochs, args.windows, args.shards, args.repeats = 2, 1, 600, 12, 1
    if args.samples < 1 or args.max_concurrent < 1 or args.epochs < 1 or args.max_workers < 1:
        p.error("--samples, --max-concurrent, --epochs and --max-workers must be >= 1")
    if not args.gpus_per_trial > 0:
        p.error("--gpus-per-trial must be > 0: the benchmark measures GPU nodes the autoscaler starts")
    return args


def created_at(trial: TrialRecord) -> float:
    """When Tune created the trial: the time stamp ending its folder's name (local time, whole seconds)."""
    stamp = "_".join(os.path.basename(trial.path.rstrip("/")).rsplit("_", 2)[-2:])
    return datetime.datetime.strptime(stamp, "%Y-%m-%d_%H-%M-%S").timestamp()


def began_at(trial: TrialRecord) -> float | None:
    """When the trial's training function started on its (last) node: its first result there, less that epoch."""
    rows = trial.history
    if not rows:
        return None
    node = rows[-1].get("node_id")
    first = next(r for r in rows if r.get("node_id") == node)
    return float(first["reported_at"]) - float(first.get("time_this_iter_s") or 0.0)


def waiting(trials: list[TrialRecord]) -> dict[str, Any]:
    """Per trial: seconds from creation to its training starting, and to its last epoch; the share waiting."""
    rows = []
    for t in trials:
        start, created = began_at(t), created_at(t)
        if start is None:
            continue
        end = float(t.history[-1]["reported_at"])
        rows.append({"trial": t.trial_id, "waited_s": max(0.0, start - created), "lived_s": max(1e-9, end - created)})
    waited, lived = sum(r["waited_s"] for r in rows), sum(r["lived_s"] for r in rows)
    return {"trials": rows, "share": waited / lived if lived else float("nan")}


def first_on_a_worker(trials: list[TrialRecord], head: set[str]) -> float | None:
    """When the first trial's training function started on a node other than the head."""
    starts = [began_at(t) for t in trials if t.history and t.history[-1].get("node_id") not in head]
    starts = [s for s in starts if s is not None]
    return min(starts) if starts else None


def shard_bytes(n_shards: int, windows_per_shard: int = 400) -> list[bytes]:
    """``n_shards`` window shards as the preprocessing job writes them: Parquet, zstd, synthetic windows."""
    import io

    import numpy as np
    import pyarrow.parquet as pq

    from synthetic_windows import _table, make_windows

    rng = np.random.default_rng(0)
    out = []
    for i in range(n_shards):
        buf = io.BytesIO()
        pq.write_table(_table(make_windows(windows_per_shard, rng), f"c{i}", f"s{i}", "train"), buf,
                       compression="zstd")
        out.append(buf.getvalue())
    return out


def shard_throughput(root: str, shards: list[bytes]) -> tuple[float, float]:
    """Seconds to write ``shards`` under ``root/windows/train`` (whole files, as the job does) and to read them back."""
    import pyarrow.dataset as pads

    from hypo import storage

    folder = storage.join(root, "windows", "train")
    start = time.perf_counter()
    for i, data in enumerate(shards):
        storage.write_bytes(storage.join(folder, f"case_{i:05d}.parquet"), data)
    wrote = time.perf_counter() - start
    start = time.perf_counter()
    fs, inner = storage.resolve(folder)
    names = storage.list_files(folder, ".parquet")
    table = pads.dataset([f"{inner.rstrip('/')}/{n}" for n in names], format="parquet", filesystem=fs).to_table()
    read = time.perf_counter() - start
    assert table.num_rows == 400 * len(shards)
    return wrote, read


def object_store(n_shards: int, repeats: int) -> dict[str, Any]:
    """``--object-store``: shard write and read MB/s on a local S3 server and on the local disk; prints them."""
    import statistics

    from s3_server import new_bucket, s3_server

    shards = shard_bytes(n_shards)
    mb = sum(len(s) for s in shards) / 1e6
    times: dict[str, list[tuple[float, float]]] = {"disk": [], "s3": []}
    work = tempfile.mkdtemp(prefix="hypo-bench-store-")
    try:
        with s3_server() as endpoint:
            for r in range(repeats):
                times["disk"].append(shard_throughput(os.path.join(work, f"run{r}"), shards))
                times["s3"].append(shard_throughput(f"{new_bucket()}/run{r}", shards))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures: dict[str, Any] = {"shards": n_shards, "mb": mb, "endpoint": endpoint}
    for where, runs in times.items():
        figures[where] = {"write_mb_s": mb / statistics.median(w for w, _ in runs),
                          "read_mb_s": mb / statistics.median(r for _, r in runs)}
    d, s = figures["disk"], figures["s3"]
    print(f"{n_shards} window shards, {mb:.1f} MB (Parquet, zstd, 400 windows each); median of {repeats} run(s)")
    print(f"{'':<40}{'write MB/s':>12}{'read MB/s':>12}")
    print(f"{'local disk (temporary, fsync, rename)':<40}{d['write_mb_s']:>12.1f}{d['read_mb_s']:>12.1f}")
    print(f"{'S3 API server on 127.0.0.1 (moto)':<40}{s['write_mb_s']:>12.1f}{s['read_mb_s']:>12.1f}")
    print(f"{'store / disk':<40}{s['write_mb_s'] / d['write_mb_s']:>11.2f}x{s['read_mb_s'] / d['read_mb_s']:>11.2f}x")
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print its figures and return them."""
    args = parse_args(argv)
    if args.object_store:
        return object_store(args.shards, args.repeats)
    from fake_cluster import FakeCluster, wait_for
    from synthetic_windows import write_synthetic_dataset

    work = tempfile.mkdtemp(prefix="hypo-bench-cluster-")
    data = os.path.join(work, "windows")
    write_synthetic_dataset(data, n_train=args.windows, n_val=300, n_test=100, seed=0)
    figures: dict[str, Any] = {}
    with FakeCluster(os.path.join(work, "cluster"), max_workers=args.max_workers,
                     idle_timeout_s=args.idle_timeout) as cluster:
        head = {n["NodeID"] for n in cluster.nodes()}
        cmd = [sys.executable, SEARCH, "--data", data, "--storage", work, "--name", "bench", "--address",
               cluster.address, "--cluster-config", cluster.config_path, "--gpus-per-trial", str(args.gpus_per_trial),
               "--cpus-per-trial", str(min(1.0, args.gpus_per_trial)), "--samples", str(args.samples),
               "--max-concurrent", str(args.max_concurrent), "--epochs", str(args.epochs),
               "--grace-period", str(args.epochs), "--batch-size", "256"]
        submitted = time.time()
        done = subprocess.run(cmd, env=cluster.env(HYPO_ALLOW_CPU_FALLBACK="1"), capture_output=True, text=True)
        wall = time.time() - submitted
        if done.returncode:
            raise SystemExit(f"the search failed ({done.returncode}):\n{done.stderr[-3000:]}")
        ended = time.monotonic()
        wait_for(lambda: not cluster.workers(), 10 * args.idle_timeout + 120, "the idle nodes to go", 1.0)
        figures["removed_after_s"] = time.monotonic() - ended
    trials = load_trials(os.path.join(work, "bench"))
    shutil.rmtree(work, ignore_errors=True)
    first = first_on_a_worker(trials, head)
    figures["search_wall_s"] = wall
    figures["first_trial_on_autoscaled_node_s"] = None if first is None else first - submitted
    per_node: dict[str, int] = {}
    for t in trials:
        for node in dict.fromkeys(r["node_id"] for r in t.history):
            per_node[node] = per_node.get(node, 0) + 1
    figures["trials_per_node"] = sorted(per_node.values(), reverse=True)
    figures["waiting"] = waiting(trials)
    print(f"fake cluster: head without GPU, gpu_worker {{CPU: 1, GPU: 1}} x 0..{args.max_workers}, idle timeout "
          f"{args.idle_timeout:g} s; search: {args.samples} trials, {args.max_concurrent} at a time, {args.epochs} "
          f"epoch(s), --gpus-per-trial {args.gpus_per_trial:g}")
    print("no trial trained on an autoscaled node" if first is None else
          f"submitted -> first trial training on an autoscaled node: {first - submitted:.1f} s")
    print(f"search wall time {wall:.1f} s; {len(per_node)} node(s) ran trials: {figures['trials_per_node']}")
    share = figures["waiting"]["share"]
    print(f"trials waiting (created -> training on a node): {100 * share:.0f}% of their time; per trial "
          + ", ".join(f"{r['waited_s']:.0f}/{r['lived_s']:.0f} s" for r in figures["waiting"]["trials"]))
    print(f"idle nodes removed {figures['removed_after_s']:.0f} s after the search ended")
    return figures


if __name__ == "__main__":
    main()
