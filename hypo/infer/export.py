"""Export a trained trial as a self-contained TorchScript model with a JSON sidecar.

    hypo export runs/hypo-search --out model.pt               # the leaderboard's first trial
    hypo export runs/hypo-search --out model.pt --trial 3f2a_00001

``model.pt`` takes windows ``float32 [n, window_s, 7]`` in **physical units** (signals in
:data:`hypo.data.signals.SIGNALS` order) and returns class probabilities ``[n, 3]`` (normal, hypotension,
hypertension): the training split's z-score and the softmax are inside, so it runs with ``torch.jit.load``
alone, without hypo. The trace is checked against the eager model on validation windows before it is written.
NaN may stand in the signal groups the sidecar's ``tolerates_missing`` lists (a model trained with channel dropout
takes them as absent; a model trained on a subset of the signals ignores the others); elsewhere NaN in gives NaN
out. Exports made before ``tolerates_missing`` existed list none and behave as before.

``model.json`` (also embedded in ``model.pt`` as the extra file ``hypo_model.json``) says how to feed it and
what it was: signals and units, window, horizon, label thresholds, the alarm thresholds of the operating point
(fixed on the validation split, :mod:`hypo.learn.operating_point`), the dataset's gap-filling rule and minimum
recording length (so ``hypo.infer.predict`` prepares recordings exactly as the training data were), validation
metrics (and the test metrics of ``hypo report`` when its report of the same checkpoint exists), and the
dataset, config and checkpoint fingerprints. Its record, with its ``schema_version`` and the migration of older
exports, is :class:`hypo.infer.sidecar.Sidecar`; :func:`write_exported` and :func:`load_exported` are the one pair
that writes and reads an export (most callers load :class:`hypo.infer.model.ExportedModel`).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from hypo.config import WindowConfig
from hypo.data.manifest import Manifest
from hypo.data.signals import SIGNALS
from hypo.errors import HypoError
from hypo.infer.sidecar import Sidecar, read_sidecar

EXTRA_FILE = "hypo_model.json"
TOLERANCE = 1e-5  # largest |probability difference| allowed between the trace and the eager model
VERIFY_WINDOWS = 512


class ProbabilityModel(nn.Module):
    """A trained model with the softmax appended: physical-unit windows in, class probabilities out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities [n, 3] of windows ``x`` [n, window_s, 7] in physical units."""
        return torch.softmax(self.net(x), dim=1)


class InputGuard(nn.Module):
    """The exported entry point: checks the input's shape, takes any float dtype, and runs the traced model."""

    def __init__(self, traced: torch.jit.ScriptModule, window_s: int, n_signals: int) -> None:
        super().__init__()
        self.model = traced
        self.window_s = window_s
        self.n_signals = n_signals

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities [n, 3] of windows ``x`` [n, window_s, 7] in physical units (NaN: see the sidecar)."""
        torch._assert(x.dim() == 3 and x.size(1) == self.window_s and x.size(2) == self.n_signals,
                      "hypo model: expected windows [n, window_s, 7] in physical units (see the sidecar's input)")
        return self.model(x.float())


@contextlib.contextmanager
def _quiet_jit():
    """Silence TorchScript's deprecation notices and the tracer's notes on nn.LSTM's internal shape checks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def trace_model(net: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript of ``net`` + softmax (eval mode, float32, CPU, no gradients) behind an :class:`InputGuard`.

    Args:
        net: The trained model (z-score inside).
        example: Windows ``[n, window_s, 7]`` to trace with.
    """
    wrapped = ProbabilityModel(net.cpu().float().eval()).eval().requires_grad_(False)
    with _quiet_jit(), torch.no_grad():
        traced = torch.jit.trace(wrapped, example.float(), check_trace=False)
        return torch.jit.script(InputGuard(traced, int(example.shape[1]), int(example.shape[2])))


def max_difference(traced: torch.jit.ScriptModule, net: nn.Module, windows: np.ndarray) -> float:
    """Largest |probability difference| between the trace and the eager model over ``windows`` and batch sizes."""
    ref = ProbabilityModel(net).eval()
    x = torch.as_tensor(np.ascontiguousarray(windows, np.float32))
    worst = 0.0
    with torch.no_grad():
        for batch in (x, x[:1], x[: max(1, len(x) // 3)]):  # the trace must not depend on the batch size
            worst = max(worst, float((traced(batch) - ref(batch)).abs().max()))
    return worst


def dataset_window_config(manifest: Manifest) -> WindowConfig:
    """The dataset's window config (fill rule, labels, minimum length), which ``hypo.infer.predict`` must repeat.

    Raises:
        HypoError: When the manifest records none (a dataset not written by ``preprocessing/build_windows.py``).
    """
    if manifest.config is None:
        raise HypoError("the dataset's manifest records no window config (fill rule, labels), so predictions could "
                        "not repeat its preprocessing; rebuild it with preprocessing/build_windows.py")
    return manifest.config


def write_exported(traced: torch.jit.ScriptModule, sidecar: Sidecar, out: str) -> tuple[str, Sidecar]:
    """Write the TorchScript file (sidecar embedded) atomically, then the sidecar beside it with the file's hash.

    With :func:`load_exported`, the one pair that writes and reads an export.

    Returns:
        ``(model_path, sidecar)``: the sidecar as written beside the model, its ``model_sha256`` set (the copy
        embedded in the model has none).
    """
    from hypo.storage import sha256_file

    out = check_out_file(out)
    embedded = sidecar.model_copy(update={"model_sha256": None})
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        with _quiet_jit():
            torch.jit.save(traced, tmp, _extra_files={EXTRA_FILE: embedded.dumps()})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    written = sidecar.model_copy(update={"model_sha256": sha256_file(out)})
    written.write(sidecar_path(out))
    return out, written


def check_out_file(out: str, flag: str = "--out") -> str:
    """The absolute path of a model file to write, its folder created; refused early when it cannot be written.

    Args:
        out: The model file.
        flag: The option that named it, for the messages.

    Raises:
        HypoError: When ``out`` is a folder, or its folder cannot be created or written (as the kernel says).
    """
    from hypo.storage import writable_folder

    out = os.path.abspath(os.path.expanduser(out))
    if os.path.isdir(out):
        raise HypoError(f"{flag} {out} is a folder; give the model file's path, e.g. {os.path.join(out, 'model.pt')}")
    writable_folder(os.path.dirname(out), flag)
    return out


def sidecar_path(model_path: str) -> str:
    """``model.pt`` -> ``model.json``."""
    root, _ = os.path.splitext(model_path)
    return root + ".json"


def load_exported(model_path: str) -> tuple[torch.jit.ScriptModule, Sidecar]:
    """Load an exported model and its sidecar (the copy embedded in the model file), migrated and validated.

    Most callers want :meth:`hypo.infer.model.ExportedModel.load`, which wraps this.

    Raises:
        HypoError: When the file is missing or not a hypo export, its sidecar is invalid or of an unreadable
            schema (one line naming the file and the field, saying how to re-export), its signals differ from
            hypo's, or a sidecar file beside it belongs to another export.
    """
    if not os.path.isfile(model_path):
        raise HypoError(f"no model at {model_path}; make one with hypo export EXPERIMENT --out model.pt")
    extra = {EXTRA_FILE: ""}
    try:
        with _quiet_jit():
            module = torch.jit.load(model_path, map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise HypoError(f"{model_path}: not a TorchScript model ({type(exc).__name__})") from None
    try:
        raw = json.loads(extra[EXTRA_FILE] or "null")
    except json.JSONDecodeError:
        raw = None
    sidecar = read_sidecar(raw, model_path)
    _check_beside(model_path, raw)
    if sidecar.signals != list(SIGNALS):
        raise HypoError(f"{model_path}: the model takes signals {sidecar.signals}, hypo has {list(SIGNALS)}")
    return module.eval(), sidecar


def _check_beside(model_path: str, embedded: dict[str, Any]) -> None:
    """Refuse a sidecar file beside the model that is not this model's (a copy left from another export).

    The copy embedded in the model is the one used; the file beside it is for people and other tools, so it
    must say the same (its ``model_sha256`` must also be this file's hash).
    """
    from hypo.storage import sha256_file

    side = sidecar_path(model_path)
    if not os.path.exists(side):
        return
    try:
        with open(side) as f:
            beside = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise HypoError(f"{side}: not readable JSON ({exc}); delete it or re-export the model") from None
    sha = beside.pop("model_sha256", None) if isinstance(beside, dict) else None
    if beside != embedded or (sha is not None and sha != sha256_file(model_path)):
        raise HypoError(f"{side} does not belong to {model_path} (another export's sidecar?); delete it or re-export")
