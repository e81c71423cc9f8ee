"""The horizon table: hypotension by each horizon, for the models and the baselines, with intervals over subjects.

A dataset built with ``hypo windows --horizons`` labels every window at several horizons; the target at horizon
``S`` is "hypotension by S seconds" (:func:`hypo.data.windows.hypotension_by`), scored on the windows where it is
known. Each row gives one score per horizon:

- a model with a per-horizon head (``hazard`` / ``independent``): its risk by each horizon; a 3-class model: its
  p(hypotension) of the primary horizon, the same at every horizon;
- **last reading** (persistence): the last cuff MAP's p(hypotension), the same at every horizon; the **feature
  model** (where the caller has it fitted: ``--test`` and the report): its p(hypotension) at every horizon;
- the comparators of :mod:`hypo.learn.comparators` where the windows carry their inputs: the fixed rules
  **cuff MAP < 72 / < 73** (one operating point: their AUROC is that point's), **MAP extrapolation** extrapolated
  to each horizon, **last DBP**; with ART columns the same on the invasive line, and the last ART minute. The
  curve comparators rank by their value through a fixed ramp (:meth:`~hypo.learn.comparators.OneFeatureLogistic.
  ramp`: the ranking figures do not depend on a fit).

AUROC and AUPRC per row and horizon; AUROC's 95% interval from a bootstrap over subjects
(:mod:`hypo.evaluate.bootstrap`). :func:`horizon_section` writes ``horizons_<split>.csv`` and the figure
``horizons_<split>.png`` (AUROC against horizon, with the intervals).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pandas as pd

from hypo.data.manifest import Manifest
from hypo.data.signals import HYPOTENSION
from hypo.data.windows import hypotension_by
from hypo.evaluate.bootstrap import curve_metrics, interval, subject_weights, weighted_curves
from hypo.learn.baseline import label_config, last_reading_scores, train_prior
from hypo.learn.comparators import (
    ART,
    CUFF,
    FIXED_MAP_THRESHOLDS,
    MODEL_INPUTS,
    OneFeatureLogistic,
    art_extrapolation,
    cuff_extrapolation,
    fixed_name,
)

N_BOOT = 200  # replicates per row and horizon


@dataclasses.dataclass
class HorizonRow:
    """One row of the horizon table: its name, what it reads, and its score [n, H] (or [n]: every horizon)."""

    name: str
    reads: str
    score: np.ndarray
    fixed: bool = False

    def at(self, k: int) -> np.ndarray:
        """The score at horizon ``k``."""
        s = np.asarray(self.score, np.float64)
        return s[:, k] if s.ndim == 2 else s


def model_row(name: str, model, x) -> HorizonRow:
    """A model's row: its risk by each horizon (per-horizon head), else its p(hypotension) at every horizon."""
    from hypo.learn.models import predict_horizon_risk, predict_proba

    if getattr(model.cfg, "n_horizons", 0):
        return HorizonRow(name, MODEL_INPUTS, predict_horizon_risk(model, x))
    return HorizonRow(name, MODEL_INPUTS, predict_proba(model, x)[:, HYPOTENSION])


def baseline_rows(split, manifest: Manifest) -> list[HorizonRow]:
    """The last reading and the comparators that apply to ``split``'s windows (see the module docstring)."""
    label, horizons = label_config(manifest), manifest.horizons_s
    prior = float(train_prior(manifest)[HYPOTENSION])
    lr = last_reading_scores(split.last_map, split.last_sbp, label, train_prior(manifest))[:, HYPOTENSION]
    rows = [HorizonRow("last reading", CUFF, lr)]
    rows += [HorizonRow(fixed_name(t), CUFF, _below(split.last_map, t), fixed=True) for t in FIXED_MAP_THRESHOLDS]
    ramp = OneFeatureLogistic.ramp(label.hypo_map, prior)
    dbp_ramp = OneFeatureLogistic.ramp(label.hypo_map - 20.0, prior)
    if split.has_comparator_inputs:
        rows.append(HorizonRow("MAP extrapolation", CUFF,
                               np.column_stack([ramp.predict(cuff_extrapolation(split, h)) for h in horizons])))
        rows.append(HorizonRow("last DBP", CUFF, dbp_ramp.predict(split.last_dbp)))
    art = np.asarray(split.art_last_map, np.float64)
    if art.size and np.isfinite(art).any():
        rows.append(HorizonRow("last ART minute", ART, last_reading_scores(
            split.art_last_map, split.art_last_sbp, label, train_prior(manifest))[:, HYPOTENSION]))
        rows += [HorizonRow(fixed_name(t, ART), ART, _below(art, t), fixed=True) for t in FIXED_MAP_THRESHOLDS]
        if split.art_earlier_map is not None and split.art_last_dbp is not None:
            rows.append(HorizonRow("ART MAP extrapolation", ART, np.column_stack(
                [ramp.predict(art_extrapolation(split, h, label.event_s)) for h in horizons])))
            rows.append(HorizonRow("last ART DBP", ART, dbp_ramp.predict(split.art_last_dbp)))
    return rows


def _below(values, threshold: float) -> np.ndarray:
    v = np.asarray(values, np.float64)
    with np.errstate(invalid="ignore"):
        return (v < threshold).astype(np.float64)


def horizon_records(split, manifest: Manifest, rows: list[HorizonRow], n_boot: int = N_BOOT,
                    seed: int = 0) -> pd.DataFrame:
    """Every row's hypotension AUROC (with its interval over subjects) and AUPRC at every horizon.

    Args:
        split: The windows (:class:`~hypo.data.dataset.WindowArrays` of a multi-horizon dataset).
        manifest: Its manifest.
        rows: The rows (:func:`model_row`, :func:`baseline_rows`).
        n_boot: Bootstrap replicates (0: no interval).
        seed: Seed of the replicates (the same subjects drawn for every row).

    Returns:
        One record per row and horizon: ``row``, ``reads``, ``fixed``, ``horizon_s``, ``n``, ``prevalence``,
        ``auroc``, ``auroc_lo``, ``auroc_hi``, ``auprc``.
    """
    targets = hypotension_by(split.horizon_labels)
    out = []
    for k, h in enumerate(manifest.horizons_s):
        known = targets[:, k] >= 0
        pos = targets[known, k] == 1
        subjects = np.asarray(split.subjectid)[known]
        for row in rows:
            s = row.at(k)[known]
            point = curve_metrics(weighted_curves(pos, s, np.ones((1, len(s))))) if len(s) else None
            boot = _auroc_interval(pos, s, subjects, n_boot, seed) if n_boot and len(s) else {}
            out.append({"row": row.name, "reads": row.reads, "fixed": row.fixed, "horizon_s": h, "n": int(len(s)),
                        "prevalence": float(pos.mean()) if len(s) else math.nan,
                        "auroc": float(point["auroc"][0]) if point else math.nan,
                        "auroc_lo": boot.get("lo", math.nan), "auroc_hi": boot.get("hi", math.nan),
                        "auprc": float(point["auprc"][0]) if point else math.nan})
    return pd.DataFrame(out)


def _auroc_interval(pos: np.ndarray, score: np.ndarray, subjects: np.ndarray, n_boot: int,
                    seed: int) -> dict[str, float]:
    """AUROC's percentile interval over subject replicates, a block of replicates at a time (bounded memory).

    The same ``seed`` draws the same subjects for every row, so the rows' intervals are paired.
    """
    aurocs = [curve_metrics(weighted_curves(pos, score, w))["auroc"] for w in subject_weights(subjects, n_boot, seed)]
    return interval(np.concatenate(aurocs))


def horizon_markdown(df: pd.DataFrame, where: str) -> str:
    """The table as Markdown: a line per row, a column per horizon, ``AUROC [lo, hi] / AUPRC``."""
    horizons = sorted(df["horizon_s"].unique())
    lines = [f"Hypotension by each horizon ({where}; AUROC [95% interval over subjects] / AUPRC)", "",
             "| row | reads | " + " | ".join(f"by {h / 60:g} min" for h in horizons) + " |",
             "|---|---|" + "---|" * len(horizons)]
    for name, sub in df.groupby("row", sort=False):
        cells = []
        for h in horizons:
            r = sub[sub["horizon_s"] == h].iloc[0]
            ci = f" [{r['auroc_lo']:.3f}, {r['auroc_hi']:.3f}]" if math.isfinite(r["auroc_lo"]) else ""
            cells.append(f"{r['auroc']:.3f}{ci} / {r['auprc']:.3f}" if math.isfinite(r["auroc"]) else "n/a")
        fixed = " (fixed rule: one operating point)" if sub["fixed"].iloc[0] else ""
        lines.append(f"| {name}{fixed} | {sub['reads'].iloc[0]} | " + " | ".join(cells) + " |")
    first = df.drop_duplicates("horizon_s")
    lines += ["", "windows scored (prevalence of hypotension by then): " + ", ".join(
        f"{h / 60:g} min {n} ({100 * p:.1f}%)" for h, n, p in zip(first["horizon_s"], first["n"], first["prevalence"]))]
    return "\n".join(lines)


def horizon_figure(df: pd.DataFrame, path: str, title: str) -> str:
    """AUROC against horizon with the intervals, one line per curve row (the fixed rules left out); writes PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for name, sub in df[~df["fixed"]].groupby("row", sort=False):
        sub = sub.sort_values("horizon_s")
        x = sub["horizon_s"].to_numpy() / 60
        style = "-o" if sub["reads"].iloc[0] == MODEL_INPUTS else "--s"
        line, = ax.plot(x, sub["auroc"], style, label=name, ms=4)
        ax.fill_between(x, sub["auroc_lo"], sub["auroc_hi"], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("horizon: hypotension (MAP < threshold) by this many minutes after the window")
    ax.set_ylabel("AUROC (95% interval over subjects)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def feature_model_row(feature_model, x) -> list[HorizonRow]:
    """The feature model's row (its p(hypotension) at every horizon), or none without one."""
    if feature_model is None:
        return []
    return [HorizonRow("feature model", MODEL_INPUTS, np.asarray(feature_model.scores(x))[:, HYPOTENSION])]


def horizon_section(data_dir: str, split_name: str, models: list[tuple[str, str]], out_dir: str,
                    n_boot: int = N_BOOT, feature_model=None) -> str:
    """The horizon table of ``split_name`` for checkpoints and the baselines, as Markdown; writes CSV and PNG.

    Args:
        data_dir: A dataset built with ``--horizons``.
        split_name: ``val`` or ``test``.
        models: ``(row name, checkpoint)`` pairs.
        out_dir: Where ``horizons_<split>.csv`` and ``horizons_<split>.png`` go.
        n_boot: Bootstrap replicates.
        feature_model: The search's fitted feature model, for its row (none when None).

    Returns:
        The Markdown (empty for a single-horizon dataset).
    """
    from hypo.data.dataset import load_split, read_manifest
    from hypo.learn.checkpoint import load_model

    manifest = read_manifest(data_dir)
    if manifest.horizons is None:
        return ""
    split = load_split(data_dir, split_name, manifest)
    rows = []
    for name, ckpt in models:
        model, cfg = load_model(ckpt)
        rows.append(model_row(name + (f" {cfg.model.head} head" if cfg.model.head != "class" else ""), model, split.x))
    rows += feature_model_row(feature_model, split.x)
    df = horizon_records(split, manifest, rows + baseline_rows(split, manifest), n_boot)
    os.makedirs(out_dir, exist_ok=True)
    df.to_csv(os.path.join(out_dir, f"horizons_{split_name}.csv"), index=False)
    sim = " SIMULATED (demo cohort)" if manifest.simulated else ""
    png = horizon_figure(df, os.path.join(out_dir, f"horizons_{split_name}.png"),
                         f"Hypotension by each horizon, {split_name} split{sim}")
    return horizon_markdown(df, f"{split_name} split{sim}") + f"\n\nfigure: {png}"


def top_checkpoints(exp_path: str, frame: pd.DataFrame, n: int) -> list[tuple[str, str]]:
    """``(row name, checkpoint)`` of the top ``n`` ranked trials of a leaderboard frame (at their best epoch)."""
    from hypo.search.leaderboard import load_trials

    records = {r.trial_id: r for r in load_trials(exp_path)}
    out = []
    for _, r in frame[frame["rank"].notna()].head(n).iterrows():
        rec = records.get(r["trial"])
        best = r.get("best_epoch")
        ckpt = rec.checkpoint_for(int(best)) if rec is not None and best == best and best is not None else None
        if ckpt is not None:
            out.append((f"#{int(r['rank'])} {r['model']}", os.path.join(ckpt, "checkpoint.pt")))
    return out
