"""The advisor's outputs: the test table (printed and ``advisor.md``), ``advisor.json`` and ``advisor.png``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

from hypo.evaluate.advisor.scoring import PolicyScore


def _minutes(s: float) -> str:
    return "undetected" if math.isinf(s) else ("-" if not math.isfinite(s) else f"{s / 60:.1f}")


def _name(p: PolicyScore, req) -> str:
    if p.family == "schedule":
        return f"fixed: every {p.param:g} s" + (" (base)" if p.param == req.loop.base_interval_s else "")
    if p.family == "trend":
        return f"trend: MAP extrapolated < {p.param:g}"
    return f"advisor: p >= {p.param:.3g}"


def _row(p: PolicyScore, req, boot: bool) -> str:
    med = _minutes(p.median_delay_s)
    if boot and req.n_boot > 0:
        ci = p.median_interval(req.n_boot)
        med += f" [{_minutes(ci['lo'])}, {_minutes(ci['hi'])}]"
    det = p.delays[np.isfinite(p.delays)]
    mean = f"{det.mean() / 60:.1f}" if len(det) else "-"
    return (f"| {_name(p, req)} | {p.inflations_per_h:.1f} | {p.extra_per_h:+.2f} | {len(p.delays)} | "
            f"{100 * p.detected:.0f}% | {med} | {mean} |")


def header_lines(req, manifest, model, chosen: float, how: str, split, looks: str = "") -> list[str]:
    """What the table is: simulated or not, the cuff, the policies' timing, the rules of events and delays."""
    from hypo.evaluate.alarms.events import event_rule_text

    c = req.loop
    sim = "**SIMULATED** (demo cohort: these numbers describe the simulator and the code, not patients). " \
        if manifest.simulated else ""
    return [
        "# Cuff advisor, closed-loop (simulated cuff from the arterial line), test split",
        "",
        f"{sim}Model: {model.describe()}. {split.n_cases} test recordings, {split.hours:.1f} h of scored span"
        + (f" ({len(split.failures)} could not be run)" if split.failures else "") + "."
        + (f" Test split: {looks}." if looks else ""),
        "",
        f"- cuff: each reading simulated from the arterial line (hypo.data.cuff): an inflation of {c.inflation_s} s "
        f"reporting at its end, error model `{c.cuff_error}`, seed {c.seed};",
        f"- base schedule: every {c.base_interval_s} s from the line's first sample; the advisor and the trend "
        f"trigger decide every {c.stride_s} s and request an extra inflation at least {c.min_spacing_s} s after the "
        f"last one began; a requested reading enters the model's inputs when it reports;",
        f"- advisor threshold p >= {chosen:.4g}: {how} (budget {req.budget_per_h:g} extra inflations/h);",
        f"- trend trigger: the comparators' MAP extrapolation through the last readings, {c.trend_horizon_s} s ahead;",
        f"- {event_rule_text(manifest.label)};",
        "- detection delay: onset to the report of the first cuff reading with MAP < "
        f"{manifest.label.hypo_map:g} (kept by the pipeline's artefact rules) that reports at or after the onset "
        "and began before the episode ended; an "
        "episode without one is undetected and ranks last (the median is 'undetected' when half or more are); "
        f"[95% interval: bootstrap over subjects with episodes, {req.n_boot} replicates].",
    ]


def advisor_table(split, chosen: float, how: str, req, manifest, model, looks: str = "") -> str:
    """The test table in Markdown.

    Rows: the fixed schedules, the trend trigger, the advisor at the chosen threshold (with intervals), its other
    thresholds.
    """
    cols = ("| policy | inflations/h | extra/h | episodes | detected | median delay, min | mean delay detected, "
            "min |\n|---|---|---|---|---|---|---|")
    rows = [_row(p, req, True) for p in split.family("schedule")]
    rows += [_row(p, req, False) for p in split.family("trend")]
    at = [p for p in split.family("advisor") if math.isclose(p.param, chosen)]
    rows += [_row(p, req, True).replace("| advisor:", "| **advisor (chosen)**:", 1) for p in at]
    rows += [_row(p, req, False) for p in split.family("advisor") if not math.isclose(p.param, chosen)]
    return "\n".join([*header_lines(req, manifest, model, chosen, how, split, looks), "", cols, *rows])


def _point(p: PolicyScore) -> dict[str, Any]:
    det = p.delays[np.isfinite(p.delays)]
    return {"family": p.family, "param": p.param, "inflations_per_h": p.inflations_per_h,
            "extra_per_h": p.extra_per_h, "episodes": int(len(p.delays)), "detected": p.detected,
            "median_delay_s": p.median_delay_s, "mean_delay_detected_s": float(det.mean()) if len(det) else None}


def write_outputs(req, runs: dict, chosen: float, how: str, table: str, manifest, model) -> dict[str, Any]:
    """Write ``advisor.md``, ``advisor.json`` and ``advisor.png`` in ``req.out``; return the JSON's content."""
    from hypo.evaluate.advisor.figures import delay_figure
    from hypo.jsonio import jsonable

    os.makedirs(req.out, exist_ok=True)
    md = os.path.join(req.out, "advisor.md")
    with open(md, "w") as f:
        f.write(table + "\n")
    title = (("SIMULATED (demo cohort): " if manifest.simulated else "")
             + f"cuff advisor vs fixed schedules vs trend, test split ({runs['test'].n_cases} recordings)\n"
             + f"cuff readings simulated from the arterial line ({req.loop.inflation_s} s inflation, error "
             + f"{req.loop.cuff_error});\nbase schedule every {req.loop.base_interval_s} s; requests >= "
             + f"{req.loop.min_spacing_s} s apart; threshold fixed on validation at <= {req.budget_per_h:g} extra/h")
    png = delay_figure(runs["test"], chosen, os.path.join(req.out, "advisor.png"), title)
    out = {"simulated": manifest.simulated, "model": model.describe(), "threshold": chosen, "threshold_rule": how,
           "config": dataclasses.asdict(req.loop), "budget_per_h": req.budget_per_h,
           "splits": {s: {"cases": r.n_cases, "hours": r.hours, "failures": r.failures,
                          "points": [_point(p) for p in r.scores]} for s, r in runs.items()},
           "files": {"table": md, "figure": png}}
    test_at = [p for p in runs["test"].family("advisor") if math.isclose(p.param, chosen)]
    if test_at and req.n_boot > 0:
        out["test_median_delay_interval_s"] = test_at[0].median_interval(req.n_boot)
    path = os.path.join(req.out, "advisor.json")
    with open(path, "w") as f:
        json.dump(jsonable(out), f, indent=1)  # an undetected median (inf) is written as null
    out["files"]["json"] = path
    return out


def _point_name(p: dict[str, Any], base_s: int, chosen: float) -> str:
    if p["family"] == "schedule":
        return f"fixed: every {p['param']:g} s" + (" (base)" if p["param"] == base_s else "")
    if p["family"] == "trend":
        return f"trend: MAP extrapolated < {p['param']:g}"
    return f"advisor: p >= {p['param']:.3g}" + (" (fixed on validation)" if math.isclose(p["param"], chosen) else "")


def section_rows(section: dict[str, Any]) -> list[list[str]]:
    """The test rows of a report's advisor section: fixed schedules, trend levels, the advisor at its threshold."""
    chosen, base_s = section["threshold"], section["config"]["base_interval_s"]
    rows = []
    for p in section["splits"]["test"]["points"]:
        if p["family"] == "advisor" and not math.isclose(p["param"], chosen):
            continue
        med = p["median_delay_s"]
        rows.append([_point_name(p, base_s, chosen), f"{p['inflations_per_h']:.1f}", f"{p['extra_per_h']:+.2f}",
                     str(p["episodes"]), f"{100 * p['detected']:.0f}%" if p["detected"] is not None else "-",
                     "undetected" if med is None and p["episodes"] else _minutes(med if med is not None else math.nan)])
    return rows


def advisor_section_html(section: dict[str, Any] | None, images: dict[str, str], img, table) -> str:
    """The report's advisor section (``img`` and ``table`` are the page's own helpers)."""
    import html

    e = html.escape
    if not section:
        return ""
    head = "<h2>Asking for a cuff reading (simulated closed-loop)</h2>"
    if "error" in section:
        return head + f"<p class='note'>Not run: {e(section['error'])}</p>"
    sim = "<b>SIMULATED</b> (demo cohort). " if section.get("simulated") else ""
    c = section["config"]
    text = (f"<p>{sim}Cuff readings simulated from the arterial line ({c['inflation_s']} s inflation, error "
            f"{e(c['cuff_error'])}); a base schedule every {c['base_interval_s']} s; the model requests an extra "
            f"inflation when p(hypotension) >= {section['threshold']:.3g} ({e(section['threshold_rule'])}), at least "
            f"{c['min_spacing_s']} s after the last one. Detection delay: episode onset (arterial line) to the first "
            "reading with MAP below the threshold; undetected episodes rank last. Test split.</p>")
    cols = ["policy", "inflations/h", "extra/h", "episodes", "detected", "median delay, min"]
    out = head + text + table(cols, [[e(x) for x in r] for r in section_rows(section)])
    if "advisor" in images:
        out += img(images["advisor"], "median detection delay against extra inflations per hour")
    return out
