"""Speed of the alarm evaluation: case-hours scored per minute per core (goal >= 2,000 with cnn_cnn on CPU).

    python bench/alarms.py                                  # 60 demo cases, cnn_cnn k=42, stride 10 s, 1 thread
    python bench/alarms.py --cases 20 --labels art --stride 10 --threads 1
    python bench/alarms.py --vital-hours 10 --repeat 3      # plus: reading a monitor-rate 10-h .vital file

Demo recordings are simulated in memory (no file reading; the simulation is timed apart as "load"), then each is
scored exactly as :func:`hypo.evaluate.alarms.evaluation.evaluate_alarms` scores a split: prepared once
(:func:`hypo.infer.predict.prepare_case`), predicted by the traced model with the infer layer's ``predict_case``
(batched: one forward pass per recording), the baselines on the same filled signals (last reading, feature model,
and with ``--labels art`` the last ART minute and the simulated frequent cuff), the events, and every row counted
at ``--thresholds`` thresholds (:func:`hypo.evaluate.alarms.metrics.case_counts`) as the curve needs. The model is an
untrained paper-width ``cnn_cnn`` (it scores as fast as a trained one), traced as ``hypo export`` traces.

"Per core" is case-hours over the process's CPU minutes (every thread counted), with PyTorch held to
``--threads`` threads. The time to read monitor-rate ``.vital`` recordings (ECG 500 Hz, pleth 100 Hz, varying
sample to sample: :func:`bench.predict.monitor_like_vital`) is bounded by the file reader and reported apart.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout

from hypo.config import LabelConfig, WindowConfig  # noqa: E402
from hypo.data.manifest import Manifest  # noqa: E402
from hypo.data.pipeline import process_case  # noqa: E402
from hypo.data.signals import SIGNALS  # noqa: E402
from hypo.data.sources.demo import simulate_case  # noqa: E402
from hypo.evaluate.alarms.metrics import AlarmConfig, case_counts, threshold_grid  # noqa: E402
from hypo.evaluate.alarms.replay import replay_case  # noqa: E402
from hypo.infer.export import trace_model  # noqa: E402
from hypo.infer.model import ExportedModel  # noqa: E402
from hypo.infer.sidecar import Sidecar, Thresholds  # noqa: E402
from hypo.learn.feature_model import FeatureModelConfig, fit_feature_model  # noqa: E402
from hypo.learn.models import ModelConfig, build_model  # noqa: E402

GOAL = 2000.0  # case-hours per minute per core
MEAN = [0.0, 120.0, 85.0, 70.0, 50.0, 1.0, 45.0]
STD = [0.4, 15.0, 10.0, 9.0, 14.0, 0.2, 8.0]


def untrained_model(k: int, window: WindowConfig) -> ExportedModel:
    """An untrained cnn_cnn, traced with the softmax inside, with the sidecar sections predict_case reads."""
    model_cfg = ModelConfig("cnn_cnn", k, window.window_s)
    net = build_model(model_cfg, MEAN, STD)
    traced = trace_model(net, torch.zeros(8, window.window_s, 7))
    sidecar = Sidecar(signals=list(SIGNALS), window_s=window.window_s, min_case_s=window.min_case_s,
                      horizon_s=window.label.horizon_s, label=window.label, fill=window.fill, model=model_cfg,
                      thresholds=Thresholds(hypo_map=window.label.hypo_map, hyper_sbp=window.label.hyper_sbp))
    return ExportedModel(traced, sidecar)


def feature_model(window: WindowConfig, first: int, n: int):
    """A feature model fitted on the windows of demo cases ``first .. first + n - 1`` (outside the timing)."""
    class Split:
        def __init__(self, wins):
            self.x = np.concatenate([w.x for w in wins])
            self.label = np.concatenate([w.label for w in wins]).astype(np.int64)

    wins = [process_case(c, window)[0] for c in demo_cases(first, n, window.label.source == "art")]
    cut = max(1, int(0.7 * len(wins)))
    return fit_feature_model(Split(wins[:cut]), Split(wins[cut:]), FeatureModelConfig())


def demo_cases(first: int, n: int, art: bool) -> list:
    """``n`` demo cases from ``first`` on; with ART labels only those with a usable arterial line.

    An ART dataset rejects the others, so its recordings all have one.
    """
    from hypo.data.pipeline import usable_arterial_line
    from hypo.errors import CaseRejected

    out, i = [], first
    while len(out) < n:
        case = simulate_case(i, 0, arterial=art)
        i += 1
        if art:
            try:
                usable_arterial_line(case)
            except CaseRejected:
                continue
        out.append(case)
    return out


def manifest_for(window: WindowConfig) -> Manifest:
    """A manifest with the fields the replay reads (label rule, window config; no train counts: a uniform prior)."""
    return Manifest(signals=SIGNALS, window_s=window.window_s, label=window.label, config=window, counts={},
                    zscore={"mean": [0.0] * len(SIGNALS), "std": [1.0] * len(SIGNALS)}, fingerprint="bench")


def score(cases, model, fm, manifest, cfg, n_thresholds):
    """Replay and count every case; returns (events, tracks per row, timings)."""
    timings: dict[str, float] = {}
    events, tracks = [], {}
    for case in cases:
        ev, tr = replay_case(case, {"caseid": case.caseid, "subjectid": case.subjectid}, {"model": model}, manifest,
                             cfg, fm, timings)
        events.append(ev)
        for name, t in tr.items():
            tracks.setdefault(name, []).append(t)
    t0 = time.perf_counter()
    for rows in tracks.values():
        pooled = np.concatenate([t.score for t in rows if len(t.score)])
        grid = threshold_grid(pooled, rows[0].kind, n_thresholds, cfg.hysteresis)
        for t, ev in zip(rows, events):
            case_counts(t, ev, grid, cfg)
    timings["count_s"] = time.perf_counter() - t0
    return events, tracks, timings


def bench_vital_read(hours: float, repeat: int) -> list[float]:
    """Seconds to read a monitor-rate ``.vital`` recording of ``hours`` (median of ``repeat``)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from predict import long_demo_case, monitor_like_vital

    from hypo.data.sources.vital import read_vital_case

    case = long_demo_case(int(hours * 3600))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        path = monitor_like_vital(case, os.path.join(tmp, "case.vital"))
        size = os.path.getsize(path)
        for _ in range(repeat):
            t0 = time.perf_counter()
            read_vital_case(path, "case", "case")
            times.append(time.perf_counter() - t0)
    print(f"reading a monitor-rate .vital recording of {hours:g} h ({size / 1e6:.0f} MB): median "
          f"{statistics.median(times):.2f} s of {repeat} ({', '.join(f'{t:.2f}' for t in times)}); that is "
          f"{hours * 60 / statistics.median(times):,.0f} case-hours per minute for reading alone")
    return times


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=60, help="demo cases scored (default: %(default)s)")
    p.add_argument("--labels", choices=("cuff", "art", "both"), default="both", help="event source(s)")
    p.add_argument("--stride", type=int, default=10, help="seconds between predictions (default: %(default)s)")
    p.add_argument("--k", type=int, default=42, help="cnn_cnn width (default: the paper's %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads (default: %(default)s)")
    p.add_argument("--thresholds", type=int, default=150, help="thresholds per curve (default: %(default)s)")
    p.add_argument("--no-feature-model", action="store_true", help="leave the feature-model row out")
    p.add_argument("--vital-hours", type=float, default=10.0, help="hours of the .vital reading test (0: skip)")
    p.add_argument("--repeat", type=int, default=3, help="repeats of the .vital reading test")
    p.add_argument("--smoke-test", action="store_true", help="tiny: 3 cases, stride 60, no .vital test")
    args = p.parse_args(argv)
    if args.smoke_test:
        args.cases, args.stride, args.vital_hours, args.thresholds = 3, 60, 0.0, 20
    torch.set_num_threads(args.threads)
    cfg = AlarmConfig(stride_s=args.stride)
    out = {}
    for labels in (("cuff", "art") if args.labels == "both" else (args.labels,)):
        window = WindowConfig(label=LabelConfig(source=labels))
        model = untrained_model(args.k, window)
        fm = None if args.no_feature_model else feature_model(window, 10_000, 4 if args.smoke_test else 40)
        manifest = manifest_for(window)
        t0 = time.perf_counter()
        cases = demo_cases(1, args.cases, labels == "art")
        load_s = time.perf_counter() - t0
        hours = sum(c.duration_s for c in cases) / 3600
        score(cases[:1], model, fm, manifest, cfg, args.thresholds)  # warm-up: TorchScript's first calls
        cpu0, wall0 = time.process_time(), time.perf_counter()
        events, tracks, timings = score(cases, model, fm, manifest, cfg, args.thresholds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        rate = hours / (cpu / 60)
        n_pred = sum(len(t.t) for t in tracks["model"])
        print(f"{labels} labels: {len(cases)} demo cases, {hours:.1f} case-hours, {n_pred:,} predictions every "
              f"{args.stride} s by cnn_cnn k={args.k} on {args.threads} thread(s); rows: {', '.join(tracks)}")
        print(f"  scored in {wall:.2f} s wall, {cpu:.2f} s CPU: {rate:,.0f} case-hours per minute per core "
              f"(goal >= {GOAL:,.0f}: {'met' if rate >= GOAL else 'NOT met'}); wall rate "
              f"{hours / (wall / 60):,.0f} case-hours per minute")
        print("  split: " + ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in timings.items())
              + f"; simulating the recordings (load, not scored) {load_s:.2f} s")
        print(f"  episodes: {sum(len(e.episodes) for e in events)}")
        out[labels] = {"case_hours": hours, "cpu_s": cpu, "wall_s": wall, "rate_per_min_per_core": rate,
                       "timings": timings, "load_s": load_s}
    if args.vital_hours > 0:
        out["vital_read_s"] = bench_vital_read(args.vital_hours, args.repeat)
    return out


if __name__ == "__main__":
    main()
