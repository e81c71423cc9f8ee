"""Evaluation under channel loss: a model scored with each signal group absent in turn, beside the full input.

A monitor at the next hospital may lack a signal: no MAC under total intravenous anaesthesia, no BIS sensor, a
pleth probe off, no ECG lead, no cuff. Every evaluated model (``hypo leaderboard --test``, ``hypo report``) is
scored on the same windows with each group of :data:`hypo.data.signals.GROUPS` absent in turn (ECG, cuff (NIBP) as
one group of three, PLETH, MAC, BIS), reported as mean AUROC and summed AUPRC per condition.

How a group is made absent depends on what the scored model can take:

- a model that tolerates the group (trained with channel dropout, or not reading it: its ``tolerates_missing``)
  gets NaN there, as the recording would give it;
- a model that does not (trained without channel dropout) gets the group held at its **training mean** (0 after
  its z-score): the one neutral value a deployment could fill in, so its drop is what it loses without the signal;
- the feature model (:mod:`hypo.learn.feature_model`) likewise sees the training mean;
- the last-reading baseline reads only the cuff: with the cuff absent it is **unavailable** (not computed), else
  unchanged; the last-ART-minute baseline reads the arterial line, never an input, and is unchanged.

    table = channel_loss_rows(model, cfg.model, test, manifest, baselines=..., feature_model=fm)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hypo.data.manifest import Manifest
from hypo.data.signals import GROUP_NAMES, GROUP_TITLES, GROUPS
from hypo.jsonio import metric_text
from hypo.learn.metrics import evaluate_scores

CONDITIONS: tuple[str, ...] = ("full", *GROUP_NAMES)
FULL = "full"
UNAVAILABLE = "unavailable"
NOTE = ("Each group absent in turn, on the same windows: a model that takes missing groups (trained with channel "
        "dropout, or not reading the group) gets NaN there; any other model, and the feature model, get the group "
        "held at its training mean (0 after the z-score). The last-reading baseline needs the cuff, so it is "
        "unavailable without it; baselines that read no input group are unchanged.")


def condition_title(condition: str) -> str:
    """Column title of a condition: ``full input`` or ``MAC absent``."""
    return "full input" if condition == FULL else f"{GROUP_TITLES[condition]} absent"


def without_group(x: np.ndarray, group: str, fill: np.ndarray | None = None) -> np.ndarray:
    """A copy of windows ``x`` [n, steps, 7] with one signal group absent.

    Args:
        x: Windows in physical units.
        group: A name of :data:`hypo.data.signals.GROUPS`.
        fill: Per-signal values (7) to hold the group at (the training mean), or None for NaN.
    """
    out = np.array(x, dtype=np.float32, copy=True)
    for i in GROUPS[group]:
        out[:, :, i] = np.nan if fill is None else np.float32(fill[i])
    return out


def _metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    m = evaluate_scores(y, scores, warn=False)
    return {"mean_auroc": float(m["mean_auroc"]), "sum_auprc": float(m["sum_auprc"])}


def model_channel_loss(model, model_cfg, x: np.ndarray, y: np.ndarray, mean) -> dict[str, dict[str, float]]:
    """A deep model's mean AUROC and summed AUPRC with the full input and with each group absent.

    Args:
        model: A model of :func:`hypo.learn.models.build_model` (eval mode).
        model_cfg: Its :class:`hypo.learn.models.ModelConfig` (which groups it tolerates as NaN).
        x: Windows [n, steps, 7] in physical units.
        y: Labels [n].
        mean: The training split's per-signal means (the model's z-score mean).

    Returns:
        Condition (:data:`CONDITIONS`) -> ``{"mean_auroc", "sum_auprc"}``.
    """
    from hypo.learn.models import predict_proba

    tolerated = set(model_cfg.tolerates_missing)
    mean = np.asarray(mean, np.float32)
    out = {FULL: _metrics(y, predict_proba(model, x))}
    for g in GROUP_NAMES:
        out[g] = _metrics(y, predict_proba(model, without_group(x, g, None if g in tolerated else mean)))
    return out


def how_absent(model_cfg) -> str:
    """How absent groups reach a model, in a few words (for the table)."""
    tolerated = set(model_cfg.tolerates_missing)
    if tolerated >= set(GROUP_NAMES) and model_cfg.mask:
        return "absent groups as NaN (trained with channel dropout)"
    if tolerated:
        return f"NaN for {', '.join(sorted(tolerated))} (not read), training mean otherwise"
    return "absent groups held at the training mean"


def baseline_channel_loss(baselines, y: np.ndarray, x: np.ndarray, mean,
                          feature_model=None) -> list[dict[str, Any]]:
    """Every baseline's row of the channel-loss table.

    Args:
        baselines: :class:`hypo.learn.baselines.BaselineScores` of the split, in row order.
        y: Labels [n].
        x: The split's windows (the feature model is rescored on them with each group at its training mean).
        mean: Training means per signal.
        feature_model: The fitted feature model behind the ``feature model`` row, if any.

    Returns:
        One row per baseline (see :func:`channel_loss_rows`).
    """
    from hypo.learn.baselines import FEATURE_MODEL, LAST_READING

    rows = []
    mean = np.asarray(mean, np.float32)
    for b in baselines:
        full = _metrics(y, b.scores)
        cells: dict[str, Any] = {FULL: full}
        for g in GROUP_NAMES:
            if b.name == FEATURE_MODEL and feature_model is not None:
                cells[g] = _metrics(y, feature_model.scores(without_group(x, g, mean)))
            elif b.name == LAST_READING and g == "nibp":
                cells[g] = None  # it is the last cuff reading: without the cuff there is nothing to score
            else:
                cells[g] = full  # reads no input group (the last reading reads only the cuff)
        how = ("absent groups held at the training mean" if b.name == FEATURE_MODEL
               else "reads the cuff only: unavailable without it" if b.name == LAST_READING
               else "reads no input signal")
        rows.append({"name": f"baseline: {b.name}", "model": b.model, "how": how, "metrics": cells})
    return rows


def channel_loss_rows(model, model_cfg, split, manifest: Manifest, name: str = "this trial",
                      baselines=None, feature_model=None) -> list[dict[str, Any]]:
    """The channel-loss table of one model and the baselines on one split.

    Args:
        model: The trained model.
        model_cfg: Its ModelConfig.
        split: Windows with ``x`` and ``label`` (``WindowArrays``).
        manifest: The dataset's manifest (the training means of its z-score).
        name: The model's row name.
        baselines: :func:`hypo.learn.baselines.split_baselines` of the same split, or None for no baseline rows.
        feature_model: The fitted feature model behind the baselines' ``feature model`` row.

    Returns:
        Rows ``{"name", "model", "how", "metrics"}``; ``metrics`` maps each condition to ``{"mean_auroc",
        "sum_auprc"}``, or to None where the row is unavailable.
    """
    mean = np.asarray(manifest.zscore.mean, np.float32)
    y = np.asarray(split.label, np.int64)
    rows = [{"name": name, "model": f"{model_cfg.name} k={model_cfg.k}", "how": how_absent(model_cfg),
             "metrics": model_channel_loss(model, model_cfg, split.x, y, mean)}]
    if baselines:
        rows += baseline_channel_loss(baselines, y, split.x, mean, feature_model)
    return rows


def cell(metrics: dict[str, float] | None) -> str:
    """One table cell: ``mean AUROC / summed AUPRC``, ``unavailable``, or ``n/a`` for an undefined metric."""
    if metrics is None:
        return UNAVAILABLE
    return f"{metric_text(metrics['mean_auroc'])} / {metric_text(metrics['sum_auprc'])}"


def table_cells(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the channel-loss table (rows as given, one column per condition)."""
    header = ["row", *(condition_title(c) for c in CONDITIONS)]
    return header, [[r["name"], *(cell(r["metrics"].get(c)) for c in CONDITIONS)] for r in rows]


def format_markdown(rows: list[dict[str, Any]], where: str = "test split") -> str:
    """The channel-loss table in Markdown, with its legend."""
    header, body = table_cells(rows)
    lines = [f"Channel loss ({where}, same windows; cells: mean AUROC / AUPRC hypo+hyper):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += ["", NOTE]
    lines += [f"- {r['name']}: {r['how']}" for r in rows if not r["name"].startswith("baseline: ")]
    return "\n".join(lines)


def long_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table in long form (one row per model and condition), for CSV and JSON."""
    out = []
    for r in rows:
        for c in CONDITIONS:
            m = r["metrics"].get(c)
            out.append({"row": r["name"], "model": r["model"], "condition": c, "available": m is not None,
                        "mean_auroc": m["mean_auroc"] if m else math.nan,
                        "sum_auprc": m["sum_auprc"] if m else math.nan})
    return out
