"""Windows and their labels: 60-second windows labelled by the blood pressure 5 minutes after their end.

Time convention: second ``t`` is row ``t`` of the case array; a window starting at ``s`` covers seconds
``s .. s + window_s - 1`` and its end ``t_end`` is its last second. A cuff *reading* is a second at which
SBP, MAP and DBP were all recorded (after artefact removal).

Label modes (PITFALLS.md 1):
- ``reading`` (default, honest): the reading nearest to ``t_end + horizon_s`` that lies strictly after
  ``t_end`` and within ``tolerance_s`` of the target; windows without one are dropped and counted.
- ``ffill`` (the paper): the carried-forward cuff value at exactly ``t_end + horizon_s``; ``label_time`` is
  then the time of the reading that was carried, which may lie inside the window (the leak it exposes).

Beside the label, each window carries what the current-pressure comparators read (PITFALLS.md 10): the last
cuff reading at or before its end (MAP, SBP, DBP and its time) and the :data:`EARLIER_READINGS` readings before it
(MAP and time, most recent first), for the MAP extrapolation; with ART labels also the arterial line's last minute
(MAP, SBP, DBP) and the minutes that ended :data:`ART_EARLIER_S` seconds before the window end.

With ``source == "art"`` the label is the class of the arterial line's stretch ``t_end + horizon_s +-
event_s / 2`` (:func:`hypo.data.art.stretch_stats`); ``label_time`` is its centre, ``label_map`` /
``label_sbp`` its medians, and windows whose stretch lacks coverage are dropped as ``no_label``.

Several horizons (``LabelConfig.horizons_s``): the windows kept are those labelled at the primary horizon
(``horizon_s``), exactly as a single-horizon build keeps them; each also carries ``horizon_labels``, its class at
every horizon by the same rule (:meth:`hypo.config.LabelConfig.at`), :data:`MISSING_LABEL` where that horizon has
no label (no reading near it, the stretch lacks coverage, or it lies past the case end).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hypo.config import LabelConfig, WindowConfig
from hypo.data.art import ArterialLine, last_minute, stretch_stats
from hypo.data.signals import DBP, HYPERTENSION, HYPOTENSION, MBP, N_SIGNALS, NIBP, NORMAL, SBP, WAVEFORMS

EARLIER_READINGS = 2  # cuff readings kept before the last one (the MAP extrapolation reads up to 3)
ART_EARLIER_S: tuple[int, ...] = (150, 300)  # the ART minutes ending this long before the window end
MISSING_LABEL = -1  # horizon_labels: no label at that horizon


@dataclasses.dataclass
class Readings:
    """Cuff readings of one case: times (s) and the MAP, SBP and DBP measured then."""

    time: np.ndarray
    map: np.ndarray
    sbp: np.ndarray
    dbp: np.ndarray | None = None

    @classmethod
    def from_signals(cls, cleaned: np.ndarray) -> Readings:
        """Collect the readings of an artefact-free (unfilled) case array."""
        t = np.flatnonzero(np.isfinite(cleaned[:, NIBP]).all(axis=1))
        return cls(t.astype(np.int64), cleaned[t, MBP].astype(np.float32), cleaned[t, SBP].astype(np.float32),
                   cleaned[t, DBP].astype(np.float32))


@dataclasses.dataclass
class Windows:
    """The labelled windows of one case (one row per kept window) and what was dropped."""

    t_end: np.ndarray  # int32 [n]
    x: np.ndarray  # float32 [n, window_s, 7]
    label: np.ndarray  # int8 [n]
    label_time: np.ndarray  # int32 [n]
    label_map: np.ndarray  # float32 [n]
    label_sbp: np.ndarray  # float32 [n]
    last_time: np.ndarray  # int32 [n], -1 when no reading yet
    last_map: np.ndarray  # float32 [n], NaN when no reading yet
    last_sbp: np.ndarray  # float32 [n]
    dropped_incomplete: int = 0
    dropped_no_label: int = 0
    art_last_map: np.ndarray | None = None  # ART labels: float32 [n] median MAP of the window's last minute
    art_last_sbp: np.ndarray | None = None  # (NaN when that minute lacks coverage); None for cuff labels
    last_dbp: np.ndarray | None = None  # float32 [n] DBP of the last reading (NaN when none)
    earlier_map: np.ndarray | None = None  # float32 [n, EARLIER_READINGS] the readings before it, latest first
    earlier_time: np.ndarray | None = None  # int32 [n, EARLIER_READINGS] their times (-1: none)
    art_last_dbp: np.ndarray | None = None  # ART labels: float32 [n] median DBP of the last minute
    art_earlier_map: np.ndarray | None = None  # ART labels: float32 [n, len(ART_EARLIER_S)] earlier minutes' MAP
    horizon_labels: np.ndarray | None = None  # several horizons: int8 [n, H] class per horizon, -1 missing

    def __len__(self) -> int:
        return len(self.t_end)


def classify(map_: np.ndarray, sbp: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """Class of each (MAP, SBP) pair: 1 hypotension (MAP < hypo_map), 2 hypertension (SBP > hyper_sbp), else 0.

    Hypotension takes precedence when both hold.
    """
    label = np.full(len(map_), NORMAL, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        label[np.asarray(sbp) > cfg.hyper_sbp] = HYPERTENSION
        label[np.asarray(map_) < cfg.hypo_map] = HYPOTENSION
    return label


def window_ends(n_seconds: int, window_s: int, stride_s: int) -> np.ndarray:
    """End second of every window that fits in a case of ``n_seconds``."""
    starts = np.arange(0, n_seconds - window_s + 1, stride_s, dtype=np.int64)
    return starts + window_s - 1


def label_by_reading(t_end: np.ndarray, readings: Readings, cfg: LabelConfig) -> np.ndarray:
    """Index into ``readings`` of each window's label reading (reading mode), or -1 when none qualifies.

    The nearest reading to ``t_end + horizon_s`` is taken (the earlier one on a tie), and kept only when it lies
    strictly after ``t_end`` and within ``tolerance_s`` of the target.
    """
    n = len(readings.time)
    if n == 0:
        return np.full(len(t_end), -1, dtype=np.int64)
    target = t_end + cfg.horizon_s
    after = np.searchsorted(readings.time, target, side="left")  # first reading >= target
    before = after - 1
    t_after = readings.time[np.minimum(after, n - 1)]
    t_before = readings.time[np.maximum(before, 0)]
    d_after = np.where(after < n, t_after - target, np.iinfo(np.int64).max)
    d_before = np.where(before >= 0, target - t_before, np.iinfo(np.int64).max)
    idx = np.where(d_before <= d_after, before, after)
    dist = np.minimum(d_before, d_after)
    chosen_time = readings.time[np.clip(idx, 0, n - 1)]
    ok = (dist <= cfg.tolerance_s) & (chosen_time > t_end)
    return np.where(ok, idx, -1)


def label_by_ffill(t_end: np.ndarray, readings: Readings, n_seconds: int, max_carry_s: int,
                   cfg: LabelConfig) -> np.ndarray:
    """Index of the reading whose carried-forward value stands at ``t_end + horizon_s`` (ffill mode), or -1.

    -1 when the target lies beyond the case end, before the first reading, or more than ``max_carry_s`` after
    the last reading (the gap-filling limit for cuff pressures).
    """
    target = t_end + cfg.horizon_s
    idx = np.searchsorted(readings.time, target, side="right") - 1
    ok = (idx >= 0) & (target < n_seconds)
    if len(readings.time):
        ok &= target - readings.time[np.clip(idx, 0, None)] <= max_carry_s
    return np.where(ok, idx, -1)


def label_index(t_end: np.ndarray, readings: Readings, n_seconds: int, max_carry_s: int,
                cfg: LabelConfig) -> np.ndarray:
    """Index into ``readings`` of each window's label reading under ``cfg.mode``, or -1 when it has none.

    One rule for training data and for predictions in hindsight: :func:`label_by_reading` in ``reading`` mode,
    :func:`label_by_ffill` in ``ffill`` mode.
    """
    if cfg.mode == "reading":
        return label_by_reading(t_end, readings, cfg)
    return label_by_ffill(t_end, readings, n_seconds, max_carry_s, cfg)


def complete_windows(cleaned: np.ndarray, filled: np.ndarray, ends: np.ndarray, window_s: int,
                     absent: list[int] | tuple[int, ...] = ()) -> np.ndarray:
    """Which windows the model may see: no gap left after filling, and nothing taken from after the window end.

    Waveform gaps are interpolated over the whole case, so a gap still open at a window's last second is
    filled from samples after it; such a window (its last second of ECG or pleth not recorded) is incomplete,
    as it would be in live use. Carry-forward fills only ever use the past.

    Args:
        cleaned: The case before filling [seconds, 7] (NaN where nothing was recorded).
        filled: The case after filling.
        ends: int [w] window end seconds.
        window_s: Window length.
        absent: Channels left out of the check, which stay NaN in windows that are otherwise complete: those of a
            group the case lacks as a whole and may (``WindowConfig.allow_missing``), or, in predictions, that the
            model does not read.

    Returns:
        bool [w].
    """
    if not len(ends):
        return np.zeros(0, dtype=bool)
    if absent:
        keep = [i for i in range(filled.shape[1]) if i not in set(absent)]
        cleaned, filled = cleaned[:, keep], filled[:, keep]
        waveforms = [keep.index(i) for i in WAVEFORMS if i in keep]
    else:
        waveforms = list(WAVEFORMS)
    view = np.lib.stride_tricks.sliding_window_view(filled, window_s, axis=0)[ends - window_s + 1]
    last_recorded = ~np.isnan(cleaned[np.ix_(ends, waveforms)]).any(axis=1)
    return ~np.isnan(view).any(axis=(1, 2)) & last_recorded


@dataclasses.dataclass
class _Labels:
    """The labels of the kept windows: class, the pressures it came from and when; ART's last minute."""

    label: np.ndarray
    time: np.ndarray
    map: np.ndarray
    sbp: np.ndarray
    art_last_map: np.ndarray | None = None
    art_last_sbp: np.ndarray | None = None
    art_last_dbp: np.ndarray | None = None
    art_earlier_map: np.ndarray | None = None


def _label_rule(ends: np.ndarray, readings: Readings, n_seconds: int, label: LabelConfig, max_carry_s: int,
                art: ArterialLine | None):
    """Where each window's label comes from: ``(has_label, target)``, the ART stretch stats or reading indices."""
    if label.source == "art":
        if art is None:
            raise ValueError("ART labels need the case's cleaned arterial line")
        target = stretch_stats(art, ends + label.horizon_s, label)
        return target.label >= 0, target
    lab_idx = label_index(ends, readings, n_seconds, max_carry_s, label)
    return lab_idx >= 0, lab_idx


def horizon_labels(ends: np.ndarray, readings: Readings, n_seconds: int, cfg: WindowConfig,
                   art: ArterialLine | None) -> np.ndarray:
    """Each window's class at every horizon of ``cfg.label.horizons``, by the single-horizon rule at that horizon.

    Args:
        ends: int [n] window end seconds.
        readings: The case's cuff readings.
        n_seconds: The case length.
        cfg: The window config (label rule, horizons, the cuff's carry-forward limit for ffill labels).
        art: The cleaned arterial line (ART labels).

    Returns:
        int8 [n, H]: the class, or :data:`MISSING_LABEL` where that horizon has no label.
    """
    out = np.full((len(ends), len(cfg.label.horizons)), MISSING_LABEL, np.int8)
    for k, h in enumerate(cfg.label.horizons):
        label = cfg.label.at(h)
        has, target = _label_rule(ends, readings, n_seconds, label, cfg.fill.nibp_max_carry_s, art)
        if not has.any():
            continue
        if label.source == "art":
            out[has, k] = target.label[has]
        else:
            li = target[has]
            out[has, k] = classify(readings.map[li], readings.sbp[li], label)
    return out


def _labels(target, keep: np.ndarray, ends_k: np.ndarray, readings: Readings, label: LabelConfig,
            art: ArterialLine | None) -> _Labels:
    """The kept windows' labels, from the ART stretches or the cuff readings :func:`_label_rule` found."""
    if label.source == "art":
        art_last = last_minute(art, ends_k, label)  # the current invasive pressure
        earlier = np.stack([last_minute(art, ends_k - back, label).map_median for back in ART_EARLIER_S], axis=1)
        return _Labels(target.label[keep], ends_k + label.horizon_s, target.map_median[keep],
                       target.sbp_median[keep], art_last.map_median, art_last.sbp_median, art_last.dbp_median,
                       earlier.astype(np.float32))
    li = target[keep]
    label_map = readings.map[li] if len(li) else np.zeros(0, np.float32)
    label_sbp = readings.sbp[li] if len(li) else np.zeros(0, np.float32)
    return _Labels(classify(label_map, label_sbp, label), readings.time[li] if len(li) else np.zeros(0),
                   label_map, label_sbp)


@dataclasses.dataclass
class _Last:
    """The last cuff reading at or before each window end, and the readings before it."""

    map: np.ndarray
    sbp: np.ndarray
    dbp: np.ndarray
    time: np.ndarray
    earlier_map: np.ndarray
    earlier_time: np.ndarray


def _last_readings(readings: Readings, ends_k: np.ndarray) -> _Last:
    """The last cuff reading at or before each window end, and the :data:`EARLIER_READINGS` before it.

    NaN values and time -1 where there is none; the earlier ones most recent first.
    """
    last = np.searchsorted(readings.time, ends_k, side="right") - 1
    idx = last[:, None] - np.arange(EARLIER_READINGS + 1)[None, :]  # [n, 1 + earlier]: the last, then before
    has = idx >= 0
    nan = np.float32(np.nan)
    if not len(readings.time):
        has = np.zeros_like(has)
    ic = np.clip(idx, 0, max(len(readings.time) - 1, 0))

    def pick(values, fill):
        if not len(readings.time):
            return np.full(idx.shape, fill)
        return np.where(has, values[ic], fill)

    maps, times = pick(readings.map, nan), pick(readings.time, -1)
    dbp = readings.dbp if readings.dbp is not None else np.full(len(readings.time), nan)
    return _Last(maps[:, 0], pick(readings.sbp, nan)[:, 0], pick(dbp, nan)[:, 0], times[:, 0],
                 maps[:, 1:], times[:, 1:])


def make_windows(cleaned: np.ndarray, filled: np.ndarray, cfg: WindowConfig, art: ArterialLine | None = None,
                 absent: list[int] | tuple[int, ...] = ()) -> Windows:
    """Cut a case into labelled windows.

    Args:
        cleaned: Artefact-free, unfilled case array [seconds, 7] (defines the cuff readings).
        filled: The same case after gap filling (the model input).
        cfg: The window length and stride, the label rule and (for ffill labels) the cuff's carry-forward limit.
        art: The cleaned arterial line (:func:`hypo.data.art.clean_arterial`); required for ART labels. It is
            used for labels and ``art_last_*`` only, never for ``x``.
        absent: Channels the case lacks as a whole and may (:func:`complete_windows`); NaN in the kept windows.

    Returns:
        The kept windows: complete (no NaN after filling) and labelled; drop counts are recorded.
    """
    window_s = cfg.window_s
    ends = window_ends(len(filled), window_s, cfg.stride_s)
    readings = Readings.from_signals(cleaned)
    has_label, target = _label_rule(ends, readings, len(filled), cfg.label, cfg.fill.nibp_max_carry_s, art)
    complete = complete_windows(cleaned, filled, ends, window_s, absent)
    keep = complete & has_label
    ends_k = ends[keep]
    x = (
        np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(filled, window_s, axis=0)[ends_k - window_s + 1]
                             .transpose(0, 2, 1))
        if keep.any()
        else np.zeros((0, window_s, N_SIGNALS), np.float32)
    )
    last = _last_readings(readings, ends_k)
    lab = _labels(target, keep, ends_k, readings, cfg.label, art)
    return Windows(
        t_end=ends_k.astype(np.int32),
        x=x.astype(np.float32, copy=False),
        label=lab.label.astype(np.int8),
        label_time=lab.time.astype(np.int32),
        label_map=lab.map.astype(np.float32),
        label_sbp=lab.sbp.astype(np.float32),
        last_time=last.time.astype(np.int32),
        last_map=last.map.astype(np.float32),
        last_sbp=last.sbp.astype(np.float32),
        dropped_incomplete=int((~complete).sum()),
        dropped_no_label=int((complete & ~has_label).sum()),
        art_last_map=lab.art_last_map,
        art_last_sbp=lab.art_last_sbp,
        last_dbp=last.dbp.astype(np.float32),
        earlier_map=last.earlier_map.astype(np.float32).reshape(-1, EARLIER_READINGS),
        earlier_time=last.earlier_time.astype(np.int32).reshape(-1, EARLIER_READINGS),
        art_last_dbp=lab.art_last_dbp,
        art_earlier_map=lab.art_earlier_map,
        horizon_labels=(horizon_labels(ends_k, readings, len(filled), cfg, art) if cfg.label.horizons_s else None),
    )


def hypotension_by(horizon_labels: np.ndarray) -> np.ndarray:
    """Whether hypotension is seen by each horizon: the targets of the per-horizon risks.

    Args:
        horizon_labels: int [n, H], each window's class per horizon (ascending), :data:`MISSING_LABEL` when none.

    Returns:
        int8 [n, H]: 1 when a label at ``h_j <= h_k`` is hypotension, else 0 when the label at ``h_k`` exists,
        else :data:`MISSING_LABEL` (unknown: scored and trained on nowhere). A missing earlier label counts as
        not hypotensive.
    """
    labels = np.asarray(horizon_labels)
    seen = np.maximum.accumulate(labels == HYPOTENSION, axis=1) if labels.size else labels == HYPOTENSION
    out = np.where(seen, 1, np.where(labels == MISSING_LABEL, MISSING_LABEL, 0))
    return out.astype(np.int8)
