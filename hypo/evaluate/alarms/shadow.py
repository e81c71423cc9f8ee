"""A silent trial scored: the predictions and alarms ``hypo serve`` logged, against events from the recordings.

    hypo evaluate --shadow serve-log --recordings recordings/                  # -> evaluation/alarms_shadow.json
    hypo evaluate --shadow serve-log --recordings recordings/ --track-map map.json --out shadow

After a silent prospective trial the log holds, for every bed, a prediction every stride with the alarm state the
server ran (:mod:`hypo.infer.silent_log`); the monitors' own recordings (Vital Recorder's ``.vital`` files) hold
what happened. This module scores the **logged** alarms, as logged: nothing is recomputed, so what is judged is
what ran beside the patient (its model, its policy, its gaps, its restarts). The events and the metrics are the
offline evaluation's (:func:`hypo.evaluate.alarms.events.case_events`,
:func:`hypo.evaluate.alarms.metrics.case_counts`), and the table is the one ``hypo evaluate --alarms`` prints,
at the one threshold the server ran.

- **Matching**: a room's predictions are scored against the recording ``FOLDER/ROOM.vital`` (searched in
  subfolders too; ``hypo replay`` names a room after its file), by seconds from the case start (the recorder's
  ``dtcase``, the file's start). A room with several cases is scored on the one with most predictions (said).
- **Events**: the label rule of the model the server ran (its ``serving`` note in the log), from the recording's
  cuff readings (cleaned as the training data were: values stamped apart grouped, artefacts removed) or, for
  arterial-line labels, its arterial line; episodes are judged in hindsight, on the whole recording.
- **Slots**: each logged prediction's alarm state lasts until the next prediction (one stride), a prediction that
  was never logged (the server was down) holds no alarm.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hypo.config import NIBP_MERGE_S, LabelConfig, from_dict
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.alarms.events import CaseEvents, case_events, event_rule_text
from hypo.evaluate.alarms.metrics import (
    PROBABILITY,
    AlarmConfig,
    Track,
    case_counts,
    curve_summary,
    operating_point,
    pool_counts,
)
from hypo.evaluate.alarms.result import AlarmResult, CasesSummary

LOGGED = "logged"
ROW = "model (logged)"


def serving_notes(events) -> list[dict[str, Any]]:
    """What each run of the server said it ran (its ``serving`` notes, oldest first)."""
    notes = events[(events["kind"] == "note") & (events["status"] == "serving")].sort_values("time")
    out = []
    for detail in notes["detail"]:
        try:
            out.append(json.loads(detail))
        except (TypeError, json.JSONDecodeError):
            continue
    return out


def recordings_by_room(folder: str) -> dict[str, Path]:
    """``.vital`` files of a folder (and its subfolders) by stem.

    Raises:
        ConfigError: No such folder, no file, or two files with one stem.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--recordings {folder}: no such folder")
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*.vital")):
        if p.stem in out:
            raise ConfigError(f"--recordings {folder}: two recordings for room {p.stem}: {out[p.stem]} and {p}")
        out[p.stem] = p
    if not out:
        raise ConfigError(f"--recordings {folder}: no .vital files")
    return out


def _room_case(room: str, preds, path: Path, serving: dict[str, Any], track_map, cfg: AlarmConfig
               ) -> tuple[CaseEvents, Track]:
    """One room's events (from its recording) and its logged track."""
    from hypo.data.artefacts import merge_cuff_values, remove_artefacts
    from hypo.data.pipeline import usable_arterial_line
    from hypo.data.signals import MAY_BE_MISSING
    from hypo.data.sources.vital import read_vital_case
    from hypo.data.windows import Readings

    label = from_dict(LabelConfig, serving["label"]) if serving.get("label") else LabelConfig()
    case = read_vital_case(path, room, room, track_map, arterial=label.source == "art", allow_missing=MAY_BE_MISSING)
    duration = int(case.duration_s)
    merge_s = int(serving.get("nibp_merge_s") or NIBP_MERGE_S)
    cleaned = remove_artefacts(merge_cuff_values(case.signals, merge_s)[0])[0]
    readings = Readings.from_signals(cleaned)
    line = usable_arterial_line(case)[0] if label.source == "art" else None
    ev = case_events(room, room, duration, label, int(serving.get("window_s") or 60) - 1,
                     readings={"time": readings.time, "map": readings.map}, line=line, merge_gap_s=cfg.merge_gap_s,
                     induction_s=cfg.induction_s, cuff_hold_s=cfg.cuff_hold_s)
    p = preds[preds["t_end"] < duration].sort_values("t_end").drop_duplicates("t_end", keep="last")
    t = p["t_end"].to_numpy(np.int64)
    u = np.minimum(t + cfg.stride_s, duration).astype(np.int64)
    track = Track(t, u, p["p_hypotension"].to_numpy(np.float64), PROBABILITY,
                  logged=p["alarm"].fillna(False).to_numpy(bool))
    return ev, track


def _logged_threshold(preds) -> float:
    """The one threshold the logged alarms ran at.

    Raises:
        HypoError: None logged, or several (runs with different thresholds are scored apart).
    """
    th = np.unique(preds["threshold"].dropna().to_numpy(np.float64).round(6))
    if len(th) != 1:
        raise HypoError(f"the log's predictions ran at {len(th)} alarm thresholds ({', '.join(f'{v:g}' for v in th)}"
                        "); score each run's log apart" if len(th) else "the log holds no prediction with a threshold")
    return float(th[0])


def shadow_evaluation(log_dir: str, recordings: str, track_map=None, cfg: AlarmConfig | None = None,
                      n_boot: int = 1000, seed: int = 0, log=print) -> AlarmResult:
    """Score a silent trial's logged alarms against its recordings (see the module docstring).

    Args:
        log_dir: The silent-trial log (``hypo serve --log``).
        recordings: A folder of the rooms' ``.vital`` recordings.
        track_map: A normalised track map for the recordings (None: VitalDB's names).
        cfg: Scoring rules (lead times, induction, episode rules); its stride is the logged one.
        n_boot: Subject-bootstrap replicates (each room's case is its own subject).
        seed: Seed of the bootstrap.
        log: Where progress lines go.

    Returns:
        The :class:`~hypo.evaluate.alarms.result.AlarmResult`: one row, the logged model at the logged threshold
        (operating point ``logged``), printed by :func:`~hypo.evaluate.alarms.result.format_alarm_table`.

    Raises:
        HypoError: No prediction in the log, several thresholds, or no room could be scored.
    """
    from hypo.infer.silent_log import EVENTS, read_log

    t0 = time.perf_counter()
    events = read_log(log_dir, EVENTS)
    preds = events[events["kind"] == "prediction"]
    if preds.empty:
        raise HypoError(f"{log_dir}: no prediction in the log (is it a hypo serve --log folder?)")
    notes = serving_notes(events)
    serving = notes[-1] if notes else {}
    if not notes:
        log(f"{log_dir}: no serving note in the log; events by the default label rule")
    stride = int(serving.get("stride_s") or int(np.median(np.diff(np.sort(preds["t_end"].unique())))))
    base = cfg or AlarmConfig()
    cfg = dataclasses.replace(base, stride_s=stride, m=int(serving.get("m", base.m)),  # the policy that ran
                              hysteresis=float(serving.get("hysteresis", base.hysteresis)),
                              max_gap_s=int(serving.get("max_gap_s", base.max_gap_s)),
                              horizon_s=serving.get("alarm_horizon_s"))  # the logged p: the risk by it, if set
    threshold = _logged_threshold(preds)
    files = recordings_by_room(recordings)
    evs, tracks, failures = [], [], []
    for room, g in preds.groupby("room"):
        case_start = g["case_start"].round(3).value_counts().idxmax()
        if g["case_start"].round(3).nunique() > 1:
            log(f"  room {room}: several cases in the log; scoring the one started at {case_start:.0f}")
        try:
            if room not in files:
                raise HypoError(f"no recording {room}.vital in {recordings}")
            ev, tr = _room_case(room, g[g["case_start"].round(3) == case_start], files[room], serving, track_map, cfg)
        except Exception as exc:  # noqa: BLE001 - one room that cannot be scored never ends the evaluation
            from hypo.evaluate.alarms.replay import case_failure

            failures.append(case_failure(str(room), exc))
            continue
        evs.append(ev)
        tracks.append(tr)
    if not evs:
        raise HypoError(f"{log_dir}: no room could be scored ({len(failures)} failed: "
                        + ", ".join(f"{f['caseid']} {f['detail']}" for f in failures[:3]) + ")")
    label = from_dict(LabelConfig, serving["label"]) if serving.get("label") else LabelConfig()
    return AlarmResult(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        data=os.path.abspath(log_dir), dataset_fingerprint="", split="silent trial",
        thresholds_from="the log: the threshold the server ran", label_source=label.source,
        events=event_rule_text(label, cfg.merge_gap_s, cfg.induction_s, cfg.cuff_hold_s),
        policy="as logged by hypo serve: " + "; ".join(serving.get("policy_notes") or [cfg.policy_text()]),
        scoring=cfg.scoring_text(), config=cfg, simulated=bool(serving.get("simulated")),
        cases=_summary(evs, failures, preds["room"].nunique()), validation_cases=None, n_boot=int(n_boot),
        seed=int(seed), rows=[_row(evs, tracks, threshold, serving, cfg, n_boot, seed)], horizon_s=cfg.horizon_s,
        timings={"total_s": round(time.perf_counter() - t0, 3)},
        operating_point_titles={LOGGED: f"at the threshold the server ran (p >= {threshold:.3f}), alarms as logged"})


def _row(evs: list[CaseEvents], tracks: list[Track], threshold: float, serving: dict[str, Any], cfg: AlarmConfig,
         n_boot: int, seed: int) -> dict[str, Any]:
    """The logged model's row of the alarm table (operating point :data:`LOGGED`)."""
    counts = [case_counts(tr, ev, [threshold], cfg) for tr, ev in zip(tracks, evs)]
    pooled = pool_counts(counts, [e.subjectid for e in evs], [threshold])
    weights = _weights_of(evs, n_boot, seed)
    return {"name": ROW, "role": "model", "kind": PROBABILITY,
            "description": f"{serving.get('name', 'model')} k={serving.get('k', '?')} ({serving.get('model', '?')}, "
                           f"sha256 {str(serving.get('sha256'))[:12]}): the predictions and alarms hypo serve logged",
            "threshold_unit": "p(hypotension)", "thresholds": {LOGGED: {"threshold": threshold, "fixed": True}},
            "operating_points": {LOGGED: operating_point(pooled, 0, weights)},
            "curve": curve_summary(pooled, weights)}


def _weights_of(evs: list[CaseEvents], n_boot: int, seed: int):
    from hypo.evaluate.bootstrap import subject_weights

    if n_boot < 1:
        return None
    return np.concatenate(list(subject_weights([e.subjectid for e in evs], n_boot, seed)), axis=0)


def _summary(evs: list[CaseEvents], failures: list[dict[str, Any]], listed: int) -> CasesSummary:
    return CasesSummary(listed=listed, chosen=listed, scored=len(evs), failed=len(failures), failures=failures,
                        hours=sum(e.duration_s for e in evs) / 3600, subjects=len({e.subjectid for e in evs}),
                        episodes={k: int(sum((e.kind == k).sum() for e in evs))
                                  for k in ("scored", "induction", "under way")})
