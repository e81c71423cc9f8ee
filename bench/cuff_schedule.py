"""The cuff schedule (SIMULATED, demo cohort): from which cuff interval does a model beat the last reading?

    python bench/cuff_schedule.py                       # intervals 60,150,300 s; 400 demo cases; ~5 min on 2 cores
    python bench/cuff_schedule.py --intervals 60,300 --cases 40 --epochs 2 --n-boot 50   # a quick look

For each interval the demo cohort's cases with an arterial line are built into a window dataset with ART labels
whose cuff readings are simulated from the line every INTERVAL seconds (``hypo windows --label-source art
--cuff-from-art INTERVAL``: 40-s inflations reporting at their end, the published oscillometric error; the labels
stay those of the line). One fixed small configuration (``cnn_cnn``, k=8, cross-entropy, ``--epochs`` epochs, seed
0, CPU) is trained on its train split (:func:`hypo.learn.train.fit_arrays`, what ``hypo train`` runs) and scored
as an alarm on the test split's whole recordings beside the last reading and the MAP comparators, each threshold
fixed on the validation split (:func:`hypo.evaluate.alarms.evaluation.evaluate_alarms`, what ``hypo evaluate
--alarms`` runs): episode sensitivity at the false-alarm target and the median lead time of the caught episodes,
with subject-bootstrap intervals. The replay simulates the same cuff as the build (seeded by case).

Prints the tables (and writes them to ``OUT/cuff_schedule.md`` and ``.json``, default ``results/``) and draws
``docs/img/cuff_schedule.png`` (``--png``): sensitivity and lead time against the interval. Every figure is from
the demo SIMULATOR. Everything is seeded (simulator, cuff errors, training, bootstrap): a rerun prints the same.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hypo.config import CuffModel, CuffSchedule, LabelConfig, WindowConfig  # noqa: E402
from hypo.data.dataset import load_split  # noqa: E402
from hypo.data.manifest import write_manifest  # noqa: E402
from hypo.data.pipeline import run_case  # noqa: E402
from hypo.data.preprocess import make_manifest  # noqa: E402
from hypo.data.sources.demo import DemoSource  # noqa: E402
from hypo.evaluate.alarms.evaluation import AlarmOptions, evaluate_alarms  # noqa: E402
from hypo.evaluate.alarms.metrics import AlarmConfig  # noqa: E402
from hypo.evaluate.alarms.replay import EXTRAPOLATION, LAST_DBP, LAST_READING  # noqa: E402
from hypo.infer.export import trace_model  # noqa: E402
from hypo.infer.model import ExportedModel  # noqa: E402
from hypo.infer.sidecar import Sidecar, SourceInfo, Thresholds  # noqa: E402
from hypo.learn.baseline import baseline_metrics  # noqa: E402
from hypo.learn.checkpoint import load_model  # noqa: E402
from hypo.learn.comparators import FIXED_MAP_THRESHOLDS, fixed_name  # noqa: E402
from hypo.learn.metrics import MetricWarning, evaluate_scores  # noqa: E402
from hypo.learn.models import ModelConfig  # noqa: E402
from hypo.learn.train import TrainingData, fit_arrays  # noqa: E402
from hypo.learn.train_config import TrainConfig  # noqa: E402

ROWS = ("model", LAST_READING, *(fixed_name(t) for t in FIXED_MAP_THRESHOLDS), EXTRAPOLATION, LAST_DBP)
OP = "fa_target"  # the operating point: the most sensitive threshold within the false-alarm target on validation


def build(out: str, cases: int, interval: int, error: str) -> None:
    """The demo cohort's window dataset with ART labels and a cuff simulated every ``interval`` s (in process)."""
    cfg = WindowConfig(label=LabelConfig(source="art"),
                       cuff_from_art=CuffSchedule(interval_s=interval, cuff=CuffModel(error=error)))
    source = DemoSource(cases, 0, arterial=True)
    summaries = [run_case(ref, source, cfg, out) for ref in source.case_refs()]
    write_manifest(out, make_manifest(summaries, cfg, source, wall_s=0.0))


def train(data: str, run: str, epochs: int, k: int) -> ExportedModel:
    """The fixed small configuration trained on ``data``'s train split, its best epoch traced as hypo export does."""
    from hypo.data.dataset import read_manifest

    manifest = read_manifest(data)
    split = TrainingData(load_split(data, "train", manifest), load_split(data, "val", manifest), manifest, data)
    cfg = TrainConfig(model=ModelConfig("cnn_cnn", k, manifest.window_s), loss="ce", epochs=epochs,
                      batch_size=512, seed=0, device="cpu", amp="off")
    with warnings.catch_warnings():  # strata without a class in a small validation split
        warnings.simplefilter("ignore", MetricWarning)
        fit_arrays(cfg, split, out_dir=run)
    net, _ = load_model(os.path.join(run, "best.pt"))
    traced = trace_model(net, torch.as_tensor(np.ascontiguousarray(split.val.x[:8])))
    wc = manifest.config
    sidecar = Sidecar(signals=list(manifest.signals), window_s=wc.window_s, min_case_s=wc.min_case_s,
                      horizon_s=wc.label.horizon_s, label=wc.label, fill=wc.fill, model=cfg.model,
                      thresholds=Thresholds(hypo_map=wc.label.hypo_map, hyper_sbp=wc.label.hyper_sbp),
                      source=SourceInfo(name=manifest.source.name, simulated=True, cohort=manifest.cohort))
    return ExportedModel(traced, sidecar, run, "export")


def window_auroc(data: str, model: ExportedModel) -> dict:
    """AUROC for hypotension on the test split's windows: the model against the last reading (window baseline)."""
    from hypo.data.dataset import read_manifest

    manifest = read_manifest(data)
    test = load_split(data, "test", manifest)
    with torch.no_grad():
        probs = np.concatenate([model.module(torch.as_tensor(np.ascontiguousarray(test.x[i:i + 4096]))).numpy()
                                for i in range(0, len(test.x), 4096)])
    model_auroc = evaluate_scores(test.label, probs, warn=False)["auroc_hypotension"]
    last_auroc = baseline_metrics(test, manifest, warn=False)["auroc_hypotension"]
    return {"windows": len(test.label), "hypotension": int((test.label == 1).sum()),
            "model": float(model_auroc), LAST_READING: float(last_auroc)}


def _metric(op: dict, name: str) -> dict:
    entry = op.get(name) or {}
    return {"value": entry.get("value"), "lo": entry.get("lo"), "hi": entry.get("hi")}


def score(data: str, model: ExportedModel, n_boot: int, stride: int) -> dict:
    """Each row's sensitivity, median lead and false alarms per hour on the test split (thresholds from val)."""
    opts = AlarmOptions(cfg=AlarmConfig(stride_s=stride), feature_model=None, n_boot=n_boot)
    result, _ = evaluate_alarms({"model": model}, data, opts, describe=lambda m: "cnn_cnn k=8 (bench)",
                                log=lambda s: None)
    out = {"cases": result.cases.scored, "episodes": result.cases.episodes.get("scored", 0),
           "hours": result.cases.hours, "rows": {}}
    for name in ROWS:
        row = result.row(name)
        op = row.operating_points[OP]
        out["rows"][name] = {"threshold": row.thresholds[OP]["threshold"], "sensitivity": _metric(op, "sensitivity"),
                             "lead_median_s": _metric(op, "lead_median_s"), "fa_per_h": _metric(op, "fa_per_h"),
                             "time_in_alarm": _metric(op, "time_in_alarm")}
    return out


def _num(v, fmt="{:.2f}"):
    return "n/a" if v is None else fmt.format(v)


def _ci(m: dict, fmt="{:.2f}") -> str:
    if m["value"] is None:
        return "n/a"
    if m["lo"] is None:
        return fmt.format(m["value"])
    return f"{fmt.format(m['value'])} [{fmt.format(m['lo'])}, {fmt.format(m['hi'])}]"


def table(results: dict) -> list[str]:
    """The markdown table: one line per interval and row."""
    lines = ["| cuff every | row | sensitivity [95% CI] | median lead, min [95% CI] | false alarms / h | "
             "time in alarm |", "|---|---|---|---|---|---|"]
    for interval, res in results.items():
        for name, r in res["rows"].items():
            lead = {k: (v / 60 if v is not None else None) for k, v in r["lead_median_s"].items()}
            lines.append(f"| {interval} s | {name} | {_ci(r['sensitivity'])} | {_ci(lead, '{:.1f}')} | "
                         f"{_num(r['fa_per_h']['value'])} | {_num(r['time_in_alarm']['value'])} |")
    return lines


def auroc_table(results: dict) -> list[str]:
    """Window AUROC for hypotension on the test split, model against the last reading."""
    lines = ["| cuff every | test windows (hypotension) | AUROC hypotension: model | last reading | "
             "difference |", "|---|---|---|---|---|"]
    for interval, res in results.items():
        a = res["window_auroc"]
        lines.append(f"| {interval} s | {a['windows']:,} ({a['hypotension']:,}) | {a['model']:.3f} | "
                     f"{a[LAST_READING]:.3f} | {a['model'] - a[LAST_READING]:+.3f} |")
    return lines


def answer(results: dict) -> list[str]:
    """From which interval on the model beats the last reading, and by how much (alarms and windows)."""
    lines = []
    for interval, res in results.items():
        m, last = (res["rows"][n] for n in ("model", LAST_READING))
        a = res["window_auroc"]
        auroc = f"window AUROC {a['model'] - a[LAST_READING]:+.3f} ({a['model']:.3f} vs {a[LAST_READING]:.3f})"
        if m["sensitivity"]["value"] is None or last["sensitivity"]["value"] is None:
            lines.append(f"cuff every {interval} s: alarms undefined (no scored episode); {auroc}")
            continue
        ms, ls = m["sensitivity"]["value"], last["sensitivity"]["value"]
        verdict = "beats" if ms > ls else "does not beat"
        lines.append(f"cuff every {interval} s: the model {verdict} the last reading by {ms - ls:+.2f} in alarm "
                     f"sensitivity ({ms:.2f} vs {ls:.2f}, in alarm {_num(m['time_in_alarm']['value'])} vs "
                     f"{_num(last['time_in_alarm']['value'])} of the time; {res['episodes']} test episodes, "
                     f"{res['cases']} cases); {auroc}")
    return lines


def plot(results: dict, path: str) -> None:
    """Sensitivity and median lead time against the interval, one line per row, marked SIMULATED."""
    import matplotlib.pyplot as plt

    intervals = [int(i) for i in results]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for name in ROWS:
        for ax, key, scale in ((axes[0], "sensitivity", 1.0), (axes[1], "lead_median_s", 1 / 60)):
            ms = [results[i]["rows"][name][key] for i in results]
            y = np.array([np.nan if m["value"] is None else m["value"] * scale for m in ms])
            style = {"lw": 2.5, "color": "black"} if name == "model" else {"lw": 1.2}
            (line,) = ax.plot(intervals, y, marker="o", label=name, **style)
            if name in ("model", LAST_READING):
                lo = np.array([np.nan if m["lo"] is None else m["lo"] * scale for m in ms])
                hi = np.array([np.nan if m["hi"] is None else m["hi"] * scale for m in ms])
                ax.fill_between(intervals, lo, hi, alpha=0.15, color=line.get_color())
    for name, style in (("model", {"lw": 2.5, "color": "black"}), (LAST_READING, {"lw": 1.2, "color": "C0"})):
        axes[2].plot(intervals, [results[i]["window_auroc"][name] for i in results], marker="o", label=name, **style)
    axes[0].set(xlabel="cuff interval (s)", ylabel="episode sensitivity at the false-alarm target",
                title="sensitivity (threshold fixed on validation)", ylim=(0, 1))
    axes[1].set(xlabel="cuff interval (s)", ylabel="median lead of caught episodes (min)", title="lead time")
    axes[2].set(xlabel="cuff interval (s)", ylabel="AUROC for hypotension (test windows)", title="windows")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(intervals)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("SIMULATED (demo cohort, cuff simulated from the arterial line): model vs last reading by cuff "
                 "interval", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--intervals", default="60,150,300", help="cuff intervals, seconds")
    p.add_argument("--cases", type=int, default=400, help="demo cases (about 60%% have an arterial line)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--k", type=int, default=8, help="cnn_cnn width")
    p.add_argument("--cuff-error", choices=("published", "none"), default="published")
    p.add_argument("--n-boot", type=int, default=200, help="subject-bootstrap replicates")
    p.add_argument("--stride", type=int, default=30, help="seconds between predictions along a recording")
    p.add_argument("--out", default="results/cuff_schedule", help="the tables (markdown) and JSON go here")
    p.add_argument("--png", default="docs/img/cuff_schedule.png", help="the figure")
    p.add_argument("--work", default=None, help="datasets and runs (default: a temporary folder)")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.out, exist_ok=True)
    work = args.work or tempfile.mkdtemp(prefix="hypo-cuff-schedule-")
    results = {}
    for interval in (int(s) for s in args.intervals.split(",")):
        t0 = time.perf_counter()
        data, run = os.path.join(work, f"cuff{interval}"), os.path.join(work, f"run{interval}")
        build(data, args.cases, interval, args.cuff_error)
        model = train(data, run, args.epochs, args.k)
        results[interval] = score(data, model, args.n_boot, args.stride)
        results[interval]["window_auroc"] = window_auroc(data, model)
        print(f"cuff every {interval} s: built, trained and scored in {time.perf_counter() - t0:.0f} s", flush=True)
    lines = [*table(results), "", *auroc_table(results)]
    verdict = answer(results)
    head = (f"SIMULATED: demo cohort ({args.cases} cases, those with an arterial line), ART labels, cuff simulated "
            f"from the line ({args.cuff_error} error, 40-s inflations); cnn_cnn k={args.k}, {args.epochs} epochs; "
            "test split, thresholds fixed on validation (false-alarm target), subject-bootstrap 95% CI")
    print("\n".join([head, "", *lines, "", *verdict]))
    with open(os.path.join(args.out, "cuff_schedule.md"), "w") as f:
        f.write("\n".join([head, "", *lines, "", *verdict]) + "\n")
    with open(os.path.join(args.out, "cuff_schedule.json"), "w") as f:
        json.dump({"settings": vars(args), "results": results}, f, indent=1)
    os.makedirs(os.path.dirname(args.png) or ".", exist_ok=True)
    plot(results, args.png)
    print(f"wrote {args.png}, {args.out}/cuff_schedule.md and .json")
    return results


if __name__ == "__main__":
    main()
