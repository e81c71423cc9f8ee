"""Scoring alarms against episodes: sensitivity, lead time, false alarms per hour, time in alarm, and the curve.

For one scorer on one recording (a :class:`Track` of alarm slots, the :class:`~hypo.evaluate.alarms.events.CaseEvents`)
and many thresholds at once, :func:`case_counts` counts (``lead_max`` 15 min and ``lead_min`` 1 min are the
config's ``lead_max_s`` / ``lead_min_s``):

- **episode sensitivity**: a scored episode is *caught* when an alarm is on at any moment of
  ``[onset - lead_max, onset - lead_min]`` (an alarm that began earlier and is still on counts);
- **lead time** of a caught episode: onset minus the start of the earliest alarm on in that interval, capped at
  ``lead_max``;
- **false alarms**: alarms that start in the scored span after induction, outside every episode, catch no
  episode and are followed by no onset within ``lead_max`` of their start; **per hour** of scored recording
  outside episodes and induction. An alarm on during an episode's warning window is true even when it began
  more than ``lead_max`` before the onset. An alarm starting in the last ``lead_max`` of a recording with no onset
  after it is **censored** (neither true nor false: the recording ends before it can be judged), and the time
  from its start to the end is left out of the false-alarm hours;
- **alarm PPV**: the share of judged alarms (neither inside an episode nor censored) that catch an episode;
- **alarms per hour** (every alarm starting in the scored span after induction, per hour of it) and the **share
  of time in alarm** (of the same hours);
- **detection** (beside, for the frequent-cuff bar): an alarm on at any moment from ``onset - lead_max`` to the
  episode's end; its lead may be negative (after onset).

**An alarm that stays on is judged again every** ``lead_max``: an alarm says "an episode within ``lead_max``", so
one still on ``lead_max`` after it began (or after it was last judged) is judged as a new alarm from then on, by the
same rules. An alarm that never ends thus costs a false alarm for every ``lead_max`` it stays on outside the episodes'
warning windows, instead of counting once; without this rule a near-permanent alarm at the lowest threshold meets
any false-alarm target (it rarely *starts*) and catches every episode (the validation choice collapses onto it).
Reading alarms (each reading an alarm of its own) are judged reading by reading already. The counts above (alarms,
false alarms, PPV) are of judged alarms; the lead time is measured from the alarm's first start.

Alarms that start inside an episode are neither true nor false. Pooled over recordings, the counts give the
**alarm operating characteristic** (episode sensitivity against false alarms per hour over all thresholds), and
with subject bootstrap weights (:func:`hypo.evaluate.bootstrap.subject_weights`) their intervals. Thresholds are
chosen on the validation split (:func:`select_thresholds`) for a target false-alarm rate and, separately, for a
target sensitivity, and only then applied to the test split.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from hypo.config import CuffSchedule
from hypo.errors import ConfigError
from hypo.evaluate.alarms.events import INDUCTION, SCORED, UNDER_WAY, CaseEvents
from hypo.infer.alarm_policy import (
    HYSTERESIS_DEFAULT,
    M_DEFAULT,
    MAX_GAP_S_DEFAULT,
    STRIDE_S_DEFAULT,
    alarm_intervals,
    alarm_on,
    alarm_starts,
    reading_alarm_on,
)
from hypo.jsonio import finite

PROBABILITY, READING = "probability", "reading"
FA_GRID = np.round(np.linspace(0.0, 6.0, 61), 3)  # false alarms per hour at which curve bands are read


@dataclasses.dataclass(frozen=True)
class AlarmConfig:
    """How alarms are raised and scored (saved with every alarm result).

    Attributes:
        stride_s: Seconds between predictions along a recording.
        m: Consecutive predictions at or above the threshold that start an alarm.
        hysteresis: An alarm ends below ``threshold - hysteresis``.
        lead_max_s: Earliest warning that counts (an alarm on at ``onset - lead_max_s`` catches the episode); also
            the cap of lead times and the window in which an onset makes an alarm true.
        lead_min_s: Latest warning that counts (``onset - lead_min_s``): an alarm must come this early to help.
        fa_target_per_h: Target false alarms per hour for the first threshold chosen on validation.
        sens_target: Target episode sensitivity for the second threshold chosen on validation.
        induction_s: Episodes starting in these first seconds of a recording are reported apart; alarms starting
            then are not counted, nor is that time.
        merge_gap_s: Arterial-line episodes closer than this are merged.
        cuff_cycle_s: The simulated frequent cuff ("measure more often") reads the ART MAP this often.
        cuff_measure_s: Each simulated reading is the median ART MAP of the seconds before it.
        n_thresholds: Thresholds per curve (quantiles of the scores).
        max_gap_s: Missing predictions for at most this long after a prediction hold the alarm state (a longer
            gap ends it): ``max_gap_s // stride_s`` predictions (:func:`hypo.infer.alarm_policy.held_gaps`).
        cuff_hold_s: A cuff episode ends at the next reading that is not low, or this long after its last low
            reading, whichever comes first (one usual cuff interval: readings every 2.5-5 min).
        cuff_from_art: ``--cuff-from-art``: the replayed recordings' cuff readings are replaced by a cuff simulated
            from the arterial line on this schedule (:func:`hypo.data.cuff.with_simulated_cuff`); None: the
            dataset's own (a dataset built with ``--cuff-from-art`` replays its simulated cuff). Written only when
            set.
        horizon_s: ``--alarm-horizon``: the models' alarm score is their risk of hypotension by this horizon
            (seconds; :meth:`hypo.infer.model.ExportedModel.at_horizon`); None: their p(hypotension) at the primary
            horizon. The baselines, the episodes and the warning window (``lead_max_s``) stay as they are. Written
            only when set.
    """

    stride_s: int = STRIDE_S_DEFAULT
    m: int = M_DEFAULT
    hysteresis: float = HYSTERESIS_DEFAULT
    lead_max_s: int = 900
    lead_min_s: int = 60
    fa_target_per_h: float = 1.0
    sens_target: float = 0.8
    induction_s: int = 600
    merge_gap_s: int = 300
    cuff_cycle_s: int = 150
    cuff_measure_s: int = 30
    n_thresholds: int = 150
    max_gap_s: int = MAX_GAP_S_DEFAULT
    cuff_hold_s: int = 300
    cuff_from_art: CuffSchedule | None = None
    horizon_s: int | None = None

    def omitted_fields(self) -> tuple[str, ...]:
        """Fields left out of the config's dict while unset (results written before they existed stay the same)."""
        return tuple(f for f in ("cuff_from_art", "horizon_s") if getattr(self, f) is None)

    @property
    def score_text(self) -> str:
        """What a model row's alarm reads: p(hypotension) at the primary horizon, or the risk by ``horizon_s``."""
        return "p(hypotension)" if self.horizon_s is None else f"risk of hypotension by {self.horizon_s / 60:g} min"

    @property
    def max_gap(self) -> int:
        """Missing predictions held after a prediction (``max_gap_s`` in predictions at ``stride_s``)."""
        return self.max_gap_s // self.stride_s

    def __post_init__(self) -> None:
        checks = (
            (isinstance(self.stride_s, int) and self.stride_s >= 1,
             f"--alarm-stride must be a whole number of seconds >= 1, got {self.stride_s}"),
            (isinstance(self.m, int) and self.m >= 1, f"--alarm-m must be >= 1, got {self.m}"),
            (0 <= self.hysteresis < 1,
             f"--alarm-hysteresis must be in [0, 1), got {self.hysteresis:g}: thresholds at or below the hysteresis "
             "are not used (an alarm could never end), so a hysteresis of 1 or more leaves no usable threshold"),
            (0 <= self.lead_min_s < self.lead_max_s,
             f"alarm lead bounds must satisfy 0 <= lead_min < lead_max, got {self.lead_min_s} and {self.lead_max_s}"),
            (self.fa_target_per_h > 0, f"--alarm-fa-target must be > 0 per hour, got {self.fa_target_per_h}"),
            (0 < self.sens_target <= 1, f"--alarm-sens-target must be in (0, 1], got {self.sens_target}"),
            (self.induction_s >= 0 and self.merge_gap_s >= 0, "induction and merge gap must be >= 0 s"),
            (self.cuff_cycle_s >= 1 and self.cuff_measure_s >= 1, "the simulated cuff's cycle and measurement >= 1 s"),
            (self.n_thresholds >= 2, f"n_thresholds must be >= 2, got {self.n_thresholds}"),
            (self.max_gap_s >= 0, f"--alarm-max-gap must be >= 0 s, got {self.max_gap_s}"),
            (self.cuff_hold_s >= 1, f"the cuff episode hold must be >= 1 s, got {self.cuff_hold_s}"),
            (self.horizon_s is None or (isinstance(self.horizon_s, int) and not isinstance(self.horizon_s, bool)
                                        and self.horizon_s >= 1),
             f"--alarm-horizon must be a whole number of seconds >= 1, got {self.horizon_s}"),
        )
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def policy_text(self) -> str:
        """One sentence stating the alarm policy."""
        return (f"an alarm starts when {self.score_text} >= threshold for {self.m} consecutive predictions (every "
                f"{self.stride_s} s) and ends below threshold - {self.hysteresis:g}; missing predictions for up to "
                f"{self.max_gap_s} s hold its state, a longer gap ends it; thresholds at or below the hysteresis are "
                "not used (an alarm could never end)")

    def scoring_text(self) -> str:
        """One sentence stating how alarms are scored."""
        lead = f"{self.lead_max_s / 60:g} min"
        return (f"an episode is caught when an alarm is on at any moment in [onset - {lead}, "
                f"onset - {self.lead_min_s / 60:g} min]; lead time = onset - start of the earliest such alarm, "
                f"capped at {lead}; an alarm still on {lead} after it began (or was last judged) is judged again "
                f"as a new alarm; an alarm is true when it catches an episode or an onset follows within {lead} "
                f"of its start, false when it starts outside every episode and is neither, and censored (neither) "
                f"when it starts in the last {lead} of a recording with no onset after it (its remaining time is "
                f"left out of the false-alarm hours); false alarms are counted per hour of scored recording outside "
                f"episodes and the first {self.induction_s / 60:g} min (induction); PPV = share of judged alarms "
                "that catch an episode")


@dataclasses.dataclass
class Track:
    """One scorer's alarm slots along one recording, in time order.

    Attributes:
        t: int64 [n] slot starts: prediction times (window ends) or reading times.
        u: int64 [n] slot ends: the next prediction or reading (an alarm on in slot i is on over ``[t_i, u_i)``).
        score: float64 [n] p(hypotension) (probability tracks) or MAP in mmHg (reading tracks); NaN: none.
        kind: :data:`PROBABILITY` or :data:`READING`.
        logged: bool [n] the alarm state as a live system logged it after each prediction (a silent trial's
            log: ``hypo evaluate --shadow``), taken as it is at its own threshold instead of recomputed; None:
            computed by the policy at every threshold.
    """

    t: np.ndarray
    u: np.ndarray
    score: np.ndarray
    kind: str
    logged: np.ndarray | None = None

    @classmethod
    def empty(cls, kind: str) -> Track:
        """A scorer with nothing to say on a recording (never alarms)."""
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros(0), kind)

    def on(self, thresholds, cfg: AlarmConfig) -> np.ndarray:
        """The alarm state per threshold, bool [T, n] (:mod:`hypo.infer.alarm_policy`; a logged track: as logged)."""
        if self.logged is not None:
            return np.broadcast_to(np.asarray(self.logged, bool), (len(np.atleast_1d(thresholds)), len(self.t))).copy()
        if self.kind == PROBABILITY:
            return alarm_on(self.score, thresholds, cfg.m, cfg.hysteresis, cfg.max_gap)
        return reading_alarm_on(self.score, thresholds)


def slots_on_grid(t_end, duration_s: int, stride_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Slots of predictions made every ``stride_s`` seconds: each lasts until the next (or the recording's end)."""
    t = np.asarray(t_end, np.int64)
    return t, np.minimum(t + stride_s, max(int(duration_s), 1)).astype(np.int64)


def slots_of_readings(times, duration_s: int, max_hold_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Slots of readings: each lasts until the next reading, at most ``max_hold_s`` (the carry-forward limit)."""
    t = np.asarray(times, np.int64)
    nxt = np.r_[t[1:], duration_s] if len(t) else t
    return t, np.minimum(np.minimum(nxt, t + max_hold_s), duration_s).astype(np.int64)


@dataclasses.dataclass
class CaseCounts:
    """What one scorer's alarms did on one recording, per threshold (see the module docstring).

    Attributes:
        n_episodes / n_induction / n_under_way: Episodes of each kind.
        scored_s: Seconds of the scored span after induction.
        fa_s: The same outside episodes (the false-alarm denominator).
        caught / detected / induction_caught: int [T].
        alarms / false: int [T].
        catching / judged / censored: int [T] judged alarms that catch an episode; alarms judged (neither inside
            an episode nor censored); censored alarms.
        censored_s: float [T] seconds from the first censored alarm to the end (left out of ``fa_s``).
        alarm_s: float [T] seconds in alarm within ``scored_s``.
        lead / det_lead: float [T, e] per scored episode (NaN where not caught / detected).
    """

    n_episodes: int
    n_induction: int
    n_under_way: int
    scored_s: float
    fa_s: float
    caught: np.ndarray
    detected: np.ndarray
    induction_caught: np.ndarray
    alarms: np.ndarray
    false: np.ndarray
    catching: np.ndarray
    judged: np.ndarray
    censored: np.ndarray
    censored_s: np.ndarray
    alarm_s: np.ndarray
    lead: np.ndarray
    det_lead: np.ndarray


def _first_on(on: np.ndarray) -> np.ndarray:
    """Index of the first on slot at or after each slot, int [T, n + 1] (n where none; column n: past the end)."""
    n = on.shape[1]
    idx = np.where(on, np.arange(n), n)
    nxt = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([nxt, np.full((on.shape[0], 1), n)], axis=1)


def _episode_hits(t, u, first_on, run_start, onsets, lead_max: int, lead_min: int | None, ends=None):
    """For each onset: caught (an on slot in the window) and the lead, [T, e] each."""
    n = len(t)
    lo = np.searchsorted(u, onsets - lead_max, side="right")  # first slot still on at onset - lead_max
    if ends is None:
        hi = np.searchsorted(t, onsets - lead_min, side="right") - 1  # last slot starting by onset - lead_min
    else:
        hi = np.searchsorted(t, ends - 1, side="right") - 1  # last slot starting before the episode's end
    f = first_on[:, np.minimum(lo, n)]  # [T, e]
    hit = (f <= hi[None, :]) & (f < n)
    if n == 0:
        return hit, np.full(hit.shape, np.nan)
    start = np.take_along_axis(run_start, np.minimum(f, n - 1), axis=1)
    lead = np.minimum(onsets[None, :] - t[start], lead_max).astype(np.float64)
    return hit, np.where(hit, lead, np.nan)


def slot_context(t, events: CaseEvents, cfg: AlarmConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What an alarm starting at each time would be: counted, inside an episode, followed by an onset.

    Args:
        t: int [n] possible alarm starts.
        events: The recording's events.
        cfg: Induction and ``lead_max_s``.

    Returns:
        ``(eligible, in_episode, followed, censored)`` bool [n]: in the scored span after induction; inside an
        episode (neither true nor false); an onset within ``lead_max_s`` after it (true); in the last
        ``lead_max_s`` of the span with no onset after it (censored: not judged). A counted alarm that is none of
        these, and catches no episode, is false.
    """
    t = np.asarray(t, np.int64)
    eligible = (t >= max(events.span[0], cfg.induction_s)) & (t < events.span[1])
    near_end = t >= events.span[1] - cfg.lead_max_s
    ep = events.episodes
    if not len(ep):
        none = np.zeros(len(t), bool)
        return eligible, none, none.copy(), eligible & near_end
    k = np.searchsorted(ep[:, 0], t, side="right") - 1
    in_episode = (k >= 0) & (t < ep[np.maximum(k, 0), 1])
    onsets = np.sort(ep[:, 0])
    j = np.searchsorted(onsets, t, side="right")  # first onset after the alarm's start
    followed = (j < len(onsets)) & (onsets[np.minimum(j, len(onsets) - 1)] <= t + cfg.lead_max_s)
    censored = eligible & near_end & ~in_episode & (j >= len(onsets))
    return eligible, in_episode, followed, censored


def run_starts(on: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index of the slot at which the alarm on at each slot started, int [..., n] (meaningless where off)."""
    idx = np.arange(on.shape[-1])
    return np.maximum.accumulate(np.where(starts, idx, 0), axis=-1)


def judged_starts(t, on: np.ndarray, starts: np.ndarray, lead_max_s: int) -> np.ndarray:
    """Where alarms are judged: each start, and each ``lead_max_s`` an alarm has stayed on since, bool [..., n].

    Args:
        t: int [n] slot starts.
        on: bool [..., n] probability alarms (not reading alarms: those restart at each reading).
        starts: bool [..., n] their starts (:func:`hypo.infer.alarm_policy.alarm_starts`).
        lead_max_s: The warning horizon: an alarm still on this long after it was last judged is judged again.
    """
    t = np.asarray(t, np.int64)
    if on.shape[-1] == 0:
        return starts.copy()
    rs = run_starts(on, starts)
    period = (t - t[rs]) // max(int(lead_max_s), 1)
    again = np.zeros_like(on)
    again[..., 1:] = on[..., 1:] & on[..., :-1] & (period[..., 1:] != period[..., :-1])
    return starts | again


def _catching_starts(t, u, on: np.ndarray, starts: np.ndarray, onsets, cfg: AlarmConfig,
                     restart: bool) -> np.ndarray:
    """Which judged alarm starts begin an alarm that is on during some episode's warning window, bool [T, n].

    The warning window of an onset ``o`` is ``[o - lead_max, o - lead_min]``: an alarm on at any moment of it
    catches the episode, however long before it began. A judged alarm lasts until the alarm ends or is judged
    again (``starts`` are :func:`judged_starts`).
    """
    n = len(t)
    covered = np.zeros(n + 1, np.int64)
    if len(onsets) and n:
        lo = np.searchsorted(u, onsets - cfg.lead_max_s, side="right")  # first slot still on at o - lead_max
        hi = np.searchsorted(t, onsets - cfg.lead_min_s, side="right")  # slots starting by o - lead_min: [lo, hi)
        ok = lo < hi
        np.add.at(covered, lo[ok], 1)
        np.add.at(covered, hi[ok], -1)
    mark = on & (np.cumsum(covered[:n]) > 0)[None, :]
    if restart:  # each reading is an alarm of its own
        return starts & mark
    cum = np.concatenate([np.zeros((on.shape[0], 1), np.int64), np.cumsum(mark, axis=1)], axis=1)
    end = _first_on(~on | starts)[:, 1:]  # the first slot after each that is off or judged anew: the alarm's end
    idx = np.broadcast_to(np.arange(n), on.shape)
    return starts & (np.take_along_axis(cum, end, axis=1) - np.take_along_axis(cum, idx, axis=1) > 0)


def case_counts(track: Track, events: CaseEvents, thresholds, cfg: AlarmConfig) -> CaseCounts:
    """Count one scorer's alarms on one recording, for every threshold.

    Args:
        track: The scorer's slots (:class:`Track`).
        events: The recording's episodes and scored span.
        thresholds: float [T].
        cfg: Policy and scoring rules.
    """
    th = np.asarray(thresholds, np.float64).reshape(-1)
    t, u = np.asarray(track.t, np.int64), np.asarray(track.u, np.int64)
    on = track.on(th, cfg)
    restart = track.kind == READING
    first_starts = alarm_starts(on, restart)
    starts = first_starts if restart else judged_starts(t, on, first_starts, cfg.lead_max_s)
    lo_r, hi_r = max(events.span[0], cfg.induction_s), events.span[1]
    scored_s = float(max(hi_r - lo_r, 0))
    ep = events.episodes
    ep_s = float(np.clip(np.minimum(ep[:, 1], hi_r) - np.maximum(ep[:, 0], lo_r), 0, None).sum()) if len(ep) else 0.0
    weight = np.clip(np.minimum(u, hi_r) - np.maximum(t, lo_r), 0, None).astype(np.float64)
    eligible, in_episode, followed, censored_slot = slot_context(t, events, cfg)
    catching = _catching_starts(t, u, on, starts, ep[:, 0] if len(ep) else np.zeros(0, np.int64), cfg, restart)
    counted = starts & eligible[None, :]
    false = counted & ~(in_episode | followed | censored_slot)[None, :] & ~catching
    censored = counted & censored_slot[None, :]
    first_censored = np.where(censored.any(axis=1), t[np.argmax(censored, axis=1)] if len(t) else 0, hi_r)

    first_on = _first_on(on)
    idx = np.arange(len(t))
    run_start = np.broadcast_to(idx, on.shape) if restart else run_starts(on, first_starts)  # leads: first start
    scored = ep[events.kind == SCORED]
    induction = ep[events.kind == INDUCTION]
    caught, lead = _episode_hits(t, u, first_on, run_start, scored[:, 0], cfg.lead_max_s, cfg.lead_min_s)
    detected, det_lead = _episode_hits(t, u, first_on, run_start, scored[:, 0], cfg.lead_max_s, None,
                                       ends=scored[:, 1])
    ind_caught, _ = _episode_hits(t, u, first_on, run_start, induction[:, 0], cfg.lead_max_s, cfg.lead_min_s)
    return CaseCounts(
        n_episodes=len(scored), n_induction=len(induction), n_under_way=int((events.kind == UNDER_WAY).sum()),
        scored_s=scored_s, fa_s=max(scored_s - ep_s, 0.0),
        caught=caught.sum(axis=1), detected=detected.sum(axis=1), induction_caught=ind_caught.sum(axis=1),
        # PPV's numerator among its denominator: an alarm starting inside an episode is not judged, even when it
        # stays on into the next episode's warning window
        alarms=counted.sum(axis=1), false=false.sum(axis=1),
        catching=(counted & catching & ~in_episode[None, :] & ~censored).sum(axis=1),
        judged=(counted & ~in_episode[None, :] & ~censored).sum(axis=1), censored=censored.sum(axis=1),
        censored_s=np.maximum(hi_r - first_censored, 0).astype(np.float64),
        alarm_s=on.astype(np.float64) @ weight, lead=lead, det_lead=det_lead,
    )


def judged_intervals(track: Track, on: np.ndarray, cfg: AlarmConfig) -> np.ndarray:
    """The judged alarms of one threshold as ``[start, end)`` intervals, int64 [k, 2] (see :func:`judged_starts`)."""
    restart = track.kind == READING
    if restart:
        return alarm_intervals(track.t, track.u, on, True)
    t, u = np.asarray(track.t, np.int64), np.asarray(track.u, np.int64)
    js = judged_starts(t, on, alarm_starts(on), cfg.lead_max_s)
    first = np.flatnonzero(js)
    if not len(first):
        return np.zeros((0, 2), np.int64)
    end = _first_on((~on | js)[None, :])[0, first + 1]  # the slot after each judged alarm's last
    return np.stack([t[first], u[end - 1]], axis=1).astype(np.int64)


def case_story(track: Track, events: CaseEvents, threshold: float, cfg: AlarmConfig) -> dict[str, Any]:
    """One recording at one threshold, alarm by alarm and episode by episode (for example timelines).

    Returns:
        ``{"alarms": [{"start", "end", "status", "catches"}], "episodes": [{"onset", "end", "kind", "caught",
        "lead_s"}]}``; ``catches``: a counted alarm, outside every episode, on during an episode's warning window;
        an alarm's status is ``false``, ``true`` (it catches an episode, or an onset follows within
        ``lead_max``), ``in episode``, ``censored`` (too near the end to judge) or ``not counted`` (before the
        scored span or in induction).
    """
    on = track.on([threshold], cfg)[0]
    intervals = judged_intervals(track, on, cfg)
    eligible, in_episode, followed, censored = slot_context(intervals[:, 0], events, cfg)
    onsets = events.episodes[:, 0]
    catches = np.array([bool(((b > onsets - cfg.lead_max_s) & (a <= onsets - cfg.lead_min_s)).any())
                        for a, b in intervals.tolist()], bool).reshape(-1)
    status = np.where(~eligible, "not counted", np.where(
        in_episode, "in episode", np.where(followed | catches, "true", np.where(censored, "censored", "false"))))
    c = case_counts(track, events, [threshold], cfg)
    scored = iter(zip(c.lead[0].tolist(), c.det_lead[0].tolist()))
    episodes = []
    for (onset, end), kind in zip(events.episodes.tolist(), events.kind.tolist()):
        entry = {"onset": onset, "end": end, "kind": kind, "caught": None, "lead_s": None}
        if kind == SCORED:
            lead, _ = next(scored)
            entry.update(caught=bool(np.isfinite(lead)), lead_s=lead if np.isfinite(lead) else None)
        episodes.append(entry)
    return {"alarms": [{"start": int(a), "end": int(b), "status": str(st), "catches": bool(hit and ok)}
                       for (a, b), st, hit, ok in zip(intervals.tolist(), status, catches, eligible & ~in_episode)],
            "episodes": episodes}


# ----------------------------------------------------------------------------------------------- pooling


@dataclasses.dataclass
class Pooled:
    """Per-recording counts of one scorer stacked over recordings, for one threshold grid.

    Attributes:
        thresholds: float [T].
        subjects: [C] subject of each recording.
        n_episodes, n_induction, n_under_way, scored_s, fa_s: [C].
        caught, detected, induction_caught, alarms, false, catching, judged, censored, censored_s, alarm_s: [C, T].
        lead, det_lead: [T, E] over every scored episode of every recording (NaN: not caught / detected).
        episode_case: int [E] the recording of each episode.
    """

    thresholds: np.ndarray
    subjects: np.ndarray
    n_episodes: np.ndarray
    n_induction: np.ndarray
    n_under_way: np.ndarray
    scored_s: np.ndarray
    fa_s: np.ndarray
    caught: np.ndarray
    detected: np.ndarray
    induction_caught: np.ndarray
    alarms: np.ndarray
    false: np.ndarray
    catching: np.ndarray
    judged: np.ndarray
    censored: np.ndarray
    censored_s: np.ndarray
    alarm_s: np.ndarray
    lead: np.ndarray
    det_lead: np.ndarray
    episode_case: np.ndarray


def pool_counts(counts: list[CaseCounts], subjects, thresholds) -> Pooled:
    """Stack :func:`case_counts` of every recording (one scorer, one threshold grid)."""
    th = np.asarray(thresholds, np.float64)
    T = len(th)

    def col(name):
        return np.asarray([getattr(c, name) for c in counts], np.float64)

    def mat(name):
        return np.stack([getattr(c, name) for c in counts]).astype(np.float64) if counts else np.zeros((0, T))

    def eps(name):
        parts = [getattr(c, name) for c in counts if getattr(c, name).shape[1]]
        return np.concatenate(parts, axis=1) if parts else np.zeros((T, 0))

    return Pooled(
        thresholds=th, subjects=np.asarray(subjects).astype(str),
        n_episodes=col("n_episodes"), n_induction=col("n_induction"), n_under_way=col("n_under_way"),
        scored_s=col("scored_s"), fa_s=col("fa_s"),
        caught=mat("caught"), detected=mat("detected"), induction_caught=mat("induction_caught"),
        alarms=mat("alarms"), false=mat("false"), catching=mat("catching"), judged=mat("judged"),
        censored=mat("censored"), censored_s=mat("censored_s"), alarm_s=mat("alarm_s"),
        lead=eps("lead"), det_lead=eps("det_lead"),
        episode_case=np.repeat(np.arange(len(counts)), [c.n_episodes for c in counts]).astype(np.int64),
    )


def _ratio(num, den):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def curve(p: Pooled, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Pooled metrics per threshold, [T] (or [b, T] under bootstrap weights [b, C]).

    Returns:
        ``sensitivity``, ``fa_per_h``, ``alarms_per_h``, ``time_in_alarm``, ``detection``,
        ``induction_sensitivity``, ``ppv``.
    """
    w = np.ones((1, len(p.subjects))) if weights is None else np.atleast_2d(weights)
    n_ep, n_ind = w @ p.n_episodes, w @ p.n_induction
    scored_h = (w @ p.scored_s) / 3600
    fa_h = ((w @ p.fa_s)[:, None] - w @ p.censored_s) / 3600  # censored alarms' remaining time left out
    out = {
        "sensitivity": _ratio(w @ p.caught, n_ep[:, None]),
        "fa_per_h": _ratio(w @ p.false, fa_h),
        "ppv": _ratio(w @ p.catching, w @ p.judged),
        "alarms_per_h": _ratio(w @ p.alarms, scored_h[:, None]),
        "time_in_alarm": _ratio(w @ p.alarm_s, (scored_h * 3600)[:, None]),
        "detection": _ratio(w @ p.detected, n_ep[:, None]),
        "induction_sensitivity": _ratio(w @ p.induction_caught, n_ind[:, None]),
    }
    return {k: v[0] for k, v in out.items()} if weights is None else out


def sensitivity_at_fa(fa: np.ndarray, sens: np.ndarray, targets) -> np.ndarray:
    """The best sensitivity among thresholds whose false-alarm rate is <= each target (the curve's envelope).

    Args:
        fa: [..., T] false alarms per hour.
        sens: [..., T] sensitivity.
        targets: [G] false-alarm rates.

    Returns:
        [..., G]; 0 where no threshold keeps the rate (no alarm at all keeps 0 false alarms, so only when that
        point is missing); NaN where the sensitivity is undefined (no episode).
    """
    g = np.asarray(targets, np.float64)
    fa = np.nan_to_num(np.asarray(fa, np.float64), nan=np.inf)
    sens = np.asarray(sens, np.float64)
    defined = np.isfinite(sens).any(axis=-1)[..., None]
    order = np.argsort(fa, axis=-1, kind="stable")
    fa_sorted = np.take_along_axis(fa, order, axis=-1)
    best = np.maximum.accumulate(np.take_along_axis(np.nan_to_num(sens, nan=0.0), order, axis=-1), axis=-1)
    within = (fa_sorted[..., :, None] <= g + 1e-12).sum(axis=-2)  # points at or under each rate: [..., G]
    env = np.where(within > 0, np.take_along_axis(best, np.maximum(within - 1, 0), axis=-1), 0.0)
    return np.where(defined, env, np.nan)


# ----------------------------------------------------------------------------------------------- thresholds


def threshold_grid(scores, kind: str, n: int = 150, floor: float = 0.0) -> np.ndarray:
    """Thresholds spanning a scorer's pooled scores, denser where alarms are rare.

    Probability tracks alarm at ``p >= t``: thresholds are quantiles of p above ``floor``, plus one above the
    maximum (never alarms). With ``floor`` = the hysteresis, no threshold is so low that an alarm, once on, could
    never end (``p < t - hysteresis`` impossible): such an alarm is on for hours and counts as one, which would
    make any false-alarm target trivially met. Reading tracks alarm at ``MAP < t``: thresholds sit just above
    quantiles of MAP, plus the minimum (never alarms).

    Returns:
        float64 [<= n + 1], increasing.
    """
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if kind == PROBABILITY:
        s = s[s > floor]
    if not len(s):
        return np.array([1.0]) if kind == PROBABILITY else np.array([0.0])
    rare = np.geomspace(1e-4, 0.1, n - n // 4)
    common = np.linspace(0.1, 1.0, n // 4 + 1)[1:]
    if kind == PROBABILITY:
        q = np.quantile(s, np.unique(np.r_[1.0 - rare, 1.0 - common]))
        return np.unique(np.r_[q, np.nextafter(s.max(), np.inf)])
    q = np.quantile(s, np.unique(np.r_[rare, common]))
    return np.unique(np.r_[np.nextafter(q, np.inf), s.min()])


def select_thresholds(thresholds, c: dict[str, np.ndarray], cfg: AlarmConfig) -> dict[str, dict[str, Any]]:
    """The two operating thresholds, chosen on a (validation) curve.

    - ``fa_target``: the most sensitive threshold whose false alarms per hour stay <= the target (ties: fewer
      false alarms, then the higher threshold); when none does, the one with the fewest false alarms.
    - ``sens_target``: the threshold with the fewest false alarms per hour among those reaching the target
      sensitivity (ties: the higher threshold); when none does, the most sensitive.

    Args:
        thresholds: float [T].
        c: :func:`curve` of the validation split at these thresholds.
        cfg: The targets.

    Returns:
        name -> ``{"threshold", "met", "validation": {"sensitivity", "fa_per_h"}}``.
    """
    th = np.asarray(thresholds, np.float64)
    sens, fa = np.nan_to_num(c["sensitivity"], nan=0.0), np.nan_to_num(c["fa_per_h"], nan=np.inf)
    out = {}
    ok = fa <= cfg.fa_target_per_h + 1e-12
    if ok.any():
        key = np.lexsort((th, -fa, sens))  # last = best: highest sensitivity, then fewest false alarms, highest t
        i = [k for k in key if ok[k]][-1]
    else:
        i = int(np.lexsort((th, -fa))[-1])
    out["fa_target"] = {"threshold": float(th[i]), "met": bool(ok.any()), "target": cfg.fa_target_per_h,
                        "validation": {"sensitivity": finite(c["sensitivity"][i]),
                                       "fa_per_h": finite(c["fa_per_h"][i])}}
    ok = sens >= cfg.sens_target - 1e-12
    if ok.any():
        key = np.lexsort((th, -fa))
        i = [k for k in key if ok[k]][-1]
    else:
        i = int(np.lexsort((th, -fa, sens))[-1])
    out["sens_target"] = {"threshold": float(th[i]), "met": bool(ok.any()), "target": cfg.sens_target,
                          "validation": {"sensitivity": finite(c["sensitivity"][i]),
                                       "fa_per_h": finite(c["fa_per_h"][i])}}
    return out


# ----------------------------------------------------------------------------------------------- intervals


def weighted_quantiles(values, weights: np.ndarray, qs) -> np.ndarray:
    """Quantiles ``qs`` of ``values`` [E] under each row of ``weights`` [b, E] (the lower value at a tie).

    Returns:
        [b, len(qs)]; NaN for a row of zero total weight.
    """
    v = np.asarray(values, np.float64)
    w = np.atleast_2d(np.asarray(weights, np.float64))
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[:, order]
    cum = np.cumsum(w, axis=1)
    total = cum[:, -1:] if cum.shape[1] else np.zeros((len(w), 1))
    out = np.full((len(w), len(qs)), np.nan)
    for j, q in enumerate(qs):
        pos = (cum >= q * total - 1e-9) & (w > 0)
        idx = pos.argmax(axis=1)
        out[:, j] = np.where((total[:, 0] > 0) & pos.any(axis=1), v[idx] if len(v) else np.nan, np.nan)
    return out


def operating_point(p: Pooled, k: int, weights: np.ndarray | None, level: float = 0.95) -> dict[str, Any]:
    """Every metric at threshold index ``k``, with subject-bootstrap intervals when ``weights`` [b, C] are given.

    Returns:
        JSON-ready: ``threshold``, ``episodes`` / ``caught`` / ``induction`` counts, ``hours``, and for
        ``sensitivity``, ``fa_per_h``, ``ppv``, ``alarms_per_h``, ``time_in_alarm``, ``detection``,
        ``lead_median_s``, ``detection_lead_median_s``: ``{"value", "lo", "hi"}``; ``lead_iqr_s`` ``[q1, q3]``;
        ``induction_sensitivity`` (value only). Medians are the lower median (:func:`weighted_quantiles`), the
        same for the point and its bootstrap replicates.
    """
    from hypo.evaluate.bootstrap import interval

    point = {name: float(v[k]) for name, v in curve(p).items()}
    lead = p.lead[k]
    det = p.det_lead[k]
    caught = np.isfinite(lead)
    found = np.isfinite(det)
    out: dict[str, Any] = {
        "threshold": float(p.thresholds[k]),
        "cases": len(p.subjects),
        "episodes": int(p.n_episodes.sum()),
        "caught": int(caught.sum()),
        "detected": int(found.sum()),
        "induction_episodes": int(p.n_induction.sum()),
        "under_way_episodes": int(p.n_under_way.sum()),
        "hours": float(p.scored_s.sum() / 3600),
        "hours_outside_episodes": float(p.fa_s.sum() / 3600),
        "false_alarms": int(p.false[:, k].sum()),
        "alarms": int(p.alarms[:, k].sum()),
        "censored_alarms": int(p.censored[:, k].sum()),
        "induction_sensitivity": finite(point["induction_sensitivity"]),
        "lead_iqr_s": ([float(x) for x in np.percentile(lead[caught], [25, 75])] if caught.any() else None),
    }
    reps = curve(p, weights) if weights is not None else None
    for name in ("sensitivity", "fa_per_h", "ppv", "alarms_per_h", "time_in_alarm", "detection"):
        entry = {"value": finite(point[name])}
        if reps is not None:
            entry.update(interval(reps[name][:, k], level))
        out[name] = entry
    for name, values, ok in (("lead_median_s", lead, caught), ("detection_lead_median_s", det, found)):
        entry = {"value": float(weighted_quantiles(values[ok], np.ones(int(ok.sum())), [0.5])[0, 0])
                 if ok.any() else None}
        if weights is not None and ok.any():
            w = np.atleast_2d(weights)[:, p.episode_case[ok]]
            entry.update(interval(weighted_quantiles(values[ok], w, [0.5])[:, 0], level))
        out[name] = entry
    return out


def curve_summary(p: Pooled, weights: np.ndarray | None, grid=FA_GRID, level: float = 0.95) -> dict[str, Any]:
    """The alarm operating characteristic: the pooled curve and its envelope with a subject-bootstrap band.

    Returns:
        JSON-ready ``{"thresholds", "sensitivity", "fa_per_h", "grid", "envelope", "lo", "hi"}``: the raw
        points per threshold, and the best sensitivity at each false-alarm rate of ``grid`` with its band.
    """
    c = curve(p)
    env = sensitivity_at_fa(c["fa_per_h"], c["sensitivity"], grid)
    out = {"thresholds": p.thresholds.tolist(), "sensitivity": [finite(v) for v in c["sensitivity"]],
           "fa_per_h": [finite(v) for v in c["fa_per_h"]], "grid": list(map(float, grid)),
           "envelope": [finite(v) for v in env]}
    if weights is not None:
        reps = curve(p, weights)
        band = sensitivity_at_fa(reps["fa_per_h"], reps["sensitivity"], grid)
        with warnings.catch_warnings():  # a grid point no replicate defines is NaN, said once in the output
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanpercentile(band, [50 * (1 - level), 50 * (1 + level)], axis=0)
        out["lo"], out["hi"] = [finite(v) for v in lo], [finite(v) for v in hi]
    return out
