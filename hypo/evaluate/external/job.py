"""``hypo evaluate`` as one job: external validation of a frozen model, and optionally the model as an alarm there.

evaluate_job(EvaluateRequest(model_or_run="model.pt", data="data/site-b", alarms=True))
"""

from __future__ import annotations

import dataclasses
import os

from hypo import storage
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.alarms.result import AlarmResult
from hypo.evaluate.external.request import THRESHOLDS_FROM_MODEL, THRESHOLDS_FROM_OTHER, EvaluateRequest
from hypo.evaluate.external.result import ExternalRun
from hypo.evaluate.external.validation import default_sections, evaluate_external
from hypo.infer.model import ExportedModel
from hypo.mirror import staged_out


def development_data(model_or_run: str) -> str:
    """The window dataset a model was developed on (its search's ``hypo_search.json``), for fixing alarm thresholds.

    Raises:
        HypoError: When it cannot be found or read from here.
    """
    from hypo.search.experiments import experiment_dataset

    exp = model_or_run
    if storage.is_file(model_or_run):
        trial = ExportedModel.load(model_or_run).sidecar.trial
        exp = (trial.experiment if trial else None) or ""
    data = experiment_dataset(exp, required=False) if exp and storage.exists(exp) else None
    if not data or not storage.exists(storage.join(data, "manifest.json")):
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


def alarm_section(req: EvaluateRequest, model: ExportedModel | None = None, thresholds: tuple[str, str] | None = None,
                  log=print) -> AlarmResult:
    """``--alarms``: the frozen model and the baselines as alarms on OTHER's test recordings; also ``alarms.json``.

    Args:
        req: The request.
        model: The model the external evaluation scored (loaded again from ``model_or_run`` when None).
        thresholds: :func:`alarm_thresholds_source` of ``req``, already resolved (resolved here when None).
        log: Where progress lines go.
    """
    from hypo.evaluate.alarms.evaluation import AlarmOptions, alarm_evaluation
    from hypo.evaluate.alarms.result import format_alarm_table

    thresholds_from, where = thresholds if thresholds is not None else alarm_thresholds_source(req)
    options = AlarmOptions(split="test", thresholds_from=thresholds_from, cfg=req.alarm, max_cases=req.alarm_cases)
    result = alarm_evaluation(model if model is not None else req.model_or_run, req.data, options, trial=req.trial,
                              log=log)
    result = result.model_copy(update={"thresholds_fixed_on": where})
    log(f"as an alarm on {req.data}'s test recordings (frozen model; thresholds fixed on {where}):")
    log(format_alarm_table(result))
    os.makedirs(req.out, exist_ok=True)
    result.write(os.path.join(req.out, "alarms.json"), indent=1)
    return result


def evaluate_job(req: EvaluateRequest, log=print) -> ExternalRun:
    """Run ``hypo evaluate``: the external evaluation, then (``alarms``) the alarm section.

    Returns:
        What :func:`~hypo.evaluate.external.validation.evaluate_external` returns, with ``alarms``.
    """
    with staged_out(req.out, log) as (out, log):  # on an object store: uploaded once every result is written
        return _evaluate_job(dataclasses.replace(req, out=out), log)


def _evaluate_job(req: EvaluateRequest, log) -> ExternalRun:
    """:func:`evaluate_job` into the local folder ``req.out``."""
    thresholds = None
    # checked before any work (a missing model is the evaluation's own one-line error)
    if req.alarms and (req.thresholds_from != THRESHOLDS_FROM_MODEL or storage.exists(req.model_or_run)):
        thresholds = alarm_thresholds_source(req)
    run = evaluate_external(req, sections=default_sections(n_boot=req.n_boot, seed=req.seed), log=log)
    if req.alarms:
        run = dataclasses.replace(run, alarms=alarm_section(req, run.model, thresholds, log=log))
    return run
