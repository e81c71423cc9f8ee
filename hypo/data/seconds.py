"""The 1-second grid rule: which sample of a track becomes a second's value, the same for files and live streams.

Second ``i`` of a case covers ``[start + i, start + i + 1)``. The ``.vital`` reader
(:func:`hypo.data.sources.vital.read_vital_case`) and the live server's grid (:class:`hypo.serve.grid.SecondGrid`)
both take a second's value by these rules, so a recording streamed live gives exactly the rows of the file:

- **numbers**: a record at ``dt`` lands in second ``floor(dt - start)`` (as ``vitaldb``'s ``int(dt - start)``; a
  record just before the start lands in second 0, one a second or more before it or after the recording's last
  second in none); a later record in the same second overwrites an earlier one;
- **waves**: a record's ``k``-th sample is sample ``ceil((dt - start) * srate) + k`` of the track; a sample already
  given by an earlier record is not taken again (the first record wins, as a live stream refuses samples it has
  received); samples that are infinite or above :data:`WAVE_MISSING_ABOVE` are missing. Second ``i``'s value is the
  track's **first sample in that second**, sample ``ceil(i * srate)``: at 1 Hz sample ``i``, as ``vitaldb``'s
  ``to_numpy(..., 1)``.

Times are unix seconds near 4e9, where a float64 holds about half a microsecond; a live stream's times are shifted
and sent as decimal text, so a time may come back a few microseconds off. A second or a sample index within
:data:`TIME_TOL` seconds (:data:`INDEX_TOL` samples) below a whole number counts as that whole number, in the reader
and the live grid alike.

Above 1 Hz ``vitaldb`` itself picks a sample whose position within each second slides with the recording's total
length (``floor(i * (nsamp - 1) / (nret - 1))``), which no live system knows; the first sample of the second is
known as soon as the second has begun, and is ``vitaldb``'s own choice for the first second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

WAVE_MISSING_ABOVE = 4e9  # vitaldb: wave samples above this are missing values
TIME_TOL = 1e-4  # seconds: a time this close below a whole second is on it (float noise of shifted unix times)
INDEX_TOL = 1e-3  # samples: the same for sample indices (1 us at 1 kHz)


def record_start_index(dt: float, start: float, srate: float) -> int:
    """The sample index of a wave record's first sample: ``ceil((dt - start) * srate)`` within :data:`INDEX_TOL`."""
    return math.ceil((dt - start) * srate - INDEX_TOL)


def first_sample_index(seconds: np.ndarray, srate: float) -> np.ndarray:
    """int64: the index of the first sample of each second (``ceil(second * srate)``)."""
    return np.ceil(np.asarray(seconds, np.int64) * srate - INDEX_TOL).astype(np.int64)


def number_second(dt: float, start: float) -> int:
    """The second a number record at ``dt`` lands in: ``floor(dt - start)`` within :data:`TIME_TOL`.

    A record just before the start lands in second 0; one a second or more before it in none (-1).
    """
    x = dt - start + TIME_TOL
    return -1 if x <= -1 else max(0, math.floor(x))


def numbers_on_seconds(records: Iterable[tuple[float, float]], start: float, n_seconds: int) -> np.ndarray:
    """A number track on the 1-s grid (see the module docstring).

    Args:
        records: ``(dt, value)`` of the track, in time order (a later record in a second wins).
        start: Unix time of second 0.
        n_seconds: Rows to return (records beyond them are left out).

    Returns:
        float32 [n_seconds], NaN where no record landed.
    """
    out = np.full(max(n_seconds, 0), np.nan, np.float32)
    for dt, value in records:
        s = number_second(dt, start)
        if 0 <= s < n_seconds:
            out[s] = np.nan if value is None else value
    return out


def physical_samples(raw, fmt: int = 1, gain: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """A wave record's samples in physical units, float32, computed as ``vitaldb`` computes them.

    Args:
        raw: The stored samples.
        fmt: The track's storage format (``vitaldb``: 1 float, 2 double, above: integers scaled by gain and offset).
        gain: Scale of integer formats.
        offset: Offset of integer formats.
    """
    out = np.array(raw, dtype=np.float32, copy=True).reshape(-1)
    if fmt > 2:
        out *= np.float32(gain)
        out += np.float32(offset)
    return out


def missing_to_nan(values: np.ndarray) -> np.ndarray:
    """Wave samples with the recorder's missing markers (infinite, above 4e9) as NaN (in place; returned)."""
    values[np.isinf(values) | (values > WAVE_MISSING_ABOVE)] = np.nan
    return values


def wave_on_seconds(records: Iterable[tuple[float, np.ndarray]], srate: float, start: float,
                    n_seconds: int) -> np.ndarray:
    """A wave track on the 1-s grid: each second's first sample (see the module docstring).

    Args:
        records: ``(dt, samples)`` of the track in physical units, in time order.
        srate: Samples per second.
        start: Unix time of second 0.
        n_seconds: Rows to return.

    Returns:
        float32 [n_seconds], NaN where the second's first sample was not recorded or is missing.
    """
    out = np.full(n_seconds, np.nan, np.float32)
    if n_seconds <= 0 or not srate > 0:
        return out
    firsts = first_sample_index(np.arange(n_seconds), srate)
    nxt = 0  # samples before this index are taken (or before the start): the first record wins
    for dt, samples in records:
        n = len(samples)
        if not n:
            continue
        j0 = record_start_index(dt, start, srate)
        lo, hi = max(j0, nxt), j0 + n
        nxt = max(nxt, hi)
        if lo >= hi:
            continue
        a, b = np.searchsorted(firsts, [lo, hi])  # the seconds whose first sample lies in [lo, hi)
        if a < b:
            out[a:b] = np.asarray(samples, np.float32)[firsts[a:b] - j0]
    return missing_to_nan(out)
