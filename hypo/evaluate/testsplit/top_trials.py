"""The one look at the test split (PITFALLS.md 6): the leaderboard's top trials, beside the paper's table.

Trials are chosen on the validation split; only the top N are evaluated here, once, at their best
validation epoch. The output repeats the study's table layout (loss x metric rows, model columns) with our
test figures and the paper's published ones side by side, plus every baseline (:mod:`hypo.learn.baselines`:
last reading, feature model, last ART minute where recorded) as a row on the same windows. A metric undefined on
the test split (a class absent) is ``n/a`` with the reason, never a mean over fewer classes.
Each trial and baseline is also scored with each signal group absent in turn
(:mod:`~hypo.evaluate.testsplit.channel_loss`):
``channel_loss.csv`` and a table under the study's.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hypo.errors import ConfigError, HypoError
from hypo.evaluate.testsplit.channel_loss import baseline_channel_loss, format_markdown, long_rows
from hypo.evaluate.testsplit.looks import describe_looks, record_look
from hypo.jsonio import metric_text
from hypo.learn.baselines import MODEL_READS, ROW_PREFIX, reads_of
from hypo.learn.metrics import undefined_reasons
from hypo.search.experiments import experiment_dataset
from hypo.search.leaderboard import load_trials
from hypo.search.record import SearchRecord, read_search_record
from hypo.storage import sha256_file

if TYPE_CHECKING:
    from hypo.evaluate.alarms.evaluation import AlarmOptions

# The study's table (SEED.md): best of each model, loss -> metric -> model.
PAPER_TABLE: dict[tuple[str, str], dict[str, float]] = {
    ("ce", "sum_auprc"): {"cnn": 0.7914, "lstm": 0.9582, "cnn_lstm": 0.7557, "cnn_cnn": 0.9673},
    ("ce", "mean_auroc"): {"cnn": 0.9030, "lstm": 0.9176, "cnn_lstm": 0.9151, "cnn_cnn": 0.9189},
    ("focal", "sum_auprc"): {"cnn": 0.7951, "lstm": 0.9095, "cnn_cnn": 0.9685},
    ("focal", "mean_auroc"): {"cnn": 0.9072, "lstm": 0.9134, "cnn_cnn": 0.9198},
}
PAPER_MODELS = ("cnn", "lstm", "cnn_lstm", "cnn_cnn")  # the paper's column order
MODEL_TITLES = {"cnn": "CNN", "lstm": "LSTM", "cnn_lstm": "CNN*LSTM", "cnn_cnn": "CNN*CNN"}


def evaluate_checkpoint(checkpoint: str, data_dir: str, split: str = "test",
                        channel_loss: list | None = None, name: str = "") -> dict[str, float]:
    """Metrics of a checkpoint's model on one split (stratified by the last reading's class and the last cuff MAP).

    Args:
        checkpoint: The ``checkpoint.pt`` (or its folder).
        data_dir: The dataset.
        split: The split scored.
        channel_loss: When a list, the model's row of the channel-loss table is appended to it.
        name: That row's name.
    """
    from hypo.data.dataset import load_split, read_manifest
    from hypo.evaluate.testsplit.channel_loss import channel_loss_rows
    from hypo.learn.baseline import label_config, last_reading_class
    from hypo.learn.checkpoint import load_model
    from hypo.learn.metrics import evaluate_scores
    from hypo.learn.models import predict_proba

    manifest = read_manifest(data_dir)
    arrays = load_split(data_dir, split, manifest)
    model, cfg = load_model(checkpoint)
    probs = predict_proba(model, arrays.x)
    last = last_reading_class(arrays.last_map, arrays.last_sbp, label_config(manifest))
    if channel_loss is not None:
        channel_loss += channel_loss_rows(model, cfg.model, arrays, manifest, name=name)
    return evaluate_scores(arrays.label, probs, last, where=split, last_map=arrays.last_map,
                           hypo_map=float(manifest.label.hypo_map))


def score_top_trials(exp_path: str, leaderboard: pd.DataFrame, n: int, out_dir: str | None = None,
                    log=print, alarms=None, alarm_cases: int | None = None,
                    exclude_in_hypotension: bool = False) -> pd.DataFrame:
    """Evaluate the top ``n`` ranked trials once on the test split and print the study-layout table.

    Args:
        exp_path: The experiment.
        leaderboard: Its leaderboard (:func:`hypo.search.leaderboard.leaderboard_frame`).
        n: Trials to evaluate.
        out_dir: Where the files go (default: the experiment folder).
        log: Where the tables go.
        alarms: An :class:`~hypo.evaluate.alarms.metrics.AlarmConfig`: the same trials and baselines also as alarms
            on the whole test recordings, thresholds fixed on validation (``test_alarms.md``, ``test_alarms.json``,
            and a table in ``test_table.md``); None to leave that out.
        alarm_cases: At most this many recordings per split for the alarms.
        exclude_in_hypotension: Also show the hypotension figures without the windows whose last cuff reading is
            already below the threshold (``--exclude-in-hypotension``), beside the full ones.

    Returns:
        One row per evaluated trial (test metrics), plus one per baseline; also written to ``test_results.csv``
        and ``test_table.md``, where the comparators and the gray zone follow (:mod:`hypo.evaluate.comparison`;
        every row also in ``test_comparison.json``).
    """
    data_dir = experiment_dataset(exp_path)
    meta = read_search_record(exp_path)
    records = {r.trial_id: r for r in load_trials(exp_path)}
    ranked = leaderboard[leaderboard["rank"].notna()].head(n)
    if alarms is not None:  # --alarm-horizon refused before the test split is looked at
        from hypo.evaluate.alarms.evaluation import check_trials_at_horizon

        check_trials_at_horizon(exp_path, [str(t) for t in ranked["trial"]], alarms, data_dir)
    rows, checkpoints, channel_loss = [], [], []
    for _, r in ranked.iterrows():
        rec = records[r["trial"]]
        ckpt = rec.checkpoint_for(int(r["best_epoch"])) if not math.isnan(r["best_epoch"]) else None
        if ckpt is None:
            log(f"trial {r['trial']}: checkpoint of epoch {r['best_epoch']} not kept; skipped")
            continue
        m = evaluate_checkpoint(ckpt, data_dir, "test", channel_loss, name=f"#{int(r['rank'])} {r['trial']}")
        checkpoints.append(os.path.join(ckpt, "checkpoint.pt"))
        rows.append({"rank": int(r["rank"]), "trial": r["trial"], "model": r["model"], "k": r["k"],
                     "loss": r["loss"], "gamma": r["gamma"], "best_epoch": int(r["best_epoch"]),
                     **({"signals": r["signals"]} if "signals" in r else {}),
                     **{f"test_{k}": v for k, v in m.items()}})
    fm = _feature_model(data_dir, meta)
    records_b, loss_b = baselines_on_test(data_dir, meta, fm, with_channel_loss=True)
    for b in records_b:
        rows.append({"trial": ROW_PREFIX + b["name"], "model": b["model"], **b["metrics"]})
    channel_loss += loss_b
    df = pd.DataFrame(rows)
    out_dir = out_dir or exp_path
    os.makedirs(out_dir, exist_ok=True)
    df.to_csv(os.path.join(out_dir, "test_results.csv"), index=False)
    pd.DataFrame(long_rows(channel_loss)).to_csv(os.path.join(out_dir, "channel_loss.csv"), index=False)
    looks = record_look(exp_path, f"leaderboard --test {n}",
                        [{"trial": r["trial"], "rank": r["rank"], "checkpoint_sha256": sha256_file(c)}
                         for r, c in zip(rows, checkpoints)])
    table = study_table(df) + "\n\n" + comparison_section(data_dir, rows, fm, exclude_in_hypotension, out_dir)
    table += "\n\n" + format_markdown(channel_loss)
    horizons = _horizon_table(data_dir, rows, checkpoints, out_dir, fm)
    if horizons:
        table += "\n\n" + horizons
    if alarms is not None:
        from hypo.evaluate.alarms.evaluation import AlarmOptions

        options = AlarmOptions(cfg=alarms, feature_model=fm, max_cases=alarm_cases)
        table += "\n\n" + _alarm_table(exp_path, data_dir, [r["trial"] for r in rows if "rank" in r], options,
                                       out_dir, log)
    table += "\n\n" + describe_looks(looks)
    with open(os.path.join(out_dir, "test_table.md"), "w") as f:
        f.write(table + "\n")
    log(table)
    return df


def _horizon_table(data_dir: str, rows: list[dict], checkpoints: list[str], out_dir: str, fm) -> str:
    """A multi-horizon dataset: the evaluated trials and the baselines by each horizon on test ('' otherwise)."""
    from hypo.evaluate.horizons import horizon_section

    trials = [r for r in rows if "rank" in r]
    return horizon_section(data_dir, "test", [(f"#{r['rank']} {r['model']}", c) for r, c in zip(trials, checkpoints)],
                           out_dir, feature_model=fm)


def _alarm_table(exp_path: str, data_dir: str, trial_ids: list[str], options: AlarmOptions, out_dir: str,
                 log) -> str:
    """The trials and baselines as alarms on the test split (thresholds fixed on validation), as text.

    Args:
        exp_path: The experiment folder.
        data_dir: Its dataset.
        trial_ids: The trials, in rank order.
        options: The :class:`~hypo.evaluate.alarms.evaluation.AlarmOptions` (config, feature model, cases).
        out_dir: Where ``test_alarms.json`` (the result) and ``test_alarms.md`` (the text) go.
        log: Where progress lines go.
    """
    from hypo.evaluate.alarms.evaluation import evaluate_alarms, trial_models
    from hypo.evaluate.alarms.result import format_alarm_table
    from hypo.evaluate.export_trial import trial_description

    try:
        result, _ = evaluate_alarms(trial_models(exp_path, trial_ids), data_dir, options,
                                    describe=trial_description, log=log)
    except ConfigError:  # a setting that cannot be scored (--alarm-horizon): the command stops, in one line
        raise
    except HypoError as exc:
        return f"alarm evaluation not possible: {exc}"
    text = format_alarm_table(result)
    result.write(os.path.join(out_dir, "test_alarms.json"), indent=1)
    with open(os.path.join(out_dir, "test_alarms.md"), "w") as f:
        f.write("```\n" + text + "\n```\n")
    return text


def comparison_section(data_dir: str, rows: list[dict], fm, exclude: bool, out_dir: str) -> str:
    """The trials, the baselines and the comparators on hypotension, and by the last cuff MAP, as Markdown.

    Args:
        data_dir: The dataset.
        rows: The trials' rows of the test table (their ``test_*`` metrics, with the MAP strata).
        fm: The feature model.
        exclude: Add the figures without the windows already in hypotension.
        out_dir: Where ``test_comparison.json`` goes.
    """
    from hypo.data.dataset import load_split, read_manifest
    from hypo.evaluate.comparison import gray_zone_cells, hypotension_cells, markdown, notes, split_rows
    from hypo.jsonio import jsonable
    from hypo.learn.baselines import split_baselines
    from hypo.learn.comparators import MODEL_INPUTS, fit_comparators

    manifest = read_manifest(data_dir)
    test = load_split(data_dir, "test", manifest)
    fits = fit_comparators(load_split(data_dir, "train", manifest, x=False), manifest)
    trials = [{"name": f"#{r['rank']} {r['trial']}", "reads": MODEL_INPUTS, "fixed": False,
               "metrics": {k.removeprefix("test_"): v for k, v in r.items() if k.startswith("test_")}}
              for r in rows if "rank" in r]
    more, comp_notes = split_rows(test, manifest, {}, split_baselines(test, manifest, fm), fits, where=data_dir)
    every, hypo_map = trials + more, float(manifest.label.hypo_map)
    with open(os.path.join(out_dir, "test_comparison.json"), "w") as f:
        json.dump(jsonable({"rows": every, "notes": comp_notes}), f, indent=1)
    lines = ["Hypotension on the same test windows: the trials and baselines beside the comparators", "",
             *markdown(*hypotension_cells(every, exclude)), "",
             "By the last cuff MAP at prediction time (hypotension AUROC; a fixed rule: sensitivity / specificity)",
             "", *markdown(*gray_zone_cells(every, hypo_map)), ""]
    lines += [f"- {line}" for line in (*notes(every, hypo_map), *comp_notes)]
    return "\n".join(lines)


def _feature_model(data_dir: str, meta: SearchRecord):
    """The search's feature model refitted (or chosen anew for older searches): one fit for every table."""
    from hypo.data.dataset import load_split, read_manifest
    from hypo.learn.baselines import feature_model_for

    manifest = read_manifest(data_dir)
    return feature_model_for(meta.baselines, load_split(data_dir, "train", manifest),
                             load_split(data_dir, "val", manifest))


def baselines_on_test(data_dir: str, meta: SearchRecord, fm=None, with_channel_loss: bool = False):
    """Every baseline's ``test_*`` metrics (the records of :func:`hypo.learn.baselines.baseline_records`).

    The feature model is the one the search chose on validation (refitted on train: deterministic), or, for a
    search that recorded none, chosen anew the same way; ``fm`` passes one already fitted so. With
    ``with_channel_loss`` the result is ``(records, channel_loss_rows)``: also each baseline's rows of the
    channel-loss table.
    """
    from hypo.data.dataset import load_split, read_manifest
    from hypo.learn.baselines import baseline_records, split_baselines

    manifest = read_manifest(data_dir)
    fm = fm if fm is not None else _feature_model(data_dir, meta)
    test = load_split(data_dir, "test", manifest)
    records = baseline_records(test, manifest, fm, where="test", prefix="test_")
    if not with_channel_loss:
        return records
    loss = baseline_channel_loss(split_baselines(test, manifest, fm), np.asarray(test.label, np.int64), test.x,
                                 manifest.zscore.mean, fm)
    return records, loss


def undefined_note(row: dict, where: str = "the test split") -> str:
    """Why a test row's mean AUROC / summed AUPRC are n/a (a class absent), or ''."""
    why = undefined_reasons({k: v for k, v in row.items() if isinstance(k, str)}, where, prefix="test_")
    found = {why[k] for k in ("mean_auroc", "sum_auprc") if k in why}
    return "; ".join(sorted(found))


def study_table(df: pd.DataFrame) -> str:
    """The paper's table layout with ours beside it: 'ours / paper' per cell (best of each model and loss)."""
    trials = df[df["model"].isin(PAPER_MODELS)]
    lines = ["| loss | metric (test) | " + " | ".join(MODEL_TITLES[m] for m in PAPER_MODELS) + " |",
             "|---|---|" + "---|" * len(PAPER_MODELS)]
    for loss in ("ce", "focal"):
        for metric, title in (("sum_auprc", "AUPRC (hypo+hyper)"), ("mean_auroc", "mean AUROC")):
            cells = []
            for model in PAPER_MODELS:
                sub = trials[(trials["model"] == model) & (trials["loss"] == loss)]
                ours = metric_text(sub[f"test_{metric}"].max()) if len(sub) else "-"
                paper = PAPER_TABLE[(loss, metric)].get(model)
                cells.append(f"{ours} / {paper:.4f}" if paper is not None else f"{ours} / -")
            name = "cross entropy" if loss == "ce" else "focal"
            lines.append(f"| {name} | {title} | " + " | ".join(cells) + " |")
    lines.append("cells: ours / paper. Ours come from the top trials only; '-' = no such trial among them.")
    lines += ["", "| row (test split, same windows) | model | mean AUROC | AUPRC hypo+hyper | AUPRC hypo | "
              "AUPRC hyper | reads |", "|---|---|---|---|---|---|---|"]
    notes = []
    for _, r in df.iterrows():
        name = r["trial"] if str(r["trial"]).startswith(ROW_PREFIX) else f"#{int(r['rank'])} {r['trial']}"
        cells = [metric_text(r.get(f"test_{m}")) for m in ("mean_auroc", "sum_auprc", "auprc_hypotension",
                                                             "auprc_hypertension")]
        reads = reads_of(str(r["trial"]).removeprefix(ROW_PREFIX)) if str(r["trial"]).startswith(ROW_PREFIX) \
            else MODEL_READS
        lines.append(f"| {name} | {r['model']} | " + " | ".join(cells) + f" | {reads} |")
        note = undefined_note(r.to_dict())
        if note and note not in notes:
            notes.append(note)
    lines.append("")
    lines += [f"n/a: {note}" for note in notes]
    lines.append("Baseline rows are scored on the same test windows as the trials. Demo-cohort figures are "
                 "simulated, not clinical.")
    return "\n".join(lines)
