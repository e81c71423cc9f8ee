"""A recalibrated export: a model followed by its recalibration map, written in the format ``hypo export`` writes.

The TorchScript module is the model's, followed by the map (:class:`hypo.learn.recalibration.Recalibrated`), so
``hypo predict`` and ``torch.jit.load`` take it unchanged. Its sidecar is the model's with the map recorded
(``recalibration``: method, parameters, where it was fitted, the model it came from), the output's meaning said
again, and the alarm thresholds fixed again on the calibration subjects (``thresholds.before_recalibration`` keeps
the old ones). The written model is checked against the model and the map run apart before it is kept.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from hypo.errors import HypoError
from hypo.infer.export import TOLERANCE, VERIFY_WINDOWS, check_out_file, write_exported
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import Recalibration, Sidecar, Thresholds, Verification
from hypo.jsonio import finite


def recalibrated_thresholds(old: Thresholds, new: dict[str, float], recalibration: Recalibration) -> Thresholds:
    """The sidecar's ``thresholds`` after the map: fixed again on the calibration subjects at the same specificity.

    Args:
        old: The model's thresholds.
        new: ``{"hypotension": t1, "hypertension": t2}`` chosen on the calibration subjects after the map.
        recalibration: The map's record (its specificity and where it was fitted).
    """
    from hypo.learn.operating_point import describe

    spec = recalibration.thresholds["specificity"]
    return old.model_copy(update={
        "p_hypotension": finite(new["hypotension"]), "p_hypertension": finite(new["hypertension"]),
        "specificity": spec,
        "chosen_on": f"calibration subjects of {recalibration.fitted_on.data} (after recalibration)",
        "rule": describe(spec).replace("the validation split", "the calibration subjects"),
        "before_recalibration": {"p_hypotension": old.p_hypotension, "p_hypertension": old.p_hypertension,
                                 "chosen_on": old.chosen_on}})


def recalibrated_sidecar(model: ExportedModel, recalibration: Recalibration, thresholds: Thresholds,
                         diff: float) -> Sidecar:
    """The model's sidecar with the map recorded (see the module docstring), before it is written."""
    s = model.sidecar
    meaning = (f"class probabilities (softmax, then {recalibration.method} recalibration fitted on another site; "
               "see recalibration)")
    base = {"path": model.path, "origin": model.origin, "model_sha256": s.model_sha256}
    verification = s.verification or Verification()
    return s.model_copy(update={
        "model_sha256": None,
        "output": s.output.model_copy(update={"meaning": meaning}) if s.output is not None else None,
        "thresholds": thresholds,
        "alarm_policy": None,  # validated on the probabilities before the map: not the recalibrated model's
        "recalibration": recalibration.model_copy(update={"base_model": base}),
        "verification": verification.model_copy(update={"recalibrated_max_abs_difference": diff})})


def write_recalibrated(model: ExportedModel, calibration: torch.nn.Module, recalibration: Recalibration,
                       thresholds: Thresholds, windows: np.ndarray, out: str) -> tuple[str, Sidecar]:
    """Write ``model`` followed by ``calibration`` as a new export (the map inside the TorchScript model).

    Args:
        model: The model.
        calibration: The fitted map (:func:`hypo.learn.recalibration.fit_recalibration`).
        recalibration: What the sidecar records about the map (method, parameters, data, before and after).
        thresholds: The sidecar's new ``thresholds`` (:func:`recalibrated_thresholds`).
        windows: Windows to verify the written model on (against the model + the map, run apart).
        out: The new ``model.pt`` (sidecar beside it).

    Returns:
        ``(path, sidecar)`` as written.

    Raises:
        HypoError: When the scripted model disagrees with the model + the map.
    """
    from hypo.learn.recalibration import Recalibrated, apply_recalibration

    out = check_out_file(out)
    with warnings.catch_warnings():  # TorchScript's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(Recalibrated(model.module, calibration.eval()).eval())
    x = np.ascontiguousarray(windows[:VERIFY_WINDOWS], np.float32)
    want = apply_recalibration(calibration, model.predict_proba(x))
    with torch.inference_mode():
        got = scripted(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max()) if len(x) else 0.0
    if not diff <= TOLERANCE:
        raise HypoError(f"the recalibrated TorchScript model differs from model + map by {diff:.2e}; not written")
    return write_exported(scripted, recalibrated_sidecar(model, recalibration, thresholds, diff), out)
