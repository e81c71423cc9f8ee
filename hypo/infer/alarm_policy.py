"""The alarm state machine: when a stream of predictions turns an alarm on and off.

A **probability alarm** (the model, the feature model, the last ART minute) sees one probability of hypotension
per prediction (every ``stride`` seconds; NaN where the window was incomplete and nothing was predicted):

- it **starts** when the probability is >= ``threshold`` for ``m`` consecutive predictions;
- it **ends** at the first prediction below ``threshold - hysteresis``, so a probability hovering just under the
  threshold does not toggle it;
- a prediction that is missing (NaN) ends it and breaks the run of ``m`` (a monitor that shows no prediction
  sounds no alarm), unless it belongs to a short gap: the first ``max_gap`` missing predictions after a
  prediction hold the state it left (on stays on, off stays off, the run of ``m`` neither grows nor breaks), so
  one lost window does not split an alarm in two. A gap that grows longer ends the alarm at its next missing
  prediction, as a live system would (it cannot know in advance how long a gap will last).

A **reading alarm** (the last cuff reading, the simulated frequent cuff) sees one blood pressure per reading and
alarms when it is below ``threshold`` (mmHg), re-alarming at each new low reading: every low reading is an alarm
of its own, lasting until the next reading.

:func:`alarm_on` evaluates many thresholds at once without a loop over time (a run of ``m`` is a difference of
cumulative counts, and the alarm is on while the latest start is more recent than the latest stop);
:func:`alarm_on_loop` is the plain state machine it is tested against. A live system sees one prediction at a
time: :class:`AlarmState` and :func:`alarm_step` are that same machine one step at a time (``hypo serve`` keeps one
state per bed and logs it, so a restart continues it), tested equal to :func:`alarm_on_loop`.

    on = alarm_on(p, thresholds=np.array([0.3, 0.5]), m=2, hysteresis=0.05)   # bool [2, n]
    state = AlarmState()
    state = alarm_step(state, 0.7, threshold=0.5)                              # live, per prediction

The policy a deployed model runs is a :class:`Policy` (threshold, ``m``, hysteresis, max gap, the stride it was
validated at): :func:`deployed_policy` reads it from the model's sidecar, where ``hypo export`` stores the policy
the alarm evaluation validated (:class:`hypo.infer.sidecar.AlarmPolicy`), so the policy that was scored is the one
``hypo serve`` runs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

M_DEFAULT = 2
HYSTERESIS_DEFAULT = 0.05
MAX_GAP_S_DEFAULT = 30
STRIDE_S_DEFAULT = 10


def _latest(mask: np.ndarray) -> np.ndarray:
    """Index of the latest True at or before each position along the last axis (-1 where none yet)."""
    idx = np.where(mask, np.arange(mask.shape[-1]), -1)
    return np.maximum.accumulate(idx, axis=-1)


def held_gaps(scores, max_gap: int) -> np.ndarray:
    """The missing predictions that hold the alarm state: the first ``max_gap`` of each gap after a prediction.

    Args:
        scores: float [n] in time order (NaN: no prediction).
        max_gap: Missing predictions held at the start of a gap (0: none is).

    Returns:
        bool [n].
    """
    p = np.asarray(scores, np.float64)
    missing = ~np.isfinite(p)
    if max_gap <= 0 or not missing.any():
        return np.zeros(len(p), bool)
    edges = np.flatnonzero(np.diff(np.r_[0, missing.astype(np.int8), 0]))
    held = np.zeros(len(p), bool)
    for a, b in zip(edges[0::2], edges[1::2]):
        if a > 0:  # after a prediction: its first max_gap slots
            held[a:min(b, a + max_gap)] = True
    return held


def alarm_on(scores, thresholds, m: int = M_DEFAULT, hysteresis: float = HYSTERESIS_DEFAULT,
             max_gap: int = 0) -> np.ndarray:
    """Whether a probability alarm is on at each prediction, for each threshold.

    Args:
        scores: float [n] probabilities in time order (NaN: no prediction).
        thresholds: float [T] thresholds.
        m: Consecutive predictions at or above the threshold that start an alarm (>= 1).
        hysteresis: The alarm ends below ``threshold - hysteresis`` (>= 0).
        max_gap: Runs of at most this many missing predictions hold the state (:func:`held_gaps`).

    Returns:
        bool [T, n].
    """
    if m < 1 or hysteresis < 0 or max_gap < 0:
        raise ValueError(f"need m >= 1, hysteresis >= 0 and max_gap >= 0, got {m}, {hysteresis} and {max_gap}")
    held = held_gaps(scores, max_gap)
    if held.any():  # the state machine runs on the other predictions; a held slot repeats the one before it
        kept = _alarm_on(np.asarray(scores, np.float64)[~held], thresholds, m, hysteresis)
        return kept[:, np.cumsum(~held) - 1]
    return _alarm_on(scores, thresholds, m, hysteresis)


def _alarm_on(scores, thresholds, m: int, hysteresis: float) -> np.ndarray:
    p = np.asarray(scores, np.float64)[None, :]
    th = np.asarray(thresholds, np.float64).reshape(-1, 1)
    n = p.shape[1]
    if n == 0:
        return np.zeros((th.shape[0], 0), bool)
    with np.errstate(invalid="ignore"):
        above = p >= th  # NaN: False
        stop = ~(p >= th - hysteresis)  # below threshold - hysteresis, or no prediction
    misses = np.concatenate([np.zeros((th.shape[0], 1), np.int64), np.cumsum(~above, axis=1)], axis=1)
    run = np.zeros_like(above)
    if n >= m:
        run[:, m - 1:] = misses[:, m:] == misses[:, :n - m + 1]  # the m predictions ending here all above
    # A stop is never above the threshold, so it also breaks every run: on = latest run end after latest stop.
    return _latest(run) > _latest(stop)


@dataclasses.dataclass(frozen=True)
class AlarmState:
    """A probability alarm between two predictions.

    Attributes:
        on: The alarm is on.
        run: Consecutive predictions at or above the threshold up to now (a run of ``m`` starts the alarm).
        seen: A prediction has been made (a gap before the first one holds nothing).
        gap: Missing predictions since the last one.
    """

    on: bool = False
    run: int = 0
    seen: bool = False
    gap: int = 0


def alarm_step(state: AlarmState, p: float, threshold: float, m: int = M_DEFAULT,
               hysteresis: float = HYSTERESIS_DEFAULT, max_gap: int = 0) -> AlarmState:
    """The alarm after one more prediction (the state machine of :func:`alarm_on`, one step).

    Args:
        state: The state after the previous prediction (``AlarmState()`` before the first).
        p: Probability of hypotension of this prediction; NaN: no prediction (held for the first ``max_gap`` of a
            gap after a prediction, else it ends the alarm and breaks the run).
        threshold: The alarm threshold.
        m: Consecutive predictions at or above the threshold that start an alarm (>= 1).
        hysteresis: The alarm ends below ``threshold - hysteresis`` (>= 0).
        max_gap: Missing predictions held after a prediction (:func:`held_gaps`).

    Returns:
        The new state.
    """
    if m < 1 or hysteresis < 0 or max_gap < 0:
        raise ValueError(f"need m >= 1, hysteresis >= 0 and max_gap >= 0, got {m}, {hysteresis} and {max_gap}")
    p = float(p)
    if not math.isfinite(p):
        gap = state.gap + 1
        if state.seen and gap <= max_gap:
            return dataclasses.replace(state, gap=gap)
        return AlarmState(False, 0, state.seen, gap)
    on = state.on and not p < threshold - hysteresis
    run = state.run + 1 if p >= threshold else 0
    return AlarmState(on or run >= m, run, True, 0)


def alarm_on_loop(scores, threshold: float, m: int = M_DEFAULT, hysteresis: float = HYSTERESIS_DEFAULT,
                  max_gap: int = 0) -> np.ndarray:
    """The state machine of :func:`alarm_on`, one prediction at a time, for one threshold (the reference).

    Returns:
        bool [n].
    """
    on, state, count = [], False, 0
    seen, gap = False, 0  # a prediction so far; missing predictions since the last one
    for p in np.asarray(scores, np.float64):
        if not np.isfinite(p):
            gap += 1
            if not (seen and gap <= max_gap):
                state, count = False, 0
        else:
            seen, gap = True, 0
            if state and p < threshold - hysteresis:
                state = False
            count = count + 1 if p >= threshold else 0
            if not state and count >= m:
                state = True
        on.append(state)
    return np.asarray(on, bool)


def reading_alarm_on(values, thresholds) -> np.ndarray:
    """Whether a reading alarm is on after each reading: its value below the threshold (NaN: no alarm).

    Args:
        values: float [n] readings (mmHg) in time order.
        thresholds: float [T] thresholds (mmHg).

    Returns:
        bool [T, n].
    """
    v = np.asarray(values, np.float64)[None, :]
    th = np.asarray(thresholds, np.float64).reshape(-1, 1)
    with np.errstate(invalid="ignore"):
        return v < th


def alarm_starts(on: np.ndarray, restart_each_slot: bool = False) -> np.ndarray:
    """Where alarms start: a slot that is on after one that was not (or every on slot, for reading alarms).

    Args:
        on: bool [..., n] from :func:`alarm_on` or :func:`reading_alarm_on`.
        restart_each_slot: Reading alarms: each low reading is a new alarm.
    """
    if restart_each_slot:
        return on.copy()
    prev = np.zeros_like(on)
    prev[..., 1:] = on[..., :-1]
    return on & ~prev


def alarm_intervals(t, u, on: np.ndarray, restart_each_slot: bool = False) -> np.ndarray:
    """The alarms of one threshold as time intervals.

    Args:
        t: int [n] slot starts (prediction or reading times).
        u: int [n] slot ends (the next prediction or reading).
        on: bool [n] for one threshold.
        restart_each_slot: Reading alarms.

    Returns:
        int64 [k, 2] ``[start, end)`` of each alarm.
    """
    t, u, on = np.asarray(t, np.int64), np.asarray(u, np.int64), np.asarray(on, bool)
    starts = np.flatnonzero(alarm_starts(on, restart_each_slot))
    if restart_each_slot:
        return np.stack([t[starts], u[starts]], axis=1) if len(starts) else np.zeros((0, 2), np.int64)
    edges = np.flatnonzero(np.diff(np.r_[0, on.astype(np.int8), 0]))
    first, stop = edges[0::2], edges[1::2] - 1
    return np.stack([t[first], u[stop]], axis=1).astype(np.int64) if len(first) else np.zeros((0, 2), np.int64)


@dataclasses.dataclass(frozen=True)
class Policy:
    """The alarm a deployed model runs (the state machine above, with its settings).

    Attributes:
        threshold: Threshold on p(hypotension).
        m: Consecutive predictions at or above it that start an alarm.
        hysteresis: The alarm ends below ``threshold - hysteresis``.
        max_gap_s: Missing predictions for at most this long after a prediction hold the state.
        stride_s: Seconds between predictions (``max_gap_s // stride_s`` predictions are held).
    """

    threshold: float
    m: int = M_DEFAULT
    hysteresis: float = HYSTERESIS_DEFAULT
    max_gap_s: int = MAX_GAP_S_DEFAULT
    stride_s: int = STRIDE_S_DEFAULT

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.m >= 1 and self.hysteresis >= 0 and self.max_gap_s >= 0
                and self.stride_s >= 1):
            raise ValueError(f"alarm policy: need a finite threshold, m >= 1, hysteresis >= 0, max gap >= 0 and "
                             f"stride >= 1, got {self}")

    @property
    def max_gap(self) -> int:
        """Missing predictions held after a prediction."""
        return self.max_gap_s // self.stride_s

    def step(self, state: AlarmState, p: float) -> AlarmState:
        """The alarm after one more prediction (:func:`alarm_step`)."""
        return alarm_step(state, p, self.threshold, self.m, self.hysteresis, self.max_gap)

    def on(self, scores) -> np.ndarray:
        """Whether the alarm is on after each prediction of a series, bool [n] (:func:`alarm_on`)."""
        return alarm_on(scores, [self.threshold], self.m, self.hysteresis, self.max_gap)[0]

    def text(self) -> str:
        """One line: the policy."""
        return (f"p(hypotension) >= {self.threshold:.4g} for {self.m} consecutive predictions (every "
                f"{self.stride_s} s), off below {self.threshold - self.hysteresis:.4g} (hysteresis "
                f"{self.hysteresis:g}), gaps of up to {self.max_gap_s} s held")


def deployed_policy(sidecar, stride_s: int | None = None, threshold: float | None = None, m: int | None = None,
                    hysteresis: float | None = None, max_gap_s: int | None = None) -> tuple[Policy, list[str]]:
    """The alarm policy a model runs: the one validated with it (its sidecar's ``alarm_policy``), overrides said.

    Args:
        sidecar: The model's :class:`~hypo.infer.sidecar.Sidecar`.
        stride_s: Seconds between predictions (default: the stride the policy was validated at).
        threshold: Override of the threshold (None: the validated one; so for the others).
        m: Override of ``m``.
        hysteresis: Override of the hysteresis.
        max_gap_s: Override of the max gap.

    Returns:
        ``(policy, notes)``: the policy and one line per thing to say about it (where it comes from, what was
        overridden, a stride other than the validated one).

    Raises:
        ValueError: No threshold at all (an export without a policy or an operating point) and none given, or a
            setting out of range.
    """
    valid = getattr(sidecar, "alarm_policy", None)
    notes = []
    if valid is not None:
        base = Policy(valid.threshold, valid.m, valid.hysteresis, valid.max_gap_s, valid.stride_s)
        notes.append(f"alarm policy validated with the model ({valid.describe()}): {base.text()}")
    else:
        op = sidecar.thresholds.p_hypotension if sidecar.thresholds is not None else None
        if op is None and threshold is None:
            raise ValueError("the model holds no alarm threshold for hypotension; give --threshold")
        base = Policy(float(op if op is not None else threshold), stride_s=stride_s or STRIDE_S_DEFAULT)
        notes.append("this export carries no validated alarm policy (exported before sidecar schema 3, or without "
                     "one): the threshold of its window operating point"
                     + (f" ({sidecar.thresholds.rule})" if op is not None and sidecar.thresholds.rule else "")
                     + f" with the default m {M_DEFAULT}, hysteresis {HYSTERESIS_DEFAULT:g} and max gap "
                       f"{MAX_GAP_S_DEFAULT} s; re-export the model to carry the policy the alarm evaluation validates")
    given = {"threshold": threshold, "m": m, "hysteresis": hysteresis, "max_gap_s": max_gap_s, "stride_s": stride_s}
    changed = {k: v for k, v in given.items() if v is not None and v != getattr(base, k)}
    for k, v in changed.items():
        if k == "stride_s" and valid is not None:
            notes.append(f"predictions every {v} s, the policy was validated at {valid.stride_s} s: m and the max "
                         "gap count predictions, so the alarm is not the one validated")
        elif k != "stride_s":
            notes.append(f"{k} {v:g} given: overrides the {'validated ' if valid is not None else ''}"
                         f"{getattr(base, k):g}")
    return dataclasses.replace(base, **changed), notes
