"""The PNG figures of ``hypo evaluate`` (matplotlib, Agg backend, imported only when drawing).

- :func:`reliability_figure`: reliability curves of p(hypotension) and p(hypertension) on the other site, one
  line per evaluation set (the model, or before and after recalibration), with ECE and calibration slope;
- :func:`decision_curve_figure`: net benefit of alarming on p(hypotension) across thresholds, against alarming
  always and never.
"""

from __future__ import annotations

import numpy as np

from hypo.evaluate.testsplit.report_figures import reliability_panel
from hypo.infer.timeline import BASE_COLOR, DPI, MODEL_COLOR, finish_figure, pyplot

STAGE_STYLE = {"model": (MODEL_COLOR, "-o", "model"), "before": (BASE_COLOR, "--s", "before recalibration"),
               "after": (MODEL_COLOR, "-o", "after recalibration")}


def reliability_figure(calib: dict, path: str, title: str = "", min_count: int = 20) -> str:
    """Reliability curves per abnormal class, one line per evaluation set.

    Args:
        calib: Stage (``model``, ``before``, ``after``) -> :func:`hypo.evaluate.calibration.class_calibration`.
        path: PNG to write.
        title: Figure title.
        min_count: Bins with fewer windows are not drawn.
    """
    plt = pyplot()
    names = ("hypotension", "hypertension")
    fig, axes = plt.subplots(1, len(names), figsize=(5.4 * len(names), 5.0), dpi=DPI, squeeze=False)
    for ax, name in zip(axes[0], names):
        lines = []
        for stage, per_class in calib.items():
            c = per_class[name]
            color, style, what = STAGE_STYLE.get(stage, (MODEL_COLOR, "-o", stage))
            lines.append((c["reliability"], color, style,
                          f"{what}: ECE {c['ece']:.3f}, slope {c['slope']:.2f}, Brier {c['brier']:.3f}"))
        last = list(calib)[-1]
        reliability_panel(ax, name, lines, calib[last][name]["reliability"], last, f"{name} vs rest", min_count)
    return finish_figure(fig, plt, path, title, fontsize=11)


def decision_curve_figure(curves: dict, path: str, title: str = "") -> str:
    """Net benefit against the threshold probability, per evaluation set, with 'alarm always' and 'never'.

    Args:
        curves: Stage -> :func:`hypo.evaluate.calibration.decision_curve` output.
        path: PNG to write.
        title: Figure title.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.4, 5.0), dpi=DPI)
    first = curves[list(curves)[0]]
    t = np.asarray(first["threshold"])
    tops = []
    for stage, c in curves.items():
        color, style, what = STAGE_STYLE.get(stage, (MODEL_COLOR, "-", stage))
        ax.plot(t, c["model"], style.replace("o", "").replace("s", ""), color=color, lw=1.8,
                label=f"alarm on the model ({what})")
        tops.append(max(c["model"]))
    ax.plot(t, first["all"], color="#c0392b", lw=1.2, label="alarm always")
    ax.axhline(0, color="black", lw=1.0, label="never alarm")
    top = max([*tops, first["all"][0], 0.01])
    ax.set(xlim=(0, min(0.8, t[-1])), ylim=(-0.1 * top, 1.1 * top), xlabel="threshold probability of hypotension",
           ylabel="net benefit per window")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8.5)
    return finish_figure(fig, plt, path, title, fontsize=10.5)
