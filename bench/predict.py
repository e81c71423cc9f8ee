"""Speed of ``hypo.infer.predict`` on a 10-hour recording (goal: under 5 s on CPU, reading the file included).

    python bench/predict.py                      # 10 h demo recording, paper-size CNN*CNN and LSTM, strides 60 and 10
    python bench/predict.py --model model.pt     # an exported model instead of untrained ones
    python bench/predict.py --hours 2 --repeat 1 --no-cli --wave-srate 500
    python bench/predict.py --monitor-like        # ECG 500 Hz, pleth 100 Hz with noise, one record a second

Writes a simulated (demo) case of ``--hours`` hours as a genuine ``.vital`` file with ``write_vital_case``, then
times :func:`hypo.infer.predict.predict_file` end to end (read, units check, artefacts, filling, windows, batched
forward passes, CSV, timeline PNG), with the split per step, and the whole command line
``hypo predict`` in a fresh process (interpreter start and imports included), each the median of
``--repeat`` runs. Untrained models score as fast as trained ones, so no search is needed; they are traced and
saved exactly as ``hypo.infer.export`` saves a trial.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout

from hypo.config import WindowConfig  # noqa: E402
from hypo.data.signals import ECG, PLETH, SIGNALS, UNITS, VITALDB_TRACKS, WAVEFORMS  # noqa: E402
from hypo.data.sources.base import Case  # noqa: E402
from hypo.data.sources.demo import case_duration_s, simulate_case  # noqa: E402
from hypo.data.sources.vital import write_vital_case  # noqa: E402
from hypo.infer.export import trace_model, write_exported  # noqa: E402
from hypo.infer.predict import predict_file  # noqa: E402
from hypo.infer.sidecar import Sidecar, SourceInfo, Thresholds  # noqa: E402
from hypo.learn.models import ModelConfig, build_model  # noqa: E402

MEAN = [0.0, 120.0, 85.0, 70.0, 50.0, 1.0, 45.0]
STD = [0.4, 15.0, 10.0, 9.0, 14.0, 0.2, 8.0]
GOAL_S = 5.0


def long_demo_case(seconds: int) -> Case:
    """The first demo case at least ``seconds`` long, cut to exactly ``seconds``."""
    cid = next(i for i in range(1, 10_000) if case_duration_s(i) >= seconds)
    case = simulate_case(cid)
    return Case(f"demo{cid}", case.subjectid, case.signals[:seconds])


def monitor_like_vital(case: Case, path: str) -> str:
    """The case as a monitor writes it: ECG at 500 Hz and pleth at 100 Hz, one record per second.

    Samples vary within each second, so the file compresses as a real one does, not as held values do.
    """
    import vitaldb

    tracks = [None if i in WAVEFORMS else name for i, name in enumerate(VITALDB_TRACKS)]
    write_vital_case(case, path, tracks=tracks)  # numerics as hypo writes them
    vf = vitaldb.VitalFile(path)
    rng = np.random.default_rng(0)
    for i, srate, noise in ((ECG, 500, 0.05), (PLETH, 100, 2.0)):
        held = np.repeat(case.signals[:, i].astype(np.float32), srate).reshape(-1, srate)
        held += rng.normal(0, noise, held.shape).astype(np.float32)
        recs = [{"dt": vf.dtstart + s, "val": held[s]} for s in range(len(held))]
        vf.add_track(VITALDB_TRACKS[i], recs, srate=srate, unit=UNITS[SIGNALS[i]])
    vf.to_vital(path)
    return path


def untrained_model(name: str, k: int, out: str) -> str:
    """An untrained model of the given size, traced and saved with a sidecar as ``hypo.infer.export`` does."""
    torch.manual_seed(0)
    cfg = WindowConfig()
    net = build_model(ModelConfig(name, k), MEAN, STD).eval()
    traced = trace_model(net, torch.randn(8, cfg.window_s, len(SIGNALS)) * 10 + 50)
    sidecar = Sidecar(
        signals=list(SIGNALS), units=dict(UNITS), window_s=cfg.window_s, stride_s=cfg.stride_s,
        horizon_s=cfg.label.horizon_s, label=cfg.label,
        thresholds=Thresholds(hypo_map=cfg.label.hypo_map, hyper_sbp=cfg.label.hyper_sbp, p_hypotension=0.5,
                              p_hypertension=0.5),
        fill=cfg.fill, min_case_s=cfg.min_case_s, model=ModelConfig(name, k),
        source=SourceInfo(name="bench", simulated=True),
    )
    return write_exported(traced, sidecar, out)[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=10.0)
    p.add_argument("--strides", type=int, nargs="+", default=[60, 10])
    p.add_argument("--model", default=None, help="an exported model (default: untrained cnn_cnn and lstm, k=42)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--wave-srate", type=int, default=1, help="Hz of the ECG and pleth wave tracks in the file")
    p.add_argument("--monitor-like", action="store_true",
                   help="ECG at 500 Hz and pleth at 100 Hz, one record per second, with noise (as a monitor writes)")
    p.add_argument("--no-cli", action="store_true", help="skip the fresh-process command-line timing")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="hypo-bench-predict-")
    seconds = int(args.hours * 3600)
    t0 = time.perf_counter()
    path = os.path.join(tmp, "ten_hours.vital")
    if args.monitor_like:
        vital, waves = monitor_like_vital(long_demo_case(seconds), path), "ECG 500 Hz + pleth 100 Hz with noise"
    else:
        vital = str(write_vital_case(long_demo_case(seconds), path, wave_srate=args.wave_srate))
        waves = f"waves held at {args.wave_srate} Hz"
    print(f"recording: {seconds:,} s ({seconds / 3600:.1f} h) simulated demo case, {waves}, "
          f"{os.path.getsize(vital) / 1e6:.2f} MB .vital (written in {time.perf_counter() - t0:.1f} s); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    models = ([("given", args.model)] if args.model else
              [(f"{n} k=42 (untrained)", untrained_model(n, 42, os.path.join(tmp, f"{n}.pt"))) for n in ("cnn_cnn",
                                                                                                    "lstm")])
    worst = 0.0
    for label, model in models:
        for stride in args.strides:
            runs = []
            for _ in range(args.repeat):
                res = predict_file(vital, model, stride, out_dir=os.path.join(tmp, "out"), log=lambda s: None)
                runs.append(res["timings"])
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            n_win = len(res["prediction"].t_end)
            line = (f"{label:<24} stride {stride:>3} s: {n_win:>5} windows  total {med['total_s']:.2f} s  (read "
                    f"{med['read_s']:.2f}, clean+fill+windows {med['clean_s']:.2f}, forward {med['predict_s']:.2f}, "
                    f"csv {med['csv_s']:.2f}, png {med['png_s']:.2f})")
            if not args.no_cli:
                cmd = [sys.executable, "-m", "hypo", "predict", vital, "--model", model, "--stride", str(stride),
                       "--out", os.path.join(tmp, "cli")]
                env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": ROOT}
                clis = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=ROOT)
                    clis.append(time.perf_counter() - t0)
                cli = statistics.median(clis)
                line += f"  | CLI, fresh process: {cli:.2f} s"
                worst = max(worst, cli)
            worst = max(worst, med["total_s"])
            print(line, flush=True)
    print(f"slowest (median of {args.repeat}): {worst:.2f} s -> {'PASS' if worst < GOAL_S else 'FAIL'} "
          f"(goal < {GOAL_S:g} s on CPU)")
    probs = res["prediction"].probs
    print(f"last run: {np.isfinite(probs).all(axis=1).sum()} of {len(probs)} windows predicted; files in {tmp}")


if __name__ == "__main__":
    main()
