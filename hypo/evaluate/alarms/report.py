"""The alarm section of ``hypo report``: the chosen trial as an alarm on the test split, beside the baselines.

:func:`report_alarms` runs :func:`~hypo.evaluate.alarms.evaluation.evaluate_alarms` for the report's trial
(thresholds fixed on the validation split, the test split judged) and never stops the report: when the recordings
cannot be replayed the section says why. The report keeps the result's JSON form (``report.json``'s ``alarms``);
:func:`section_result` reads it back as the typed :class:`~hypo.evaluate.alarms.result.AlarmResult`.
:func:`write_alarm_figures` draws the alarm operating characteristic, the lead-time histogram and three example
timelines (:mod:`hypo.evaluate.alarms.figures`); :func:`alarm_section_html` is the section of the page.
"""

from __future__ import annotations

import html
import os
from typing import Any

import numpy as np

from hypo.data.manifest import Manifest
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.alarms.evaluation import AlarmDetail, AlarmOptions, evaluate_alarms
from hypo.evaluate.alarms.metrics import case_story
from hypo.evaluate.alarms.replay import FREQUENT_CUFF, LAST_READING
from hypo.evaluate.alarms.result import (
    ALARM_COLUMNS,
    AlarmResult,
    alarm_table_cells,
    burden_text,
    footnotes,
    gray_zone_cells,
    induction_line,
    model_score_line,
)

MODEL_ROW = "model"
FIGURES = ("alarm_aoc", "alarm_leads", "alarm_examples")
FIGURE_NOTES = (
    ("alarm_aoc", "alarm operating characteristic",
     "Episode sensitivity against false alarms per hour over every threshold (the best sensitivity "
     "reachable at each rate); band: 95% over subject bootstrap replicates; markers: the thresholds fixed "
     "on validation."),
    ("alarm_leads", "lead times", "Lead times of the caught episodes at the false-alarm target."),
    ("alarm_examples", "example recordings",
     "Three test recordings at the false-alarm target: an episode caught, one missed, a false alarm. "
     "Bars at the bottom: alarms (green true, red false, grey inside an episode); shaded: episodes; "
     "black bar: where an alarm had to be on."))


def report_alarms(chosen, manifest: Manifest, options: AlarmOptions, val=None,
                  log=print) -> tuple[AlarmResult | None, AlarmDetail | None, str | None]:
    """The alarm evaluation of a report's trial; the reason instead when its recordings cannot be replayed.

    Args:
        chosen: The report's :class:`~hypo.evaluate.trials.ChosenTrial`.
        manifest: Its dataset's manifest.
        options: The alarm config, the report's fitted feature model (the same baseline row as the window table),
            the cases per split, the bootstrap; thresholds from the validation split, the test split judged.
        val: The validation windows, if already loaded (for the trace's check).
        log: Where progress lines go.

    Returns:
        ``(result, detail, None)``, or ``(None, None, why)``.
    """
    from hypo.evaluate.export_trial import trial_description, trial_model

    try:
        model = trial_model(chosen.exp_path, chosen.trial_id, val=val)[0]
        result, detail = evaluate_alarms({MODEL_ROW: model}, chosen.data_dir, options, describe=trial_description,
                                         manifest=manifest, log=log)
        return result, detail, None
    except ConfigError:  # a setting that cannot be scored (--alarm-horizon): the command stops, in one line
        raise
    except HypoError as exc:
        log(f"  alarm evaluation not possible: {exc}")
        return None, None, str(exc)


def section_result(alarms: dict[str, Any]) -> AlarmResult:
    """The report's alarm section (``results["alarms"]``, not an error) as the typed record."""
    return AlarmResult.from_dict(alarms, "the report's alarm section")


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


def write_alarm_figures(result: AlarmResult, detail: AlarmDetail, out_dir: str, label: str = "",
                        hypo_map: float = 65.0) -> dict[str, str]:
    """Draw the three alarm figures into ``out_dir``; returns name -> path (see the module docstring)."""
    from hypo.evaluate.alarms.figures import aoc_figure, example_timelines, lead_histogram

    sim = " (simulated data)" if result.simulated else ""
    n, h = result.cases.scored, result.cases.hours
    paths = {
        "alarm_aoc": aoc_figure(result.rows, os.path.join(out_dir, "alarm_aoc.png"),
                                f"test split{sim}: episode sensitivity vs false alarms per hour, {n} recordings "
                                f"({h:.0f} h){label}"),
    }
    leads = {MODEL_ROW: caught_leads(detail, MODEL_ROW)}
    for row in result.rows[1:]:
        if row.name != FREQUENT_CUFF:
            leads[f"baseline: {row.name}"] = caught_leads(detail, row.name)
    paths["alarm_leads"] = lead_histogram(leads, os.path.join(out_dir, "alarm_leads.png"),
                                          f"test split{sim}: lead times at the false-alarm target",
                                          detail.cfg.lead_max_s)
    paths["alarm_examples"] = example_timelines(pick_examples(detail, hypo_map=hypo_map),
                                                os.path.join(out_dir, "alarm_examples.png"),
                                                f"test split{sim}: example recordings at the false-alarm target")
    return paths


def alarm_section_html(alarms: dict[str, Any] | None, images: dict[str, str], img, table) -> str:
    """The report's alarm section (``img`` and ``table`` are the page's own helpers).

    Args:
        alarms: The report's ``alarms`` (the result's JSON form, or ``{"error": why}``), or None.
        images: Name -> path of the figures.
        img: The page's image helper.
        table: The page's table helper.
    """
    e = html.escape
    if not alarms:
        return ""
    if "error" in alarms:
        return ("<h2>As an alarm: episodes, lead time, false alarms</h2>"
                f"<p class='banner'>Alarm evaluation not possible: {e(alarms['error'])}.</p>")
    result = section_result(alarms)
    parts = _alarm_intro_html(result)
    cfg = result.config
    for op, title in (("fa_target", f"Threshold for &le; {cfg.fa_target_per_h:g} false alarm/h"),
                      ("sens_target", f"Threshold for &ge; {100 * cfg.sens_target:.0f}% sensitivity")):
        rows = [[e(x) for x in r] for r in alarm_table_cells(result, op)]
        rows = [[f"<b>{r[0]}</b>" if i == 0 else r[0], *r[1:]] for i, r in enumerate(rows)]
        parts += [f"<h3>{title} (fixed on validation)</h3>", table(list(ALARM_COLUMNS), rows)]
    header, cells = gray_zone_cells(result)
    if header:
        parts += ["<h3>By the last cuff MAP, at the false-alarm threshold</h3>",
                  table(header, [[e(c) for c in r] for r in cells])]
    parts.append("<ul class='note'>" + "".join(f"<li>{e(line)}</li>" for line in footnotes(result)) + "</ul>")
    parts.append("<p class='note'>Lead: median over caught episodes (minutes before onset, capped at "
                 f"{cfg.lead_max_s / 60:g}). Detected: an alarm at any moment from onset - "
                 f"{cfg.lead_max_s / 60:g} min to the episode's end, its lead possibly &le; 0 (after onset): "
                 "the frequent cuff row shows what measuring more often achieves without predicting. "
                 f"{e(induction_line(result)).capitalize()}.</p>")
    for key, alt, note in FIGURE_NOTES:
        if key in images:
            parts += [img(images[key], alt), f"<p class='note'>{note}</p>"]
    failures = result.cases.failures
    if failures:
        parts.append("<p class='note'>Not scored: " + "; ".join(
            f"case {e(f.caseid)}: {e(f.reason)}" for f in failures[:20])
                     + (f"; and {len(failures) - 20} more" if len(failures) > 20 else "") + ".</p>")
    return "\n".join(parts)


def _alarm_intro_html(result: AlarmResult) -> list[str]:
    """The section's heading, what was replayed, and the rules (events, alarm, scoring, thresholds)."""
    e = html.escape
    c, cfg = result.cases, result.config
    sub = (f" (a deterministic subsample of {c.chosen} of the split's {c.listed} cases, <code>--alarm-cases"
           "</code>)" if c.chosen < c.listed else "")
    return ["<h2>As an alarm: episodes, lead time, false alarms</h2>",
            f"<p>Every test recording replayed end to end by the deployed code path (<code>predict_case</code>, a "
            f"prediction every {cfg.stride_s} s): {c.scored} recordings, {c.hours:.1f} hours, "
            f"{c.subjects} subjects{sub}"
            + (f"; <b>{c.failed} could not be scored</b> (listed below)" if c.failed else "")
            + f". Episodes: {c.episodes['scored']} scored, {c.episodes['induction']} in induction "
            f"(reported apart), {c.episodes['under way']} under way when scoring began (left out); "
            f"{e(burden_text(result))}.</p>",
            f"<ul class='note'><li><b>Events</b>: {e(result.events)}.</li><li><b>Alarm</b>: "
            f"{e(result.policy)}.</li>"
            + (f"<li><b>Model rows</b> read {e(model_score_line(result).removeprefix('model rows: '))}.</li>"
               if result.horizon_s is not None else "")
            + f"<li><b>Scoring</b>: {e(result.scoring)}.</li><li><b>Thresholds</b>: "
            f"chosen on {e(result.thresholds_from)}, never on test: one for at most "
            f"{cfg.fa_target_per_h:g} false alarm per hour, one for at least {100 * cfg.sens_target:.0f}% "
            "episode sensitivity; intervals are 95% from a bootstrap over subjects.</li></ul>"]
