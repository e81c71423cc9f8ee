"""``hypo evaluate`` as one job: external validation of a frozen model, and optionally the model as an alarm there.

evaluate_job(EvaluateRequest(model_or_run="model.pt", data="data/site-b", alarms=True))
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from hypo.errors import ConfigError, HypoError
from hypo.evaluate.alarms.metrics import AlarmConfig
from hypo.evaluate.external.validation import CALIBRATION_SHARE, N_BOOT, default_sections, evaluate_external

THRESHOLDS_FROM_MODEL, THRESHOLDS_FROM_OTHER = "model", "other"


@dataclasses.dataclass(frozen=True)
class EvaluateRequest:
    """What ``hypo evaluate`` was asked to do (see its ``--help`` for each option).

    Attributes:
        model_or_run: An exported ``model.pt``, or a search's experiment folder.
        data: OTHER: the window dataset of another source.
        trial: Trial id of an experiment folder (default: the leaderboard's first).
        recalibrate: ``none`` or a method of :mod:`hypo.learn.recalibration`.
        calibration_share: Share of OTHER's subjects the map is fitted on.
        seed: Seed of the calibration split and the bootstrap.
        n_boot: Bootstrap replicates over subjects.
        write_export: Where to write the recalibrated model, if anywhere.
        out: Folder for ``evaluation.json``, ``evaluation.md`` and the figures.
        alarms: Also score the model as an alarm on OTHER's test recordings.
        thresholds_from: ``model`` (the development dataset's validation split), ``other`` (OTHER's own) or a
            dataset folder, whose validation split fixes the alarm thresholds.
        alarm: The alarm policy and scoring.
        alarm_cases: At most this many test recordings.
    """

    model_or_run: str
    data: str
    trial: str | None = None
    recalibrate: str = "none"
    calibration_share: float | None = CALIBRATION_SHARE
    seed: int = 0
    n_boot: int = N_BOOT
    write_export: str | None = None
    out: str = "evaluation"
    alarms: bool = False
    thresholds_from: str = THRESHOLDS_FROM_MODEL
    alarm: AlarmConfig = dataclasses.field(default_factory=AlarmConfig)
    alarm_cases: int | None = None


def development_data(model_or_run: str) -> str:
    """The window dataset a model was developed on (its search's ``hypo_search.json``), for fixing alarm thresholds.

    Raises:
        HypoError: When it cannot be found or read from here.
    """
    from hypo.search.experiments import experiment_dataset

    exp = model_or_run
    if os.path.isfile(model_or_run):
        from hypo.infer.export import load_exported

        _, sidecar = load_exported(model_or_run)
        exp = (sidecar.get("trial") or {}).get("experiment") or ""
    data = experiment_dataset(exp, required=False) if exp and os.path.isdir(exp) else None
    if not data or not os.path.exists(os.path.join(data, "manifest.json")):
        raise HypoError("--alarms: the dataset this model was developed on is not readable here (its validation "
                        "split fixes the alarm thresholds as deployed); pass --alarm-thresholds-from DIR, or "
                        "--alarm-thresholds-from other for thresholds fixed on OTHER's validation split")
    return data


def alarm_thresholds_source(req: EvaluateRequest) -> tuple[str, str]:
    """``--alarm-thresholds-from`` resolved and checked (before any work): where the alarm thresholds are fixed.

    Returns:
        ``(thresholds_from, where)``: what :func:`~hypo.evaluate.alarms.evaluation.alarm_evaluation` takes
        (``"val"`` or a dataset folder) and how the result says it.

    Raises:
        HypoError: When the development dataset is not readable here, or DIR holds no window dataset (one line
            naming the flag).
    """
    from hypo.data.dataset import read_manifest

    source = req.thresholds_from
    if source == THRESHOLDS_FROM_OTHER:
        return "val", "OTHER's own validation split (a local threshold, not the deployed one)"
    if source == THRESHOLDS_FROM_MODEL:
        data = development_data(req.model_or_run)
        return data, f"the development dataset's validation split ({data}), as deployed"
    try:
        read_manifest(source)
    except HypoError as exc:
        raise ConfigError(f"--alarm-thresholds-from: {exc}") from None
    return source, f"the validation split of {source}"


def alarm_section(req: EvaluateRequest, frozen=None, thresholds: tuple[str, str] | None = None,
                  log=print) -> dict[str, Any]:
    """``--alarms``: the frozen model and the baselines as alarms on OTHER's test recordings; also ``alarms.json``.

    Args:
        req: The request.
        frozen: The :class:`~hypo.evaluate.frozen.FrozenModel` the external evaluation scored (loaded again from
            ``model_or_run`` when None).
        thresholds: :func:`alarm_thresholds_source` of ``req``, already resolved (resolved here when None).
        log: Where progress lines go.
    """
    from hypo.evaluate.alarms.evaluation import alarm_evaluation, format_alarm_table

    thresholds_from, where = thresholds if thresholds is not None else alarm_thresholds_source(req)
    model = frozen if frozen is not None else req.model_or_run
    result = alarm_evaluation(model, req.data, split="test", thresholds_from=thresholds_from,
                              stride_s=req.alarm.stride_s, max_cases=req.alarm_cases, config=req.alarm,
                              trial=req.trial, log=log)
    result["thresholds_fixed_on"] = where
    log(f"as an alarm on {req.data}'s test recordings (frozen model; thresholds fixed on {where}):")
    log(format_alarm_table(result))
    os.makedirs(req.out, exist_ok=True)
    with open(os.path.join(req.out, "alarms.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def evaluate_job(req: EvaluateRequest, log=print) -> dict[str, Any]:
    """Run ``hypo evaluate``: the external evaluation, then (``alarms``) the alarm section.

    Returns:
        What :func:`~hypo.evaluate.external.validation.evaluate_external` returns, with ``"alarms"``.
    """
    thresholds = None
    # checked before any work (a missing model is the evaluation's own one-line error)
    if req.alarms and (req.thresholds_from != THRESHOLDS_FROM_MODEL or os.path.exists(req.model_or_run)):
        thresholds = alarm_thresholds_source(req)
    result = evaluate_external(req.model_or_run, req.data, trial=req.trial, recalibrate=req.recalibrate,
                               calibration_share=req.calibration_share, seed=req.seed, n_boot=req.n_boot,
                               write_export=req.write_export, out=req.out,
                               sections=default_sections(n_boot=req.n_boot, seed=req.seed))
    if req.alarms:
        result["alarms"] = alarm_section(req, result["frozen"], thresholds, log=log)
    return result
