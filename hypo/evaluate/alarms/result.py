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
    """

    listed: int
    chosen: int
    scored: int
    failed: int
    failures: list[CaseFailure]
    hours: float
    subjects: int
    episodes: dict[str, int]


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
    """

    name: str
    role: Literal["model", "baseline"]
    kind: str
    description: str
    threshold_unit: str
    thresholds: dict[str, dict[str, Any]]
    operating_points: dict[str, dict[str, Any]]
    curve: dict[str, Any]


class AlarmResult(Record):
    """The alarm evaluation of one split (see the module docstring).

    ``thresholds_fixed_on`` is set by ``hypo evaluate --alarms`` only: where the deployed thresholds come from.
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
    operating_point_titles: dict[str, str] | None = None  # op -> table title (default: the two validation targets)

    def row(self, name: str) -> AlarmRow:
        """The row called ``name``."""
        return next(r for r in self.rows if r.name == name)


class ValidationAlarmRow(Record):
    """A row on the validation split at the false-alarm target (figures selection-biased: for ranking only)."""

    threshold: float
    met: bool
    sensitivity: float | None
    lead_median_s: float | None
    fa_per_h: float | None
    detection: float | None
    kind: str


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
    text = f"MAP<{t:.1f}" if row.kind == READING else f"p>={t:.3f}"
    if spec.get("fixed"):
        return text + " (fixed)"
    return text + ("" if spec.get("met", True) else " (target not met on val)")


ALARM_COLUMNS = ("row", "threshold", "sensitivity", "lead, min", "false alarms/h", "alarms/h", "in alarm",
                 "detected", "detection lead, min")


def alarm_table_cells(result: AlarmResult, op: str = "fa_target") -> list[list[str]]:
    """The cells of the alarm table at one operating point (:data:`ALARM_COLUMNS`), a row per model / baseline."""
    out = []
    for row in result.rows:
        p = row.operating_points.get(op)
        name = ("" if row.role == "model" else "baseline: ") + row.name
        if p is None:
            out.append([name, "-", "n/a (no threshold)"] + [""] * (len(ALARM_COLUMNS) - 3))
            continue
        out.append([name, _threshold_text(row, op), _ci(p["sensitivity"], pct=True),
                    _ci(p["lead_median_s"], 1 / 60, 1), _ci(p["fa_per_h"]), _ci(p["alarms_per_h"], digits=1),
                    _ci(p["time_in_alarm"], pct=True), _ci(p["detection"], pct=True),
                    _ci(p["detection_lead_median_s"], 1 / 60, 1)])
    return out


def alarm_table_lines(result: AlarmResult, op: str = "fa_target") -> list[str]:
    """The alarm table of one operating point as aligned text lines (header first)."""
    cells = [list(ALARM_COLUMNS)] + alarm_table_cells(result, op)
    widths = [max(len(r[i]) for r in cells) for i in range(len(ALARM_COLUMNS))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in cells]


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
             f"  events: {result.events}",
             f"  episodes: {c.episodes['scored']} scored, {c.episodes['induction']} in induction (apart), "
             f"{c.episodes['under way']} under way when scoring began (left out)",
             f"  policy: {result.policy}",
             f"  scoring: {result.scoring}",
             f"  thresholds chosen on {result.thresholds_from}; intervals: 95% bootstrap over subjects "
             f"({result.n_boot} replicates)"]
    titles = result.operating_point_titles or {
        "fa_target": f"at the threshold for <= {cfg.fa_target_per_h:g} false alarm/h (chosen on validation)",
        "sens_target": f"at the threshold for >= {100 * cfg.sens_target:.0f}% sensitivity (chosen on validation)"}
    for op, title in titles.items():
        lines += ["", f"{result.split} split, {title}:"] + alarm_table_lines(result, op)
    lines.append(induction_line(result, next(iter(titles))))
    lines.append("lead: median over caught episodes; detected: an alarm at any moment from onset - "
                 f"{cfg.lead_max_s / 60:g} min to the episode's end (its lead may be <= 0: after onset).")
    for f in c.failures[:5]:
        lines.append(f"  not scored: case {f.caseid}: {f.reason} ({f.detail})")
    if len(c.failures) > 5:
        lines.append(f"  ... and {len(c.failures) - 5} more")
    return "\n".join(lines)
