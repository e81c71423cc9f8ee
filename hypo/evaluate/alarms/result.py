"""The alarm evaluation's results as typed records, read and written as JSON, and printed as tables.

- :class:`AlarmResult` (``alarms.json`` of ``hypo evaluate --alarms``, ``test_alarms.json`` of ``hypo leaderboard
  --test``, the report's alarm section): a split judged at thresholds fixed elsewhere, one :class:`AlarmRow` per
  model and baseline; :func:`format_alarm_table` prints it.
- :class:`ValidationAlarms` (``alarms_val.json`` of ``hypo leaderboard --alarms``): the top trials and the baselines
  on the validation split, at the threshold read off each row's own validation curve.

Each is written with :meth:`~hypo.records.Record.write` and read back with ``read`` (a wrong field stops with
one line naming the file and the field). The figures of an operating point and a curve
(:func:`hypo.evaluate.alarms.metrics.operating_point`, :func:`~hypo.evaluate.alarms.metrics.curve_summary`) stay
the JSON-ready dicts the scoring module returns: their keys are the scoring rules', not this record's.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from hypo.evaluate.alarms.metrics import READING, AlarmConfig
from hypo.records import Record, config_field

FORMAT = "hypo-alarms/1"
Config = config_field(AlarmConfig)


class CaseFailure(Record):
    """A case that could not be scored, and why."""

    caseid: str
    reason: str
    detail: str


class CasesSummary(Record):
    """The recordings of a replayed split: listed, chosen, scored, failed; hours, subjects and episodes scored.

    ``episodes`` counts episodes by kind: ``scored``, ``induction`` (reported apart) and ``under way`` (left out).
    ``hypotension_min_per_h`` is the cohort's hypotension burden: minutes of hypotension under the label source's
    rule (ART seconds in runs of the label rule, or cuff episode seconds) per hour of scored span
    (``scored_span_hours``).
    """

    listed: int
    chosen: int
    scored: int
    failed: int
    failures: list[CaseFailure]
    hours: float
    subjects: int
    episodes: dict[str, int]
    hypotension_min_per_h: float | None = None
    scored_span_hours: float | None = None


class AlarmRow(Record):
    """One model or baseline of the alarm table.

    Attributes:
        name: The row (``model``, a trial id, or a baseline's name).
        role: ``model`` or ``baseline``.
        kind: ``probability`` or ``reading`` (a threshold on p(hypotension), or on a reading's MAP).
        description: One line saying what it is.
        threshold_unit: What its thresholds are in.
        thresholds: Operating point -> the threshold chosen on validation (``{"threshold", "met", ...}``).
        operating_points: Operating point -> every metric there (:func:`~hypo.evaluate.alarms.metrics.operating_point`).
        curve: Sensitivity against false alarms per hour over every threshold, with its bootstrap band.
        reads: What it reads, in one word (``model inputs``, ``cuff``, ``ART``).
        strata: Operating point -> stratum of the last cuff MAP -> its episodes, sensitivity, false alarms per
            hour and PPV there (:func:`hypo.evaluate.alarms.strata.stratified`).
    """

    name: str
    role: Literal["model", "baseline"]
    kind: str
    description: str
    threshold_unit: str
    thresholds: dict[str, dict[str, Any]]
    operating_points: dict[str, dict[str, Any]]
    curve: dict[str, Any]
    reads: str = ""
    strata: dict[str, dict[str, dict[str, Any]]] = {}


class AlarmResult(Record):
    """The alarm evaluation of one split (see the module docstring).

    ``thresholds_fixed_on`` is set by ``hypo evaluate --alarms`` only: where the deployed thresholds come from.
    ``horizon_s`` (``--alarm-horizon``): the model rows' score is their risk of hypotension by this horizon (seconds);
    None: their p(hypotension) at the primary horizon. The baselines read the current pressure either way.
    ``comparators`` are the rows of :mod:`hypo.learn.comparators` as alarms (fixed MAP rules, extrapolation, DBP;
    on the arterial line too with ART labels), scored like the baselines and shown beside them.
    """

    format: Literal["hypo-alarms/1"] = FORMAT
    created: str
    data: str
    dataset_fingerprint: str
    split: str
    thresholds_from: str
    label_source: str
    events: str
    policy: str
    scoring: str
    config: Config
    simulated: bool
    cases: CasesSummary
    validation_cases: CasesSummary | None
    n_boot: int
    seed: int
    rows: list[AlarmRow]
    timings: dict[str, float]
    thresholds_fixed_on: str | None = None
    comparators: list[AlarmRow] = []
    hypo_map: float = 65.0
    operating_point_titles: dict[str, str] | None = None  # op -> table title (default: the two validation targets)
    cuff: str | None = None  # how the replayed cuff was simulated from the arterial line (--cuff-from-art); None: real
    horizon_s: int | None = None

    def row(self, name: str) -> AlarmRow:
        """The row called ``name`` (a comparator too)."""
        return next(r for r in (*self.rows, *self.comparators) if r.name == name)


class ValidationAlarmRow(Record):
    """A row on the validation split at the false-alarm target (figures selection-biased: for ranking only)."""

    threshold: float
    met: bool
    sensitivity: float | None
    lead_median_s: float | None
    fa_per_h: float | None
    detection: float | None
    kind: str
    ppv: float | None = None
    reads: str = ""
    fixed: bool = False


class ValidationAlarms(Record):
    """The top trials and every baseline as alarms on the validation split (``alarms_val.json``)."""

    rows: dict[str, ValidationAlarmRow]
    cases: CasesSummary
    config: Config
    note: str


# ------------------------------------------------------------------------------------------------ text


def _ci(m: dict[str, Any] | None, scale: float = 1.0, digits: int = 2, pct: bool = False) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    f = (lambda v: f"{100 * v:.0f}%") if pct else (lambda v: f"{v * scale:.{digits}f}")
    lo, hi = m.get("lo"), m.get("hi")
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f(m["value"])
    return f"{f(m['value'])} [{f(lo)}, {f(hi)}]"


def _threshold_text(row: AlarmRow, op: str) -> str:
    spec = row.thresholds.get(op)
    if not spec:
        return "-"
    t = spec["threshold"]
    what = "DBP" if "DBP" in row.threshold_unit else "MAP"
    text = f"{what}<{t:.1f}" if row.kind == READING else f"p>={t:.3f}"
    if spec.get("fixed"):
        return text + " (fixed)"
    if spec.get("unusable"):
        return text + " (none usable: below)"
    return text + ("" if spec.get("met", True) else " (target not met on val)")


ALARM_COLUMNS = ("row", "reads", "threshold", "sensitivity", "lead, min", "false alarms/h", "PPV", "alarms/h",
                 "in alarm", "detected", "detection lead, min")


def _row_name(row: AlarmRow, comparator: bool) -> str:
    return row.name if row.role == "model" or comparator else "baseline: " + row.name


def alarm_table_cells(result: AlarmResult, op: str = "fa_target") -> list[list[str]]:
    """The cells of the alarm table at one operating point (:data:`ALARM_COLUMNS`).

    A row per model and baseline, then the comparators.
    """
    out = []
    for row, comparator in [(r, False) for r in result.rows] + [(r, True) for r in result.comparators]:
        p = row.operating_points.get(op)
        name, reads = _row_name(row, comparator), row.reads or "-"
        if p is None:
            out.append([name, reads, "-", "n/a (no threshold)"] + [""] * (len(ALARM_COLUMNS) - 4))
            continue
        out.append([name, reads, _threshold_text(row, op), _ci(p["sensitivity"], pct=True),
                    _ci(p["lead_median_s"], 1 / 60, 1), _ci(p["fa_per_h"]), _ci(p.get("ppv"), pct=True),
                    _ci(p["alarms_per_h"], digits=1), _ci(p["time_in_alarm"], pct=True),
                    _ci(p["detection"], pct=True), _ci(p["detection_lead_median_s"], 1 / 60, 1)])
    return out


def gray_zone_cells(result: AlarmResult, op: str = "fa_target") -> tuple[list[str], list[list[str]]]:
    """The alarm metrics by the last cuff MAP at one operating point.

    The header gives each stratum's episodes; each row's cells are sensitivity / false alarms per hour / PPV.
    """
    from hypo.learn.metrics import MAP_STRATA, stratum_titles

    every = [(r, False) for r in result.rows] + [(r, True) for r in result.comparators]
    first = next((r.strata[op] for r, _ in every if op in r.strata), None)
    if first is None:
        return [], []
    titles = stratum_titles(result.hypo_map)
    strata = [s for s in MAP_STRATA if s != "none" or first[s]["episodes"] or first[s]["hours"] > 0.05]
    header = ["row", "reads"] + [f"{titles[s]} ({first[s]['episodes']} episodes)" for s in strata]

    def cell(st: dict[str, Any]) -> str:
        sens = "n/a" if st["sensitivity"] is None else f"{100 * st['sensitivity']:.0f}%"
        fa = "n/a" if st["fa_per_h"] is None else f"{st['fa_per_h']:.2f}"
        ppv = "n/a" if st["ppv"] is None else f"{100 * st['ppv']:.0f}%"
        return f"{sens} / {fa} / {ppv}"

    cells = [[_row_name(r, c), r.reads or "-", *(cell(r.strata[op][s]) if op in r.strata else "" for s in strata)]
             for r, c in every]
    return header, cells


def model_score_line(result: AlarmResult) -> str | None:
    """Which horizon's risk the model rows read (``--alarm-horizon``), in one line; None: the primary's output."""
    if result.horizon_s is None:
        return None
    return (f"model rows: their {result.config.score_text} (--alarm-horizon {result.horizon_s}), not p(hypotension) "
            "at the primary horizon; the baselines read the current pressure as always; an episode is caught by "
            f"an alarm up to {result.config.lead_max_s / 60:g} min before its onset (--alarm-lead-max)")


def alarm_table_lines(result: AlarmResult, op: str = "fa_target") -> list[str]:
    """The alarm table of one operating point as aligned text lines (header first)."""
    return _aligned([list(ALARM_COLUMNS)] + alarm_table_cells(result, op))


def _aligned(cells: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in cells]


def unusable_rows(result: AlarmResult) -> list[tuple[AlarmRow, str]]:
    """The rows left no usable threshold on validation, and why (every score at or below the hysteresis, ...)."""
    out = []
    for row in result.rows:
        why = next((spec["unusable"] for spec in row.thresholds.values() if spec.get("unusable")), None)
        if why:
            out.append((row, why))
    return out


def burden_text(result: AlarmResult) -> str:
    """The cohort's hypotension burden: minutes below the threshold per hour (from the label source)."""
    b = result.cases.hypotension_min_per_h
    what = "arterial-line runs of the label rule" if result.label_source == "art" else "cuff episodes"
    return ("hypotension burden n/a" if b is None else
            f"hypotension burden {b:.1f} min per hour with MAP < {result.hypo_map:g} ({what})")


def footnotes(result: AlarmResult) -> list[str]:
    """The rules a reader needs under the table: censoring, the cuff episode's end, PPV, the gray zone."""
    cfg = result.config
    lead = f"{cfg.lead_max_s / 60:g} min"
    out = [f"censored: an alarm starting in the last {lead} of a recording with no onset after it is neither true "
           "nor false, and the time from its start to the end is left out of the false-alarm hours; "
           f"{sum(r.operating_points.get('fa_target', {}).get('censored_alarms', 0) for r in result.rows)} "
           "such alarms among the rows above at the false-alarm threshold",
           f"true: an alarm on during an episode's warning window [onset - {lead}, onset - "
           f"{cfg.lead_min_s / 60:g} min], however early it began, or followed by an onset within {lead} of its "
           f"start; never counted also as false. An alarm still on {lead} after it began (or was last judged) is "
           "judged again as a new alarm. PPV: the share of judged alarms that catch an episode"]
    if result.label_source != "art":
        out.append(f"cuff episodes: consecutive readings with MAP < {result.hypo_map:g}, ending at the next reading "
                   f"that is not low or {cfg.cuff_hold_s / 60:g} min after the last low one, whichever is first")
    out.append(f"gray zone: an episode is placed by the last cuff MAP at onset - {cfg.lead_min_s / 60:g} min, an "
               "alarm by the last cuff MAP at its start; cells sensitivity / false alarms per hour / PPV")
    return out


def induction_line(result: AlarmResult, op: str = "fa_target") -> str:
    """The induction episodes, reported apart: how many, and the share each row caught at one operating point."""
    n = result.cases.episodes["induction"]
    minutes = result.config.induction_s / 60
    if not n:
        return f"induction (first {minutes:g} min, reported apart): no episode began then"
    parts = []
    for row in result.rows:
        p = row.operating_points.get(op)
        if p is not None and p.get("induction_sensitivity") is not None:
            parts.append(f"{row.name} {100 * p['induction_sensitivity']:.0f}%")
    return (f"induction (first {minutes:g} min, reported apart): {n} episodes; caught at the false-alarm threshold: "
            + (", ".join(parts) or "n/a"))


def format_alarm_table(result: AlarmResult) -> str:
    """The alarm evaluation as text: cases, event rule, then one table per operating point."""
    c, cfg = result.cases, result.config
    sim = "  [SIMULATED data: says nothing about clinical performance]" if result.simulated else ""
    lines = [f"alarm evaluation, {result.split} split{sim}: {c.scored} recordings ({c.hours:.1f} h, "
             f"{c.subjects} subjects) replayed every {cfg.stride_s} s"
             + (f", {c.failed} could not be scored" if c.failed else "")
             + (f" (a subsample of {c.chosen} of {c.listed})" if c.chosen < c.listed else ""),
             f"  {burden_text(result)}",
             f"  events: {result.events}",
             f"  episodes: {c.episodes['scored']} scored, {c.episodes['induction']} in induction (apart), "
             f"{c.episodes['under way']} under way when scoring began (left out)",
             *([f"  {result.cuff}"] if result.cuff else []),
             *([f"  {model_score_line(result)}"] if result.horizon_s is not None else []),
             f"  policy: {result.policy}",
             f"  scoring: {result.scoring}",
             f"  thresholds chosen on {result.thresholds_from}; intervals: 95% bootstrap over subjects "
             f"({result.n_boot} replicates)"]
    titles = result.operating_point_titles or {
        "fa_target": f"at the threshold for <= {cfg.fa_target_per_h:g} false alarm/h (chosen on validation)",
        "sens_target": f"at the threshold for >= {100 * cfg.sens_target:.0f}% sensitivity (chosen on validation)"}
    reads = f"; model rows: {result.config.score_text}" if result.horizon_s is not None else ""
    for op, title in titles.items():
        lines += ["", f"{result.split} split, {title}{reads}:"] + alarm_table_lines(result, op)
    header, cells = gray_zone_cells(result)
    if header:
        lines += ["", f"{result.split} split by the last cuff MAP, at the false-alarm threshold (sensitivity / false "
                  "alarms per h / PPV):", *_aligned([header, *cells])]
    lines.append(induction_line(result, next(iter(titles))))
    lines += [f"no usable threshold for {row.name}: {why}" for row, why in unusable_rows(result)]
    lines.append("lead: median over caught episodes; detected: an alarm at any moment from onset - "
                 f"{cfg.lead_max_s / 60:g} min to the episode's end (its lead may be <= 0: after onset).")
    lines += footnotes(result)
    for f in c.failures[:5]:
        lines.append(f"  not scored: case {f.caseid}: {f.reason} ({f.detail})")
    if len(c.failures) > 5:
        lines.append(f"  ... and {len(c.failures) - 5} more")
    return "\n".join(lines)
