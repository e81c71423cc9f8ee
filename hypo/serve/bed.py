"""One bed (a recorder's room): its tracks mapped to signals, its 1-s grid, its due windows and its alarm.

A room's track names go through the same track map as a folder of ``.vital`` files
(:func:`hypo.data.sources.vital.normalise_track_map`): a live track ``DEVICE/TRACK`` is a signal's candidate when
the names are equal or the live name ends with the candidate (``vitaldb``'s own matching); a live track sent
without a device matches a candidate's track part. The first candidate a bed sees is kept for the case (an
earlier candidate wins when several arrive together); declared units are checked as the file reader checks them
(:func:`hypo.data.sources.vital.check_declared_units`), and a track in a unit its signal cannot be in is refused.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from hypo.data.art import ART_SIGNALS
from hypo.data.signals import GROUP_NAMES, GROUPS, MBP, NIBP, SIGNALS
from hypo.errors import CaseRejected
from hypo.infer.alarm_policy import AlarmState, Policy
from hypo.infer.causal import KNOWN_COLUMNS, tally_rows
from hypo.serve.grid import FinalRows, SecondGrid
from hypo.serve.protocol import RoomData

DISPLAY_S = 3600  # the bed view shows the last hour
ART_MBP = "art_mbp"


def matches(live: str, candidate: str) -> bool:
    """Whether a live track name is a track map candidate (exact, ``vitaldb``'s suffix rule, or the track part)."""
    if live == candidate or live.endswith(candidate):
        return True
    return "/" not in live and candidate.rsplit("/", 1)[-1] == live


class TrackResolver:
    """Live track name -> signal (index into SIGNALS, or ``art_mbp``), the choice kept for the case."""

    def __init__(self, track_map: Mapping[str, tuple[str, ...]]) -> None:
        self.track_map = dict(track_map)
        self.chosen: dict[str, str] = {}  # signal -> live track name
        self.refused: dict[str, str] = {}  # live track name -> why
        self._cache: dict[str, str | None] = {}

    def candidates(self, live: str) -> list[tuple[int, str]]:
        """``(rank, signal)`` of every signal the live name is a candidate of."""
        out = []
        for sig, names in self.track_map.items():
            for rank, c in enumerate(names):
                if matches(live, c):
                    out.append((rank, sig))
                    break
        return out

    def resolve(self, tracks: list[tuple[str, str]]) -> dict[str, str | None]:
        """Map this payload's tracks (``(name, unit)``) to signals, choosing new signals' tracks and checking units.

        Returns:
            Live name -> signal name, or None for a track no signal uses (unknown, refused, or another candidate).
        """
        from hypo.data.sources.vital import check_declared_units

        new: dict[str, tuple[int, str, str]] = {}  # signal -> (rank, name, unit) of the best new candidate
        for name, unit in tracks:
            if name in self._cache or name in self.refused:
                continue
            for rank, sig in self.candidates(name):
                if sig not in self.chosen and (sig not in new or rank < new[sig][0]):
                    new[sig] = (rank, name, unit)
        for sig, (_, name, unit) in new.items():
            try:
                check_declared_units({sig: unit}, {sig: name}, "live")
            except CaseRejected as exc:
                self.refused[name] = " ".join(exc.detail.replace("case live: ", "").split())
                continue
            self.chosen[sig] = name
        by_name = {v: k for k, v in self.chosen.items()}
        return {name: by_name.get(name) for name, _ in tracks}


@dataclasses.dataclass
class Accepted:
    """What one room message did to its bed."""

    used: int = 0
    dropped: Counter = dataclasses.field(default_factory=Counter)
    unknown: list[str] = dataclasses.field(default_factory=list)  # tracks seen for the first time, used by nothing
    refused: dict[str, str] = dataclasses.field(default_factory=dict)  # tracks refused now, and why
    finals: list[FinalRows] = dataclasses.field(default_factory=list)
    # (end, rows, known) of each window to score: its last history_s seconds and what is known of the case then
    due: list[tuple[int, np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)


class Bed:
    """One room's case: grid, due windows, alarm state and what the page shows.

    Args:
        room: The room's name.
        origin: Unix time of the case's second 0 (the recorder's ``dtcase``).
        track_map: The normalised track map (with the arterial line's names).
        window_s: Model window.
        stride_s: Seconds between predictions.
        history_s: Seconds a window's preparation reads.
        start_s: First second of the stream (a bed joined mid-case): its first prediction is the first window end
            at or after ``start_s + window_s - 1``.
    """

    def __init__(self, room: str, origin: float, track_map: Mapping[str, tuple[str, ...]], window_s: int,
                 stride_s: int, history_s: int, start_s: int = 0, ahead_s: int = 300) -> None:
        self.room, self.origin = room, float(origin)
        self.window_s, self.stride_s, self.history_s = int(window_s), int(stride_s), int(history_s)
        self.grid = SecondGrid(origin, history_s, ahead_s, start=max(0, start_s))
        self.tracks = TrackResolver(track_map)
        first = max(self.window_s - 1, start_s + self.window_s - 1)
        k = -(-(first - (self.window_s - 1)) // self.stride_s)  # window ends lie on w - 1 + k * stride
        self.next_end = self.window_s - 1 + k * self.stride_s
        self.alarm = AlarmState()
        self.unknown: set[str] = set()
        self.last_arrival = math.nan  # wall time of the last message
        self.last_p = math.nan
        self.last_status = "waiting"
        self.last_detail = "no window yet"
        self.last_end = -1
        self.risk: deque = deque(maxlen=DISPLAY_S // self.stride_s + 1)  # (end, p_hypotension, alarm)
        self.cuff: deque = deque(maxlen=DISPLAY_S)  # (second, sbp, map, dbp) as recorded (at most one a second)
        self.art: deque = deque(maxlen=DISPLAY_S)  # (second, ART MAP)
        self.counts: Counter = Counter()
        # What is known of the case up to the completion point: the causal pipeline's counts (hypo.infer.causal),
        # added up from every final second, so a window is judged as the offline replay judges it.
        self.known = np.zeros(len(KNOWN_COLUMNS), np.int64)

    @property
    def now_s(self) -> int:
        """The bed's stream clock: seconds of the case that are final."""
        return self.grid.done

    def accept(self, msg: RoomData, arrival: float, max_time: float) -> Accepted:
        """Apply one room message: complete the seconds before it, add its records, complete its span.

        Args:
            msg: The room's part of a payload.
            arrival: Wall time it arrived.
            max_time: Records stamped after this (unix time) are refused as ``far-future time``.
        """
        out = Accepted()
        self.last_arrival = arrival
        if math.isfinite(msg.dtstart):
            self._complete(msg.dtstart, out)
        named = [(t.name, t.unit) for t in msg.tracks if t.kind != "str"]
        before = dict(self.tracks.refused)
        sig_of = self.tracks.resolve(named)
        out.refused = {k: v for k, v in self.tracks.refused.items() if k not in before}
        latest = -math.inf
        grid = self.grid
        for t in msg.tracks:
            if t.kind == "str":
                continue
            sig = sig_of.get(t.name)
            if sig is None:
                if t.name in self.tracks.refused:
                    out.dropped["wrong units"] += len(t.recs)
                elif t.name not in self.unknown and not self.tracks.candidates(t.name):
                    self.unknown.add(t.name)
                    out.unknown.append(t.name)
                continue
            for dt, val in t.recs:
                if dt > max_time:
                    out.dropped["far-future time"] += 1
                    continue
                if sig == ART_MBP:
                    if t.kind == "num" and math.isfinite(val):
                        self.art.append((int(dt - self.origin), float(val)))
                    continue
                if sig in ART_SIGNALS:
                    continue
                ch = SIGNALS.index(sig)
                if t.kind == "wav":
                    n = grid.add_wave(ch, dt, t.srate, val)
                    out.used += n > 0
                    latest = max(latest, dt + len(val) / t.srate)
                else:
                    out.used += grid.add_number(ch, dt, val)
                    latest = max(latest, dt)
        until = msg.dtend if math.isfinite(msg.dtend) else (math.floor(latest) if math.isfinite(latest) else math.nan)
        if math.isfinite(until):
            self._complete(until, out)
        out.dropped.update(grid.dropped)
        grid.dropped.clear()
        self.counts.update(out.dropped)
        return out

    def _complete(self, until: float, out: Accepted) -> None:
        fin = self.grid.complete(until)
        if fin.stop == fin.first:
            return
        out.finals.append(fin)
        nibp = fin.rows[:, list(NIBP)]
        for s, row in zip(fin.seconds, nibp):
            if np.isfinite(row).any():
                self.cuff.append((int(s), *(float(v) for v in row)))
        before = self.known
        counts = np.cumsum(tally_rows(fin.rows), axis=0)  # at fin.seconds (seconds without a value add nothing)
        if len(counts):
            self.known = before + counts[-1]
        while self.next_end < self.grid.done:
            k = int(np.searchsorted(fin.seconds, self.next_end, side="right"))
            known = before + counts[k - 1] if k else before.copy()
            if self.next_end < fin.first - 1:  # a window left from before a restart: take away the seconds after it
                later = self.grid.window(fin.first - 1, fin.first - 1 - self.next_end)
                known = known - tally_rows(later).sum(axis=0)
            out.due.append((self.next_end, self.grid.window(self.next_end, self.history_s), known))
            self.next_end += self.stride_s

    def apply(self, end: int, p_hypotension: float, policy: Policy, status: str, detail: str = "") -> bool:
        """Step the alarm with one prediction (NaN: none); returns whether the alarm changed."""
        before = self.alarm.on
        self.alarm = policy.step(self.alarm, p_hypotension)
        self.last_p, self.last_end, self.last_status, self.last_detail = p_hypotension, end, status, detail
        self.risk.append((end, p_hypotension, self.alarm.on))
        return self.alarm.on != before

    def restore(self, end: int, alarm: AlarmState, seconds: np.ndarray, rows: np.ndarray, done: int,
                risk: list[tuple[int, float, bool]], known: np.ndarray | None = None) -> None:
        """Continue from the log: the last scored window, the alarm, the recent seconds and the risk shown.

        ``known``: what is known of the case, the counts of every logged second before ``done``.
        """
        self.grid.restore(seconds, rows, done)
        if known is not None:
            self.known = np.asarray(known, np.int64).copy()
        self.next_end = end + self.stride_s
        self.last_end, self.alarm = end, alarm
        for r in risk:
            self.risk.append(r)
        if risk:
            self.last_p = risk[-1][1]
        for s, row in zip(seconds, rows):
            if np.isfinite(row[list(NIBP)]).any():
                self.cuff.append((int(s), *(float(v) for v in row[list(NIBP)])))

    # -- what the page shows -------------------------------------------------------------------------------------

    def last_cuff(self) -> tuple[float, float]:
        """``(MAP, age in seconds)`` of the last recorded cuff MAP (NaN, NaN without one)."""
        s = self.grid.last_value_s[MBP]
        if s < 0:
            return math.nan, math.nan
        for sec, _sbp, mbp, _dbp in reversed(self.cuff):
            if sec == s:
                return mbp, float(self.now_s - s)
        return math.nan, float(self.now_s - s)

    def missing(self, limits: Mapping[str, int]) -> list[str]:
        """Signal groups without a value within their limit (seconds) of the bed's stream clock."""
        out = []
        for g in GROUP_NAMES:
            last = max(int(self.grid.last_value_s[ch]) for ch in GROUPS[g])
            if last < 0 or self.now_s - last > limits.get(g, 300):
                out.append(g)
        return out

    def summary(self, wall_now: float, stale_after_s: float, limits: Mapping[str, int]) -> dict[str, Any]:
        """The bed's line on the overview."""
        cuff_map, cuff_age = self.last_cuff()
        age = wall_now - self.last_arrival if math.isfinite(self.last_arrival) else math.inf
        return {"room": self.room, "p_hypotension": _num(self.last_p), "alarm": self.alarm.on,
                "status": self.last_status, "detail": self.last_detail, "t_end": self.last_end,
                "case_start": self.origin, "stream_time": self.origin + self.now_s,
                "cuff_map": _num(cuff_map), "cuff_age_s": _num(cuff_age), "missing": self.missing(limits),
                "data_age_s": _num(age), "stale": bool(age > stale_after_s)}

    def view(self) -> dict[str, Any]:
        """The bed view's series: the last hour of risk, alarm intervals, cuff readings and ART MAP."""
        lo = self.now_s - DISPLAY_S
        risk = [(e, _num(p), a) for e, p, a in self.risk if e >= lo]
        intervals, start = [], None
        for e, _p, a in risk:
            if a and start is None:
                start = e
            if not a and start is not None:
                intervals.append([start, e])
                start = None
        if start is not None:
            intervals.append([start, None])
        art = [(s, v) for s, v in self.art if s >= lo]
        if len(art) > 720:  # at most one point per 5 s on the page
            art = art[::len(art) // 720 + 1]
        return {"room": self.room, "now_s": self.now_s, "case_start": self.origin,
                "risk": [[e, p] for e, p, _ in risk], "alarms": intervals,
                "cuff": [[s, _num(a), _num(b), _num(c)] for s, a, b, c in self.cuff if s >= lo],
                "art": [[s, v] for s, v in art]}


def _num(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def full_track_map(track_map: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """The normalised track map with the arterial line's names (for the bed view's ART)."""
    from hypo.data.sources.vital import art_track_map, normalise_track_map

    tmap = normalise_track_map(track_map)
    tmap.update(art_track_map(tmap))
    return tmap

