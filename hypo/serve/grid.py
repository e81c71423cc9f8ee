"""One bed's signals on the model's 1-second grid, built record by record by the rule the ``.vital`` reader applies.

The rule is :mod:`hypo.data.seconds`, shared with :func:`hypo.data.sources.vital.read_vital_case`: a number lands
in second ``int(dt - start)`` (the last in a second wins); a wave record's ``k``-th sample is sample
``ceil((dt - start) * srate) + k`` of the track and each second takes its **first** sample (at 1 Hz: sample ``i``,
as ``vitaldb``'s ``to_numpy(..., 1)``; above 1 Hz the first sample of the second, which is known as soon as the
second has begun, where ``vitaldb`` would pick one whose position depends on the recording's total length). A
recording streamed live therefore gives exactly the rows the reader gives for the file, at any wave rate.

:class:`SecondGrid` applies the rule one record at a time. Time moves forward in one way only:
:meth:`SecondGrid.complete` declares every second before a time final (the recorder's message covering it has
ended). A record for a final second is refused (``late record``): nothing the model has seen is rewritten, and no
sample is used twice. Wave samples already received are refused as ``duplicate samples`` (the reader, too, takes a
sample from the first record that holds it); number records older than the track's last are ``out of order``, a
repeat of the last is a ``duplicate record``.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

import numpy as np

from hypo.data.seconds import TIME_TOL, first_sample_index, missing_to_nan, number_second, record_start_index
from hypo.data.signals import N_SIGNALS, WAVEFORMS


class FinalRows(NamedTuple):
    """Seconds ``first .. stop - 1`` just made final; ``seconds``/``rows``: those of them holding any value."""

    first: int
    stop: int
    seconds: np.ndarray
    rows: np.ndarray


class SecondGrid:
    """The rows of one bed's case, one per second from the case start, in a ring of ``history_s + ahead_s`` rows.

    Args:
        origin: Unix time of second 0 (the case start).
        history_s: Seconds before the completion point kept for windows (the ring's past).
        ahead_s: How far records may run ahead of the completion point (the ring's future).
        start: First second of the stream (rows before it are final and empty: a bed joined mid-case or restored).

    Attributes:
        done: Seconds ``< done`` are final.
        dropped: Records (or samples) refused, by reason.
    """

    def __init__(self, origin: float, history_s: int, ahead_s: int = 300, start: int = 0) -> None:
        self.origin = float(origin)
        self.history_s, self.ahead_s = int(history_s), int(ahead_s)
        self.capacity = self.history_s + self.ahead_s
        self.rows = np.full((self.capacity, N_SIGNALS), np.nan, np.float32)
        self.done = int(start)
        self.dropped: Counter = Counter()
        self._wave_next: dict[int, tuple[float, int]] = {}  # channel -> (srate, next sample index)
        self._num_last: dict[int, tuple[float, float]] = {}  # channel -> (dt, value) of the last record
        self.last_value_s = np.full(N_SIGNALS, -1, np.int64)  # last final second with a value, per channel

    # -- writing -------------------------------------------------------------------------------------------------

    def _writable(self, s: int, what: str = "late record") -> bool:
        if s < self.done:
            self.dropped[what] += 1
            return False
        if s >= self.done + self.ahead_s:
            self.dropped["too far ahead of the stream"] += 1
            return False
        return True

    def add_number(self, ch: int, dt: float, value: float) -> bool:
        """Put a number record in its second (vitaldb: ``int(dt - origin)``; the last in a second wins).

        Returns:
            Whether it was used.
        """
        s = number_second(dt, self.origin)  # floor, within TIME_TOL (a record just before the start: second 0)
        if s < 0:
            self.dropped["before the case start"] += 1
            return False
        last = self._num_last.get(ch)
        if last is not None:
            if dt < last[0]:
                self.dropped["out of order"] += 1
                return False
            if dt == last[0] and (value == last[1] or (math.isnan(value) and math.isnan(last[1]))):
                self.dropped["duplicate record"] += 1
                return False
        if not self._writable(s):
            return False
        self.rows[s % self.capacity, ch] = value
        self._num_last[ch] = (dt, value)
        return True

    def add_wave(self, ch: int, dt: float, srate: float, samples: np.ndarray) -> int:
        """Put a wave record's samples on the grid: the first sample of each second becomes that second's value.

        Returns:
            The number of seconds it set.
        """
        n = len(samples)
        if n == 0:
            return 0
        j0 = record_start_index(dt, self.origin, srate)
        prev = self._wave_next.get(ch)
        nxt = prev[1] if prev is not None and prev[0] == srate else -(1 << 62)
        lo = max(j0, nxt, 0)  # samples before the case start are dropped (vitaldb) as are those already received
        if lo > j0 and nxt > j0:
            self.dropped["duplicate samples"] += min(n, nxt - j0)
        hi = j0 + n
        self._wave_next[ch] = (srate, max(nxt, hi))
        if lo >= hi:
            return 0
        s_lo, s_hi = int(math.floor(lo / srate)), int(math.floor((hi - 1) / srate))
        secs = np.arange(s_lo, s_hi + 1, dtype=np.int64)
        first = first_sample_index(secs, srate)  # each second's first sample
        keep = (first >= lo) & (first < hi)
        secs, first = secs[keep], first[keep]
        if not len(secs):
            return 0
        late = secs < self.done
        ahead = secs >= self.done + self.ahead_s
        if late.any():
            self.dropped["late record"] += int(late.sum())
        if ahead.any():
            self.dropped["too far ahead of the stream"] += int(ahead.sum())
        ok = ~late & ~ahead
        secs, first = secs[ok], first[ok]
        self.rows[secs % self.capacity, ch] = missing_to_nan(np.asarray(samples, np.float32)[first - j0])
        return len(secs)

    # -- time ------------------------------------------------------------------------------------------------------

    def complete(self, until: float) -> FinalRows:
        """Declare every second that ends at or before unix time ``until`` final.

        Returns:
            The seconds made final now, and those of them that hold any value (with their rows), for the log.
        """
        new = int(math.floor(until - self.origin + TIME_TOL))
        first = self.done
        if new <= first:
            return FinalRows(first, first, np.zeros(0, np.int64), np.zeros((0, N_SIGNALS), np.float32))
        # Only seconds that were in the future window can hold values; take them before their slots are reused.
        secs = np.arange(first, min(new, first + self.ahead_s))
        rows = self.rows[secs % self.capacity]
        fin = np.isfinite(rows)
        has = fin.any(axis=1)
        out = FinalRows(first, new, secs[has], rows[has].copy())
        for ch in np.flatnonzero(fin.any(axis=0)):
            self.last_value_s[ch] = int(secs[np.flatnonzero(fin[:, ch])[-1]])
        # Ring slots that now come into the future window held seconds that left the past: clear them.
        old_end, new_end = first + self.ahead_s, new + self.ahead_s
        if new_end - old_end >= self.capacity:
            self.rows[:] = np.nan
        else:
            self.rows[np.arange(old_end, new_end) % self.capacity] = np.nan
        self.done = new
        return out

    def window(self, end: int, length: int) -> np.ndarray:
        """Rows ``end - length + 1 .. end`` (a copy; NaN before the case start or outside the kept past).

        Raises:
            ValueError: When ``end`` is not final or ``length`` exceeds the kept past.
        """
        if end >= self.done:
            raise ValueError(f"second {end} is not final yet (final up to {self.done - 1})")
        if length > self.history_s:
            raise ValueError(f"only {self.history_s} s are kept, asked for {length}")
        secs = np.arange(end - length + 1, end + 1)
        out = self.rows[secs % self.capacity].copy()
        out[(secs < 0) | (secs < self.done - self.history_s)] = np.nan
        return out

    def restore(self, seconds: np.ndarray, rows: np.ndarray, done: int) -> None:
        """Refill final rows (a restart reading the log) and set the completion point.

        Args:
            seconds: int [n] seconds of ``rows``.
            rows: float32 [n, 7].
            done: Seconds before this are final.
        """
        self.done = int(done)
        keep = (seconds >= done - self.history_s) & (seconds < done)
        self.rows[seconds[keep] % self.capacity] = rows[keep]
        for ch in range(N_SIGNALS):
            fin = seconds[keep][np.isfinite(rows[keep, ch])]
            if len(fin):
                self.last_value_s[ch] = int(fin.max())


def is_wave(ch: int) -> bool:
    """Whether channel ``ch`` of :data:`hypo.data.signals.SIGNALS` is a waveform (ECG, pleth)."""
    return ch in WAVEFORMS
