"""The model card of ``hypo evaluate`` (:mod:`hypo.evaluate.model_card`): a frozen model validated on another source.

Every entry comes from ``evaluation.json`` (:class:`~hypo.evaluate.external.result.ExternalResult`), OTHER's
manifest, the model's sidecar and, when readable here, the search record of the experiment it came from.
"""

from __future__ import annotations

import os
from typing import Any

from hypo.data.manifest import Manifest
from hypo.evaluate.external.result import ExternalResult
from hypo.evaluate.model_card import (
    Item,
    calibration_text,
    ci,
    classes_text,
    comparison_items,
    fairness_item,
    manifest_items,
    not_reported,
    search_text,
    write_card,
)
from hypo.infer.sidecar import Sidecar


def development_search(sidecar: Sidecar):
    """The search record of the experiment the model came from, or None when it is not readable here."""
    from hypo.errors import HypoError
    from hypo.search.record import read_search_record

    exp = sidecar.trial.experiment if sidecar.trial is not None else None
    if not exp or not os.path.isdir(exp):
        return None
    try:
        return read_search_record(exp)
    except HypoError:
        return None


def performance_text(results: ExternalResult, alarms=None) -> str:
    """23a: discrimination with intervals per evaluation set, the baseline beside, and the alarm when scored."""
    d = results.sections.get("discrimination") or {}
    lines = []
    for stage, es in results.evaluation_sets.items():
        s = d.get(stage)
        if not s:
            continue
        lines += [f"{es.name} ({stage}): {es.n_windows:,} windows of {es.n_subjects} subjects, "
                  f"{s['level'] * 100:.0f}% intervals from {s['n_boot']} bootstrap replicates over subjects:",
                  f"- mean AUROC {ci(s['mean_auroc'])} (last-reading baseline {ci(s['reference']['mean_auroc'])})"]
        lines += [f"- {c}: AUROC {ci(s[c]['auroc'])}, AUPRC {ci(s[c]['auprc'])} (prevalence {s[c]['prevalence']:.3f})"
                  for c in ("hypotension", "hypertension")]
    if alarms is not None:
        p = alarms.rows[0].operating_points.get("fa_target") or {}
        if p:
            lines.append(f"- as an alarm on {alarms.cases.scored} test recordings (thresholds fixed on "
                         f"{alarms.thresholds_fixed_on or alarms.thresholds_from}): episode sensitivity "
                         f"{ci(p['sensitivity'])}, false alarms per hour {ci(p['fa_per_h'])}, PPV {ci(p['ppv'])}, "
                         f"time in alarm {ci(p['time_in_alarm'])}")
    return "\n".join(lines) or not_reported("the discrimination section was not computed")


def calibration_all(results: ExternalResult) -> str:
    """23a: calibration per evaluation set."""
    k = results.sections.get("calibration") or {}
    return "\n".join(f"- {stage}: {calibration_text(k.get(stage))}" for stage in results.evaluation_sets) \
        or not_reported("the calibration section was not computed")


def differences_text(results: ExternalResult, sidecar: Sidecar) -> str:
    """16: how the development data and OTHER differ, as the records say."""
    src = sidecar.source
    cohort = ", ".join(f"{k} {v}" for k, v in (src.cohort or {}).items()) if src is not None else ""
    trained = (f"{src.name} ({'simulated' if src.simulated else 'patients'}; {cohort or 'cohort not recorded'})"
               if src is not None else not_reported("the sidecar records no source"))
    notes = "; ".join(results.notes) or "no difference in window, label or fill rules was found"
    return (f"developed on {trained}; evaluated on {results.data.path}: {results.data.provenance}; {notes}; the "
            "evaluation is refused on the model's own dataset or cohort (no shared subjects)")


def limitations_text(results: ExternalResult, manifest: Manifest) -> str:
    """26: what the records say limits this evaluation."""
    out = []
    if manifest.simulated:
        out.append("both cohorts are simulated: no figure here is a clinical performance")
    if results.data.n_windows_left_out:
        out.append(f"{results.data.n_windows_left_out:,} windows lacking a group the model cannot take were left out")
    if results.recalibration is not None:
        out.append(f"recalibrated ({results.recalibration.method}) on a share of OTHER's subjects; the after figures "
                   "are on the other subjects only")
    out.append("windows of one subject are correlated: intervals come from a bootstrap over subjects")
    return "; ".join(out)


def external_items(results: ExternalResult, manifest: Manifest, sidecar: Sidecar, alarms=None) -> list[Item]:
    """Every item of ``hypo evaluate``'s model card."""
    search = development_search(sidecar)
    trial = sidecar.trial
    comparison = results.sections.get("comparison") or {}
    first: dict[str, Any] | None = next(iter(comparison.values()), None)
    items = manifest_items(manifest, results.data.path, list(sidecar.signals_read))
    items += [
        ("12a", "Data use", f"a frozen model (no retraining) scored on every window of {results.data.path}, all "
                            f"splits pooled ({results.data.n_windows:,} windows)"
         + (f"; recalibrated on {results.recalibration.fitted_on.n_subjects} of its subjects"
            if results.recalibration is not None else "")),
        ("12c", "Model, and how the search chose it", f"{results.model.describe}; "
         + (f"trial {trial.id}, rank {trial.rank}, epoch {trial.epoch}; " if trial is not None else "")
         + search_text(search)),
        ("12e", "Performance measures", "AUROC and AUPRC one-vs-rest with prevalence, calibration (ECE, Brier, "
                                        "slope, intercept), decision curve, the comparators and the MAP-matched "
                                        "AUROC, each by the last cuff MAP; intervals from a bootstrap over subjects"),
        ("13", "Class imbalance", (f"loss {trial.loss}" + (f", gamma {trial.gamma:g}" if trial.gamma else "")
                                   if trial is not None and trial.loss else not_reported("the sidecar records no loss"))
         + "; no resampling"),
        fairness_item(),
        ("15", "Model output", classes_text() + (f" (p(hypotension) >= {sidecar.thresholds.p_hypotension:.4f})"
                                                 if sidecar.thresholds.p_hypotension is not None else "")),
        ("16", "Development and evaluation data", differences_text(results, sidecar)),
        ("23a", "Performance with intervals", performance_text(results, alarms)),
        ("23a", "Calibration", calibration_all(results)),
        *comparison_items(first, results.exclude_in_hypotension),
        ("26", "Limitations", limitations_text(results, manifest)),
    ]
    return items


def write_external_card(results: ExternalResult, manifest: Manifest, sidecar: Sidecar, out_dir: str,
                        alarms=None) -> str:
    """Write ``model_card.md`` into ``out_dir``; returns its path."""
    title = (f"{results.model.describe}: external validation on {results.data.path}, hypotension "
             f"{manifest.label.horizon_s / 60:g} min ahead")
    return write_card(os.path.join(out_dir, "model_card.md"), title,
                      external_items(results, manifest, sidecar, alarms), manifest.simulated or sidecar.simulated)
