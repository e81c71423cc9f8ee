"""One recording, closed-loop: a policy decides when the cuff inflates; the readings feed the model as they report.

    loop = CaseLoop(case, model, manifest.label, LoopConfig(base_interval_s=300, stride_s=30))
    run = loop.advisor(threshold=0.3)      # the fixed schedule plus the readings the model asks for
    run = loop.schedule(150)               # a fixed schedule alone
    run = loop.trend(level=70)             # the fixed schedule plus readings the last readings' trend asks for

**The cuff.** Every reading is simulated from the recording's arterial line by the one cuff simulation,
:func:`hypo.data.cuff.simulate_readings` (called in one place, :func:`cuff_readings`): an inflation requested at
``r`` reports at ``r + inflation_s`` the line's pressure over the inflation, with the published oscillometric error
(or none). The error of a reading is drawn from the seed, the case and the second it was requested, so a reading
requested at the same second reads the same under every policy (common random numbers). The case's own cuff
readings are dropped: its NIBP channels hold the simulated readings only, each written at its report second.

**The schedule.** The fixed schedule inflates every ``base_interval_s`` from the line's first sample (as
``--cuff-from-art``: :func:`hypo.data.cuff.schedule_times`) and is never moved; a scheduled inflation that would
start while a requested one is still inflating is skipped.

**The advisor** (:meth:`CaseLoop.advisor`). At every prediction step (window ends every ``stride_s`` seconds in the
scored span of the events) the model's p(hypotension) is computed on the window as known then: the recording's
seconds up to that end, its NIBP channels holding the readings reported so far, cleaned, filled, judged and windowed
by the causal pipeline (:func:`hypo.infer.causal.prepare_windows`, what ``hypo predict``, the replay and ``hypo
serve`` run). When it is >= the trigger threshold, the last inflation (scheduled or requested) started at least
``min_spacing_s`` ago, and the reading would report inside the recording, an extra inflation is requested at that
second. Its reading exists from ``request + inflation_s`` on; the windows that can see it are scored again, so every
later prediction sees it. (The pipeline is causal: a reading changes no window ending before it.) A window that is
incomplete gets no risk and requests nothing.

**The trend trigger** (:meth:`CaseLoop.trend`): the same loop, where the trigger is the MAP extrapolated
``trend_horizon_s`` ahead of the step by the comparators' least-squares line through the last reading and up to
:data:`hypo.data.windows.EARLIER_READINGS` earlier ones no older than
:data:`hypo.learn.comparators.MAX_AGE_S` before it (:func:`hypo.learn.comparators.extrapolate`), below ``level``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from hypo.config import INFLATION_S, CuffModel
from hypo.data.signals import DBP, HYPOTENSION, MBP, N_SIGNALS, SBP
from hypo.errors import ConfigError

BASE_INTERVAL_S = 300  # the fixed schedule the advisor adds to: every 5 min
STRIDE_S = 30  # seconds between the advisor's decisions
MIN_SPACING_S = 120  # a request at least this long after the last inflation started


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """The simulated cuff and the policies' timing.

    Attributes:
        base_interval_s: The fixed schedule's interval (s) that the advisor and the trend trigger add to.
        stride_s: Seconds between decisions (window ends).
        min_spacing_s: A request comes at least this long after the last inflation (scheduled or requested) began.
        inflation_s: Seconds an inflation takes; its reading reports at its end.
        cuff_error: ``"published"`` (the oscillometric error of :mod:`hypo.data.cuff`) or ``"none"``.
        seed: Seeds the cuff's error draws (with the case and the request second).
        trend_horizon_s: How far ahead the trend trigger extrapolates (s).
    """

    base_interval_s: int = BASE_INTERVAL_S
    stride_s: int = STRIDE_S
    min_spacing_s: int = MIN_SPACING_S
    inflation_s: int = INFLATION_S
    cuff_error: str = "published"
    seed: int = 0
    trend_horizon_s: int = 300

    def __post_init__(self) -> None:
        self.cuff()  # checks the inflation and the error model
        for name in ("base_interval_s", "stride_s", "min_spacing_s", "trend_horizon_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a whole number of seconds >= 1, got {v!r}")
        if self.min_spacing_s < self.inflation_s:
            raise ConfigError(f"the minimum spacing between requests ({self.min_spacing_s} s) must be at least one "
                              f"inflation ({self.inflation_s} s)")
        if self.base_interval_s <= self.inflation_s:
            raise ConfigError(f"the cuff interval ({self.base_interval_s} s) must be longer than one inflation "
                              f"({self.inflation_s} s)")

    def cuff(self) -> CuffModel:
        """The simulated cuff."""
        return CuffModel(inflation_s=self.inflation_s, error=self.cuff_error)


@dataclasses.dataclass
class PolicyRun:
    """What one policy did on one recording.

    Attributes:
        requests: int64 [n] the second each inflation started, in order.
        extra: bool [n] requested by the policy (not by the fixed schedule).
        time: int64 [n] each reading's report second.
        map: float64 [n] the MAP it reported (NaN: the inflation saw no valid arterial sample, or the reading is an
            artefact the pipeline removes: :func:`kept_map`).
        risk: float64 [steps] the advisor's p(hypotension) at each step as it was computed then (NaN: incomplete);
            None for policies without a model.
    """

    requests: np.ndarray
    extra: np.ndarray
    time: np.ndarray
    map: np.ndarray
    risk: np.ndarray | None = None

    @property
    def n_extra(self) -> int:
        """Inflations the policy requested."""
        return int(self.extra.sum())


def cuff_readings(line, requests, cuff: CuffModel, seed: int, caseid: str):
    """Readings of inflations started at ``requests``: the one call to :func:`hypo.data.cuff.simulate_readings`.

    Each reading's error is drawn from ``(seed, caseid, its request second)``, so it does not depend on which other
    readings a policy took.

    Returns:
        :class:`~hypo.data.windows.Readings` in request order.
    """
    from hypo.data.cuff import case_rng, simulate_readings
    from hypo.data.windows import Readings

    req = np.asarray(requests, np.int64).reshape(-1)
    if cuff.error == "none" or not len(req):
        return simulate_readings(line, req, cuff, None if cuff.error == "none" else case_rng(seed, caseid))
    parts = [simulate_readings(line, req[i:i + 1], cuff, case_rng(seed, f"{caseid}@{int(r)}"))
             for i, r in enumerate(req.tolist())]
    return Readings(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("time", "map", "sbp", "dbp")))


@dataclasses.dataclass
class _Loop:
    """The state of one closed-loop run: the inflations so far and the NIBP channels they wrote."""

    sched: np.ndarray  # int64 the fixed schedule's requests
    skipped: np.ndarray  # bool: skipped (a requested inflation was under way)
    readings: dict[int, tuple[float, float, float]]  # request second -> (sbp, map, dbp) reported
    extras: list[int]
    signals: np.ndarray | None  # the case's seconds with the readings written (advisor only)

    def last_request(self, t: int) -> float:
        """The second the last inflation (scheduled or requested) at or before ``t`` started (-inf: none)."""
        s = self.sched[(self.sched <= t) & ~self.skipped]
        last = float(s[-1]) if len(s) else -math.inf
        return max(last, float(self.extras[-1])) if self.extras else last


class CaseLoop:
    """One recording with an arterial line, ready for any number of closed-loop runs (module docstring).

    Attributes:
        events: The recording's hypotension episodes on the arterial line
            (:func:`hypo.evaluate.alarms.events.case_events`, the alarm evaluation's rule).
        ends: int64 [steps] the decision seconds (window ends in the events' scored span).
        base_risk: float64 [steps] the model's risk with the fixed schedule's readings alone.
        hours: Hours of the scored span.
    """

    def __init__(self, case, model, label, cfg: LoopConfig | None = None, induction_s: int = 600,
                 merge_gap_s: int = 300) -> None:
        from hypo.data.art import KnownLine
        from hypo.data.cuff import schedule_times
        from hypo.data.pipeline import usable_arterial_line
        from hypo.data.windows import window_ends
        from hypo.evaluate.alarms.events import case_events
        from hypo.infer.sidecar import window_config

        self.case, self.model, self.cfg = case, model, cfg or LoopConfig()
        self.duration = int(case.duration_s)
        clean = usable_arterial_line(case)[0]  # CaseRejected without a usable line
        self.line = KnownLine.of(case.art.crop(self.duration))
        self.wcfg = window_config(model.sidecar, self.cfg.stride_s)
        w, fill = self.wcfg.window_s, self.wcfg.fill
        self.events = case_events(case.caseid, case.subjectid, self.duration, label, w - 1, line=clean,
                                  merge_gap_s=merge_gap_s, induction_s=induction_s)
        ends = window_ends(self.duration, w, self.cfg.stride_s)
        self.ends = ends[(ends >= self.events.span[0]) & (ends < self.events.span[1])]
        self.start = int(math.ceil(self.line.valid.time[0]))
        # seconds behind a window end that can change it (as hypo serve's scorer keeps them)
        self.history_s = w + max(fill.nibp_max_carry_s, fill.numeric_max_carry_s) + fill.waveform_max_gap_s + \
            self.wcfg.nibp_merge_s + 1
        self._carry_s = fill.nibp_max_carry_s
        self.base_requests = schedule_times(self.start, self.duration - self.cfg.inflation_s,
                                            self.cfg.base_interval_s)
        self._base = self._read(self.base_requests)
        self._signals = case.signals.copy()
        self._signals[:, (SBP, MBP, DBP)] = np.nan
        for r, v in self._base.items():
            self._write(self._signals, r, v)
        self.base_risk = self.risk_at(self._signals, self.ends)

    @property
    def hours(self) -> float:
        """Hours of the scored span."""
        return (self.events.span[1] - self.events.span[0]) / 3600

    def _read(self, requests) -> dict[int, tuple[float, float, float]]:
        c = self.cfg
        r = cuff_readings(self.line, requests, c.cuff(), c.seed, self.case.caseid)
        return {int(q): (float(s), float(m), float(d))
                for q, s, m, d in zip(np.asarray(requests).tolist(), r.sbp, r.map, r.dbp)}

    def _write(self, signals: np.ndarray, request: int, value, clear: bool = False) -> None:
        """Write (or clear) a reading at its report second when it has all three values."""
        row = request + self.cfg.inflation_s
        if row < len(signals) and np.isfinite(value).all():
            signals[row, (SBP, MBP, DBP)] = np.nan if clear else value

    def risk_at(self, signals: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The model's p(hypotension) of the windows ending at ``ends`` of ``signals`` (NaN: incomplete).

        The causal pipeline prepares them from the ``history_s`` seconds before the first end on.
        """
        from hypo.infer.causal import known_at, prepare_windows

        risk = np.full(len(ends), np.nan)
        if not len(ends):
            return risk
        a, b = max(0, int(ends[0]) - self.history_s), int(ends[-1]) + 1
        prep = prepare_windows(signals[a:b], self.wcfg, ends - a, known_at(signals[:b], ends))
        ok = prep.complete_for(self.model.sidecar)
        if ok.any():
            risk[ok] = self.model.predict_proba(prep.windows[ok].transpose(0, 2, 1))[:, HYPOTENSION]
        return risk

    def inputs(self, run: PolicyRun) -> np.ndarray:
        """The recording's seconds as a run left them, float32 [seconds, 7].

        Its NIBP channels hold the run's readings at their report seconds (the same draws: a reading's error depends
        on its request second only).
        """
        signals = self.case.signals.copy()
        signals[:, (SBP, MBP, DBP)] = np.nan
        for r, v in self._read(run.requests).items():
            self._write(signals, r, v)
        return signals

    # ------------------------------------------------------------------------------------------- policies

    def schedule(self, interval_s: int) -> PolicyRun:
        """A fixed schedule alone: an inflation every ``interval_s`` from the line's first sample."""
        from hypo.data.cuff import schedule_times

        req = schedule_times(self.start, self.duration - self.cfg.inflation_s, int(interval_s))
        return self._result(self._read(req), req, np.zeros(len(req), bool))

    def advisor(self, threshold: float) -> PolicyRun:
        """The fixed schedule plus an inflation whenever the model's risk is >= ``threshold`` (module docstring)."""
        return self._run(lambda i, t, loop, risk: risk[i] >= threshold, with_model=True)

    def trend(self, level: float) -> PolicyRun:
        """The fixed schedule plus an inflation whenever the last readings' MAP trend is below ``level``.

        The trend: the MAP extrapolated ``trend_horizon_s`` ahead of the step (module docstring), in mmHg.
        """
        from hypo.data.windows import EARLIER_READINGS
        from hypo.learn.comparators import MAX_AGE_S, extrapolate

        kept: dict[int, float] = {}  # request second -> its kept MAP (a reading's value depends on its second only)

        def low(i, t, loop, risk):
            inf = self.cfg.inflation_s
            past = sorted(r for r in loop.readings if r + inf <= t)
            for r in past:
                if r not in kept:
                    kept[r] = float(kept_map([loop.readings[r]])[0])
            done = [(r + inf, kept[r]) for r in past if np.isfinite(kept[r])][-(EARLIER_READINGS + 1):]
            if not done:
                return False
            times = np.array([[x for x, _ in done]], np.float64)
            values = np.array([[v if done[-1][0] - x <= MAX_AGE_S else np.nan for x, v in done]])
            return bool(extrapolate(values, times, np.array([t + self.cfg.trend_horizon_s]))[0] < level)

        return self._run(low, with_model=False)

    def _run(self, trigger: Callable, with_model: bool) -> PolicyRun:
        c = self.cfg
        loop = _Loop(self.base_requests, np.zeros(len(self.base_requests), bool), dict(self._base), [],
                     self._signals.copy() if with_model else None)
        risk = self.base_risk.copy() if with_model else None
        for i, t in enumerate(self.ends.tolist()):
            if t + c.inflation_s >= self.duration or t - loop.last_request(t) < c.min_spacing_s:
                continue
            if not trigger(i, t, loop, risk):
                continue
            self._request(loop, t)
            if with_model:
                sel = self._seen_by(loop, t)
                risk[sel] = self.risk_at(loop.signals, self.ends[sel])
        req = np.array(sorted(loop.readings), np.int64)
        extra = np.isin(req, np.array(loop.extras, np.int64))
        return self._result(loop.readings, req, extra, risk)

    def _request(self, loop: _Loop, t: int) -> None:
        """An inflation requested at ``t``: scheduled ones that would start while it inflates are skipped."""
        clash = (loop.sched > t) & (loop.sched < t + self.cfg.inflation_s) & ~loop.skipped
        for r in loop.sched[clash].tolist():
            if loop.signals is not None:
                self._write(loop.signals, r, loop.readings[r], clear=True)
            del loop.readings[r]
        loop.skipped |= clash
        loop.readings[t] = self._read([t])[t]
        loop.extras.append(t)
        if loop.signals is not None:
            self._write(loop.signals, t, loop.readings[t])

    def _seen_by(self, loop: _Loop, t: int) -> np.ndarray:
        """The steps whose windows a request at ``t`` (and the scheduled inflations it skipped) can change.

        From its report to the next reading after them that the pipeline keeps (:func:`kept_map`; at most the cuff's
        carry-forward later), plus one window.
        """
        inf = self.cfg.inflation_s
        lo, hi = t + inf, t + 2 * inf
        after = sorted(r for r in loop.readings if r + inf > hi)
        later = [r + inf for r, m in zip(after, kept_map([loop.readings[r] for r in after])) if np.isfinite(m)]
        stop = min(min(later, default=hi + self._carry_s + 1), hi + self._carry_s + 1) + self.wcfg.window_s
        return (self.ends >= lo) & (self.ends <= stop)

    def _result(self, readings: dict, req: np.ndarray, extra: np.ndarray, risk=None) -> PolicyRun:
        inf = self.cfg.inflation_s
        maps = kept_map([readings[int(r)] for r in req.tolist()])
        return PolicyRun(req.astype(np.int64), extra.astype(bool), (req + inf).astype(np.int64), maps, risk)


def kept_map(values) -> np.ndarray:
    """The MAP of each reading ``(sbp, map, dbp)`` the pipeline's artefact rules keep, float64 (NaN: removed).

    A reading the model's inputs lose (:func:`hypo.data.artefacts.remove_artefacts`: SBP <= DBP, MAP out of range,
    a failed inflation...) shows nothing: neither the scoring nor the trend trigger reads it.
    """
    from hypo.data.artefacts import remove_artefacts

    rows = np.full((len(values), N_SIGNALS), np.nan, np.float32)
    if len(values):
        rows[:, (SBP, MBP, DBP)] = np.asarray(values, np.float32)
    return remove_artefacts(rows)[0][:, MBP].astype(np.float64)
