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
