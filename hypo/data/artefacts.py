"""Artefact removal (PITFALLS.md 8): implausible values are removed before gap filling, and counted.

Cuff readings are judged as a whole: a reading (the second at which SBP, MAP and DBP were recorded) with a
zero, a MAP outside 20-200 mmHg, SBP <= DBP, or only some of its three values, is removed entirely, so no
label or carried-forward value can come from it. BIS outside 0-100, MAC below 0 and non-finite values are
removed sample by sample.

Some monitors write a reading's systolic, mean and diastolic values a second or two apart, so no second holds the
whole reading; :func:`merge_cuff_values` first groups values recorded within ``nibp_merge_s`` seconds of each
other (each of the three at most once) into one reading stamped at the latest of them.
"""

from __future__ import annotations

import numpy as np

from hypo.data.signals import BIS, DBP, MAC, MBP, NIBP, SBP

MAP_RANGE = (20.0, 200.0)
BIS_RANGE = (0.0, 100.0)

# Every rule that can fire, so a manifest always lists all of them (zero included).
RULES: tuple[str, ...] = (
    "non_finite",
    "nibp_incomplete",
    "nibp_zero",
    "map_out_of_range",
    "sbp_le_dbp",
    "bis_out_of_range",
    "mac_negative",
)
NIBP_RULES: tuple[str, ...] = ("nibp_incomplete", "nibp_zero", "map_out_of_range", "sbp_le_dbp")  # whole readings


def merge_cuff_values(signals: np.ndarray, merge_s: int) -> tuple[np.ndarray, int]:
    """Group cuff values stamped apart into whole readings, each stamped at the latest of its values.

    Scanning the seconds that hold any cuff value in order, a second joins the reading begun at an earlier second
    when it lies at most ``merge_s`` seconds after that reading's first second and holds none of the values the
    reading already has (a second systolic value starts a new reading). Seconds that hold all three values are
    readings already and never merge, so aligned recordings are returned unchanged.

    Args:
        signals: float32 [seconds, 7] in :data:`hypo.data.signals.SIGNALS` order, NaN where nothing was recorded.
        merge_s: Largest spread of one reading's time stamps in seconds (0: no merging).

    Returns:
        ``(merged, n_merged)``: the signals with the values of each merged reading moved to its latest second
        (``signals`` itself when nothing merged), and how many whole readings were formed from values stamped
        apart (a group still lacking a value is moved too, then removed as incomplete, and not counted here).
    """
    present = ~np.isnan(signals[:, NIBP])
    rows = np.flatnonzero(present.any(axis=1))
    if merge_s <= 0 or not len(rows) or present[rows].all():
        return signals, 0
    out = np.array(signals, dtype=np.float32, copy=True)
    n_merged = 0

    def close(group: list[int]) -> int:
        if len(group) < 2:
            return 0
        last = group[-1]
        for col, has in zip(NIBP, present[group].T):
            if has.any():
                out[last, col] = signals[group[int(np.flatnonzero(has)[0])], col]
        out[np.ix_(group[:-1], NIBP)] = np.nan
        return int(present[group].any(axis=0).all())  # a whole reading; a partial one is removed later, not merged

    group, have = [int(rows[0])], present[rows[0]].copy()
    for r in rows[1:]:
        r = int(r)
        if r - group[0] <= merge_s and not (present[r] & have).any():
            group.append(r)
            have |= present[r]
        else:
            n_merged += close(group)
            group, have = [r], present[r].copy()
    n_merged += close(group)
    return out, n_merged


def remove_artefacts(signals: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Return a copy of ``signals`` with artefacts set to NaN, and how many each rule removed.

    A cuff reading is counted once, under the first rule it breaks (in :data:`RULES` order).

    Args:
        signals: float32 [seconds, 7] in :data:`hypo.data.signals.SIGNALS` order, NaN where nothing was recorded.

    Returns:
        ``(cleaned, counts)``: the cleaned copy and a dict rule -> number of readings or samples removed.
    """
    out = np.array(signals, dtype=np.float32, copy=True)
    counts = dict.fromkeys(RULES, 0)

    inf = np.isinf(out)
    counts["non_finite"] = int(inf.sum())
    out[inf] = np.nan

    nibp = out[:, NIBP]
    present = ~np.isnan(nibp)
    any_present = present.any(axis=1)
    bad = np.zeros(len(out), dtype=bool)
    sbp, mbp, dbp = out[:, SBP], out[:, MBP], out[:, DBP]
    with np.errstate(invalid="ignore"):
        rules = (
            ("nibp_incomplete", any_present & ~present.all(axis=1)),
            ("nibp_zero", any_present & (nibp == 0).any(axis=1)),
            ("map_out_of_range", any_present & ((mbp < MAP_RANGE[0]) | (mbp > MAP_RANGE[1]))),
            ("sbp_le_dbp", any_present & (sbp <= dbp)),
        )
    for name, hit in rules:
        new = hit & ~bad
        counts[name] = int(new.sum())
        bad |= new
    out[np.ix_(bad, NIBP)] = np.nan

    with np.errstate(invalid="ignore"):
        bis_bad = (out[:, BIS] < BIS_RANGE[0]) | (out[:, BIS] > BIS_RANGE[1])
        mac_bad = out[:, MAC] < 0
    counts["bis_out_of_range"] = int(bis_bad.sum())
    counts["mac_negative"] = int(mac_bad.sum())
    out[bis_bad, BIS] = np.nan
    out[mac_bad, MAC] = np.nan
    return out, counts
