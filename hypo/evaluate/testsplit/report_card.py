"""The model card of ``hypo report`` (:mod:`hypo.evaluate.model_card`): development and internal validation.

Every entry comes from the report's own ``results`` (the numbers of ``report.json``, formatted as the report
formats them), the dataset's manifest and the search record.
"""

from __future__ import annotations

import os
from typing import Any

from hypo.data.manifest import Manifest
from hypo.evaluate.model_card import (
    Item,
    calibration_text,
    ci,
    classes_text,
    comparison_items,
    fairness_item,
    manifest_items,
    search_text,
    write_card,
)


def model_text(results: dict[str, Any], search) -> str:
    """12c: the model, and how the search chose it."""
    t, prov = results["trial"], results["provenance"]
    cfg = prov.get("config") or {}
    params = ", ".join(f"{k} {cfg[k]}" for k in ("loss", "gamma", "lr", "epochs", "batch_size", "channel_dropout",
                                                  "seed") if cfg.get(k) is not None)
    val = t.get("val_mean_auroc")
    return (f"{t['model']} k={t['k']} ({params}); trial {t['trial']}, rank {t['rank']} of the search's leaderboard "
            f"(validation mean AUROC {val:.4f} at its best epoch {t['best_epoch']}); "
            + search_text(search) + f"; checkpoint SHA-256 {prov['checkpoint_sha256']}, config fingerprint "
            f"{prov['config_fingerprint']}")


def performance_text(results: dict[str, Any]) -> str:
    """23a: the headline figures with their intervals, the operating point and (when scored) the alarm."""
    b = results["bootstrap"]
    lines = [f"test split, {results['n_windows']:,} windows of {results['n_subjects']} subjects "
             f"({b['level'] * 100:.0f}% intervals, {b['n_boot']} bootstrap replicates over subjects):",
             f"- mean AUROC {ci(b['mean_auroc'])} (last-reading baseline {ci(b['reference']['mean_auroc'])})"]
    for name in ("hypotension", "hypertension"):
        lines.append(f"- {name}: AUROC {ci(b[name]['auroc'])}, AUPRC {ci(b[name]['auprc'])} (prevalence "
                     f"{b[name]['prevalence']:.3f}), sensitivity at {100 * b['specificity']:.0f}% specificity "
                     f"{ci(b[name]['sens_at_spec'])}")
    op = results["operating_point"]["per_class"]["hypotension"]
    lines.append(f"- operating point (threshold p(hypotension) >= {op['threshold']:.4f}, fixed on validation): "
                 f"sensitivity {op['sensitivity']:.3f}, specificity {op['specificity']:.3f}, PPV {op['ppv']:.3f}")
    alarms = results.get("alarms") or {}
    if alarms and "error" not in alarms:
        p = alarms["rows"][0]["operating_points"].get("fa_target") or {}
        if p:
            lines.append(f"- as an alarm on {alarms['cases']['scored']} test recordings: episode sensitivity "
                         f"{ci(p['sensitivity'])}, false alarms per hour {ci(p['fa_per_h'])}, PPV {ci(p['ppv'])}, "
                         f"time in alarm {ci(p['time_in_alarm'])}")
    for row in results.get("baselines") or ():
        lines.append(f"- baseline {row['name']}: mean AUROC {ci(row['bootstrap']['mean_auroc'])}")
    return "\n".join(lines)


def limitations_text(results: dict[str, Any], manifest: Manifest) -> str:
    """26: what the run's own records say limits it."""
    prov, looks = results["provenance"], results.get("test_looks") or {}
    out = []
    if manifest.simulated:
        out.append("the cohort is simulated: no figure here is a clinical performance")
    out.append(f"internal validation only: one source ({manifest.source.name}), the test split's "
               f"{results['n_subjects']} subjects held out by subject, not another hospital (hypo evaluate is)")
    if prov["label"].get("source", "cuff") == "cuff":
        out.append("the outcome is a sparse cuff reading, not a continuous arterial pressure")
    if looks.get("look", 1) > 1:
        out.append(f"not the first look at the test split ({looks.get('note')})")
    alarm = ((results.get("alarms") or {}).get("rows") or [{}])[0].get("operating_points", {}).get("fa_target")
    if alarm and (alarm["time_in_alarm"].get("value") or 0) > 0.5:
        out.append(f"as an alarm it is on {100 * alarm['time_in_alarm']['value']:.0f}% of the time at the false-alarm "
                   "threshold: false alarms are counted per alarm, not per hour in alarm, so a near-permanent alarm "
                   "meets the target")
    undefined = results.get("undefined") or {}
    out += [f"{k} undefined: {v}" for k, v in undefined.items()]
    out.append("windows of one subject overlap in time and are correlated: intervals come from a bootstrap over "
               "subjects")
    return "; ".join(out)


def report_items(results: dict[str, Any], manifest: Manifest, search, data_dir: str) -> list[Item]:
    """Every item of the report's model card (see :mod:`hypo.evaluate.model_card`)."""
    looks = results.get("test_looks") or {}
    trial = results["trial"]
    items = manifest_items(manifest, data_dir, (results["provenance"].get("config") or {}).get("signals"))
    items += [
        ("12a", "Data use", "trained on the train split, trials ranked on the validation split (operating point "
                            "fixed there too), the chosen trial evaluated on the test split: "
                            f"{looks.get('note', 'look not recorded')}"),
        ("12c", "Model, and how the search chose it", model_text(results, search)),
        ("12e", "Performance measures", "AUROC and AUPRC one-vs-rest with prevalence, sensitivity at the stated "
                                        "specificity, calibration (ECE, Brier, slope, intercept), the comparators "
                                        "and the MAP-matched AUROC, each by the last cuff MAP; intervals from a "
                                        "bootstrap over subjects"),
        ("13", "Class imbalance", f"loss {trial['loss']}" + (f" (focal, gamma {trial['gamma']:g})"
                                                              if trial.get("gamma") else "")
         + "; no resampling; every AUPRC is reported beside its class's prevalence"),
        fairness_item(),
        ("15", "Model output", classes_text() + f" ({results['operating_point']['rule']})"),
        ("23a", "Performance with intervals", performance_text(results)),
        ("23a", "Calibration", calibration_text(results.get("calibration_summary"))),
        *comparison_items(results.get("comparison"),
                          bool((results.get("comparison") or {}).get("exclude_in_hypotension"))),
        ("26", "Limitations", limitations_text(results, manifest)),
    ]
    return items


def write_report_card(results: dict[str, Any], manifest: Manifest, search, data_dir: str, out_dir: str) -> str:
    """Write ``model_card.md`` beside the report; returns its path."""
    t = results["trial"]
    title = (f"{t['model']} k={t['k']} {t['loss']} (trial {t['trial']}), hypotension "
             f"{manifest.label.horizon_s / 60:g} min ahead: development and internal validation")
    return write_card(os.path.join(out_dir, "model_card.md"), title, report_items(results, manifest, search,
                                                                                 data_dir), manifest.simulated)
