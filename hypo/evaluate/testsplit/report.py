"""The final report: one trial evaluated once on the test split, as a self-contained HTML page with PNG figures.

    hypo report runs/hypo-search                  # the leaderboard's first trial
    hypo report runs/hypo-search --trial 3f2a_00001 --out report/ --bootstrap 1000

The trial is the leaderboard's first (ranked on the validation split) unless ``--trial`` names one; its
checkpoint of the best validation epoch is evaluated on the test split, beside every baseline on the same windows
(:mod:`hypo.learn.baselines`: the last reading, the feature model, the last ART minute where recorded), each a row
of one table. The page holds one-vs-rest ROC and precision-recall curves for hypotension and hypertension with
95% bands from a bootstrap over subjects (:mod:`hypo.evaluate.bootstrap`), sensitivity at 90% specificity, the confusion
matrix at the operating point (:mod:`hypo.learn.operating_point`: thresholds fixed on the validation split), a
calibration curve, results stratified by the last reading's class, the paper's table beside ours, the same
trial and baselines with each signal group absent in turn (:mod:`hypo.evaluate.testsplit.channel_loss`), and the
fingerprints of the dataset, the config and the checkpoint. Figures are embedded as data URIs and also written
next to the page; ``report.json`` keeps every number.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from typing import Any

import numpy as np

from hypo import __version__
from hypo.data.manifest import Manifest, read_manifest
from hypo.data.signals import CLASSES, HYPERTENSION, HYPOTENSION
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.calibration import class_calibration
from hypo.evaluate.calibration import reliability as calibration
from hypo.evaluate.testsplit.channel_loss import CONDITIONS, channel_loss_rows, condition_title
from hypo.evaluate.testsplit.channel_loss import NOTE as CHANNEL_LOSS_NOTE
from hypo.evaluate.testsplit.looks import describe_looks, record_look
from hypo.evaluate.testsplit.report_card import write_report_card
from hypo.evaluate.testsplit.report_html import ci, render_html
from hypo.evaluate.trials import ChosenTrial, choose_trial, load_trial  # noqa: F401 - re-exported, as before
from hypo.jsonio import jsonable
from hypo.learn.metrics import undefined_reasons
from hypo.learn.operating_point import SPECIFICITY, alarm_thresholds, confusion, decide, describe
from hypo.mirror import staged_out
from hypo.search.experiments import experiment_folder, shown
from hypo.storage import sha256_file, writable_folder

ABNORMAL = (HYPOTENSION, HYPERTENSION)
N_BOOT = 1000
THIS_TRIAL = "this trial"  # the model's row among the comparators


@dataclasses.dataclass(frozen=True)
class ReportRequest:
    """What ``hypo report`` was asked to do (see its ``--help`` for each option).

    Attributes:
        experiment: The experiment folder of a search.
        trial: Trial id (default: the leaderboard's first).
        out: Output folder (default: ``EXPERIMENT/report``).
        n_boot: Subject-bootstrap replicates.
        seed: Bootstrap seed.
        specificity: Of the operating point, fixed on the validation split.
        alarms: An :class:`~hypo.evaluate.alarms.metrics.AlarmConfig` to score the trial as an alarm on the whole
            test recordings too (:mod:`hypo.evaluate.alarms.report`), or None to leave the section out.
        alarm_cases: At most this many recordings per split for the alarm evaluation.
        exclude_in_hypotension: Also show the hypotension figures without the windows whose last cuff reading is
            already below the threshold, beside the full ones (always in ``report.json``).
        advisor: Also run the cuff advisor closed-loop on the recordings (arterial-line datasets;
            :func:`hypo.evaluate.advisor.job.report_advisor`, ``alarm_cases`` recordings per split).
    """

    experiment: str
    trial: str | None = None
    out: str | None = None
    n_boot: int = N_BOOT
    seed: int = 0
    specificity: float = SPECIFICITY
    alarms: Any = None
    alarm_cases: int | None = None
    exclude_in_hypotension: bool = False
    advisor: bool = False


def provenance(chosen: ChosenTrial, manifest: Manifest, ckpt: dict, cfg) -> dict[str, Any]:
    """Fingerprints and paths that identify what produced a result."""
    from hypo.config import fingerprint, to_dict

    ckpt_file = os.path.join(chosen.checkpoint, "checkpoint.pt")
    return {
        "experiment": shown(chosen.exp_path),
        "trial": chosen.trial_id,
        "rank": chosen.rank,
        "epoch": chosen.epoch,
        "checkpoint": shown(ckpt_file),
        "checkpoint_sha256": sha256_file(ckpt_file),
        "data": chosen.data_dir,
        "dataset_fingerprint": manifest.fingerprint,
        "checkpoint_dataset_fingerprint": ckpt["dataset_fingerprint"],
        "search_dataset_fingerprint": chosen.meta.dataset_fingerprint,
        "config_fingerprint": fingerprint(cfg),
        "search_fingerprint": chosen.meta.search_fingerprint,
        "config": to_dict(cfg),
        "window_config": to_dict(manifest.config) if manifest.config is not None else None,
        "label": to_dict(manifest.label),
        "source": manifest.source.name,
        "simulated": manifest.simulated,
        "hypo_version": __version__,
        "checkpoint_hypo_version": ckpt.get("hypo_version"),
    }


# ----------------------------------------------------------------------------------------------- evaluation


def operating_point_stats(y, probs, thresholds) -> dict[str, Any]:
    """Per abnormal class, of its alarm ``p(class) >= threshold`` (one-vs-rest, a point on its ROC curve).

    Returns:
        Class name -> threshold, sensitivity, specificity, PPV and alarm rate.
    """
    out = {}
    for c in ABNORMAL:
        with np.errstate(invalid="ignore"):
            pos, alarm = y == c, probs[:, c] >= thresholds[CLASSES[c]]
        tp, fp = int((pos & alarm).sum()), int((~pos & alarm).sum())
        fn, tn = int((pos & ~alarm).sum()), int((~pos & ~alarm).sum())
        out[CLASSES[c]] = {
            "threshold": thresholds[CLASSES[c]],
            "sensitivity": tp / (tp + fn) if tp + fn else math.nan,
            "specificity": tn / (tn + fp) if tn + fp else math.nan,
            "ppv": tp / (tp + fp) if tp + fp else math.nan,
            "alarm_rate": float(alarm.mean()) if len(y) else math.nan,
        }
    return out


@dataclasses.dataclass
class SplitScores:
    """The chosen trial and every baseline scored on the test split, with what they were scored with."""

    model: Any
    cfg: Any
    ckpt: dict[str, Any]
    manifest: Manifest
    val: Any
    test: Any
    thresholds: dict[str, float]
    probs: np.ndarray
    feature_model: Any
    baselines: list

    @property
    def y(self) -> np.ndarray:
        """int64 [n] test labels."""
        return np.asarray(self.test.label, np.int64)


def score_test_split(chosen: ChosenTrial, specificity: float = SPECIFICITY) -> SplitScores:
    """The trial's probabilities on the test split, its operating point fixed on validation, and the baselines.

    Raises:
        HypoError: When the test split is empty (its reason), or anything :func:`load_trial` refuses.
    """
    from hypo.data.dataset import empty_split_reason, load_split
    from hypo.learn.baselines import feature_model_for, split_baselines
    from hypo.learn.models import predict_proba

    model, cfg, ckpt, manifest = load_trial(chosen)
    val = load_split(chosen.data_dir, "val", manifest)
    thresholds = alarm_thresholds(val.label, predict_proba(model, val.x), specificity)
    test = load_split(chosen.data_dir, "test", manifest)
    if len(test) == 0:
        raise HypoError(f"{chosen.data_dir}: {empty_split_reason(manifest, 'test')}")
    probs = predict_proba(model, test.x)
    # Every baseline on the same test windows; the feature model is the one the search chose on validation.
    fm = feature_model_for(chosen.meta.baselines, load_split(chosen.data_dir, "train", manifest), val)
    baselines = split_baselines(test, manifest, fm)
    return SplitScores(model, cfg, ckpt, manifest, val, test, thresholds, probs, fm, baselines)


def class_curves(ts: SplitScores, boot: dict[str, Any], op: dict[str, Any]) -> tuple[dict, dict]:
    """Per abnormal class: the ROC and PR curves of the model and the baselines, their bands and labels; calibration.

    Returns:
        ``(curves, calibration)``: what :func:`~hypo.evaluate.testsplit.report_figures.roc_pr_figure` draws, and
        each class's reliability of the model and of the last-reading baseline.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    from hypo.evaluate.bootstrap import GRID

    y, probs, base = ts.y, ts.probs, ts.baselines[0].scores
    curves: dict[str, Any] = {}
    calib: dict[str, Any] = {}
    for c in ABNORMAL:
        name = CLASSES[c]
        pos = y == c
        b, rb = boot[name], boot["reference"][name]
        entry: dict[str, Any] = {"prevalence": b["prevalence"]}
        defined = 0 < pos.sum() < len(y)
        if defined:
            fpr, tpr, _ = roc_curve(pos, probs[:, c])
            bfpr, btpr, _ = roc_curve(pos, base[:, c])
            prec, rec, _ = precision_recall_curve(pos, probs[:, c])
            bprec, brec, _ = precision_recall_curve(pos, base[:, c])
            entry.update(roc=(fpr, tpr), base_roc=(bfpr, btpr), pr=(rec, prec), base_pr=(brec, bprec))
        else:
            empty = (np.zeros(0), np.zeros(0))
            entry.update(roc=empty, base_roc=empty, pr=empty, base_pr=empty)
        entry["roc_band"] = (GRID, b["roc"]["tpr_lo"], b["roc"]["tpr_hi"])
        entry["pr_band"] = (GRID, b["pr"]["precision_lo"], b["pr"]["precision_hi"])
        entry["model_label"] = f"model: AUROC {ci(b['auroc'])}"
        entry["base_label"] = f"last-reading baseline: AUROC {ci(rb['auroc'])}"
        entry["pr_model_label"] = f"model: AUPRC {ci(b['auprc'])}"
        entry["pr_base_label"] = f"last-reading baseline: AUPRC {ci(rb['auprc'])}"
        entry["others"] = []
        for other in ts.baselines[1:] if defined else ():
            ob = boot["references"][other.name][name]
            ofpr, otpr, _ = roc_curve(pos, other.scores[:, c])
            oprec, orec, _ = precision_recall_curve(pos, other.scores[:, c])
            entry["others"].append({"roc": (ofpr, otpr), "pr": (orec, oprec),
                                    "label": f"{other.name} baseline: AUROC {ci(ob['auroc'])}",
                                    "pr_label": f"{other.name} baseline: AUPRC {ci(ob['auprc'])}"})
        o = op[name]
        entry["op"] = (1 - o["specificity"], o["sensitivity"], o["ppv"])
        curves[name] = entry
        calib[name] = {"model": calibration(pos, probs[:, c]), "baseline": calibration(pos, base[:, c])}
        calib[name]["ece"] = calib[name]["model"]["ece"]
    return curves, calib


def evaluate_trial(chosen: ChosenTrial, req: ReportRequest, log=print) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate the chosen trial once on the test split, with the baseline on the same windows.

    Args:
        chosen: The trial (:func:`choose_trial`).
        req: The bootstrap, the operating point's specificity, and the alarm section's settings.
        log: Where progress lines go.

    Returns:
        ``(results, curves)``: ``results`` is JSON-ready (every number of the report); ``curves`` holds the
        arrays the figures draw (and, with ``alarms``, the typed alarm result and its detail).
    """
    from hypo.evaluate.bootstrap import bootstrap_scores
    from hypo.learn.baseline import label_config, last_reading_class
    from hypo.learn.metrics import evaluate_scores

    n_boot, seed, specificity = req.n_boot, req.seed, req.specificity
    ts = score_test_split(chosen, specificity)
    test, probs, y, baselines = ts.test, ts.probs, ts.y, ts.baselines
    base = baselines[0].scores  # the last reading: the reference of the paired difference and the curves
    last = last_reading_class(test.last_map, test.last_sbp, label_config(ts.manifest))
    hypo_map = float(ts.manifest.label.hypo_map)
    metrics = evaluate_scores(y, probs, last, where="test", warn=False, last_map=test.last_map, hypo_map=hypo_map)
    base_metrics = evaluate_scores(y, base, last, where="test", warn=False)
    boot = bootstrap_scores(y, probs, test.subjectid, n_boot, seed, specificity=specificity, reference=base,
                            references={b.name: b.scores for b in baselines[1:]})
    baseline_rows = [{"name": b.name, "model": b.model, "description": b.description, "params": b.params,
                      "metrics": base_metrics if i == 0 else evaluate_scores(y, b.scores, last, warn=False),
                      "bootstrap": boot["reference"] if i == 0 else boot["references"][b.name]}
                     for i, b in enumerate(baselines)]
    channel_loss = channel_loss_rows(ts.model, ts.cfg.model, test, ts.manifest, baselines=baselines,
                                     feature_model=ts.feature_model)
    prov = provenance(chosen, ts.manifest, ts.ckpt, ts.cfg)
    looks = record_look(chosen.exp_path, "hypo.evaluate.testsplit.report",
                        [{"trial": chosen.trial_id, "rank": chosen.rank,
                          "checkpoint_sha256": prov["checkpoint_sha256"]}])
    cm = confusion(y, decide(probs, ts.thresholds))
    op = operating_point_stats(y, probs, ts.thresholds)
    curves, calib = class_curves(ts, boot, op)
    results = {
        "format": "hypo-report/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "split": "test",
        "n_windows": int(len(y)),
        "n_subjects": boot["n_subjects"],
        "n_cases": int(len(np.unique(test.caseid))),
        "trial": trial_summary(chosen),
        "metrics": metrics,
        "baseline_metrics": base_metrics,
        "baselines": baseline_rows,
        "undefined": undefined_reasons(metrics, "the test split"),
        "bootstrap": {k: v for k, v in jsonable(boot).items() if k not in ("grid",)},
        "operating_point": {"rule": describe(specificity), "specificity": specificity, "thresholds": ts.thresholds,
                            "classes": list(CLASSES), "confusion": cm.tolist(), "per_class": op},
        "calibration": calib,
        "calibration_summary": calibration_summary(y, probs),
        "channel_loss": {"rows": channel_loss, "note": CHANNEL_LOSS_NOTE},
        "comparison": comparison_results(ts, chosen.data_dir, req),
        **horizon_results(ts, n_boot, seed),
        "provenance": prov,
        "test_looks": {"look": looks["look"], "earlier": looks["earlier"], "note": describe_looks(looks)},
    }
    figures = {"roc_pr": curves, "calibration": calib, "confusion": cm, "alarms": None, "alarm_result": None}
    if req.alarms is not None:
        from hypo.evaluate.alarms.evaluation import AlarmOptions
        from hypo.evaluate.alarms.report import report_alarms

        options = AlarmOptions(cfg=req.alarms, feature_model=ts.feature_model, max_cases=req.alarm_cases,
                               n_boot=n_boot, seed=seed)
        result, figures["alarms"], error = report_alarms(chosen, ts.manifest, options, ts.val, log)
        results["alarms"] = result.to_dict() if result is not None else {"error": error}
        figures["alarm_result"] = result
    return results, figures


def horizon_results(ts: SplitScores, n_boot: int, seed: int) -> dict[str, Any]:
    """A multi-horizon dataset: ``{"horizons": rows}``, the model and baselines by each horizon; else ``{}``."""
    if ts.manifest.horizons is None:
        return {}
    from hypo.evaluate.horizons import N_BOOT, baseline_rows, feature_model_row, horizon_records, model_row

    head = ts.cfg.model.head
    rows = [model_row(f"{ts.cfg.model.name}" + (f" {head} head" if head != "class" else ""), ts.model, ts.test.x)]
    rows += feature_model_row(ts.feature_model, ts.test.x)
    df = horizon_records(ts.test, ts.manifest, rows + baseline_rows(ts.test, ts.manifest), min(n_boot, N_BOOT), seed)
    return {"horizons": df.to_dict("records")}


def calibration_summary(y, probs) -> dict[str, Any] | None:
    """ECE, Brier, slope and intercept per abnormal class (the model card's).

    None when they cannot be fitted (e.g. a model whose probabilities never vary).
    """
    try:
        return {k: v for k, v in class_calibration(y, probs).items() if k in CLASSES}
    except np.linalg.LinAlgError:
        return None


def comparison_results(ts: SplitScores, data_dir: str, req: ReportRequest) -> dict[str, Any]:
    """The trial, the baselines and the comparators on hypotension, also by the last cuff MAP, with intervals.

    Returns:
        ``{"rows", "notes", "exclude_in_hypotension", "hypo_map"}``: the rows of :mod:`hypo.evaluate.comparison`
        (the comparators fitted on the train split), each with its subject-bootstrap intervals (the report's
        replicates), and the notes saying which comparators the dataset cannot give.
    """
    from hypo.data.dataset import load_split
    from hypo.evaluate.comparison import add_intervals, split_rows
    from hypo.learn.comparators import fit_comparators

    fits = fit_comparators(load_split(data_dir, "train", ts.manifest, x=False), ts.manifest)
    scores: dict[str, np.ndarray] = {}
    rows, notes = split_rows(ts.test, ts.manifest, {THIS_TRIAL: ts.probs}, ts.baselines, fits, where=data_dir,
                             scores=scores)
    add_intervals(rows, scores, ts.y, ts.test.subjectid, ts.test.last_map, req.n_boot, req.seed)
    return {"rows": rows, "notes": notes, "exclude_in_hypotension": req.exclude_in_hypotension,
            "hypo_map": float(ts.manifest.label.hypo_map)}


def comparison_lines(results: dict[str, Any]) -> list[str]:
    """The hypotension rows and the gray zone, as console lines (the comparators' notes after them)."""
    from hypo.evaluate.comparison import gray_zone_cells, hypotension_cells, text_table

    section = results.get("comparison")
    if not section:
        return []
    rows = section["rows"]
    return (["hypotension, the comparators beside (95% CI over subjects):",
             *text_table(*hypotension_cells(rows, section["exclude_in_hypotension"])),
             "by the last cuff MAP (hypotension AUROC; fixed rules: sensitivity / specificity):",
             *text_table(*gray_zone_cells(rows, section["hypo_map"])), *section["notes"]])


def trial_summary(chosen: ChosenTrial) -> dict[str, Any]:
    """The chosen trial's parameters and validation scores as plain JSON values."""
    row = {k: jsonable(chosen.row.get(k)) for k in ("trial", "model", "loss", "gamma", "lr", "val_mean_auroc",
                                                  "val_sum_auprc", "val_auprc_hypotension", "val_auprc_hypertension")}
    row.update(rank=chosen.rank, k=int(chosen.row["k"]), best_epoch=chosen.epoch)
    return row


# --------------------------------------------------------------------------------------------------- output


def write_report(results: dict[str, Any], curves: dict[str, Any], out_dir: str) -> dict[str, str]:
    """Write the figures, ``report.html`` (figures embedded) and ``report.json`` into ``out_dir``.

    Returns:
        Name -> path of every file written.
    """
    from hypo.evaluate.testsplit.report_figures import calibration_figure, confusion_figure, roc_pr_figure

    os.makedirs(out_dir, exist_ok=True)
    prov = results["provenance"]
    sim = " (simulated data)" if prov["simulated"] else ""
    trial = results["trial"]
    what = f"{trial['model']} k={trial['k']} {trial['loss']}"
    paths = {
        "roc_pr": roc_pr_figure(curves["roc_pr"], os.path.join(out_dir, "roc_pr.png"),
                                f"test split{sim}: {what}, epoch {prov['epoch']}; {results['n_windows']:,} windows "
                                f"from {results['n_subjects']} subjects"),
        "confusion": confusion_figure(curves["confusion"], CLASSES, os.path.join(out_dir, "confusion.png"),
                                      f"test split{sim}: operating point fixed on validation\n"
                                      f"({100 * results['operating_point']['specificity']:.0f}% specificity per "
                                      "alarm)", horizon_s=int(prov["label"]["horizon_s"])),
        "calibration": calibration_figure(curves["calibration"], os.path.join(out_dir, "calibration.png"),
                                          f"test split{sim}: calibration"),
    }
    if results.get("horizons"):
        import pandas as pd

        from hypo.evaluate.horizons import horizon_figure

        paths["horizons"] = horizon_figure(pd.DataFrame(results["horizons"]), os.path.join(out_dir, "horizons.png"),
                                           f"Hypotension by each horizon, test split{sim.upper()}: {what}")
    if curves.get("alarms") is not None:
        from hypo.evaluate.alarms.report import write_alarm_figures

        paths.update(write_alarm_figures(curves["alarm_result"], curves["alarms"], out_dir, f": {what}",
                                         float(prov["label"]["hypo_map"])))
    if (results.get("advisor") or {}).get("files"):
        paths["advisor"] = results["advisor"]["files"]["figure"]
    paths["json"] = os.path.join(out_dir, "report.json")
    with open(paths["json"], "w") as f:
        json.dump(jsonable(results), f, indent=2)
    paths["html"] = os.path.join(out_dir, "report.html")
    with open(paths["html"], "w", encoding="utf-8") as f:
        f.write(render_html(results, {k: v for k, v in paths.items() if k not in ("json", "html")}))
    return paths


def make_report(req: ReportRequest, log=print) -> dict[str, Any]:
    """Evaluate and write the report; returns ``{"results", "paths"}``.

    Raises:
        ConfigError: A bootstrap count or specificity out of range (before any work).
    """
    if req.n_boot < 1:
        raise ConfigError(f"--bootstrap must be >= 1, got {req.n_boot}")
    if not 0 < req.specificity < 1:
        raise ConfigError(f"--specificity must be in (0, 1), got {req.specificity}")
    with experiment_folder(req.experiment, log) as (exp, log):
        chosen = choose_trial(exp, req.trial)
        if req.alarms is not None:  # --alarm-horizon refused before the test split is looked at
            from hypo.evaluate.alarms.evaluation import check_trials_at_horizon

            check_trials_at_horizon(chosen.exp_path, [chosen.trial_id], req.alarms, chosen.data_dir)
        with staged_out(req.out, log) as (out, log):  # on an object store: uploaded when the report is whole
            out_dir = writable_folder(out or os.path.join(chosen.exp_path, "report"))
            results, curves = evaluate_trial(chosen, req, log)
            if req.advisor:
                from hypo.evaluate.advisor.job import report_advisor

                results["advisor"] = report_advisor(chosen, out_dir, req.n_boot, req.alarm_cases, log)
            paths = write_report(results, curves, out_dir)
            paths["model_card"] = write_report_card(results, read_manifest(chosen.data_dir), chosen.meta,
                                                    chosen.data_dir, out_dir)
            for line in summary_lines(results, req.specificity):
                log(line)
            figures = [os.path.basename(v) for k, v in paths.items() if k not in ("html", "json")]
            log(f"wrote {paths['html']} (+ {', '.join(figures)}, report.json)")
    return {"results": results, "paths": paths}


def summary_lines(results: dict[str, Any], specificity: float) -> list[str]:
    """What ``hypo report`` prints: the trial, the headline figures with intervals, baselines, alarms, looks."""
    lines = []
    log = lines.append
    b, ref = results["bootstrap"], results["bootstrap"]["reference"]
    t = results["trial"]
    log(f"trial {t['trial']} (rank {t['rank']}: {t['model']} k={t['k']} {t['loss']}), epoch {t['best_epoch']}, "
        f"test split: {results['n_windows']:,} windows, {results['n_subjects']} subjects"
        + ("  [simulated data]" if results["provenance"]["simulated"] else ""))
    log(f"  mean AUROC {ci(b['mean_auroc'])}  (baseline {ci(ref['mean_auroc'])})")
    for row in results["baselines"][1:]:
        log(f"  baseline {row['name']} ({row['model']}): mean AUROC {ci(row['bootstrap']['mean_auroc'])}, "
            f"AUPRC hypo+hyper {ci(row['bootstrap']['sum_auprc'])}")
    for key, why in results["undefined"].items():
        if key in ("mean_auroc", "sum_auprc"):
            log(f"  {key.replace('_', ' ')} n/a: {why}")
    for name in ("hypotension", "hypertension"):
        log(f"  {name}: AUROC {ci(b[name]['auroc'])}, AUPRC {ci(b[name]['auprc'])} (prevalence "
            f"{b[name]['prevalence']:.3f}), sensitivity at {100 * specificity:.0f}% specificity "
            f"{ci(b[name]['sens_at_spec'])}")
    for line in comparison_lines(results):
        log(f"  {line}")
    model_row = results["channel_loss"]["rows"][0]["metrics"]
    log("  under channel loss, mean AUROC: " + ", ".join(
        f"{condition_title(c)} {ci({'value': model_row[c]['mean_auroc']})}" for c in CONDITIONS))
    if results.get("alarms") and "error" not in results["alarms"]:
        from hypo.evaluate.alarms.report import section_result
        from hypo.evaluate.alarms.result import alarm_table_lines, burden_text

        a = section_result(results["alarms"])
        log(f"  as an alarm ({a.cases.scored} test recordings, {a.cases.hours:.1f} h, every {a.config.stride_s} s, "
            f"{burden_text(a)}; threshold for <= {a.config.fa_target_per_h:g} false alarm/h fixed on validation"
            + (f"; model rows: their {a.config.score_text}" if a.horizon_s is not None else "") + "):")
        for line in alarm_table_lines(a, "fa_target"):
            log(f"    {line}")
    if results.get("advisor") and "error" not in results["advisor"]:
        from hypo.evaluate.advisor.report import section_rows

        log("  asking for a cuff reading (simulated closed-loop, test split): policy, inflations/h, extra/h, "
            "episodes, detected, median delay (min):")
        for row in section_rows(results["advisor"]):
            log("    " + " | ".join(row))
    log(f"  {results['test_looks']['note']}")
    log(f"  dataset {results['provenance']['dataset_fingerprint']}, config "
        f"{results['provenance']['config_fingerprint']}")
    return lines


