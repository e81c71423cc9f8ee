"""The prediction timeline figure, and the figure basics the report shares (matplotlib, Agg, imported when drawing).

:func:`timeline_figure` draws one recording: cuff readings over time, the predicted probabilities with their
alarm thresholds, and the moments a later cuff reading confirmed hypotension. :func:`pyplot` and
:func:`finish_figure` are the start and end of every hypo figure (``hypo.evaluate.testsplit.report_figures`` uses them).
"""

from __future__ import annotations

import numpy as np

MODEL_COLOR = "#1f5fa8"
BASE_COLOR = "#7f7f7f"
HYPO_COLOR = "#c0392b"
HYPER_COLOR = "#d68910"
DPI = 100


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_figure(fig, plt, path: str, title: str, fontsize: float = 12) -> str:
    """Title, layout, save and close a figure; return its path."""
    if title:
        fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the True runs of ``mask``."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[::2], edges[1::2]))


def _break_at_gaps(t: np.ndarray, max_gap: float, *series: np.ndarray) -> tuple[np.ndarray, ...]:
    """``t`` and ``series`` with a NaN inserted between consecutive times more than ``max_gap`` apart.

    Lines are then not drawn across a stretch without readings.
    """
    t = np.asarray(t, np.float64)
    cut = np.flatnonzero(np.diff(t) > max_gap) + 1
    if not len(cut):
        return (t, *(np.asarray(s, np.float64) for s in series))
    return tuple(np.insert(np.asarray(a, np.float64), cut, np.nan) for a in (t, *series))


def timeline_figure(t_end, probs, readings: dict, confirmed_t, thresholds: dict, path: str, title: str = "",
                    stride_s: int = 60) -> str:
    """One recording over time: cuff readings above, predicted probabilities below.

    Args:
        t_end: int [w] window ends (s from the start of the recording).
        probs: float [w, 3] class probabilities (NaN rows: no prediction, drawn as a shaded gap).
        readings: ``{"time", "sbp", "map", "dbp"}`` arrays of the cuff readings (artefacts removed).
        confirmed_t: Window ends whose later cuff reading (at end + horizon, within tolerance) was hypotensive.
        thresholds: ``{"hypo_map", "hyper_sbp", "p_hypotension", "p_hypertension", "horizon_s"}`` and
            optionally ``"max_gap_s"``: readings further apart are not joined by a line (default 900 s).
        path: PNG to write.
        title: Figure title.
        stride_s: Seconds between window ends (how wide a gap marker is).
    """
    plt = pyplot()
    t_end = np.asarray(t_end, np.float64)
    probs = np.asarray(probs, np.float64)
    span_s = max(float(t_end.max()) if len(t_end) else 0.0, float(np.max(readings["time"], initial=0)))
    hours = span_s > 2 * 3600
    scale, unit = (3600.0, "hours") if hours else (60.0, "minutes")
    fig, (top, bot) = plt.subplots(2, 1, figsize=(12, 7.6), dpi=DPI, sharex=True,
                                   gridspec_kw={"height_ratios": [1.15, 1]})
    rt = np.asarray(readings["time"], np.float64) / scale
    lt, sbp, map_, dbp = _break_at_gaps(rt, thresholds.get("max_gap_s", 900) / scale, readings["sbp"],
                                        readings["map"], readings["dbp"])
    top.fill_between(lt, dbp, sbp, color="#5d6d7e", alpha=0.12, lw=0, step=None)
    top.plot(lt, sbp, "v-", color="#34495e", ms=3.5, lw=0.8, label="cuff SBP")
    top.plot(lt, map_, "o-", color="black", ms=3.5, lw=1.2, label="cuff MAP")
    top.plot(lt, dbp, "^-", color="#34495e", ms=3.5, lw=0.8, label="cuff DBP")
    top.axhline(thresholds["hypo_map"], color=HYPO_COLOR, lw=1.2, ls="--",
                label=f"hypotension: MAP < {thresholds['hypo_map']:g} mmHg")
    top.axhline(thresholds["hyper_sbp"], color=HYPER_COLOR, lw=1.2, ls="--",
                label=f"hypertension: SBP > {thresholds['hyper_sbp']:g} mmHg")
    low = readings["map"] < thresholds["hypo_map"]
    top.plot(rt[low], np.asarray(readings["map"])[low], "o", color=HYPO_COLOR, ms=6, label="hypotensive reading")
    top.set_ylabel("non-invasive blood pressure (mmHg)")
    top.set_ylim(20, max(200, float(np.nanmax(readings["sbp"], initial=0)) + 10))
    top.grid(alpha=0.3)
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.01), fontsize=8, ncol=4, frameon=False)

    x = t_end / scale
    bot.plot(x, probs[:, 1], color=HYPO_COLOR, lw=1.6, label="p(hypotension in 5 min)")
    bot.plot(x, probs[:, 2], color=HYPER_COLOR, lw=1.6, label="p(hypertension in 5 min)")
    for key, color in (("p_hypotension", HYPO_COLOR), ("p_hypertension", HYPER_COLOR)):
        if np.isfinite(thresholds.get(key, np.nan)):
            bot.axhline(thresholds[key], color=color, lw=1, ls=":",
                        label=f"{key[2:]} alarm threshold {thresholds[key]:.2f}")
    missing = ~np.isfinite(probs).all(axis=1)
    half = stride_s / 2 / scale
    for i, (a, b) in enumerate(_spans(missing)):
        for ax in (top, bot):
            ax.axvspan(x[a] - half, x[b - 1] + half, color="#d5d8dc", alpha=0.6, lw=0,
                       label="no prediction (incomplete window)" if (i == 0 and ax is bot) else None)
    ct = np.asarray(confirmed_t, np.float64) / scale
    if len(ct):
        bot.plot(ct, np.full(len(ct), 1.04), "|", color=HYPO_COLOR, ms=10, mew=2, clip_on=False,
                 label=f"a cuff reading {thresholds.get('horizon_s', 300) // 60:g} min later confirmed hypotension")
    bot.set_ylim(0, 1.08)
    bot.set_ylabel("predicted probability")
    bot.set_xlabel(f"time since the start of the recording ({unit}); each prediction is drawn at its window's end")
    bot.grid(alpha=0.3)
    bot.legend(loc="upper left", bbox_to_anchor=(0, -0.16), fontsize=8, ncol=3, frameon=False)
    return finish_figure(fig, plt, path, title, fontsize=11)
