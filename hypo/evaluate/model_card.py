"""``model_card.md``: a run's model card, organised by the TRIPOD+AI items of a development and validation study.

TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) lists what a report of a prediction model must say. ``hypo report``
(development, internal validation on the test split) and ``hypo evaluate`` (a frozen model on another source) write
the items that apply, each filled from the run's own records only: the dataset's manifest, the search record, the
model's sidecar and the results just computed. Nothing is typed in by hand, so the card cannot drift from the
numbers it summarises (the report's and the card's are the same values, formatted alike). An item the records
cannot fill says ``not reported`` and why; a simulated cohort says so in the card's first line.

    items = report_items(results, manifest, search, data_dir)
    write_card(path, "hypo report ...", items, simulated=manifest.simulated)

Items (TRIPOD+AI numbers): 5a data source, 5b dates, 6a setting, 6b eligibility (with the counts removed at each
step), 6c treatments, 7 data preparation, 8a outcome and horizon, 9a predictors, 10 sample size, 11 missing data,
12a data use and 12c the model and how the search chose it, 12e performance measures, 13 class imbalance,
14 fairness, 15 model output, 20a participants' flow and events per split, 23a performance with intervals, and its
calibration, comparators (PITFALLS.md 10) and gray zone (performance by the current MAP), 26 limitations.
"""

from __future__ import annotations

import math
import os
from typing import Any

from hypo.data.dataset import label_source_text
from hypo.data.manifest import Manifest
from hypo.data.signals import CLASSES, SIGNALS, UNITS

NOT_REPORTED = "not reported"
Item = tuple[str, str, str]  # (TRIPOD+AI number, title, text)


def ci(m: dict[str, Any] | None, digits: int = 3) -> str:
    """A bootstrap summary as the report prints it: ``0.912 [0.890, 0.931]`` (``n/a`` when undefined)."""
    if not m or m.get("value") is None or not math.isfinite(m["value"]):
        return "n/a"
    lo, hi = m.get("lo"), m.get("hi")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{m['value']:.{digits}f}"
    return f"{m['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def not_reported(why: str) -> str:
    """The text of an item the run's records cannot fill."""
    return f"{NOT_REPORTED}: {why}"


# ------------------------------------------------------------------------------------------ from the manifest


def source_item(manifest: Manifest, data_dir: str) -> str:
    """5a: where the data come from."""
    src = manifest.source
    what = "a simulated cohort (hypo's demo simulator), not patients" if manifest.simulated else "patient recordings"
    note = src.report.get("note") or ""
    return (f"{what}: source `{src.name}` (fingerprint {src.fingerprint}), dataset `{data_dir}` (fingerprint "
            f"{manifest.fingerprint}, hypo {manifest.hypo_version})" + (f"; {note}" if note else ""))


def dates_item(manifest: Manifest) -> str:
    """5b: the accrual dates (which no source records) and when the dataset was built."""
    why = ("the simulator has no calendar" if manifest.simulated
           else "the source's recordings carry no dates hypo reads")
    return not_reported(f"dates of accrual: {why}") + f"; dataset built {manifest.created or 'at an unrecorded time'}"


def setting_item(manifest: Manifest) -> str:
    """6a: the setting (site, cohort)."""
    spec, cohort = manifest.source.spec, manifest.cohort
    site = f", site {spec.site}" if spec is not None and getattr(spec, "site", None) else ""
    who = ", ".join(f"{k} {v}" for k, v in cohort.items() if v is not None)
    return (f"intraoperative recordings (operating room), one source ({who}{site}); number and location of centres "
            + ("not applicable (simulated)" if manifest.simulated else "not recorded by the source"))


def eligibility_item(manifest: Manifest) -> str:
    """6b: who was eligible, with the cases and windows removed at each step."""
    cases, dropped = manifest.cases, manifest.dropped_windows
    kept = sum(c.windows for c in manifest.counts.values())
    rejected = ", ".join(f"{k} {v}" for k, v in manifest.rejected_counts.items()) or "none"
    cfg = manifest.config
    shortest = f"; cases shorter than {cfg.min_case_s} s rejected" if cfg is not None else ""
    artefacts = sum(manifest.artefacts.values())
    listed, ok = (cases.listed, cases.ok) if cases else ("?", "?")
    return (f"cases: {listed} listed, {ok} used, rejected {rejected}{shortest}. Windows: "
            f"{kept + dropped.incomplete + dropped.no_label:,} cut, {dropped.incomplete:,} removed as incomplete "
            f"after gap filling, {dropped.no_label:,} removed without a label, {kept:,} kept. Artefacts removed "
            f"before filling: {artefacts:,} ("
            + ", ".join(f"{k} {v}" for k, v in manifest.artefacts.items() if v) + ")")


def outcome_item(manifest: Manifest) -> str:
    """8a: the outcome and its horizon."""
    label = manifest.label
    return (f"the class of the blood pressure {label.horizon_s} s ({label.horizon_s / 60:g} min) after each "
            f"{manifest.window_s}-s window: hypotension MAP < {label.hypo_map:g} mmHg, hypertension SBP > "
            f"{label.hyper_sbp:g} mmHg (hypotension first), else normal; {label_source_text(label)}"
            + (f", the reading nearest the target within {label.tolerance_s} s and after the window end"
               if label.source == "cuff" and label.mode == "reading" else ""))


def predictors_item(manifest: Manifest, signals_read: list[str] | None = None) -> str:
    """9a: the predictors."""
    signals = ", ".join(f"{s} ({UNITS.get(s, '?')})" for s in SIGNALS)
    read = f"; the model reads the groups {', '.join(signals_read)}" if signals_read else ""
    return (f"{manifest.window_s} s of {len(SIGNALS)} non-invasive signals at 1 Hz, in physical units: {signals}; "
            f"standardised with the train split's mean and standard deviation (stored with the model){read}. The "
            "arterial line, where a source has one, labels and is a comparator; the model never reads it")


def missing_item(manifest: Manifest) -> str:
    """11: how missing data were handled."""
    cfg = manifest.config
    fill = cfg.fill if cfg is not None else None
    rule = (f"waveform gaps up to {fill.waveform_max_gap_s} s interpolated, cuff values carried forward up to "
            f"{fill.nibp_max_carry_s} s, other numerics up to {fill.numeric_max_carry_s} s (past values only)"
            if fill is not None else not_reported("the manifest records no fill rule"))
    absent = manifest.absent_groups
    groups = (f"; cases lacking {', '.join(absent.allowed)} kept with those channels missing (NaN)"
              if absent is not None else "; cases lacking a signal group are rejected")
    return (f"single imputation by gap filling: {rule}; windows still incomplete are removed "
            f"({manifest.dropped_windows.incomplete:,}, 6b){groups}; windows without a cuff reading yet get the "
            "training prevalence in the last-reading baseline and the comparators")


def sample_item(manifest: Manifest) -> str:
    """10 and 20a: the sample per split, and its events."""
    rows = ["| split | cases | subjects | windows | hypotension windows (events) | hypertension windows |",
            "|---|---|---|---|---|---|"]
    for split in ("train", "val", "test"):
        c = manifest.split_counts(split)
        rows.append(f"| {split} | {c.cases} | {c.subjects} | {c.windows:,} | {c.hypotension:,} "
                    f"({_pct(c.hypotension, c.windows)}) | {c.hypertension:,} ({_pct(c.hypertension, c.windows)}) |")
    cfg = manifest.config
    split = (f"subjects split {cfg.split.train:g} / {cfg.split.val:g} / {cfg.split.test:g} by a hash of the "
             f"subject id (seed {cfg.split.seed}), no subject in two splits" if cfg is not None else "")
    return ("no sample-size calculation: every usable case of the source; " + split + "\n\n" + "\n".join(rows))


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "n/a"


# ------------------------------------------------------------------------------------------ the card


def render(title: str, items: list[Item], simulated: bool) -> str:
    """The card as Markdown: the simulated-data line first, then one section per item."""
    head = ("**SIMULATED COHORT**: every figure below comes from hypo's demo simulator, not from patients; it "
            "exercises the software and says nothing about clinical performance." if simulated else
            "Patient data: figures from the run's records; see the limitations (26).")
    parts = [head, "", f"# Model card: {title}", "",
             "Organised by the TRIPOD+AI items of a development and validation study (Collins et al., BMJ 2024); "
             "each entry is filled from the run's records (manifest, search record, sidecar, results).", ""]
    for number, name, text in items:
        parts += [f"## {number}. {name}", "", text.strip() or not_reported("the run recorded nothing for it"), ""]
    return "\n".join(parts)


def write_card(path: str, title: str, items: list[Item], simulated: bool) -> str:
    """Write ``model_card.md``; returns its path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(render(title, items, simulated))
    return path


def manifest_items(manifest: Manifest, data_dir: str, signals_read: list[str] | None = None) -> list[Item]:
    """The items every card fills from the dataset's manifest."""
    return [("5a", "Data source", source_item(manifest, data_dir)), ("5b", "Dates", dates_item(manifest)),
            ("6a", "Setting", setting_item(manifest)),
            ("6b", "Eligibility, with the counts removed at each step", eligibility_item(manifest)),
            ("6c", "Treatments", not_reported("the recordings hold no record of drugs or fluids given")),
            ("7", "Data preparation", "artefacts removed before filling (cuff readings of 0, MAP outside 20-200, "
                                      "SBP <= DBP, BIS outside 0-100, MAC < 0; counts in 6b), then gap filling "
                                      "(11), then windows cut and labelled (8a)"),
            ("8a", "Outcome and horizon", outcome_item(manifest)),
            ("9a", "Predictors", predictors_item(manifest, signals_read)),
            ("10, 20a", "Sample size and events per split", sample_item(manifest)),
            ("11", "Missing data", missing_item(manifest))]


def classes_text() -> str:
    """15: the model's output."""
    return (f"a probability for each of {', '.join(CLASSES)} (summing to 1); an alarm class at thresholds fixed on "
            "the validation split")


# ------------------------------------------------------------------------------------------ shared results


def comparison_items(section: dict[str, Any] | None, exclude: bool = False) -> list[Item]:
    """The comparators (hypotension table) and the gray zone, from a comparison section's rows."""
    from hypo.evaluate.comparison import cell_text, gray_zone_cells, hypotension_cells, markdown, notes

    if not section:
        why = not_reported("this run computed no comparison (an older result)")
        return [("23a", "Comparators", why), ("23b", "Gray zone: performance by the current MAP", why)]
    rows, hypo_map = section["rows"], section["hypo_map"]
    matched = "; ".join(f"{r['name']} {cell_text(r, 'matched_auroc_hypotension') or 'n/a'}" for r in rows
                        if r["metrics"].get("matched_auroc_hypotension") is not None and not r["fixed"])
    extra = [f"- {line}" for line in (*notes(rows, hypo_map), *section.get("notes", ()))]
    return [("23a", "Comparators (what the current pressure alone says, same windows)",
             "\n".join(markdown(*hypotension_cells(rows, exclude)))),
            ("23b", "Gray zone: performance by the current MAP",
             f"MAP-matched AUROC (hypotension): {matched}.\n\n"
             + "\n".join(markdown(*gray_zone_cells(rows, hypo_map))) + "\n\n" + "\n".join(extra))]


def calibration_text(summary: dict[str, Any] | None) -> str:
    """ECE, Brier, slope and intercept per abnormal class (:func:`hypo.evaluate.calibration.class_calibration`)."""
    if not summary:
        return not_reported("this run computed no calibration summary (an older result)")
    parts = [f"{c}: ECE {summary[c]['ece']:.3f}, Brier {summary[c]['brier']:.3f}, slope {summary[c]['slope']:.2f}, "
             f"intercept {summary[c]['intercept']:+.2f}, mean predicted {summary[c]['mean_predicted']:.3f} vs "
             f"observed {summary[c]['prevalence']:.3f}" for c in CLASSES[1:] if c in summary]
    return "; ".join(parts) + " (one-vs-rest; slope below 1: risks too extreme; intercept below 0: too high)"


def fairness_item() -> Item:
    """14: fairness."""
    return ("14", "Fairness", not_reported("the records hold no demographic or socioeconomic attribute of the "
                                           "subjects, so performance across such groups cannot be computed"))


def search_text(search) -> str:
    """How the search was set up, from its record (12c)."""
    if search is None:
        return not_reported("the search record (hypo_search.json) is not readable here")
    s = search.search
    if not s or s.get("fake"):
        return "a search record without settings (trials trained outside hypo search)"
    keys = ("strategy", "space", "samples", "epochs", "models", "sampler", "grace_period", "batch_size", "seed")
    return ("search settings: " + ", ".join(f"{k} {s[k]}" for k in keys if s.get(k) is not None)
            + f"; ranked on validation mean AUROC, then summed AUPRC (search fingerprint {search.search_fingerprint})")
