"""Benchmark the preprocessing job (Ray Data) on the demo cohort against a single-process pandas version.

For each cohort size the job (:func:`hypo.data.preprocess.build_windows`) runs on a local Ray started once
beforehand (its start-up is reported apart). The bench reports the wall time, case-hours per second per
core, windows per second and the peak resident memory summed over the Ray worker processes, and over all
processes of the run (driver, GCS, raylet, agents and workers). The pandas reference
(``bench/pandas_reference.py``) then runs on the first ``--pandas-cases`` cases of the same cohort; its
windows are checked against the job's (counts per split and class, train z-score, and every value of a few
cases) and the speed ratio is the job's case-hours per second over the reference's. Last, the same job runs with
labels from the simulated arterial line (``--label-source art``) on each of ``--art-sizes``, and its wall and CPU
time are set beside the cuff-labelled build's (goal: within 1.3x).

Run (about 2 minutes on 2 idle cores; add about 35 s for ``--pandas-cases 500``)::

    python bench/preprocess.py                       # --sizes 500 5064 --pandas-cases 100
    python bench/preprocess.py --sizes 100 --pandas-cases 100 --num-cpus 2
    python bench/preprocess.py --sizes 500 5064 --pandas-cases 500 --art-sizes 5064   # docs/benchmarks.md's figures
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
import psutil
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from bench.pandas_reference import build_reference  # noqa: E402
from hypo.config import LabelConfig, WindowConfig  # noqa: E402
from hypo.data.moments import Moments  # noqa: E402
from hypo.data.pipeline import shard_name  # noqa: E402
from hypo.data.preprocess import build_windows  # noqa: E402
from hypo.data.signals import CLASSES, N_SIGNALS  # noqa: E402
from hypo.data.sources.factory import make_source  # noqa: E402
from hypo.data.splits import SPLITS  # noqa: E402
from hypo.storage import read_json  # noqa: E402

GOAL_FULL_S = 300.0  # 5,064 cases in under 5 minutes
GOAL_MEM_RATIO = 1.5  # peak memory at 5,064 cases at most 1.5x that at 500
GOAL_SPEEDUP = 5.0  # at least 5x the pandas reference
GOAL_ART_RATIO = 1.3  # the ART-labelled build within 1.3x of the cuff-labelled build's wall time
VALUE_CASES = 3  # cases whose every window value is compared
MiB = 2**20


class ProcessSampler(threading.Thread):
    """Sample this process and all its descendants (a local Ray starts as our children) every ``interval_s``.

    Keeps the peak of the summed RSS, over all processes and over the Ray workers only, and the CPU time the
    tree used since the sampler was made (processes that appear later count from their start). Ray workers are
    the descendants that run tasks or actors: their title is ``ray::IDLE``, ``ray::Map(...)``,
    ``ray::_StatsActor``... (or, while starting, they run ``default_worker.py``); the dashboard and runtime-env
    agents, the raylet and the GCS count in the total only.
    """

    def __init__(self, interval_s: float = 0.2):
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self._halt = threading.Event()
        self._workers: dict[int, bool] = {}
        self._cpu_first: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._new_from_zero = False
        self.idle_total, self.idle_workers = self.sample()
        self._new_from_zero = True
        self.peak_total, self.peak_workers = self.idle_total, self.idle_workers

    @property
    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process tree used since the sampler was made."""
        return sum(last - self._cpu_first[pid] for pid, last in self._cpu_last.items())

    def _is_worker(self, proc: psutil.Process) -> bool:
        if self._workers.get(proc.pid):
            return True
        cmd = proc.cmdline()
        title = cmd[0] if cmd else ""
        agent = title.endswith("Agent")
        worker = (title.startswith("ray::") and not agent) or any("default_worker.py" in c for c in cmd)
        self._workers[proc.pid] = worker
        return worker

    def sample(self) -> tuple[int, int]:
        """Return (total, workers) RSS in bytes now, and note each process's CPU time."""
        me = psutil.Process()
        total = workers = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    cpu = sum(proc.cpu_times()[:2])
                is_worker = proc.pid != me.pid and self._is_worker(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total += rss
            workers += rss if is_worker else 0
            self._cpu_first.setdefault(proc.pid, 0.0 if self._new_from_zero else cpu)
            self._cpu_last[proc.pid] = cpu
        return total, workers

    def run(self) -> None:
        """Sample until stopped."""
        while not self._halt.wait(self.interval_s):
            total, workers = self.sample()
            self.peak_total, self.peak_workers = max(self.peak_total, total), max(self.peak_workers, workers)

    def stop(self) -> None:
        """Stop sampling (takes one last sample)."""
        self._halt.set()
        self.join()
        total, workers = self.sample()
        self.peak_total, self.peak_workers = max(self.peak_total, total), max(self.peak_workers, workers)


def start_ray(num_cpus: int) -> float:
    """Start a local Ray quietly; return the seconds it took."""
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)  # "local": never join a cluster another program started here
    import ray.data  # noqa: F401 - configures Ray Data's logger, which is then quietened

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return time.perf_counter() - t0


def run_job(size: int, seed: int, cfg: WindowConfig, out: str, num_cpus: int, cases_per_task: int) -> dict:
    """Run the Ray Data job on ``size`` demo cases and measure it (ART labels when ``cfg`` asks for them)."""
    source = make_source("demo", cases=size, seed=seed, arterial=cfg.label.source == "art")
    sampler = ProcessSampler()
    sampler.start()
    t0 = time.perf_counter()
    manifest = build_windows(source, cfg, out, cases_per_task=cases_per_task, progress=False, log=lambda line: None)
    wall = time.perf_counter() - t0
    sampler.stop()
    windows = sum(c.windows for c in manifest.counts.values())
    hours = manifest.cases.case_hours
    return {
        "size": size,
        "source": source,
        "out": out,
        "wall_s": wall,
        "cases_ok": manifest.cases.ok,
        "case_hours": hours,
        "windows": windows,
        "case_h_per_s_core": hours / wall / num_cpus,
        "windows_per_s": windows / wall,
        "cpu_s": sampler.cpu_s,
        "peak_total_mib": sampler.peak_total / MiB,
        "peak_workers_mib": sampler.peak_workers / MiB,
        "idle_total_mib": sampler.idle_total / MiB,
        "idle_workers_mib": sampler.idle_workers / MiB,
    }


TEXT_COLS = ("caseid", "subjectid", "split")
INT_COLS = ("t_end", "label", "label_time", "last_time")
FLOAT_COLS = ("label_map", "label_sbp", "last_map", "last_sbp")
CHECKED = ("counts per split and class, rejections, per-case drops and artefact counts, train z-score, and every"
           f" column of the first {VALUE_CASES} cases' windows")


def compare(job: dict, ref: dict, refs: list[dict]) -> list[str]:
    """Check that the job and the reference made the same windows from ``refs`` (see CHECKED); list the problems."""
    out, problems = job["out"], []
    names = [shard_name(r["caseid"]) for r in refs]
    summaries = [read_json(os.path.join(out, "cases", n + ".json")) for n in names
                 if os.path.exists(os.path.join(out, "cases", n + ".json"))]
    rejected = collections.Counter(read_json(os.path.join(out, "rejected", n + ".json"))["reason"] for n in names
                                   if os.path.exists(os.path.join(out, "rejected", n + ".json")))
    counts = {sp: dict.fromkeys(("cases", "windows", *CLASSES), 0) for sp in SPLITS}
    moments = Moments.empty(N_SIGNALS)
    for s in summaries:
        c = counts[s["split"]]
        c["cases"] += 1
        c["windows"] += s["n_windows"]
        for k, name in enumerate(CLASSES):
            c[name] += s["class_counts"][k]
        if s["split"] == "train":
            moments = moments.combine(Moments.from_dict(s["moments"]))
    if counts != ref["counts"]:
        problems.append(f"counts differ: job {counts} vs pandas {ref['counts']}")
    if dict(rejected) != ref["rejected_counts"]:
        problems.append(f"rejections differ: job {dict(rejected)} vs pandas {ref['rejected_counts']}")
    by_case = {s["caseid"]: s for s in ref["summaries"]}
    for s in summaries:
        r = by_case.get(s["caseid"])
        if r is None or any(r[k] != s[k] for k in ("split", "class_counts", "dropped", "artefacts")):
            problems.append(f"case {s['caseid']}: summaries differ")
    if not (np.allclose(moments.mean, ref["zscore"]["mean"], rtol=1e-6, atol=1e-6)
            and np.allclose(moments.std, ref["zscore"]["std"], rtol=1e-5)):
        problems.append("train z-score differs")
    for s in summaries[:VALUE_CASES]:
        name = shard_name(s["caseid"]) + ".parquet"
        a = pq.read_table(os.path.join(out, "windows", s["split"], name)).to_pandas()
        b = pq.read_table(os.path.join(ref["out"], "windows", s["split"], name)).to_pandas()
        same = (
            len(a) == len(b)
            and all((a[c].astype(str).to_numpy() == b[c].astype(str).to_numpy()).all() for c in TEXT_COLS)
            and all(np.array_equal(a[c].to_numpy(np.int64), b[c].to_numpy(np.int64)) for c in INT_COLS)
            and all(np.array_equal(a[c].to_numpy(np.float32), b[c].to_numpy(np.float32), equal_nan=True)
                    for c in FLOAT_COLS)
            and np.array_equal(np.stack(a["x"]), np.stack(b["x"]).astype(np.float32))
        )
        if not same:
            problems.append(f"case {s['caseid']}: window values differ")
    return problems


def run_reference(job: dict, n: int, cfg: WindowConfig, out: str, cache: dict) -> dict:
    """Run the pandas reference on the first ``n`` cases of the job's cohort (reusing an identical run)."""
    refs = job["source"].case_refs()[:n]
    key = json.dumps(refs, sort_keys=True)
    if key not in cache:
        t0, c0 = time.perf_counter(), time.process_time()
        ref = build_reference(job["source"], cfg, out, refs)
        ref["wall_s"], ref["cpu_s"], ref["out"] = time.perf_counter() - t0, time.process_time() - c0, out
        cache[key] = ref
    ref = cache[key]
    ref_rate = ref["case_hours"] / ref["wall_s"]
    problems = compare(job, ref, refs)
    windows = sum(c["windows"] for c in ref["counts"].values())
    return {
        "cases": len(refs),
        "cases_ok": ref["cases_ok"],
        "case_hours": ref["case_hours"],
        "windows": windows,
        "wall_s": ref["wall_s"],
        "case_h_per_s": ref_rate,
        "cpu_s": ref["cpu_s"],
        "speedup": job["case_hours"] / job["wall_s"] / ref_rate,
        "cpu_ratio": (job["case_hours"] / job["cpu_s"]) / (ref["case_hours"] / ref["cpu_s"]),
        "problems": problems,
    }


def report(jobs: list[dict], refs: list[dict], startup_s: float, warmup_s: float, num_cpus: int,
           cases_per_task: int, art_jobs: list[dict] = ()) -> bool:
    """Print the figures and the goals; return whether all goals were met."""
    print(f"\nexcluded below: Ray start-up {startup_s:.1f} s, warm-up job ({2 * num_cpus} cases) {warmup_s:.1f} s;"
          f" {num_cpus} CPUs; demo cohort; {cases_per_task} cases per task; load average now"
          f" {os.getloadavg()[0]:.1f}\n")
    cols = [("cases", "size", "{}"), ("ok", "cases_ok", "{}"), ("case-h", "case_hours", "{:.0f}"),
            ("windows", "windows", "{}"), ("wall s", "wall_s", "{:.1f}"),
            ("case-h/s/core", "case_h_per_s_core", "{:.1f}"), ("windows/s", "windows_per_s", "{:.0f}"),
            ("CPU s", "cpu_s", "{:.1f}"), ("peak MiB all", "peak_total_mib", "{:.0f}"),
            ("peak MiB workers", "peak_workers_mib", "{:.0f}")]
    print(" | ".join(f"{h:>13}" for h, *_ in cols))
    for j in jobs:
        print(" | ".join(f"{fmt.format(j[key]):>13}" for _, key, fmt in cols))
    idle = jobs[0]
    print("(CPU s: user + system time of the driver and all Ray processes during the job, which other programs"
          " on the machine do not inflate much;\n peak: the highest sum of RSS over those processes in one sample"
          " every 0.2 s, shared pages counted in each process;\n with Ray idle before the first job:"
          f" {idle['idle_total_mib']:.0f} MiB all, {idle['idle_workers_mib']:.0f} MiB workers)\n")
    for j, r in zip(jobs, refs):
        check = "same windows" if not r["problems"] else "DIFFERENT: " + "; ".join(r["problems"][:3])
        print(f"pandas reference, 1 process, on the first {r['cases']} of the {j['size']} cases"
              f" ({r['case_hours']:.0f} case-h, {r['windows']} windows): {r['wall_s']:.1f} s,"
              f" {r['case_h_per_s']:.1f} case-h/s;\n  Ray job over all {j['size']} cases:"
              f" {j['case_hours'] / j['wall_s']:.1f} case-h/s -> {r['speedup']:.1f}x faster"
              f" ({r['cpu_ratio']:.1f}x less CPU time per case-hour);\n  check on those cases ({CHECKED}): {check}")
    by_size = {j["size"]: j for j in jobs}
    for a in art_jobs:
        c = by_size[a["size"]]
        print(f"ART-labelled build of the same {a['size']} cases: {a['wall_s']:.1f} s wall, {a['cpu_s']:.1f} CPU s"
              f" ({a['wall_s'] / c['wall_s']:.2f}x / {a['cpu_s'] / c['cpu_s']:.2f}x the cuff build's"
              f" {c['wall_s']:.1f} s / {c['cpu_s']:.1f} s); {a['cases_ok']} cases with a usable line,"
              f" {a['windows']} windows; per used case-hour"
              f" {(c['case_hours'] / c['wall_s']) / (a['case_hours'] / a['wall_s']):.2f}x the cuff build's time"
              " (cases without a line are rejected after loading, so the wall-time ratio understates the cost"
              " per labelled case)")
    print()
    goals = []
    if 5064 in by_size:
        goals.append((f"5,064 cases in under {GOAL_FULL_S / 60:.0f} min", f"{by_size[5064]['wall_s']:.1f} s",
                      by_size[5064]["wall_s"] < GOAL_FULL_S))
    if 500 in by_size and 5064 in by_size:
        ratio = by_size[5064]["peak_total_mib"] / by_size[500]["peak_total_mib"]
        wratio = by_size[5064]["peak_workers_mib"] / by_size[500]["peak_workers_mib"]
        goals.append((f"peak memory 5,064 / 500 <= {GOAL_MEM_RATIO}", f"{ratio:.2f} all, {wratio:.2f} workers",
                      ratio <= GOAL_MEM_RATIO and wratio <= GOAL_MEM_RATIO))
    for j, r in zip(jobs, refs):
        goals.append((f">= {GOAL_SPEEDUP:.0f}x pandas ({j['size']} cases)", f"{r['speedup']:.1f}x",
                      r["speedup"] >= GOAL_SPEEDUP))
        goals.append((f"same windows as pandas ({j['size']} cases)", "yes" if not r["problems"] else "no",
                      not r["problems"]))
    for a in art_jobs:
        ratio = a["wall_s"] / by_size[a["size"]]["wall_s"]
        goals.append((f"ART build <= {GOAL_ART_RATIO}x cuff ({a['size']} cases)", f"{ratio:.2f}x",
                      ratio <= GOAL_ART_RATIO))
    for name, value, ok in goals:
        print(f"{'PASS' if ok else 'MISS'}  {name:<40} {value}")
    return all(ok for *_, ok in goals)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when a goal is missed."""
    p = argparse.ArgumentParser(description="Benchmark the preprocessing job against a pandas reference.")
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 5064], help="demo cohort sizes")
    p.add_argument("--pandas-cases", type=int, default=100,
                   help="run the pandas reference on the first N cases of each size")
    p.add_argument("--out", help="keep the outputs in this folder (default: a temporary folder, removed after)")
    p.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray")
    p.add_argument("--seed", type=int, default=0, help="demo simulator seed")
    p.add_argument("--cases-per-task", type=int, default=16,
                   help="build_windows(cases_per_task=...); 1 = one task per case")
    p.add_argument("--art-sizes", type=int, nargs="*", default=None,
                   help="also build these sizes (each one of --sizes) with ART labels; default: the largest size")
    args = p.parse_args(argv)
    art_sizes = [max(args.sizes)] if args.art_sizes is None else args.art_sizes
    if not set(art_sizes) <= set(args.sizes):
        p.error(f"--art-sizes {art_sizes} must be among --sizes {args.sizes}")

    import ray

    cfg = WindowConfig()
    root = args.out or tempfile.mkdtemp(prefix="hypo-bench-")
    if os.path.exists(os.path.join(root, f"ray-{args.sizes[0]}")):
        sys.exit(f"{root} holds an earlier bench run; give a new --out folder")
    try:
        startup = start_ray(args.num_cpus)
        # A few cases first, so that the first measured size does not pay for starting the workers.
        t0 = time.perf_counter()
        build_windows(make_source("demo", cases=2 * args.num_cpus, seed=args.seed + 1), cfg,
                      os.path.join(root, "warm-up"), progress=False, log=lambda line: None)
        warmup = time.perf_counter() - t0
        jobs = []
        for size in args.sizes:  # all Ray runs first, so the pandas runs do not inflate the driver's memory
            jobs.append(run_job(size, args.seed, cfg, os.path.join(root, f"ray-{size}"), args.num_cpus,
                                args.cases_per_task))
            j = jobs[-1]
            print(f"job {size} cases: {j['wall_s']:.1f} s, {j['case_h_per_s_core']:.2f} case-h/s/core,"
                  f" peak {j['peak_total_mib']:.0f} MiB", flush=True)
        art_cfg = WindowConfig(label=LabelConfig(source="art"))
        art_jobs = []
        for size in art_sizes:
            art_jobs.append(run_job(size, args.seed, art_cfg, os.path.join(root, f"ray-art-{size}"), args.num_cpus,
                                    args.cases_per_task))
            print(f"ART-labelled job {size} cases: {art_jobs[-1]['wall_s']:.1f} s", flush=True)
        cache: dict = {}
        refs = [run_reference(j, args.pandas_cases, cfg, os.path.join(root, f"pandas-{j['size']}"), cache)
                for j in jobs]
        ok = report(jobs, refs, startup, warmup, args.num_cpus, args.cases_per_task, art_jobs)
    finally:
        ray.shutdown()
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
