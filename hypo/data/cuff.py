"""A cuff simulated from the arterial line: the one simulation of oscillometric readings.

Where a case has an invasive arterial line, the line plays the true pressure and a cuff is simulated from it
(:func:`simulate_readings`). It serves the alarm replay's "frequent cuff" bar
(:func:`hypo.evaluate.alarms.replay.frequent_cuff`), ``--cuff-from-art`` (a dataset's NIBP readings replaced by
simulated ones on a schedule, :func:`with_simulated_cuff`) and any policy that requests readings.

**One reading.** An inflation requested at ``r`` (whole seconds) takes ``inflation_s`` seconds (default
:data:`hypo.config.INFLATION_S` = 40 s, within the 30-45 s of intraoperative monitors) and reports at its end,
``r + inflation_s``. Its SBP, MAP and DBP are the medians of the arterial line's valid SBP, MAP and DBP samples in
``[r, r + inflation_s)``, read as the line was known at the report (:class:`hypo.data.art.KnownLine`: samples that
pass the sample-wise artefact rules, less the spikes found by the report; a spike the rule finds only later is
still in, as it was then). An inflation over no valid sample fails: its values are NaN (no reading).

**Error model** (``error="published"``): to each value a bias plus normal noise of the SD below is added, drawn
independently per pressure and per reading (the source reports no correlation between them). Oscillometric cuff
minus invasive arterial pressure, mmHg, from Ribezzo S, Spina E, Di Bartolomeo S, Sanson G. *Noninvasive
techniques for blood pressure measurement are not a reliable alternative to direct measurement: a randomized
crossover trial in ICU.* ScientificWorldJournal 2014;2014:353628 (50 adult patients, oscillometric vs invasive
pressure: invasive SBP higher by 10.80 +- 14.9, MAP higher by 5.36 +- 7.1, DBP lower by 3.62 +- 6.0; mean
difference +- SD). Its directions agree with the meta-analyses of cuff against intra-arterial brachial pressure
(Picone et al., J Am Coll Cardiol 2017;70:572-586: the cuff underestimates SBP by 5.7 and overestimates DBP by 5.5
mmHg), which report no MAP; the ICU trial is taken because it reports all three pressures with their SDs. Its
population is critically ill rather than anaesthetised, so the figures are an assumption of the simulation, not a
property of any monitor. ``error="none"`` is an ideal cuff (the arterial values themselves).

Draws are reproducible: :func:`case_rng` seeds each case from a seed and its id, and one error triple is drawn per
requested reading, failed or not, so a reading's error never depends on whether an earlier one failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from hypo.config import CuffModel, CuffSchedule
from hypo.data.art import KnownLine
from hypo.data.signals import DBP, MBP, SBP
from hypo.data.sources.base import Case
from hypo.data.windows import Readings
from hypo.errors import CaseRejected

__all__ = ["PUBLISHED_ERROR", "CuffModel", "CuffSchedule", "case_rng", "schedule_text", "schedule_times",
           "simulate_readings",
           "with_simulated_cuff"]

# Cuff minus arterial pressure (bias, SD), mmHg, per pressure: Ribezzo et al. 2014 (module docstring).
PUBLISHED_ERROR: dict[str, tuple[float, float]] = {"sbp": (-10.80, 14.9), "map": (-5.36, 7.1), "dbp": (3.62, 6.0)}
PRESSURES: tuple[str, ...] = ("sbp", "map", "dbp")
_LINE_CHANNEL = {"sbp": "sbp", "map": "mbp", "dbp": "dbp"}


def schedule_times(start: int, end: int, interval_s: int) -> np.ndarray:
    """Inflation requests every ``interval_s`` seconds from ``start``, before ``end``.

    Returns:
        int64 ``[start, start + interval_s, ...]``, each ``< end`` (empty when ``end <= start``).

    Raises:
        ValueError: When ``interval_s`` is not > 0.
    """
    if not interval_s > 0:
        raise ValueError(f"the cuff interval must be > 0 s, got {interval_s}")
    return np.arange(int(start), int(end), int(interval_s), dtype=np.int64)


def case_rng(seed: int, caseid: str) -> np.random.Generator:
    """The error draws of one case: seeded from ``seed`` and the case id (independent of case order)."""
    digest = hashlib.sha256(f"cuff:{int(seed)}:{caseid}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def simulate_readings(line: KnownLine, request_times, model: CuffModel,
                      rng: np.random.Generator | None = None) -> Readings:
    """Cuff readings of inflations requested at ``request_times`` (module docstring: value, timing, error).

    Args:
        line: The arterial line as it becomes known (``KnownLine.of(raw_line)``).
        request_times: int [n] seconds at which inflations start.
        model: The cuff (inflation length, error model).
        rng: Draws the errors; needed when ``model.error`` is not ``"none"``.

    Returns:
        :class:`~hypo.data.windows.Readings` of all ``n`` requests, in request order: ``time`` (int64) the report
        ``request + inflation_s``; ``map``, ``sbp``, ``dbp`` (float32) NaN where the inflation failed.

    Raises:
        ValueError: When an error model needs ``rng`` and none is given.
    """
    req = np.asarray(request_times, np.int64).reshape(-1)
    report = req + model.inflation_s
    v = line.valid
    lo = np.searchsorted(v.time, req, side="left")
    hi = np.searchsorted(v.time, report, side="left")
    values = {p: np.full(len(req), np.nan) for p in PRESSURES}
    for i, (a, b, t) in enumerate(zip(lo.tolist(), hi.tolist(), report.tolist())):
        known = line.spike[a:b] >= t  # spikes found only after the report are in the reading, as they were then
        if known.any():
            for p in PRESSURES:
                values[p][i] = np.median(getattr(v, _LINE_CHANNEL[p])[a:b][known].astype(np.float64))
    if model.error != "none":
        if rng is None:
            raise ValueError(f"the {model.error!r} cuff error needs a random generator")
        noise = rng.standard_normal((len(req), len(PRESSURES)))
        for j, p in enumerate(PRESSURES):
            bias, sd = PUBLISHED_ERROR[p]
            values[p] = values[p] + bias + sd * noise[:, j]
    return Readings(report, *(values[p].astype(np.float32) for p in ("map", "sbp", "dbp")))


def schedule_text(schedule: CuffSchedule) -> str:
    """One line saying how a dataset's cuff was simulated (manifest summaries, reports)."""
    error = ("an ideal cuff (no error)" if schedule.cuff.error == "none" else
             "the published oscillometric error (cuff - arterial, mmHg: "
             + ", ".join(f"{p.upper()} {b:+.1f} +- {sd:.1f}" for p, (b, sd) in PUBLISHED_ERROR.items())
             + "; Ribezzo et al. 2014)")
    return (f"cuff readings SIMULATED from the arterial line (--cuff-from-art): every {schedule.interval_s} s, "
            f"{schedule.cuff.inflation_s}-s inflations reporting at their end, {error}, seed {schedule.seed}")


@dataclasses.dataclass(frozen=True)
class SimulatedCuff:
    """What :func:`with_simulated_cuff` did to one case: readings requested, failed (no valid ART sample), kept."""

    requested: int
    failed: int

    def to_dict(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {"requested": self.requested, "failed": self.failed, "readings": self.requested - self.failed}


def with_simulated_cuff(case: Case, schedule: CuffSchedule) -> tuple[Case, SimulatedCuff]:
    """The case with its NIBP readings replaced by a cuff simulated from its arterial line every ``interval_s``.

    The first inflation starts at the line's first sample (whole seconds up), the next every ``interval_s``; a
    reading is written at its report second (SBP, MAP, DBP together), when that lies inside the case. The arterial
    line itself is left as it was (labels stay those of the line).

    Args:
        case: The case as its source yields it, with ``art``.
        schedule: Interval, cuff and seed.

    Returns:
        ``(case, counts)``: a new case (the source's arrays untouched) and what the simulation did.

    Raises:
        CaseRejected: ``no arterial line`` when the case has no arterial sample.
    """
    raw = case.art.crop(case.duration_s) if case.art is not None else None
    if raw is None or len(raw) == 0:
        raise CaseRejected("no arterial line", f"case {case.caseid}: no arterial pressure samples to simulate a cuff "
                                               "from (--cuff-from-art)")
    line = KnownLine.of(raw)
    start = int(math.ceil(raw.time[0]))
    requests = schedule_times(start, int(case.duration_s) - schedule.cuff.inflation_s, schedule.interval_s)
    readings = simulate_readings(line, requests, schedule.cuff, case_rng(schedule.seed, case.caseid))
    signals = case.signals.copy()
    signals[:, (SBP, MBP, DBP)] = np.nan
    ok = np.isfinite(readings.map) & np.isfinite(readings.sbp) & np.isfinite(readings.dbp)
    t = readings.time[ok]
    signals[t, SBP], signals[t, MBP], signals[t, DBP] = readings.sbp[ok], readings.map[ok], readings.dbp[ok]
    out = Case(case.caseid, case.subjectid, signals, case.duration_s, case.art)
    return out, SimulatedCuff(len(requests), int((~ok).sum()))
