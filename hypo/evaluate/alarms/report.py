"""The alarm section of ``hypo report``: the chosen trial as an alarm on the test split, beside the baselines.

:func:`report_alarms` runs :func:`~hypo.evaluate.alarms.evaluation.evaluate_alarms` for the report's trial (thresholds
fixed on
the validation split, the test split judged) and never stops the report: when the recordings cannot be replayed
the section says why. :func:`write_alarm_figures` draws the alarm operating characteristic, the lead-time
histogram and three example timelines (:mod:`hypo.evaluate.alarms.figures`); :func:`alarm_section_html` is the
section of the page.
"""

from __future__ import annotations

import html
import os
from typing import Any

import numpy as np

from hypo.data.manifest import Manifest
from hypo.errors import HypoError
from hypo.evaluate.alarms.evaluation import (
    ALARM_COLUMNS,
    AlarmDetail,
    alarm_table_cells,
    evaluate_alarms,
    induction_line,
    trial_predictor,
)
from hypo.evaluate.alarms.metrics import AlarmConfig, case_story
from hypo.evaluate.alarms.replay import FREQUENT_CUFF, LAST_READING

MODEL_ROW = "model"
FIGURES = ("alarm_aoc", "alarm_leads", "alarm_examples")


def report_alarms(chosen, manifest: Manifest, cfg: AlarmConfig, feature_model, val=None,
                  max_cases: int | None = None, n_boot: int = 1000, seed: int = 0,
                  log=print) -> tuple[dict[str, Any], AlarmDetail | None]:
    """The alarm evaluation of a report's trial, or ``{"error": why}`` when its recordings cannot be replayed.

    Args:
        chosen: The report's :class:`~hypo.evaluate.trials.ChosenTrial`.
        manifest: Its dataset's manifest.
        cfg: The alarm config.
        feature_model: The report's fitted feature model (the same baseline row as the window table).
        val: The validation windows, if already loaded (for the trace's check).
        max_cases: At most this many cases per split.
        n_boot: Bootstrap replicates.
        seed: Bootstrap seed.
        log: Where progress lines go.
    """
    try:
        pred = trial_predictor(chosen.exp_path, chosen.trial_id, name=MODEL_ROW, val=val)
        return evaluate_alarms([pred], chosen.data_dir, "test", "val", cfg, feature_model, max_cases, n_boot, seed,
                               manifest=manifest, log=log)
    except HypoError as exc:
        log(f"  alarm evaluation not possible: {exc}")
        return {"error": str(exc)}, None


def pick_examples(detail: AlarmDetail, name: str = MODEL_ROW, op: str = "fa_target",
                  hypo_map: float = 65.0) -> list[dict[str, Any]]:
    """Three recordings to draw: an episode caught, an episode missed, a false alarm (distinct cases if possible).

    Returns:
        Up to three dicts for :func:`hypo.evaluate.alarms.figures.example_timelines`, in that order.
    """
    thr = (detail.thresholds.get(name) or {}).get(op)
    if thr is None or name not in detail.replay.tracks:
        return []
    cfg, replay = detail.cfg, detail.replay
    stories = [case_story(tr, ev, thr, cfg) for tr, ev in zip(replay.tracks[name], replay.events)]
    # Candidates, best first: episodes whose whole warning window was scored; false alarms far from any episode.
    cands: dict[str, list[tuple[float, int, dict]]] = {"caught": [], "missed": [], "false alarm": []}
    for i, (story, ev) in enumerate(zip(stories, replay.events)):
        for e in story["episodes"]:
            if e["caught"] is not None:
                whole = e["onset"] - cfg.lead_max_s >= ev.span[0]
                cands["caught" if e["caught"] else "missed"].append((0.0 if whole else 1.0, i, e))
        bounds = ev.episodes.reshape(-1)
        for a in story["alarms"]:
            if a["status"] == "false":
                far = float(np.abs(bounds - a["start"]).min()) if len(bounds) else float(ev.duration_s)
                cands["false alarm"].append((-far, i, a))
    found: dict[str, tuple[int, dict]] = {}
    for distinct in (True, False):
        for kind in ("caught", "missed", "false alarm"):
            for _, i, item in sorted(cands[kind], key=lambda c: (c[0], c[1])):
                if kind in found or (distinct and any(i == j for j, _ in found.values())):
                    continue
                found[kind] = (i, item)
    out = []
    for kind in ("caught", "missed", "false alarm"):
        if kind not in found:
            continue
        i, item = found[kind]
        ev, tr = replay.events[i], replay.tracks[name][i]
        focus = item["onset"] if kind != "false alarm" else item["start"]
        when = f"{focus // 3600}:{focus // 60 % 60:02d}:{focus % 60:02d}"
        what = (f"episode at {when} caught, lead {item['lead_s'] / 60:.1f} min" if kind == "caught"
                else f"episode at {when} missed" if kind == "missed"
                else f"false alarm at {when} (no onset within {cfg.lead_max_s / 60:g} min)")
        reads = replay.tracks[LAST_READING][i]
        art = replay.tracks.get(FREQUENT_CUFF)
        out.append({"kind": kind, "caseid": ev.caseid,
                    "title": f"{kind}: case {ev.caseid} (subject {ev.subjectid}): {what}",
                    "window": (max(0, focus - 40 * 60), min(ev.duration_s, focus + 20 * 60)),
                    "t": tr.t, "p": tr.score, "threshold": thr, "hysteresis": cfg.hysteresis,
                    "story": stories[i], "readings": (reads.t, reads.score),
                    "art": (art[i].t, art[i].score) if art is not None else None, "hypo_map": hypo_map,
                    "lead_max_s": cfg.lead_max_s, "lead_min_s": cfg.lead_min_s})
    return out


def caught_leads(detail: AlarmDetail, name: str, op: str = "fa_target") -> np.ndarray:
    """Lead times (s) of the episodes a row caught at one of its operating points."""
    thr = (detail.thresholds.get(name) or {}).get(op)
    pooled = detail.pooled.get(name)
    if thr is None or pooled is None:
        return np.zeros(0)
    k = int(np.searchsorted(pooled.thresholds, thr))
    lead = pooled.lead[k]
    return lead[np.isfinite(lead)]


def write_alarm_figures(result: dict[str, Any], detail: AlarmDetail, out_dir: str, label: str = "",
                        hypo_map: float = 65.0) -> dict[str, str]:
    """Draw the three alarm figures into ``out_dir``; returns name -> path (see the module docstring)."""
    from hypo.evaluate.alarms.figures import aoc_figure, example_timelines, lead_histogram

    sim = " (simulated data)" if result.get("simulated") else ""
    n, h = result["cases"]["scored"], result["cases"]["hours"]
    paths = {
        "alarm_aoc": aoc_figure(result["rows"], os.path.join(out_dir, "alarm_aoc.png"),
                                f"test split{sim}: episode sensitivity vs false alarms per hour, {n} recordings "
                                f"({h:.0f} h){label}"),
    }
    leads = {MODEL_ROW: caught_leads(detail, MODEL_ROW)}
    for row in result["rows"][1:]:
        if row["name"] != FREQUENT_CUFF:
            leads[f"baseline: {row['name']}"] = caught_leads(detail, row["name"])
    paths["alarm_leads"] = lead_histogram(leads, os.path.join(out_dir, "alarm_leads.png"),
                                          f"test split{sim}: lead times at the false-alarm target",
                                          detail.cfg.lead_max_s)
    paths["alarm_examples"] = example_timelines(pick_examples(detail, hypo_map=hypo_map),
                                                os.path.join(out_dir, "alarm_examples.png"),
                                                f"test split{sim}: example recordings at the false-alarm target")
    return paths


def alarm_section_html(alarms: dict[str, Any] | None, images: dict[str, str], img, table) -> str:
    """The report's alarm section (``img`` and ``table`` are the page's own helpers)."""
    e = html.escape
    if not alarms:
        return ""
    if "error" in alarms:
        return ("<h2>As an alarm: episodes, lead time, false alarms</h2>"
                f"<p class='banner'>Alarm evaluation not possible: {e(alarms['error'])}.</p>")
    c, cfg = alarms["cases"], alarms["config"]
    sub = (f" (a deterministic subsample of {c['chosen']} of the split's {c['listed']} cases, <code>--alarm-cases"
           "</code>)" if c["chosen"] < c["listed"] else "")
    parts = ["<h2>As an alarm: episodes, lead time, false alarms</h2>",
             f"<p>Every test recording replayed end to end by the deployed code path (<code>predict_case</code>, a "
             f"prediction every {cfg['stride_s']} s): {c['scored']} recordings, {c['hours']:.1f} hours, "
             f"{c['subjects']} subjects{sub}"
             + (f"; <b>{c['failed']} could not be scored</b> (listed below)" if c["failed"] else "")
             + f". Episodes: {c['episodes']['scored']} scored, {c['episodes']['induction']} in induction "
             f"(reported apart), {c['episodes']['under way']} under way when scoring began (left out).</p>",
             f"<ul class='note'><li><b>Events</b>: {e(alarms['events'])}.</li><li><b>Alarm</b>: "
             f"{e(alarms['policy'])}.</li><li><b>Scoring</b>: {e(alarms['scoring'])}.</li><li><b>Thresholds</b>: "
             f"chosen on {e(alarms['thresholds_from'])}, never on test: one for at most "
             f"{cfg['fa_target_per_h']:g} false alarm per hour, one for at least {100 * cfg['sens_target']:.0f}% "
             "episode sensitivity; intervals are 95% from a bootstrap over subjects.</li></ul>"]
    for op, title in (("fa_target", f"Threshold for &le; {cfg['fa_target_per_h']:g} false alarm/h"),
                      ("sens_target", f"Threshold for &ge; {100 * cfg['sens_target']:.0f}% sensitivity")):
        rows = [[e(x) for x in r] for r in alarm_table_cells(alarms, op)]
        rows = [[f"<b>{r[0]}</b>" if i == 0 else r[0], *r[1:]] for i, r in enumerate(rows)]
        parts += [f"<h3>{title} (fixed on validation)</h3>", table(list(ALARM_COLUMNS), rows)]
    parts.append("<p class='note'>Lead: median over caught episodes (minutes before onset, capped at "
                 f"{cfg['lead_max_s'] / 60:g}). Detected: an alarm at any moment from onset - "
                 f"{cfg['lead_max_s'] / 60:g} min to the episode's end, its lead possibly &le; 0 (after onset): "
                 "the frequent cuff row shows what measuring more often achieves without predicting. "
                 f"{e(induction_line(alarms)).capitalize()}.</p>")
    for key, alt, note in (
            ("alarm_aoc", "alarm operating characteristic",
             "Episode sensitivity against false alarms per hour over every threshold (the best sensitivity "
             "reachable at each rate); band: 95% over subject bootstrap replicates; markers: the thresholds fixed "
             "on validation."),
            ("alarm_leads", "lead times", "Lead times of the caught episodes at the false-alarm target."),
            ("alarm_examples", "example recordings",
             "Three test recordings at the false-alarm target: an episode caught, one missed, a false alarm. "
             "Bars at the bottom: alarms (green true, red false, grey inside an episode); shaded: episodes; "
             "black bar: where an alarm had to be on.")):
        if key in images:
            parts += [img(images[key], alt), f"<p class='note'>{note}</p>"]
    if c["failures"]:
        parts.append("<p class='note'>Not scored: " + "; ".join(
            f"case {e(str(f['caseid']))}: {e(f['reason'])}" for f in c["failures"][:20])
                     + (f"; and {len(c['failures']) - 20} more" if len(c["failures"]) > 20 else "") + ".</p>")
    return "\n".join(parts)
