"""Gap filling: linear interpolation for waveforms, carry-forward for numerics (the study's rule).

Stated rules for the edges, so nothing is invented:
- Leading gaps (before a signal's first value) are never filled.
- A waveform gap is interpolated only when it has values on both sides and lasts at most
  ``waveform_max_gap_s`` seconds; trailing and longer gaps stay NaN.
- A numeric value is carried forward for at most ``nibp_max_carry_s`` (cuff pressures) or
  ``numeric_max_carry_s`` (MAC, BIS) seconds; after that the signal is NaN until its next value.
Windows that still hold NaN after filling are dropped by :mod:`hypo.data.windows` and counted.
"""

from __future__ import annotations

import numpy as np

from hypo.config import FillConfig
from hypo.data.signals import NIBP, NUMERICS, WAVEFORMS


def interpolate_gaps(values: np.ndarray, max_gap: int) -> np.ndarray:
    """Linearly interpolate interior NaN runs of at most ``max_gap`` samples.

    Args:
        values: 1-D float array.
        max_gap: Longest run of NaN that is filled.

    Returns:
        A filled copy (float32).
    """
    out = np.array(values, dtype=np.float32, copy=True)
    nan = np.isnan(out)
    if not nan.any() or nan.all():
        return out
    idx = np.flatnonzero(~nan)
    # Length of the gap each NaN sample belongs to: distance between the valid samples around it.
    pos = np.arange(len(out))
    nxt = np.searchsorted(idx, pos)  # index into idx of the next valid sample
    interior = nan & (nxt > 0) & (nxt < len(idx))
    if not interior.any():
        return out
    gap_len = np.zeros(len(out), dtype=np.int64)
    gap_len[interior] = idx[nxt[interior]] - idx[nxt[interior] - 1] - 1
    fill = interior & (gap_len <= max_gap)
    out[fill] = np.interp(pos[fill], idx, out[idx]).astype(np.float32)
    return out


def carry_forward(values: np.ndarray, max_carry: int) -> np.ndarray:
    """Carry each value forward for at most ``max_carry`` seconds.

    Args:
        values: 1-D float array, NaN where nothing was recorded.
        max_carry: Largest age (in samples) of a carried value.

    Returns:
        A filled copy (float32).
    """
    out = np.asarray(values, dtype=np.float32)
    valid = ~np.isnan(out)
    pos = np.arange(len(out))
    last = np.maximum.accumulate(np.where(valid, pos, -1))
    ok = (last >= 0) & (pos - last <= max_carry)
    filled = np.full(len(out), np.nan, dtype=np.float32)
    filled[ok] = out[last[ok]]
    return filled


def fill_gaps(signals: np.ndarray, cfg: FillConfig) -> np.ndarray:
    """Fill gaps in a case array by the study's rule within the limits of ``cfg``.

    Args:
        signals: float32 [seconds, 7] after artefact removal.
        cfg: Gap limits.

    Returns:
        A filled copy; NaN remains where the rules above leave a gap.
    """
    out = np.empty_like(signals, dtype=np.float32)
    for i in WAVEFORMS:
        out[:, i] = interpolate_gaps(signals[:, i], cfg.waveform_max_gap_s)
    for i in NUMERICS:
        limit = cfg.nibp_max_carry_s if i in NIBP else cfg.numeric_max_carry_s
        out[:, i] = carry_forward(signals[:, i], limit)
    return out
