"""A frozen model to evaluate elsewhere: an exported ``model.pt``, or a search's trial exported in memory.

Either way the predictor is the TorchScript module ``hypo export`` writes (physical-unit windows in, class
probabilities out, the train-split z-score inside) with its sidecar, so an evaluation scores exactly what
``hypo predict`` would run. A recalibrated export (:func:`write_recalibrated`) is that module followed by the
recalibration map (:class:`hypo.learn.recalibration.Recalibrated`), in the same format: ``hypo predict`` and
``torch.jit.load`` take it unchanged.

    frozen = load_frozen("model.pt")                      # or load_frozen("runs/NAME", trial="3f2a_00001")
    probs = frozen.predict(windows)                       # float32 [n, 3]
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from typing import Any

import numpy as np
import torch

from hypo.errors import ConfigError, HypoError
from hypo.infer.export import TOLERANCE, VERIFY_WINDOWS, check_out_file, load_exported, write_exported
from hypo.infer.predict import forward_batched
from hypo.learn.operating_point import SPECIFICITY


@dataclasses.dataclass
class FrozenModel:
    """A model that is evaluated, never trained: its TorchScript module and its sidecar.

    Attributes:
        module: Windows ``[n, window_s, 7]`` in physical units -> probabilities ``[n, 3]``.
        sidecar: What it is (``hypo.infer.export``'s sidecar).
        path: The ``model.pt`` or experiment folder it came from.
        origin: ``"export"`` or ``"run"``.
    """

    module: torch.jit.ScriptModule
    sidecar: dict[str, Any]
    path: str
    origin: str

    def predict(self, x) -> np.ndarray:
        """Class probabilities float32 [n, 3] of windows ``x`` [n, window_s, 7] (batched, no autograd)."""
        return forward_batched(self.module, np.asarray(x, np.float32))

    def describe(self) -> str:
        """One line: the model, where it came from, what it was trained on."""
        s = self.sidecar
        m, t = s.get("model") or {}, s.get("trial") or {}
        what = f"{m.get('name', '?')} k={m.get('k', '?')} {t.get('loss', '')}".strip()
        where = (f"trial {t.get('id')} of {self.path}, epoch {t.get('epoch')}" if self.origin == "run"
                 else f"{self.path}, trial {t.get('id')}")
        src = s.get("source") or {}
        recal = s.get("recalibration")
        return (f"{what} ({where}); trained on {src.get('name', '?')}" + (" (simulated)" if src.get("simulated")
                                                                          else "")
                + f" data {(s.get('fingerprints') or {}).get('dataset', '?')}"
                + (f"; already recalibrated ({recal['method']}) on {recal['fitted_on']['data']}" if recal else ""))


def load_frozen(model_or_run: str, trial: str | None = None, specificity: float = SPECIFICITY) -> FrozenModel:
    """The frozen model behind an exported ``model.pt`` or a search's experiment folder.

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
    from hypo.evaluate.export_trial import trace_trial

    if os.path.isfile(model_or_run):
        if trial is not None:
            raise ConfigError(f"--trial chooses a trial of an experiment folder; {model_or_run} is a model file")
        module, sidecar = load_exported(model_or_run)
        return FrozenModel(module, sidecar, model_or_run, "export")
    if not (os.path.isdir(model_or_run) or "://" in model_or_run):
        raise HypoError(f"no model file or experiment folder at {model_or_run}; give a model.pt written by hypo "
                        "export, or a search's experiment folder (runs/NAME)")
    chosen, traced, sidecar, _ = trace_trial(model_or_run, trial, specificity)
    return FrozenModel(traced, sidecar, chosen.exp_path, "run")


def write_recalibrated(frozen: FrozenModel, calibration: torch.nn.Module, recalibration: dict[str, Any],
                       thresholds: dict[str, Any], windows: np.ndarray, out: str) -> tuple[str, dict[str, Any]]:
    """Write ``frozen`` followed by ``calibration`` as a new export (the map inside the TorchScript model).

    Args:
        frozen: The model.
        calibration: The fitted map (:func:`hypo.learn.recalibration.fit_recalibration`).
        recalibration: What the sidecar records about the map (method, parameters, data, before and after).
        thresholds: The sidecar's new ``thresholds`` section (alarm thresholds on the recalibrated probabilities).
        windows: Windows to verify the written model on (against the frozen model + the map, run apart).
        out: The new ``model.pt`` (sidecar beside it).

    Returns:
        ``(path, sidecar)`` as written.

    Raises:
        HypoError: When the scripted model disagrees with the frozen model + the map.
    """
    from hypo.learn.recalibration import Recalibrated, apply_recalibration

    out = check_out_file(out)
    with warnings.catch_warnings():  # TorchScript's deprecation notices
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(Recalibrated(frozen.module, calibration.eval()).eval())
    x = np.ascontiguousarray(windows[:VERIFY_WINDOWS], np.float32)
    want = apply_recalibration(calibration, frozen.predict(x))
    with torch.inference_mode():
        got = scripted(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max()) if len(x) else 0.0
    if not diff <= TOLERANCE:
        raise HypoError(f"the recalibrated TorchScript model differs from model + map by {diff:.2e}; not written")
    sidecar = copy.deepcopy(frozen.sidecar)
    base_sha = sidecar.pop("model_sha256", None)
    sidecar["output"] = {**sidecar.get("output", {}),
                         "meaning": f"class probabilities (softmax, then {recalibration['method']} recalibration "
                                    "fitted on another site; see recalibration)"}
    sidecar["thresholds"] = thresholds
    sidecar["recalibration"] = {**recalibration, "base_model": {"path": frozen.path, "origin": frozen.origin,
                                                                "model_sha256": base_sha}}
    sidecar["verification"] = {**sidecar.get("verification", {}), "recalibrated_max_abs_difference": diff}
    return write_exported(scripted, sidecar, out)[0], sidecar
