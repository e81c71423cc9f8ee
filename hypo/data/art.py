"""The invasive arterial line: its samples, their artefacts, and the one event definition labels are made from.

ART numerics (VitalDB's ``Solar8000/ART_SBP``, ``ART_MBP``, ``ART_DBP``) come every ~2 s. A case carries them
apart from its seven input signals (``Case.art``), at their native times, so they can label a window but never
enter it.

**Artefacts** (:func:`clean_arterial`; each sample counted once, under the first rule it breaks, in
:data:`ART_RULES` order, and removed whole, all three values):

- ``art_incomplete``: one of SBP, MAP, DBP missing or not finite at that time;
- ``art_flush_or_zero``: pulse pressure ``|SBP - DBP|`` below :data:`MIN_PULSE_MMHG`: no pulsatility, as when
  the transducer is open to air for zeroing (all three near 0) or the line is flushed (all three jump to the
  flush bag's pressure, ~300 mmHg, a square wave);
- ``art_out_of_range``: MAP, SBP or DBP outside :data:`MAP_RANGE`, :data:`SBP_RANGE`, :data:`DBP_RANGE`;
- ``art_sbp_le_dbp``: SBP <= DBP (what is left of it after the rule above: inverted values, e.g. swapped);
- ``art_spike``: MAP jumps more than :data:`SPIKE_MMHG` away from the samples on both sides and comes back
  (within :data:`SPIKE_RETURN_MMHG` of where it left) within :data:`SPIKE_MAX_S` seconds: line manipulation,
  blood sampling, a flush caught mid-way.

**Event definition** (:func:`stretch_stats`, the single rule for labels and for alarm scoring): the stretch of
``event_s`` seconds ``[c - event_s/2, c + event_s/2)`` around a centre ``c`` is

- *hypotension* when every valid MAP sample in it is below ``hypo_map`` (``MAP < 65 mmHg for >= 1 min``),
- else *hypertension* when every valid SBP sample in it is above ``hyper_sbp``,
- else *normal*;
- and unclassified when it holds fewer valid samples than ``min_coverage`` of those the line's own sampling
  interval promises (``round(event_s / interval)``; 24 of 30 for 60 s at ~2 s). Samples are counted at their
  native times, never as filled 1-s rows.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from hypo.config import LabelConfig
from hypo.data.signals import HYPERTENSION, HYPOTENSION, NORMAL

ART_SIGNALS: tuple[str, ...] = ("art_sbp", "art_mbp", "art_dbp")
ART_VITALDB_TRACKS: tuple[str, ...] = ("Solar8000/ART_SBP", "Solar8000/ART_MBP", "Solar8000/ART_DBP")
ART_UNIT = "mmHg"

MIN_PULSE_MMHG = 5.0
MAP_RANGE = (20.0, 200.0)
SBP_RANGE = (30.0, 300.0)
DBP_RANGE = (5.0, 200.0)
SPIKE_MMHG = 30.0
SPIKE_RETURN_MMHG = 15.0
SPIKE_MAX_S = 12.0
SPIKE_MAX_SAMPLES = 4

ART_RULES: tuple[str, ...] = ("art_incomplete", "art_flush_or_zero", "art_out_of_range", "art_sbp_le_dbp",
                              "art_spike")
UNCLASSIFIED = -1

ART_RULE_TEXT: dict[str, str] = {
    "art_incomplete": "SBP, MAP or DBP missing or not finite at that time",
    "art_flush_or_zero": f"pulse pressure |SBP - DBP| below {MIN_PULSE_MMHG:g} mmHg: zeroing (open to air) or a "
                         "flush (a square jump to the flush bag's pressure)",
    "art_out_of_range": f"MAP outside {MAP_RANGE[0]:g}-{MAP_RANGE[1]:g}, SBP outside {SBP_RANGE[0]:g}-"
                        f"{SBP_RANGE[1]:g} or DBP outside {DBP_RANGE[0]:g}-{DBP_RANGE[1]:g} mmHg",
    "art_sbp_le_dbp": "SBP <= DBP (with a pulse pressure, e.g. swapped values)",
    "art_spike": f"MAP jumps > {SPIKE_MMHG:g} mmHg away from the samples on both sides and returns (within "
                 f"{SPIKE_RETURN_MMHG:g} mmHg) within {SPIKE_MAX_S:g} s",
}


@dataclasses.dataclass
class ArterialLine:
    """Arterial pressure numerics of one case at their native times.

    Attributes:
        time: float64 [k] seconds from the case start (row 0 of the case array is ``[0, 1)``), non-decreasing.
        sbp: float32 [k] systolic pressure (mmHg), NaN where that track had no value at that time.
        mbp: float32 [k] mean pressure.
        dbp: float32 [k] diastolic pressure.
        interval_s: The line's sampling interval: the median gap between its sample times (computed when not
            given; a cleaned line keeps that of the raw line, since removed samples must not lower its rate).
    """

    time: np.ndarray
    sbp: np.ndarray
    mbp: np.ndarray
    dbp: np.ndarray
    interval_s: float | None = None

    def __post_init__(self) -> None:
        self.time = np.asarray(self.time, dtype=np.float64).reshape(-1)
        self.sbp, self.mbp, self.dbp = (np.asarray(v, dtype=np.float32).reshape(-1)
                                        for v in (self.sbp, self.mbp, self.dbp))
        if not len(self.time) == len(self.sbp) == len(self.mbp) == len(self.dbp):
            raise ValueError(f"arterial line: times and values differ in length "
                             f"({len(self.time)}, {len(self.sbp)}, {len(self.mbp)}, {len(self.dbp)})")
        if len(self.time) > 1 and (np.diff(self.time) < 0).any():
            order = np.argsort(self.time, kind="stable")
            self.time, self.sbp, self.mbp, self.dbp = (a[order] for a in (self.time, self.sbp, self.mbp, self.dbp))
        if self.interval_s is None:
            gaps = np.diff(self.time)
            gaps = gaps[gaps > 0]
            self.interval_s = float(np.median(gaps)) if len(gaps) else math.nan

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def from_tracks(cls, tracks: dict[str, tuple[np.ndarray, np.ndarray]]) -> ArterialLine:
        """Merge three separately recorded tracks on the union of their sample times.

        Args:
            tracks: ``{"art_sbp": (times, values), "art_mbp": ..., "art_dbp": ...}``; times in seconds from the
                case start. A time at which one track has no record gets NaN for it (``art_incomplete``).

        Returns:
            The merged line.
        """
        times = np.unique(np.concatenate([np.asarray(tracks[s][0], np.float64) for s in ART_SIGNALS]))
        cols = []
        for s in ART_SIGNALS:
            t, v = (np.asarray(a).reshape(-1) for a in tracks[s])
            col = np.full(len(times), np.nan, np.float32)
            col[np.searchsorted(times, t.astype(np.float64))] = v.astype(np.float32)
            cols.append(col)
        return cls(times, *cols)

    def crop(self, duration_s: float) -> ArterialLine:
        """The samples in ``[0, duration_s)`` (a line may run on past the recording of the other signals)."""
        keep = (self.time >= 0) & (self.time < duration_s)
        return ArterialLine(self.time[keep], self.sbp[keep], self.mbp[keep], self.dbp[keep], self.interval_s)


def _spikes(time: np.ndarray, mbp: np.ndarray) -> np.ndarray:
    """When each sample is found to lie in a short excursion of MAP that leaves and comes back (module docstring).

    Returns:
        float64 [n]: the time of the sample at which MAP came back (the excursion is known from then on), ``inf``
        for a sample in no excursion.
    """
    n = len(mbp)
    found = np.full(n, np.inf)
    for j in np.flatnonzero(np.abs(np.diff(mbp)) > SPIKE_MMHG):  # j: the last sample before a jump
        pre = mbp[j]
        for post in range(j + 2, min(j + 2 + SPIKE_MAX_SAMPLES, n)):  # a run j+1 .. post-1, back at post
            if time[post] - time[j] > SPIKE_MAX_S:
                break
            run, back = mbp[j + 1: post], mbp[post]
            if abs(back - pre) > SPIKE_RETURN_MMHG:
                continue
            if run.min() - max(pre, back) > SPIKE_MMHG or min(pre, back) - run.max() > SPIKE_MMHG:
                found[j + 1: post] = np.minimum(found[j + 1: post], time[post])
                break
    return found


def clean_arterial(line: ArterialLine) -> tuple[ArterialLine, dict[str, int]]:
    """Remove artefact samples (see the module docstring) and count them.

    Args:
        line: The raw line.

    Returns:
        ``(clean, counts)``: the valid samples only (keeping the raw line's ``interval_s``), and rule -> samples
        removed, every rule of :data:`ART_RULES` listed.
    """
    keep, spike, counts = _artefacts(line)
    keep = keep[~np.isfinite(spike)]
    clean = ArterialLine(line.time[keep], line.sbp[keep], line.mbp[keep], line.dbp[keep], line.interval_s)
    return clean, counts


def _artefacts(line: ArterialLine) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The samples that pass the sample-wise rules, when each of them is found to be a spike, and the counts.

    Returns:
        ``(keep, spike, counts)``: int indices into ``line``; float64 per kept sample, the time the spike rule
        removes it (``inf``: never); rule -> samples removed.
    """
    counts = dict.fromkeys(ART_RULES, 0)
    sbp, mbp, dbp = (a.astype(np.float64) for a in (line.sbp, line.mbp, line.dbp))
    bad = np.zeros(len(line), dtype=bool)
    with np.errstate(invalid="ignore"):
        rules = (
            ("art_incomplete", ~(np.isfinite(sbp) & np.isfinite(mbp) & np.isfinite(dbp))),
            ("art_flush_or_zero", np.abs(sbp - dbp) < MIN_PULSE_MMHG),
            ("art_out_of_range", (mbp < MAP_RANGE[0]) | (mbp > MAP_RANGE[1]) | (sbp < SBP_RANGE[0])
             | (sbp > SBP_RANGE[1]) | (dbp < DBP_RANGE[0]) | (dbp > DBP_RANGE[1])),
            ("art_sbp_le_dbp", sbp <= dbp),
        )
    for name, rule in rules:
        new = rule & ~bad
        counts[name] = int(new.sum())
        bad |= new
    keep = np.flatnonzero(~bad)
    spike = _spikes(line.time[keep], mbp[keep])
    counts["art_spike"] = int(np.isfinite(spike).sum())
    return keep, spike, counts


@dataclasses.dataclass
class StretchStats:
    """The event definition evaluated on stretches of a cleaned line (one entry per centre).

    Attributes:
        n_valid: int [m] valid samples in the stretch.
        n_needed: Valid samples a stretch needs (the coverage rule).
        label: int8 [m]: 0 normal, 1 hypotension, 2 hypertension, -1 too few samples (unclassified).
        map_median: float32 [m] median MAP of the stretch (NaN when unclassified).
        sbp_median: float32 [m] median SBP.
        dbp_median: float32 [m] median DBP (the last-DBP comparator on the arterial line).
    """

    n_valid: np.ndarray
    n_needed: int
    label: np.ndarray
    map_median: np.ndarray
    sbp_median: np.ndarray
    dbp_median: np.ndarray | None = None


def samples_needed(interval_s: float, cfg: LabelConfig) -> int:
    """Valid samples a stretch of ``cfg.event_s`` needs at a sampling interval (at least 1).

    Args:
        interval_s: The line's sampling interval (s).
        cfg: The label rule (``event_s``, ``min_coverage``).

    Returns:
        ``ceil(min_coverage * round(event_s / interval_s))``: 24 for 60 s at 2 s and 80%. A line whose rate is
        unknown (fewer than two sample times) can cover nothing.
    """
    if not (math.isfinite(interval_s) and interval_s > 0):
        return np.iinfo(np.int64).max
    expected = max(1, round(cfg.event_s / interval_s))
    return max(1, math.ceil(cfg.min_coverage * expected - 1e-9))


def _sorted_medians(vals: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Row medians of ``vals`` [m, w] whose first ``n[i]`` entries of row ``i`` are its values (rest +inf)."""
    s = np.sort(vals, axis=1)
    rows = np.arange(len(n))
    lo, hi = np.clip((n - 1) // 2, 0, None), np.clip(n // 2, 0, None)
    if s.shape[1] == 0:
        return np.full(len(n), np.nan)
    lo, hi = np.minimum(lo, s.shape[1] - 1), np.minimum(hi, s.shape[1] - 1)
    return np.where(n > 0, (s[rows, lo] + s[rows, hi]) / 2, np.nan)


def stretch_stats(line: ArterialLine, centres: np.ndarray, cfg: LabelConfig) -> StretchStats:
    """Classify the stretches ``[c - event_s/2, c + event_s/2)`` of a cleaned line: the event definition.

    Args:
        line: The line after :func:`clean_arterial` (its ``interval_s`` from the raw line).
        centres: float or int [m] stretch centres, seconds from the case start.
        cfg: Thresholds (``hypo_map``, ``hyper_sbp``) and the ART rule (``event_s``, ``min_coverage``).

    Returns:
        Per centre: valid sample count, class (-1 below coverage) and median MAP / SBP.
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1)
    half = cfg.event_s / 2
    lo = np.searchsorted(line.time, centres - half, side="left")
    hi = np.searchsorted(line.time, centres + half, side="left")
    n = (hi - lo).astype(np.int64)
    need = samples_needed(line.interval_s if line.interval_s is not None else math.nan, cfg)
    width = int(n.max()) if len(n) else 0
    idx = lo[:, None] + np.arange(width)[None, :]
    inside = idx < hi[:, None]
    idx = np.minimum(idx, max(len(line) - 1, 0))
    if len(line):
        mbp = np.where(inside, line.mbp[idx].astype(np.float64), np.inf)
        sbp = np.where(inside, line.sbp[idx].astype(np.float64), np.inf)
        dbp = np.where(inside, line.dbp[idx].astype(np.float64), np.inf)
    else:
        mbp = sbp = dbp = np.full((len(centres), 0), np.inf)
    covered = n >= need
    map_max = np.where(inside, mbp, -np.inf).max(axis=1, initial=-np.inf)
    sbp_min = sbp.min(axis=1, initial=np.inf)
    label = np.full(len(centres), UNCLASSIFIED, dtype=np.int8)
    label[covered] = NORMAL
    label[covered & (sbp_min > cfg.hyper_sbp)] = HYPERTENSION
    label[covered & (map_max < cfg.hypo_map)] = HYPOTENSION
    nan = np.float32(np.nan)
    map_med = np.where(covered, _sorted_medians(mbp, n), nan).astype(np.float32)
    sbp_med = np.where(covered, _sorted_medians(sbp, n), nan).astype(np.float32)
    dbp_med = np.where(covered, _sorted_medians(dbp, n), nan).astype(np.float32)
    return StretchStats(n_valid=n, n_needed=need, label=label, map_median=map_med, sbp_median=sbp_med,
                        dbp_median=dbp_med)


def last_minute(line: ArterialLine, ends: np.ndarray, cfg: LabelConfig) -> StretchStats:
    """The stretch of the line that closes each window, ``[end + 1 - event_s, end + 1)``: the current invasive pressure.

    The one place this stretch is defined: the windows' ``art_last_map`` / ``art_last_sbp`` (the "last ART minute"
    baseline's inputs in training) and the alarm replay's baseline read it here, so they cannot drift apart.

    Args:
        line: The line after :func:`clean_arterial`.
        ends: int [m] window end seconds (the last second inside each window).
        cfg: The ART rule (``event_s``, ``min_coverage``) and thresholds.

    Returns:
        :func:`stretch_stats` of those stretches (median MAP / SBP NaN where coverage falls short).
    """
    return stretch_stats(line, np.asarray(ends) + 1 - cfg.event_s // 2, cfg)


def hypotensive_minutes(line: ArterialLine, centres: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """Whether the stretch around each centre is a hypotension event (every valid MAP < ``hypo_map``, covered).

    Args:
        line: A cleaned line (:func:`clean_arterial`).
        centres: [m] stretch centres (s).
        cfg: The label rule.

    Returns:
        bool [m].
    """
    return stretch_stats(line, centres, cfg).label == HYPOTENSION


def hypotensive_centres(line: ArterialLine, centres: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """:func:`hypotensive_minutes` by counting instead of gathering: the same answer, for every second of a case.

    A stretch is hypotension when it is covered and holds no valid MAP sample that is not below ``hypo_map``;
    both are differences of cumulative counts at the stretch bounds, so no stretch's samples are gathered.

    Args:
        line: A cleaned line (:func:`clean_arterial`).
        centres: [m] stretch centres (s).
        cfg: The label rule.

    Returns:
        bool [m], equal to ``stretch_stats(line, centres, cfg).label == HYPOTENSION`` (tested).
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1)
    half = cfg.event_s / 2
    lo = np.searchsorted(line.time, centres - half, side="left")
    hi = np.searchsorted(line.time, centres + half, side="left")
    need = samples_needed(line.interval_s if line.interval_s is not None else math.nan, cfg)
    with np.errstate(invalid="ignore"):
        not_low = ~(line.mbp.astype(np.float64) < cfg.hypo_map)  # NaN counts as not low, as in stretch_stats
    high = np.concatenate(([0], np.cumsum(not_low, dtype=np.int64)))
    return ((hi - lo) >= need) & (high[hi] == high[lo])


def hypotension_episodes(line: ArterialLine, duration_s: int, cfg: LabelConfig) -> np.ndarray:
    """Hypotension episodes of a case: the union of all hypotensive stretches centred on whole seconds.

    Args:
        line: A cleaned line.
        duration_s: Case length (s); stretches must lie inside ``[0, duration_s)``.
        cfg: The label rule.

    Returns:
        int64 [e, 2]: ``[start, end)`` seconds of each episode, in order; every episode lasts at least
        ``event_s``.
    """
    half = cfg.event_s // 2
    centres = np.arange(half, duration_s - half + 1, dtype=np.int64)
    if not len(centres) or not len(line):
        return np.zeros((0, 2), np.int64)
    hypo = hypotensive_centres(line, centres, cfg)
    cover = np.zeros(duration_s + 1, np.int64)
    np.add.at(cover, centres[hypo] - half, 1)
    np.add.at(cover, centres[hypo] + half, -1)
    inside = np.cumsum(cover)[:duration_s] > 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], inside.astype(np.int8), [0]))))
    return edges.reshape(-1, 2).astype(np.int64)


@dataclasses.dataclass
class KnownLine:
    """An arterial line as a streaming system knows it at each moment (PITFALLS.md 9).

    At time ``t`` it knows the samples before ``t``, the spikes the spike rule has found by then (the rule needs the
    sample at which MAP comes back, up to :data:`SPIKE_MAX_S` later, so a spike near ``t`` is not known yet) and
    the sampling interval of the line's gaps so far (the coverage rule's). The alarm replay's baselines read the
    line this way (:meth:`last_minute`, :meth:`valid_before`); labels and episodes, judged in hindsight, read the
    whole cleaned line (:func:`clean_arterial`).

    Attributes:
        valid: The samples that pass the sample-wise rules (spikes still in).
        spike: float64 per sample of ``valid``: the time the spike rule removes it (``inf``: never).
        raw_time: float64 the raw line's sample times (its interval so far).
    """

    valid: ArterialLine
    spike: np.ndarray
    raw_time: np.ndarray

    @classmethod
    def of(cls, raw: ArterialLine) -> KnownLine:
        """The line of raw samples, as it becomes known."""
        keep, spike, _ = _artefacts(raw)
        valid = ArterialLine(raw.time[keep], raw.sbp[keep], raw.mbp[keep], raw.dbp[keep], raw.interval_s)
        return cls(valid, spike, raw.time)

    def __len__(self) -> int:
        return len(self.valid)

    def interval_at(self, t) -> np.ndarray:
        """The line's sampling interval as known before each time ``t``: the median of its gaps so far (NaN: none)."""
        t = np.asarray(t, np.float64).reshape(-1)
        gaps = np.diff(self.raw_time)
        later = self.raw_time[1:][gaps > 0]
        medians = _running_medians(gaps[gaps > 0])
        k = np.searchsorted(later, t, side="left")  # gaps whose later sample lies before t
        return np.where(k > 0, medians[np.maximum(k - 1, 0)] if len(medians) else np.nan, np.nan)

    def valid_before(self, t: float) -> np.ndarray:
        """Which samples of ``valid`` are known before ``t`` and not found to be spikes by then (bool)."""
        return (self.valid.time < t) & (self.spike >= t)

    def at(self, t: float) -> ArterialLine:
        """The cleaned line as known just before ``t`` (its samples, spikes and interval then)."""
        ok = self.valid_before(t)
        v = self.valid
        return ArterialLine(v.time[ok], v.sbp[ok], v.mbp[ok], v.dbp[ok], float(self.interval_at([t])[0]))

    def last_minute(self, ends, cfg: LabelConfig) -> StretchStats:
        """:func:`last_minute` at each window end with only what was known at its end (second ``end`` over)."""
        ends = np.asarray(ends, np.int64).reshape(-1)
        stop = ends + 1.0
        centres = ends + 1 - cfg.event_s // 2
        v = self.valid
        found = np.isfinite(self.spike)
        interval = self.interval_at(stop)
        pieces = []
        for iv in np.unique(interval):  # the interval changes rarely: one pass per value (NaN: no gap yet)
            sel = np.isnan(interval) if np.isnan(iv) else interval == iv
            line = ArterialLine(v.time[~found], v.sbp[~found], v.mbp[~found], v.dbp[~found], float(iv))
            pieces.append((np.flatnonzero(sel), stretch_stats(line, centres[sel], cfg)))
        for i in self._unfound(stop, cfg.event_s):  # a spike in the stretch the rule had not found by its end
            pieces.append((np.array([i]), stretch_stats(self.at(stop[i]), centres[i:i + 1], cfg)))
        if not pieces:
            return stretch_stats(v, centres, cfg)
        return _assemble(len(ends), pieces)

    def _unfound(self, stop: np.ndarray, event_s: int) -> np.ndarray:
        """Indices of stretches ``[stop - event_s, stop)`` holding a spike found at or after ``stop``."""
        hit = np.zeros(len(stop), bool)
        for ts, found in zip(self.valid.time[np.isfinite(self.spike)], self.spike[np.isfinite(self.spike)]):
            lo = np.searchsorted(stop, ts, side="right")  # stop > ts
            hi = np.searchsorted(stop, min(ts + event_s, found), side="right")  # stop <= ts + event_s, <= found
            hit[lo:hi] = True
        return np.flatnonzero(hit)


def _running_medians(x: np.ndarray) -> np.ndarray:
    """float64 [n]: the median of ``x[:k + 1]`` for each ``k`` (as ``np.median``), by two heaps."""
    import heapq

    lo: list[float] = []  # the lower half, negated (a max-heap)
    hi: list[float] = []
    out = np.empty(len(x))
    for i, v in enumerate(np.asarray(x, np.float64).tolist()):
        if not lo or v <= -lo[0]:
            heapq.heappush(lo, -v)
        else:
            heapq.heappush(hi, v)
        if len(lo) > len(hi) + 1:
            heapq.heappush(hi, -heapq.heappop(lo))
        elif len(hi) > len(lo):
            heapq.heappush(lo, -heapq.heappop(hi))
        out[i] = -lo[0] if len(lo) > len(hi) else (-lo[0] + hi[0]) / 2
    return out


def _assemble(m: int, pieces: list[tuple[np.ndarray, StretchStats]]) -> StretchStats:
    """One :class:`StretchStats` of ``m`` stretches from pieces computed for some of them (later pieces win)."""
    kw = {}
    for f in dataclasses.fields(StretchStats):
        first = getattr(pieces[0][1], f.name)
        if isinstance(first, np.ndarray):
            arr = np.zeros(m, first.dtype)
            for idx, st in pieces:
                arr[idx] = getattr(st, f.name)
            kw[f.name] = arr
        else:  # the samples a stretch needs: that of the last piece (per stretch it follows the interval then)
            kw[f.name] = getattr(pieces[-1][1], f.name)
    return StretchStats(**kw)
