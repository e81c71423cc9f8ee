"""``hypo evaluate`` as one job: external validation of a frozen model, and optionally the model as an alarm there.

evaluate_job(EvaluateRequest(model_or_run="model.pt", data="data/site-b", alarms=True))
"""

from __future__ import annotations

import dataclasses
import os

from hypo import storage
from hypo.data.manifest import Manifest
from hypo.errors import ConfigError, HypoError
from hypo.evaluate.alarms.result import AlarmResult
from hypo.evaluate.external.request import THRESHOLDS_FROM_MODEL, THRESHOLDS_FROM_OTHER, EvaluateRequest
from hypo.evaluate.external.result import ExternalRun
from hypo.evaluate.external.validation import Prepared, default_sections, external_evaluation, prepare_external
from hypo.infer.model import ExportedModel
from hypo.mirror import staged_out


def development_data(model_or_run: str, model: ExportedModel | None = None) -> str:
    """The window dataset a model was developed on (its search's ``hypo_search.json``), for fixing alarm thresholds.

    Args:
        model_or_run: The model file or experiment folder.
        model: The model, when already loaded.

    Raises:
        HypoError: When it cannot be found or read from here.
    """
    from hypo.search.experiments import experiment_dataset

    exp = model_or_run
    if storage.is_file(model_or_run):
        trial = (model if model is not None else ExportedModel.load(model_or_run)).sidecar.trial
        exp = (trial.experiment if trial else None) or ""
    data = experiment_dataset(exp, required=False) if exp and storage.exists(exp) else None
    if not data or not storage.exists(storage.join(data, "manifest.json")):
        raise HypoError("--alarms: the dataset this model was developed on is not readable here (its validation "
                        "split fixes the alarm thresholds as deployed); pass --alarm-thresholds-from DIR, or "
                        "--alarm-thresholds-from other for thresholds fixed on OTHER's validation split")
    return data


def alarm_thresholds_source(req: EvaluateRequest, model: ExportedModel | None = None) -> tuple[str, str]:
    """``--alarm-thresholds-from`` resolved and checked (before any work): where the alarm thresholds are fixed.

    Args:
        req: The request.
        model: The model, when already loaded.

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
        data = development_data(req.model_or_run, model)
        return data, f"the development dataset's validation split ({data}), as deployed"
    try:
        read_manifest(source)
    except HypoError as exc:
        raise ConfigError(f"--alarm-thresholds-from: {exc}") from None
    return source, f"the validation split of {source}"


def check_alarm_inputs(req: EvaluateRequest, prepared: Prepared, thresholds_from: str, log=print) -> None:
    """``--alarms``: what the replay needs, checked before any work, so that a failure writes nothing.

    The dataset fixing the thresholds gets the checks OTHER gets (:func:`~hypo.evaluate.external.validation.
    check_labels`: the same windows and labels as the model's, its lesser differences said as notes); both must
    still hold the recordings they were built from, and the splits to replay.

    Args:
        req: The request.
        prepared: Its checks so far (the model, OTHER's manifest).
        thresholds_from: ``"val"`` (OTHER's validation split) or the dataset folder whose validation split fixes the
            thresholds (:func:`alarm_thresholds_source`).
        log: Where the notes go.

    Raises:
        HypoError: A thresholds dataset that does not fit the model (naming ``--alarm-thresholds-from``), a source
            that no longer yields the recordings, or an empty split; ConfigError: an ``--alarm-horizon`` the model
            or a dataset lacks.
    """
    from hypo.data.dataset import read_manifest
    from hypo.evaluate.alarms.replay import models_at_horizon
    from hypo.evaluate.external.validation import check_labels

    models_at_horizon({"model": prepared.model}, prepared.manifest, req.alarm, req.data)  # --alarm-horizon
    replayable(req.data, prepared.manifest, ("test", "val") if thresholds_from == "val" else ("test",), "--data")
    if thresholds_from == "val":
        return
    manifest = read_manifest(thresholds_from)
    models_at_horizon({"model": prepared.model}, manifest, req.alarm, thresholds_from)
    try:
        notes = check_labels(prepared.model.sidecar, manifest, thresholds_from)
    except HypoError as exc:
        raise ConfigError(f"--alarm-thresholds-from: {exc}") from None
    for line in notes:
        log(line.replace("note: ", "note: --alarm-thresholds-from: ", 1))
    replayable(thresholds_from, manifest, ("val",), "--alarm-thresholds-from")


def replayable(data_dir: str, manifest: Manifest, splits: tuple[str, ...], flag: str) -> None:
    """Refuse a dataset with an empty split to replay, or whose recordings cannot be replayed (source gone or changed).

    Raises:
        HypoError: One line naming ``flag`` and the dataset.
    """
    from hypo.data.dataset import empty_split_reason
    from hypo.evaluate.alarms.replay import Recordings, split_cases

    for split in splits:
        if not split_cases(data_dir, split):
            raise HypoError(f"--alarms: {flag} {data_dir}: {empty_split_reason(manifest, split)} (the alarm "
                            f"evaluation replays its {split} recordings)")
    try:
        Recordings.of(data_dir, manifest)
    except HypoError as exc:
        raise HypoError(f"--alarms: {flag} {data_dir}: {exc}") from None


def alarm_section(req: EvaluateRequest, model: ExportedModel, thresholds: tuple[str, str], log=print) -> AlarmResult:
    """``--alarms``: the frozen model and the baselines as alarms on OTHER's test recordings (nothing written).

    Args:
        req: The request.
        model: The model the external evaluation scored.
        thresholds: :func:`alarm_thresholds_source` of ``req``.
        log: Where progress lines and the table go.
    """
    from hypo.evaluate.alarms.evaluation import AlarmOptions, alarm_evaluation
    from hypo.evaluate.alarms.result import format_alarm_table

    thresholds_from, where = thresholds
    options = AlarmOptions(split="test", thresholds_from=thresholds_from, cfg=req.alarm, max_cases=req.alarm_cases)
    result = alarm_evaluation(model, req.data, options, trial=req.trial, log=log)
    result = result.model_copy(update={"thresholds_fixed_on": where})
    log(f"as an alarm on {req.data}'s test recordings (frozen model; thresholds fixed on {where}):")
    log(format_alarm_table(result))
    return result


def evaluate_job(req: EvaluateRequest, log=print) -> ExternalRun:
    """Run ``hypo evaluate``: the external evaluation, then (``alarms``) the alarm section.

    Everything that can be checked is checked before any work (the options, the paths, the model and OTHER, and
    with ``alarms`` the thresholds' dataset and the recordings); the results (``evaluation.json``, the figures,
    the recalibrated export, ``alarms.json``) are written only once every part has succeeded.

    Returns:
        What :func:`~hypo.evaluate.external.validation.evaluate_external` returns, with ``alarms``.
    """
    with staged_out(req.out, log) as (out, log):  # on an object store: uploaded once every result is written
        return _evaluate_job(dataclasses.replace(req, out=out), log)


def _evaluate_job(req: EvaluateRequest, log) -> ExternalRun:
    """:func:`evaluate_job` into the local folder ``req.out``."""
    from hypo.storage import writable_folder

    thresholds = None
    # a folder given for the thresholds is checked before anything (the model too is needed for the rest)
    if req.alarms and req.thresholds_from not in (THRESHOLDS_FROM_MODEL, THRESHOLDS_FROM_OTHER):
        thresholds = alarm_thresholds_source(req)
    prepared = prepare_external(req)
    if req.alarms:
        thresholds = thresholds or alarm_thresholds_source(req, prepared.model)
        check_alarm_inputs(req, prepared, thresholds[0], log)
    out = writable_folder(req.out)
    evaluation = external_evaluation(req, prepared, default_sections(n_boot=req.n_boot, seed=req.seed), log)
    alarms = alarm_section(req, prepared.model, thresholds, log=log) if req.alarms else None
    run = evaluation.write(out, log)
    if alarms is not None:
        alarms.write(os.path.join(out, "alarms.json"), indent=1)
        run = dataclasses.replace(run, alarms=alarms)
    return with_model_card(req, run, prepared.manifest, log)


def with_model_card(req: EvaluateRequest, run: ExternalRun, manifest: Manifest, log=print) -> ExternalRun:
    """Write ``model_card.md`` (:mod:`hypo.evaluate.external.card`) into ``req.out``; the run with its path."""
    from hypo.evaluate.external.card import write_external_card

    card = write_external_card(run.results, manifest, run.model.sidecar, req.out, run.alarms)
    log(f"wrote {card}")
    return dataclasses.replace(run, paths={**run.paths, "model_card": card})
