"""Export a search's trial (by default the leaderboard's first) with the sidecar that says what it was.

The format itself (trace, input guard, write, load) is :mod:`hypo.infer.export`; this module is the
orchestration above it: choose the trial, fix the alarm thresholds on its validation split, collect its
metrics (and the test metrics of a report of the same checkpoint), and write it.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

import numpy as np
import torch

from hypo import __version__
from hypo.config import to_dict
from hypo.data.manifest import Manifest
from hypo.data.signals import CLASSES, GROUPS, SIGNALS, UNITS
from hypo.errors import ConfigError, HypoError
from hypo.infer.export import (
    FORMAT,
    TOLERANCE,
    VERIFY_WINDOWS,
    check_out_file,
    max_difference,
    trace_model,
    window_config,
    write_exported,
)
from hypo.jsonio import finite
from hypo.learn.operating_point import SPECIFICITY, alarm_thresholds, describe


def _metric_subset(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    keys = ["mean_auroc", "sum_auprc"] + [f"{m}_{c}" for c in CLASSES for m in ("auroc", "auprc", "prevalence")]
    return {k: finite(row.get(f"{prefix}{k}")) for k in keys}


def _test_metrics(chosen, sha: str) -> dict[str, Any] | None:
    """The test summary of ``hypo report`` for this very checkpoint, if a report was written (the default folder)."""
    path = os.path.join(chosen.exp_path, "report", "report.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rep = json.load(f)
    if rep.get("provenance", {}).get("checkpoint_sha256") != sha:
        return None
    b = rep["bootstrap"]
    out = {"source": path, "n_windows": rep["n_windows"], "n_subjects": rep["n_subjects"],
           "mean_auroc": b["mean_auroc"], "sum_auprc": b["sum_auprc"]}
    for c in ("hypotension", "hypertension"):
        out[c] = {k: b[c][k] for k in ("auroc", "auprc", "sens_at_spec", "prevalence")}
    return out


def missing_values_text(tolerated: list[str]) -> str:
    """The sidecar's ``input.missing_values``: where NaN may stand (the groups a model tolerates) and what it means."""
    if not tolerated:
        return ("none allowed: a window holding NaN gets NaN probabilities; fill gaps with the fill rule below first "
                "(hypo predict does, and skips windows it cannot fill)")
    groups = ", ".join(f"{g} ({'/'.join(SIGNALS[i] for i in GROUPS[g])})" for g in tolerated)
    return (f"NaN allowed in these signal groups (see tolerates_missing): {groups}; the model takes a group holding "
            "NaN as absent. NaN elsewhere gives NaN probabilities; fill gaps with the fill rule below first")


def build_sidecar(chosen, manifest: Manifest, cfg, ckpt: dict, thresholds: dict[str, float], specificity: float,
                  max_diff: float, checkpoint_sha: str) -> dict[str, Any]:
    """The sidecar dict (see the module docstring)."""
    from hypo.config import fingerprint

    wc = window_config(manifest)
    best = chosen.record.best() or {}
    baselines = chosen.meta.baselines
    tolerated = list(cfg.model.tolerates_missing)
    return {
        "format": FORMAT,
        "input": {"shape": ["n", manifest.window_s, len(SIGNALS)], "dtype": "float32",
                  "units": "physical (see units); no normalisation needed: the train-split z-score is inside",
                  "missing_values": missing_values_text(tolerated)},
        "tolerates_missing": tolerated,
        "signals_read": list(cfg.model.signals),
        "output": {"shape": ["n", len(CLASSES)], "meaning": "class probabilities (softmax)", "classes": list(CLASSES)},
        "signals": list(SIGNALS),
        "units": dict(UNITS),
        "window_s": manifest.window_s,
        "stride_s": int(manifest.stride_s if manifest.stride_s is not None else wc.stride_s),
        "horizon_s": int(manifest.label.horizon_s),
        "label": to_dict(manifest.label),
        "thresholds": {
            "hypo_map": float(manifest.label.hypo_map),
            "hyper_sbp": float(manifest.label.hyper_sbp),
            "p_hypotension": finite(thresholds["hypotension"]),
            "p_hypertension": finite(thresholds["hypertension"]),
            "specificity": specificity,
            "chosen_on": "validation",
            "rule": describe(specificity),
        },
        "fill": to_dict(wc.fill),
        "nibp_merge_s": int(wc.nibp_merge_s),
        "min_case_s": int(wc.min_case_s),
        "zscore": ckpt["zscore"],
        "model": to_dict(cfg.model),
        "trial": {"id": chosen.trial_id, "rank": chosen.rank, "epoch": chosen.epoch, "loss": cfg.loss,
                  "gamma": cfg.gamma, "channel_dropout": cfg.channel_dropout, "experiment": chosen.exp_path,
                  "checkpoint": chosen.checkpoint},
        "metrics": {"val": _metric_subset(best, "val_"),
                    "val_baseline": _metric_subset(baselines[0].metrics if baselines else {}, "val_"),
                    "val_baselines": {b.name: _metric_subset(b.metrics, "val_") for b in baselines},
                    "test": _test_metrics(chosen, checkpoint_sha)},
        "fingerprints": {
            "dataset": manifest.fingerprint,
            "checkpoint_dataset": ckpt["dataset_fingerprint"],
            "config": fingerprint(cfg),
            "search": chosen.meta.search_fingerprint,
            "checkpoint_sha256": checkpoint_sha,
        },
        "source": {"name": manifest.source.name, "simulated": manifest.simulated,
                   "cohort": manifest.cohort},
        "verification": {"max_abs_difference": max_diff, "tolerance": TOLERANCE},
        "hypo_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def trace_trial(exp_path: str, trial: str | None = None, specificity: float = SPECIFICITY, val=None):
    """The chosen trial as :func:`export_model` would write it, in memory: its checked trace and its sidecar.

    The alarm evaluation scores a trial through this (:mod:`hypo.evaluate.alarms.evaluation`), so what it evaluates is
    exactly what ``hypo export`` deploys, without writing a file.

    Args:
        exp_path: Experiment folder of a search.
        trial: Trial id (default: the leaderboard's first).
        specificity: Specificity of the sidecar's alarm thresholds, fixed on the validation split.
        val: The dataset's validation split if already loaded (read otherwise).

    Returns:
        ``(chosen, traced, sidecar, cfg)``: the :class:`~hypo.evaluate.trials.ChosenTrial`, the TorchScript
        module, the sidecar dict (without ``model_sha256``: nothing was written) and the trial's TrainConfig.

    Raises:
        HypoError: When the trace disagrees with the eager model, the validation split is empty, or anything
            :func:`hypo.evaluate.trials.choose_trial` and :func:`hypo.evaluate.trials.load_trial` refuse.
    """
    from hypo.data.dataset import load_split
    from hypo.evaluate.trials import choose_trial, load_trial
    from hypo.learn.models import predict_proba
    from hypo.storage import sha256_file

    if not 0 < specificity < 1:
        raise ConfigError(f"--specificity must be in (0, 1), got {specificity}")
    chosen = choose_trial(exp_path, trial)
    model, cfg, ckpt, manifest = load_trial(chosen)
    val = val if val is not None else load_split(chosen.data_dir, "val", manifest)
    if len(val) == 0:
        raise HypoError(f"{chosen.data_dir}: the validation split is empty; cannot fix the alarm thresholds")
    thresholds = alarm_thresholds(val.label, predict_proba(model, val.x), specificity)
    windows = val.x[:VERIFY_WINDOWS]
    traced = trace_model(model, torch.as_tensor(np.ascontiguousarray(windows[:8])))
    diff = max_difference(traced, model, windows)
    if not diff <= TOLERANCE:
        raise HypoError(f"the TorchScript trace differs from the model by {diff:.2e} (> {TOLERANCE:g}); not written")
    sidecar = build_sidecar(chosen, manifest, cfg, ckpt, thresholds, specificity, diff,
                            sha256_file(os.path.join(chosen.checkpoint, "checkpoint.pt")))
    return chosen, traced, sidecar, cfg


def export_model(exp_path: str, out: str, trial: str | None = None, specificity: float = SPECIFICITY,
                 log=print) -> dict[str, Any]:
    """Export the chosen trial's best checkpoint as TorchScript plus sidecar.

    Args:
        exp_path: Experiment folder of a search.
        out: Path of the TorchScript file (the sidecar goes beside it, suffix ``.json``).
        trial: Trial id (default: the leaderboard's first).
        specificity: Specificity of the alarm thresholds, fixed on the validation split.
        log: Where summary lines go.

    Returns:
        The sidecar (with ``model_sha256``), as written.

    Raises:
        HypoError: When the trace disagrees with the eager model, or anything :func:`hypo.evaluate.trials.choose_trial`
            and :func:`hypo.evaluate.trials.load_trial` refuse.
    """
    if not 0 < specificity < 1:
        raise ConfigError(f"--specificity must be in (0, 1), got {specificity}")
    check_out_file(out)
    chosen, traced, sidecar, cfg = trace_trial(exp_path, trial, specificity)
    out, side_path = write_exported(traced, sidecar, out)
    t = sidecar["thresholds"]
    diff = sidecar["verification"]["max_abs_difference"]
    log(f"trial {chosen.trial_id} (rank {chosen.rank}: {cfg.model.name} k={cfg.model.k} {cfg.loss}), epoch "
        f"{chosen.epoch}; trace matches the model within {diff:.1e}"
        + ("  [trained on simulated data]" if sidecar["source"]["simulated"] else ""))
    log(f"  alarm thresholds (validation, {100 * specificity:.0f}% specificity): p(hypotension) >= "
        f"{t['p_hypotension']:.4f}, p(hypertension) >= {t['p_hypertension']:.4f}")
    if sidecar["tolerates_missing"]:
        log(f"  takes these signal groups as missing (NaN): {', '.join(sidecar['tolerates_missing'])}")
    log(f"wrote {out} and {side_path}")
    return sidecar
