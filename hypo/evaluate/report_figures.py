"""The PNG figures of ``hypo.report`` and ``hypo.predict`` (matplotlib, Agg backend, imported only when drawing).

Each function takes plain arrays (already computed, no model or data set needed) and writes one PNG:

- :func:`roc_pr_figure`: one-vs-rest ROC and precision-recall curves for hypotension and hypertension, the
  subject-bootstrap band, the last-reading baseline and the operating point on the same axes;
- :func:`confusion_figure`: the confusion matrix at the operating point (counts and row shares);
- :func:`calibration_figure`: reliability curves of p(hypotension) and p(hypertension), model and baseline;
- :func:`timeline_figure`: one recording: cuff readings over time, the predicted probabilities with their
  alarm thresholds, and the moments a later cuff reading confirmed hypotension.
"""

from __future__ import annotations

import numpy as np

MODEL_COLOR = "#1f5fa8"
BASE_COLOR = "#7f7f7f"
HYPO_COLOR = "#c0392b"
HYPER_COLOR = "#d68910"
DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_pr_figure(curves: dict, path: str, title: str = "") -> str:
    """ROC (top row) and precision-recall (bottom row) for hypotension and hypertension.

    Args:
        curves: Class name -> ``{"roc": (fpr, tpr), "roc_band": (grid, lo, hi), "base_roc": (fpr, tpr),
            "pr": (recall, precision), "pr_band": (grid, lo, hi), "base_pr": (recall, precision),
            "prevalence": float, "model_label": str, "base_label": str, "pr_model_label": str,
            "pr_base_label": str, "op": (fpr, tpr, precision)}``.
        path: PNG to write.
        title: Figure title.

    Returns:
        ``path``.
    """
    plt = _pyplot()
    names = list(curves)
    fig, axes = plt.subplots(2, len(names), figsize=(5.2 * len(names), 9.4), dpi=DPI, squeeze=False)
    for j, name in enumerate(names):
        c = curves[name]
        ax = axes[0, j]
        grid, lo, hi = c["roc_band"]
        ax.fill_between(grid, lo, hi, color=MODEL_COLOR, alpha=0.18, lw=0, label="95% CI (bootstrap over subjects)")
        ax.plot(*c["roc"], color=MODEL_COLOR, lw=2, label=c["model_label"])
        ax.plot(*c["base_roc"], color=BASE_COLOR, lw=1.5, ls="--", label=c["base_label"])
        ax.plot([0, 1], [0, 1], color="black", lw=0.6, ls=":", label="chance")
        if c.get("op") is not None:
            ax.plot(c["op"][0], c["op"][1], "o", ms=8, mfc="white", mec="black", mew=1.5,
                    label="operating point")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (false positive rate)",
               ylabel="sensitivity (true positive rate)", title=f"ROC: {name} vs rest")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8.5)

        ax = axes[1, j]
        grid, lo, hi = c["pr_band"]
        ax.fill_between(grid, lo, hi, color=MODEL_COLOR, alpha=0.18, lw=0, step="post",
                        label="95% CI (bootstrap over subjects)")
        ax.step(*c["pr"], where="post", color=MODEL_COLOR, lw=2, label=c["pr_model_label"])
        ax.step(*c["base_pr"], where="post", color=BASE_COLOR, lw=1.5, ls="--", label=c["pr_base_label"])
        ax.axhline(c["prevalence"], color="black", lw=0.6, ls=":", label=f"prevalence {c['prevalence']:.3f}")
        if c.get("op") is not None:
            ax.plot(c["op"][1], c["op"][2], "o", ms=8, mfc="white", mec="black", mew=1.5, label="operating point")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (sensitivity)", ylabel="precision (PPV)",
               title=f"precision-recall: {name} vs rest")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8.5, framealpha=0.85)
    return _finish(fig, plt, path, title)


def confusion_figure(cm, classes, path: str, title: str = "", horizon_s: int = 300) -> str:
    """Confusion matrix [true, predicted]: counts, with each row's share in brackets; colour = row share."""
    plt = _pyplot()
    cm = np.asarray(cm, np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.0), dpi=DPI)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]:,}\n({100 * share[i, j]:.1f}%)", ha="center", va="center", fontsize=10,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), list(classes), fontsize=9)
    ax.set_yticks(range(len(classes)), list(classes), fontsize=9, rotation=90, va="center")
    ax.set_xlabel("predicted class")
    ax.set_ylabel(f"true class (blood pressure {horizon_s / 60:g} min later)")
    ax.set_title(title or "confusion matrix at the operating point", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def calibration_figure(calib: dict, path: str, title: str = "", min_count: int = 20) -> str:
    """Reliability curves: mean predicted probability against the observed share, per class.

    Args:
        calib: Class name -> ``{"model": {"pred", "obs", "n"}, "baseline": {...}, "ece": float}``.
        path: PNG to write.
        title: Figure title.
        min_count: Bins with fewer windows are not drawn.
    """
    plt = _pyplot()
    names = list(calib)
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.8), dpi=DPI, squeeze=False)
    for ax, name in zip(axes[0], names):
        c = calib[name]
        ax.plot([0, 1], [0, 1], color="black", lw=0.6, ls=":", label="perfect calibration")
        for key, color, style, label in (("model", MODEL_COLOR, "-o", f"model (ECE {c['ece']:.3f})"),
                                         ("baseline", BASE_COLOR, "--s", "last-reading baseline")):
            b = c[key]
            keep = np.asarray(b["n"]) >= min_count  # a handful of windows gives a meaningless share
            ax.plot(np.asarray(b["pred"])[keep], np.asarray(b["obs"])[keep], style, color=color, ms=4, lw=1.5,
                    label=label)
        hist = ax.twinx()
        m = c["model"]
        hist.bar(m["pred"], m["n"], width=0.03, color=MODEL_COLOR, alpha=0.15)
        hist.set_ylabel("windows per bin (model)", fontsize=8, color=MODEL_COLOR)
        hist.tick_params(labelsize=7, colors=MODEL_COLOR)
        hist.set_ylim(0, max(max(m["n"], default=1) * 4, 1))
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"predicted p({name})", ylabel=f"observed share of {name}",
               title=f"calibration: {name} (bins of >= {min_count} windows)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8.5)
    return _finish(fig, plt, path, title)


def _finish(fig, plt, path: str, title: str, fontsize: float = 12) -> str:
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
    plt = _pyplot()
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
    return _finish(fig, plt, path, title, fontsize=11)
