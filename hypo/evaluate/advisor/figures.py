"""The advisor's figure: median detection delay and episodes detected against extra inflations per hour."""

from __future__ import annotations

import numpy as np

from hypo.evaluate.advisor.scoring import PolicyScore
from hypo.infer.timeline import BASE_COLOR, DPI, MODEL_COLOR, finish_figure, pyplot

TREND_COLOR = "#b8860b"


def _xy(points: list[PolicyScore], attr: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([p.extra_per_h for p in points], np.float64)
    y = np.array([getattr(p, attr) for p in points], np.float64)
    return x, y


def delay_figure(split, chosen: float, path: str, title: str) -> str:
    """Median delay and episodes detected against extra inflations/h, for every policy of a split.

    Two panels: the median delay (min; undetected ranked last, so a median over half
    undetected is off the panel) and the share of episodes detected, for the advisor's thresholds (a curve), the
    trend trigger's levels (a curve) and the fixed schedules (points); the advisor at ``chosen`` circled.

    Args:
        split: A :class:`~hypo.evaluate.advisor.job.SplitRun`.
        chosen: The threshold fixed on validation.
        path: The PNG written.
        title: The figure's title (says SIMULATED for the demo cohort).
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 5.6), dpi=DPI)
    families = (("advisor", "advisor (model risk >= threshold)", MODEL_COLOR, "o-"),
                ("trend", "trend trigger (MAP extrapolated < level)", TREND_COLOR, "s--"))
    for ax, attr, scale, ylabel in ((axes[0], "median_delay_s", 1 / 60, "median detection delay, min"),
                                    (axes[1], "detected", 100, "episodes detected, %")):
        for fam, label, color, style in families:
            pts = split.family(fam)
            x, y = _xy(pts, attr)
            ax.plot(x, y * scale, style, color=color, lw=1.8, ms=5, label=label)
        pts = split.family("schedule")
        x, y = _xy(pts, attr)
        ax.plot(x, y * scale, "D", color=BASE_COLOR, ms=8, label="fixed schedule")
        for p, xi, yi in zip(pts, x, y * scale):
            if np.isfinite(yi):
                ax.annotate(f"every {p.param:g} s", (xi, yi), textcoords="offset points", xytext=(6, 4), fontsize=8)
        at = [p for p in split.family("advisor") if np.isclose(p.param, chosen)]
        if at:
            x, y = _xy(at, attr)
            ax.plot(x, y * scale, "o", ms=14, mfc="none", mec="black", mew=1.8,
                    label=f"advisor at p >= {chosen:.3g} (fixed on validation)")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("extra inflations per hour (over the base schedule)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    return finish_figure(fig, plt, path, title, fontsize=11)
