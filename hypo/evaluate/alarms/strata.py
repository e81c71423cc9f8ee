"""The alarm metrics by the last cuff MAP at the moment that matters: the gray zone, as alarms.

Window metrics are stratified by the last cuff MAP at prediction time (:mod:`hypo.evaluate.comparison`); an alarm's
moments are these:

- an **episode** belongs to the stratum of the last cuff reading at or before ``onset - lead_min`` (the last
  moment a warning still counts): where the pressure stood when the alarm had to be on. Its sensitivity there is
  the share caught, as :mod:`~hypo.evaluate.alarms.metrics` counts them;
- an **alarm** belongs to the stratum of the last reading at or before its start: false alarms per hour of the
  scored recording outside episodes and induction (before a censored alarm's start) whose last reading was in the
  stratum, and the PPV (judged alarms that catch an episode);
- seconds before the first reading are ``none``.

Pooled over recordings at one threshold (no bootstrap): :func:`stratified` for one row, on the scorer's own
alarms (:func:`~hypo.evaluate.alarms.metrics.case_story`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hypo.evaluate.alarms.events import SCORED, CaseEvents
from hypo.evaluate.alarms.metrics import AlarmConfig, Track, case_story
from hypo.jsonio import finite
from hypo.learn.metrics import MAP_STRATA, map_stratum


def _stratum_at(times, readings: Track, hypo_map: float) -> np.ndarray:
    """The stratum of the last cuff reading at or before each time (``none`` before the first)."""
    t = np.asarray(times, np.int64)
    i = np.searchsorted(readings.t, t, side="right") - 1
    values = np.where(i >= 0, readings.score[np.clip(i, 0, None)] if len(readings.t) else np.nan, np.nan)
    return map_stratum(values, hypo_map)


def _free_seconds(events: CaseEvents, cfg: AlarmConfig) -> np.ndarray:
    """The seconds alarms are judged in, outside every episode (the false-alarm denominator), int64 [s]."""
    secs = np.arange(max(events.span[0], cfg.induction_s), events.span[1], dtype=np.int64)
    ep = events.episodes
    if len(ep):
        k = np.searchsorted(ep[:, 0], secs, side="right") - 1
        secs = secs[~((k >= 0) & (secs < ep[np.maximum(k, 0), 1]))]
    return secs


def case_strata(track: Track, events: CaseEvents, readings: Track, threshold: float, cfg: AlarmConfig,
                hypo_map: float = 65.0) -> np.ndarray:
    """One recording's counts per stratum at one threshold, int [len(MAP_STRATA), 7].

    Columns: episodes, caught, alarms counted, false, judged, catching, seconds outside episodes (before a censored
    alarm).
    """
    story = case_story(track, events, threshold, cfg)
    out = np.zeros((len(MAP_STRATA), 7), np.int64)
    scored = [e for e in story["episodes"] if e["kind"] == SCORED]
    if scored:
        s = _stratum_at([e["onset"] - cfg.lead_min_s for e in scored], readings, hypo_map)
        np.add.at(out[:, 0], s, 1)
        np.add.at(out[:, 1], s, [int(bool(e["caught"])) for e in scored])
    counted = [a for a in story["alarms"] if a["status"] != "not counted"]
    if counted:
        s = _stratum_at([a["start"] for a in counted], readings, hypo_map)
        for col, flag in ((2, lambda a: True), (3, lambda a: a["status"] == "false"),
                          (4, lambda a: a["status"] in ("true", "false")),
                          (5, lambda a: a["catches"] and a["status"] == "true")):
            np.add.at(out[:, col], s, [int(flag(a)) for a in counted])
    cut = min([a["start"] for a in counted if a["status"] == "censored"], default=events.span[1])
    secs = _free_seconds(events, cfg)
    out[:, 6] = np.bincount(_stratum_at(secs[secs < cut], readings, hypo_map), minlength=len(MAP_STRATA))
    return out


def stratified(tracks: list[Track], events: list[CaseEvents], readings: list[Track], threshold: float,
               cfg: AlarmConfig, hypo_map: float = 65.0) -> dict[str, dict[str, Any]]:
    """One row's alarm metrics per stratum of the last cuff MAP, pooled over recordings at one threshold.

    Args:
        tracks: The row's track on each recording.
        events: Each recording's events.
        readings: Each recording's cuff readings (the last-reading row's track: times and MAP).
        threshold: The row's threshold.
        cfg: The alarm config.
        hypo_map: The hypotension threshold (the gray zone's lower edge).

    Returns:
        Stratum -> ``{"episodes", "caught", "sensitivity", "alarms", "false_alarms", "hours", "fa_per_h", "ppv"}``
        (None where undefined).
    """
    total = sum((case_strata(t, e, r, threshold, cfg, hypo_map) for t, e, r in zip(tracks, events, readings)),
                np.zeros((len(MAP_STRATA), 7), np.int64))
    out = {}
    for i, s in enumerate(MAP_STRATA):
        ep, caught, alarms, false, judged, catching, secs = (int(v) for v in total[i])
        out[s] = {"episodes": ep, "caught": caught, "sensitivity": finite(caught / ep) if ep else None,
                  "alarms": alarms, "false_alarms": false, "hours": secs / 3600,
                  "fa_per_h": finite(false / (secs / 3600)) if secs else None,
                  "ppv": finite(catching / judged) if judged else None}
    return out
