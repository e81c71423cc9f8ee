"""The alarm figures of ``hypo report`` (matplotlib, Agg; the result's rows and plain arrays in, one PNG out each).

- :func:`aoc_figure`: episode sensitivity against false alarms per hour over every threshold (the alarm operating
  characteristic), the model with its subject-bootstrap band, each baseline, and the operating points fixed on
  validation;
- :func:`lead_histogram`: lead times of the caught episodes at the false-alarm target;
- :func:`example_timelines`: three recordings (an episode caught, one missed, a false alarm) with events and
  alarms drawn.
"""

from __future__ import annotations

import numpy as np

from hypo.evaluate.alarms.result import AlarmRow
from hypo.infer.timeline import BASE_COLOR, DPI, HYPO_COLOR, MODEL_COLOR, finish_figure, pyplot

ROW_COLORS = (MODEL_COLOR, "#17becf", "#9467bd", "#e377c2")  # models
BASELINE_COLORS = {"last reading": BASE_COLOR, "feature model": "#2e8b57", "last ART minute": "#b8860b",
                   "cuff every 2.5 min (simulated)": "#8e44ad"}
STATUS_COLORS = {"true": "#27ae60", "false": "#c0392b", "in episode": "#7f8c8d", "not counted": "#bdc3c7"}


def _color(row: AlarmRow, i: int) -> str:
    return ROW_COLORS[i % len(ROW_COLORS)] if row.role == "model" else BASELINE_COLORS.get(row.name, "black")


def _arr(values) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], np.float64)


def aoc_figure(rows: list[AlarmRow], path: str, title: str = "", fa_max: float = 6.0) -> str:
    """Sensitivity against false alarms per hour for every row of an alarm result (see the module docstring)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.6, 6.0), dpi=DPI)
    models = 0
    for row in rows:
        c, color = row.curve, _color(row, models)
        model = row.role == "model"
        models += model
        label = ("" if model else "baseline: ") + row.name
        grid, env = np.asarray(c["grid"]), _arr(c["envelope"])
        if model and c.get("lo") is not None:
            ax.fill_between(grid, _arr(c["lo"]), _arr(c["hi"]), step="post", color=color, alpha=0.18, lw=0,
                            label=f"{label}: 95% band (bootstrap over subjects)")
        if len(c["thresholds"]) > 1:
            ax.step(grid, env, where="post", color=color, lw=2.2 if model else 1.5,
                    ls="-" if model else "--", label=label)
        for j, (op, marker) in enumerate((("fa_target", "o"), ("sens_target", "s"))):
            p = row.operating_points.get(op)
            if p and p["fa_per_h"]["value"] is not None and p["sensitivity"]["value"] is not None:
                single = len(c["thresholds"]) <= 1  # a fixed threshold: one point, no curve
                ax.plot(min(p["fa_per_h"]["value"], fa_max), p["sensitivity"]["value"], "D" if single else marker,
                        ms=8, mfc="white", mec=color, mew=2, label=f"{label} (fixed threshold)" if single and not j
                        else None)
    ax.plot([], [], "o", mfc="white", mec="black", label="threshold fixed on validation: false-alarm target")
    ax.plot([], [], "s", mfc="white", mec="black", label="threshold fixed on validation: sensitivity target")
    ax.set(xlim=(0, fa_max), ylim=(0, 1.02), xlabel="false alarms per hour (outside episodes and induction)",
           ylabel="episode sensitivity (alarm 15 to 1 min before onset)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    return finish_figure(fig, plt, path, title, fontsize=11)


def lead_histogram(leads: dict[str, np.ndarray], path: str, title: str = "", lead_max_s: int = 900) -> str:
    """Histogram of lead times (minutes) of caught episodes, one series per row name."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.6, 4.4), dpi=DPI)
    bins = np.arange(0, lead_max_s / 60 + 1.0, 1.0)
    for i, (name, values) in enumerate(leads.items()):
        v = np.asarray(values, np.float64) / 60
        color = ROW_COLORS[0] if i == 0 else BASELINE_COLORS.get(name.removeprefix("baseline: "), "grey")
        ax.hist(v, bins=bins, histtype="stepfilled" if i == 0 else "step", alpha=0.35 if i == 0 else 1.0,
                color=color, lw=2, label=f"{name}: {len(v)} caught, median {np.median(v):.1f} min" if len(v)
                else f"{name}: none caught")
    ax.set(xlabel=f"lead time (minutes before onset; capped at {lead_max_s / 60:g})", ylabel="episodes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return finish_figure(fig, plt, path, title, fontsize=11)


def example_timelines(examples: list[dict], path: str, title: str = "") -> str:
    """One panel per example recording: p(hypotension), threshold, alarms by status, episodes, blood pressure.

    Args:
        examples: Dicts with ``title``, ``window`` (s, s), ``t`` and ``p`` (the model's predictions), ``threshold``,
            ``hysteresis``, ``story`` (:func:`hypo.evaluate.alarms.metrics.case_story`), ``readings`` ``(t, map)``
            of the cuff, optionally ``art`` ``(t, map)``, ``hypo_map``, ``lead_max_s``, ``lead_min_s``.
        path: PNG to write.
        title: Figure title.
    """
    plt = pyplot()
    n = max(len(examples), 1)
    fig, axes = plt.subplots(n, 1, figsize=(14.0, 3.3 * n), dpi=DPI, squeeze=False)
    for ax, ex in zip(axes[:, 0], examples):
        lo, hi = ex["window"]
        t, p = np.asarray(ex["t"], np.float64), np.asarray(ex["p"], np.float64)
        keep = (t >= lo) & (t <= hi)
        ax.plot(t[keep] / 60, p[keep], color=MODEL_COLOR, lw=1.5, label="p(hypotension)")
        ax.axhline(ex["threshold"], color=MODEL_COLOR, lw=1, ls="--", label=f"threshold {ex['threshold']:.3f}")
        ax.axhline(ex["threshold"] - ex["hysteresis"], color=MODEL_COLOR, lw=0.8, ls=":",
                   label="threshold - hysteresis")
        seen = set()
        for a in ex["story"]["alarms"]:
            if a["end"] < lo or a["start"] > hi:
                continue
            st = a["status"]
            ax.axvspan(a["start"] / 60, a["end"] / 60, ymin=0.0, ymax=0.08, color=STATUS_COLORS[st], lw=0,
                       label=None if st in seen else f"alarm ({st})")
            seen.add(st)
        for e in ex["story"]["episodes"]:
            if e["end"] < lo or e["onset"] > hi:
                continue
            ax.axvspan(e["onset"] / 60, e["end"] / 60, color=HYPO_COLOR, alpha=0.15, lw=0,
                       label=None if "episode" in seen else "hypotension episode (line: onset)")
            seen.add("episode")
            ax.axvline(e["onset"] / 60, color=HYPO_COLOR, lw=1.2)
            if e["kind"] == "scored":
                a, b = (e["onset"] - ex["lead_max_s"]) / 60, (e["onset"] - ex["lead_min_s"]) / 60
                ax.plot([a, b], [0.97, 0.97], color="black", lw=3, solid_capstyle="butt",
                        label=None if "window" in seen else "where an alarm must be on (15 to 1 min before onset)")
                seen.add("window")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(lo / 60, hi / 60)
        ax.set_ylabel("p(hypotension)")
        ax.set_title(ex["title"], fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        bp = ax.twinx()
        rt, rm = (np.asarray(v, np.float64) for v in ex["readings"])
        sel = (rt >= lo) & (rt <= hi)
        bp.plot(rt[sel] / 60, rm[sel], "o", color="black", ms=3.5, label="cuff MAP")
        if ex.get("art") is not None:
            at, am = (np.asarray(v, np.float64) for v in ex["art"])
            sel = (at >= lo) & (at <= hi)
            bp.plot(at[sel] / 60, am[sel], "-", color="#8e44ad", lw=0.9, label="ART MAP (every 2.5 min)")
        bp.axhline(ex["hypo_map"], color=HYPO_COLOR, lw=0.8, ls="--", label=f"MAP {ex['hypo_map']:g} mmHg")
        bp.set_ylim(30, 130)
        bp.set_ylabel("MAP (mmHg)")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = bp.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.07, 1.0), frameon=False)
    axes[-1, 0].set_xlabel("time since the start of the recording (minutes)")
    return finish_figure(fig, plt, path, title, fontsize=11)
