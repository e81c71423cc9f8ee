"""A search's trial (by default the leaderboard's first) as an exported model, with the sidecar that says what it was.

The format itself (trace, input guard, write, load) is :mod:`hypo.infer.export` and the sidecar's record
:mod:`hypo.infer.sidecar`; this module is the orchestration above them: choose the trial, fix the window operating
point's thresholds on its validation split, collect its metrics (and the test metrics of a report of the same
checkpoint), and hold it in memory (:func:`trial_model`: the same :class:`~hypo.infer.model.ExportedModel` with
``origin="run"``); :func:`hypo.evaluate.export_job.export_model` adds the alarm policy validated with it and
writes it. :func:`load_model_or_trial` is what ``hypo evaluate`` and the alarm evaluation take: a ``model.pt`` or an
experiment folder.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

import numpy as np
import torch

from hypo import __version__, storage
from hypo.data.manifest import Manifest
from hypo.data.signals import CLASSES, GROUPS, SIGNALS, UNITS
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.trials import ChosenTrial
from hypo.infer.export import (
    TOLERANCE,
    VERIFY_WINDOWS,
    dataset_window_config,
    max_difference,
    trace_model,
)
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import (
    Fingerprints,
    InputSpec,
    Metrics,
    OutputSpec,
    Sidecar,
    SourceInfo,
    Thresholds,
    TrialInfo,
    Verification,
)
from hypo.jsonio import finite
from hypo.learn.operating_point import SPECIFICITY, alarm_thresholds, describe
from hypo.search.experiments import shown


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
    out = {"source": shown(path), "n_windows": rep["n_windows"], "n_subjects": rep["n_subjects"],
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


def operating_point_section(manifest: Manifest, thresholds: dict[str, float], specificity: float) -> Thresholds:
    """The sidecar's ``thresholds``: the dataset's label thresholds and the alarm thresholds fixed on validation."""
    return Thresholds(hypo_map=float(manifest.label.hypo_map), hyper_sbp=float(manifest.label.hyper_sbp),
                      p_hypotension=finite(thresholds["hypotension"]),
                      p_hypertension=finite(thresholds["hypertension"]),
                      specificity=specificity, chosen_on="validation", rule=describe(specificity))


def build_sidecar(chosen, manifest: Manifest, cfg, ckpt: dict, thresholds: Thresholds,
                  verification: Verification) -> Sidecar:
    """The sidecar of a trial's checkpoint (see :mod:`hypo.infer.sidecar`).

    Args:
        chosen: The :class:`~hypo.evaluate.trials.ChosenTrial`.
        manifest: Its dataset's manifest.
        cfg: Its TrainConfig.
        ckpt: Its checkpoint dict (z-score, dataset fingerprint).
        thresholds: The operating point (:func:`operating_point_section`).
        verification: How far the trace is from the eager model.
    """
    from hypo.config import fingerprint
    from hypo.storage import sha256_file

    wc = dataset_window_config(manifest)
    best = chosen.record.best() or {}
    baselines = chosen.meta.baselines
    tolerated = list(cfg.model.tolerates_missing)
    checkpoint_sha = sha256_file(os.path.join(chosen.checkpoint, "checkpoint.pt"))
    return Sidecar(
        input=InputSpec(shape=["n", manifest.window_s, len(SIGNALS)], dtype="float32",
                        units="physical (see units); no normalisation needed: the train-split z-score is inside",
                        missing_values=missing_values_text(tolerated)),
        tolerates_missing=tolerated, signals_read=list(cfg.model.signals),
        output=OutputSpec(shape=["n", len(CLASSES)], meaning="class probabilities (softmax)", classes=list(CLASSES)),
        signals=list(SIGNALS), units=dict(UNITS), window_s=manifest.window_s,
        stride_s=int(manifest.stride_s if manifest.stride_s is not None else wc.stride_s),
        horizon_s=int(manifest.label.horizon_s),
        **horizon_fields(cfg.model, manifest),
        label=manifest.label, thresholds=thresholds, fill=wc.fill, nibp_merge_s=int(wc.nibp_merge_s),
        min_case_s=int(wc.min_case_s), zscore=ckpt["zscore"], model=cfg.model,
        trial=TrialInfo(id=chosen.trial_id, rank=chosen.rank, epoch=chosen.epoch, loss=cfg.loss, gamma=cfg.gamma,
                        channel_dropout=cfg.channel_dropout, experiment=shown(chosen.exp_path),
                        checkpoint=shown(chosen.checkpoint)),
        metrics=Metrics(val=_metric_subset(best, "val_"),
                        val_baseline=_metric_subset(baselines[0].metrics if baselines else {}, "val_"),
                        val_baselines={b.name: _metric_subset(b.metrics, "val_") for b in baselines},
                        test=_test_metrics(chosen, checkpoint_sha)),
        fingerprints=Fingerprints(dataset=manifest.fingerprint, checkpoint_dataset=ckpt["dataset_fingerprint"],
                                  config=fingerprint(cfg), search=chosen.meta.search_fingerprint,
                                  checkpoint_sha256=checkpoint_sha),
        source=SourceInfo(name=manifest.source.name, simulated=manifest.simulated, cohort=manifest.cohort),
        verification=verification, hypo_version=__version__, torch_version=torch.__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def horizon_fields(model_cfg, manifest: Manifest) -> dict[str, Any]:
    """The sidecar's ``horizons_s`` and ``horizon_output`` of a model with per-horizon risks ({} otherwise)."""
    if not model_cfg.n_horizons:
        return {}
    hs = list(manifest.horizons_s)
    rule = ("cumulative, from a discrete-time hazard head: non-decreasing with the horizon"
            if model_cfg.head == "hazard" else "one independent head per horizon")
    return {"horizons_s": hs, "horizon_output": OutputSpec(
        shape=["n", len(hs)], meaning=f"risk of hypotension by each horizon (method horizon_risk; {rule})",
        classes=[f"hypotension by {h} s" for h in hs])}


def trial_model(exp_path: str, trial: str | None = None, specificity: float = SPECIFICITY,
                val=None) -> tuple[ExportedModel, ChosenTrial, Any]:
    """The chosen trial as ``hypo export`` would write it, in memory: its checked trace and its sidecar.

    The alarm evaluation and the external validation score a trial through this, so what they evaluate is exactly
    what ``hypo export`` deploys, without writing a file.

    Args:
        exp_path: Experiment folder of a search.
        trial: Trial id (default: the leaderboard's first).
        specificity: Specificity of the sidecar's alarm thresholds, fixed on the validation split.
        val: The dataset's validation split if already loaded (read otherwise).

    Returns:
        ``(model, chosen, cfg)``: the :class:`~hypo.infer.model.ExportedModel` (``origin="run"``, its path the
        experiment folder, its sidecar without ``model_sha256``: nothing was written), the
        :class:`~hypo.evaluate.trials.ChosenTrial` and the trial's TrainConfig.

    Raises:
        HypoError: When the trace disagrees with the eager model, the validation split is empty, or anything
            :func:`hypo.evaluate.trials.choose_trial` and :func:`hypo.evaluate.trials.load_trial` refuse.
    """
    from hypo.data.dataset import load_split
    from hypo.evaluate.trials import choose_trial, load_trial
    from hypo.learn.models import predict_proba

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
    sidecar = build_sidecar(chosen, manifest, cfg, ckpt, operating_point_section(manifest, thresholds, specificity),
                            Verification(max_abs_difference=diff, tolerance=TOLERANCE))
    return ExportedModel(traced, sidecar, chosen.exp_path, "run"), chosen, cfg


def trial_description(model: ExportedModel) -> str:
    """A trial's row text in the alarm tables: ``trial ID (rank R: NAME k=K LOSS), epoch E``."""
    t, m = model.sidecar.trial, model.sidecar.model
    return f"trial {t.id} (rank {t.rank}: {m.name} k={m.k} {t.loss}), epoch {t.epoch}"


def load_model_or_trial(model_or_run: str, trial: str | None = None,
                        specificity: float = SPECIFICITY) -> ExportedModel:
    """The model behind an exported ``model.pt`` or a search's experiment folder.

    Args:
        model_or_run: A ``model.pt`` written by ``hypo export``, or a search's experiment folder (local or
            ``s3://``), whose leaderboard's first trial (or ``trial``) is exported in memory, its alarm thresholds
            fixed on its validation split at ``specificity``.
        trial: Trial id (experiment folders only).
        specificity: Specificity of the alarm thresholds of a run's export.

    Raises:
        HypoError: Nothing there, not a hypo export, or anything ``hypo export`` refuses.
        ConfigError: ``trial`` given with a model file.
    """
    if storage.is_file(model_or_run):
        if trial is not None:
            raise ConfigError(f"--trial chooses a trial of an experiment folder; {model_or_run} is a model file")
        return ExportedModel.load(model_or_run)
    if not (os.path.isdir(model_or_run) or storage.is_uri(model_or_run)):
        raise HypoError(f"no model file or experiment folder at {model_or_run}; give a model.pt written by hypo "
                        "export, or a search's experiment folder (runs/NAME)")
    return trial_model(model_or_run, trial, specificity)[0]
