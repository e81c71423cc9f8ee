r"""One multi-horizon model as an alarm at each horizon's risk (``--alarm-horizon``), beside the last reading.

    hypo windows --source demo --cases 60 --horizons 60,180,300,600,900 --out data/horizons
    hypo search --data data/horizons --head hazard --samples 1 --epochs 10 --sampler random --scheduler none \
        --storage runs --name h
    python bench/alarm_horizons.py runs/h                  # its leaderboard's first trial, on the test split

For the primary horizon's 3-class p(hypotension) and then the risk by each horizon of the model, the alarm
evaluation (:func:`hypo.evaluate.alarms.evaluation.alarm_evaluation`, what ``hypo evaluate --alarms`` runs) fixes
the thresholds on the validation recordings and judges the test recordings, with the default rules (the warning
window stays 15 min whatever the horizon). Prints the model row at the false-alarm target for each score, and the
last reading's row (the same in every run: the baselines do not read the model). On the demo cohort every figure is
SIMULATED.
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout

from hypo.evaluate.alarms.evaluation import AlarmOptions, alarm_evaluation  # noqa: E402
from hypo.evaluate.alarms.metrics import AlarmConfig  # noqa: E402
from hypo.evaluate.alarms.replay import LAST_READING  # noqa: E402
from hypo.evaluate.export_trial import load_model_or_trial  # noqa: E402
from hypo.search.experiments import experiment_dataset  # noqa: E402

OP = "fa_target"


def ci(m, scale=1.0, digits=2, pct=False) -> str:
    """A figure with its interval."""
    if not m or m.get("value") is None:
        return "n/a"
    f = (lambda v: f"{100 * v:.0f}%") if pct else (lambda v: f"{v * scale:.{digits}f}")
    return f"{f(m['value'])}" + (f" [{f(m['lo'])}, {f(m['hi'])}]" if m.get("lo") is not None else "")


def line(label: str, row) -> str:
    """One table line of a row at the false-alarm target."""
    p, t = row.operating_points[OP], row.thresholds[OP]
    return (f"| {label} | {t['threshold']:.3f} | {ci(p['sensitivity'], pct=True)} | "
            f"{ci(p['lead_median_s'], 1 / 60, 1)} | {ci(p['fa_per_h'])} | {ci(p['time_in_alarm'], pct=True)} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a search's experiment folder on a multi-horizon dataset (per-horizon head)")
    p.add_argument("--data", default=None, help="its dataset (default: the search's)")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--stride", type=int, default=10)
    args = p.parse_args()
    model = load_model_or_trial(args.run)
    data = args.data or experiment_dataset(args.run)
    print("| alarm score (model row) | threshold | sensitivity | lead, min | false alarms/h | in alarm |")
    print("|---|---|---|---|---|---|")
    last, t0 = None, time.perf_counter()
    for h in (None, *model.horizons_s):
        opts = AlarmOptions(cfg=AlarmConfig(stride_s=args.stride, horizon_s=h), n_boot=args.n_boot)
        res = alarm_evaluation(model, data, opts, log=lambda s: None)
        label = "p(hypotension), primary 3-class" if h is None else f"risk by {h / 60:g} min"
        print(line(label, res.row("model")))
        last = res.row(LAST_READING)
    print(line("last reading (MAP below; the same in every run)", last))
    print(f"test split, {res.cases.scored} recordings, {res.cases.hours:.1f} h, {res.cases.episodes['scored']} "
          f"episodes; thresholds fixed on validation for <= 1 false alarm/h"
          + ("; SIMULATED (demo cohort)" if res.simulated else "") + f"; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
