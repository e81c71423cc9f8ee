"""The PNG figures of ``hypo report`` (matplotlib, Agg backend, imported only when drawing).

Each function takes plain arrays (already computed, no model or data set needed) and writes one PNG:

- :func:`roc_pr_figure`: one-vs-rest ROC and precision-recall curves for hypotension and hypertension, the
  subject-bootstrap band, the last-reading baseline (and any other baseline) and the operating point on the
  same axes;
- :func:`confusion_figure`: the confusion matrix at the operating point (counts and row shares);
- :func:`calibration_figure`: reliability curves of p(hypotension) and p(hypertension), model and baseline;

The prediction timeline and the figure basics they share are :mod:`hypo.infer.timeline`.
"""

from __future__ import annotations

import numpy as np

from hypo.infer.timeline import BASE_COLOR, DPI, MODEL_COLOR, finish_figure, pyplot

OTHER_COLORS = ("#2e8b57", "#8e44ad", "#b8860b")  # further baselines (feature model, last ART minute)


def roc_pr_figure(curves: dict, path: str, title: str = "") -> str:
    """ROC (top row) and precision-recall (bottom row) for hypotension and hypertension.

    Args:
        curves: Class name -> ``{"roc": (fpr, tpr), "roc_band": (grid, lo, hi), "base_roc": (fpr, tpr),
            "pr": (recall, precision), "pr_band": (grid, lo, hi), "base_pr": (recall, precision),
            "prevalence": float, "model_label": str, "base_label": str, "pr_model_label": str,
            "pr_base_label": str, "op": (fpr, tpr, precision), "others": [{"roc", "pr", "label", "pr_label"}]}``
            (``others``: further baselines, e.g. the feature model, drawn dash-dotted).
        path: PNG to write.
        title: Figure title.

    Returns:
        ``path``.
    """
    plt = pyplot()
    names = list(curves)
    fig, axes = plt.subplots(2, len(names), figsize=(5.2 * len(names), 9.4), dpi=DPI, squeeze=False)
    for j, name in enumerate(names):
        c = curves[name]
        ax = axes[0, j]
        grid, lo, hi = c["roc_band"]
        ax.fill_between(grid, lo, hi, color=MODEL_COLOR, alpha=0.18, lw=0, label="95% CI (bootstrap over subjects)")
        ax.plot(*c["roc"], color=MODEL_COLOR, lw=2, label=c["model_label"])
        ax.plot(*c["base_roc"], color=BASE_COLOR, lw=1.5, ls="--", label=c["base_label"])
        for k, o in enumerate(c.get("others", ())):
            ax.plot(*o["roc"], color=OTHER_COLORS[k % len(OTHER_COLORS)], lw=1.4, ls="-.", label=o["label"])
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
        for k, o in enumerate(c.get("others", ())):
            ax.step(*o["pr"], where="post", color=OTHER_COLORS[k % len(OTHER_COLORS)], lw=1.4, ls="-.",
                    label=o["pr_label"])
        ax.axhline(c["prevalence"], color="black", lw=0.6, ls=":", label=f"prevalence {c['prevalence']:.3f}")
        if c.get("op") is not None:
            ax.plot(c["op"][1], c["op"][2], "o", ms=8, mfc="white", mec="black", mew=1.5, label="operating point")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (sensitivity)", ylabel="precision (PPV)",
               title=f"precision-recall: {name} vs rest")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8.5, framealpha=0.85)
    return finish_figure(fig, plt, path, title)


def confusion_figure(cm, classes, path: str, title: str = "", horizon_s: int = 300) -> str:
    """Confusion matrix [true, predicted]: counts, with each row's share in brackets; colour = row share."""
    plt = pyplot()
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
    plt = pyplot()
    names = list(calib)
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.8), dpi=DPI, squeeze=False)
    for ax, name in zip(axes[0], names):
        c = calib[name]
        lines = [(c["model"], MODEL_COLOR, "-o", f"model (ECE {c['ece']:.3f})"),
                 (c["baseline"], BASE_COLOR, "--s", "last-reading baseline")]
        reliability_panel(ax, name, lines, c["model"], "model", f"calibration: {name}", min_count, legend_size=8.5)
    return finish_figure(fig, plt, path, title)


def reliability_panel(ax, name: str, lines, hist_bins: dict, hist_label: str, heading: str, min_count: int,
                      legend_size: float = 8) -> None:
    """Draw one class's reliability panel: the diagonal, curves, and window counts as bars behind.

    One curve per ``(bins, color, style, label)`` in ``lines`` (bins with fewer than ``min_count`` windows left
    out); the bars are ``hist_bins``' window counts. ``bins`` are ``{"pred", "obs", "n"}`` per bin
    (:func:`hypo.evaluate.calibration.reliability`).
    """
    ax.plot([0, 1], [0, 1], color="black", lw=0.6, ls=":", label="perfect calibration")
    for bins, color, style, label in lines:
        keep = np.asarray(bins["n"]) >= min_count  # a handful of windows gives a meaningless share
        ax.plot(np.asarray(bins["pred"])[keep], np.asarray(bins["obs"])[keep], style, color=color, ms=4, lw=1.5,
                label=label)
    hist = ax.twinx()
    hist.bar(hist_bins["pred"], hist_bins["n"], width=0.03, color=MODEL_COLOR, alpha=0.15)
    hist.set_ylabel(f"windows per bin ({hist_label})", fontsize=8, color=MODEL_COLOR)
    hist.tick_params(labelsize=7, colors=MODEL_COLOR)
    hist.set_ylim(0, max(max(hist_bins["n"], default=1) * 4, 1))
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"predicted p({name})", ylabel=f"observed share of {name}",
           title=f"{heading} (bins of >= {min_count} windows)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=legend_size)
