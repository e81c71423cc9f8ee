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

A model with per-horizon risks (``hazard`` / ``independent`` head, trained on a dataset built with ``--horizons``)
also has the TorchScript method ``horizon_risk(x)``: the risk of hypotension by each horizon ``[n, H]``, the
horizons in the sidecar's ``horizons_s`` (``module.horizon_risk(x)`` with ``torch.jit.load`` alone); its forward
stays the 3 class probabilities of the primary horizon.

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
import hashlib
import io
import json
import os
import signal
import sys
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from hypo import storage
from hypo.config import WindowConfig
from hypo.data.manifest import Manifest
from hypo.data.signals import SIGNALS
from hypo.errors import HypoError
from hypo.infer.sidecar import Sidecar, read_sidecar
from hypo.mirror import local_copy

EXTRA_FILE = "hypo_model.json"
TOLERANCE = 1e-5  # largest |probability difference| allowed between the trace and the eager model
VERIFY_WINDOWS = 512
KILL_AT_ENV = "HYPO_TEST_KILL_AT"  # tests: the export step at which the process kills itself (:func:`_step`)


class ProbabilityModel(nn.Module):
    """A trained model with the softmax appended: physical-unit windows in, class probabilities out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities [n, 3] of windows ``x`` [n, window_s, 7] in physical units."""
        return torch.softmax(self.net(x), dim=1)


class RiskModel(nn.Module):
    """A trained model's per-horizon head as risks: windows in, the risk of hypotension by each horizon out."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.head = net.cfg.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Risks [n, H] of windows ``x`` [n, window_s, 7] in physical units."""
        from hypo.learn.models import N_CLASSES, cumulative_risk

        return cumulative_risk(self.net.outputs(x)[:, N_CLASSES:], self.head)


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


class HorizonGuard(InputGuard):
    """:class:`InputGuard` of a model with per-horizon risks: also the exported method ``horizon_risk``."""

    def __init__(self, traced: torch.jit.ScriptModule, risk: torch.jit.ScriptModule, window_s: int,
                 n_signals: int) -> None:
        super().__init__(traced, window_s, n_signals)
        self.risk = risk

    @torch.jit.export
    def horizon_risk(self, x: torch.Tensor) -> torch.Tensor:
        """Risks of hypotension by each horizon [n, H] (the sidecar's ``horizons_s``) of windows [n, window_s, 7]."""
        torch._assert(x.dim() == 3 and x.size(1) == self.window_s and x.size(2) == self.n_signals,
                      "hypo model: expected windows [n, window_s, 7] in physical units (see the sidecar's input)")
        return self.risk(x.float())


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
    shape = int(example.shape[1]), int(example.shape[2])
    with _quiet_jit(), torch.no_grad():
        traced = torch.jit.trace(wrapped, example.float(), check_trace=False)
        if not getattr(getattr(net, "cfg", None), "n_horizons", 0):
            return torch.jit.script(InputGuard(traced, *shape))
        risk = torch.jit.trace(RiskModel(net).eval().requires_grad_(False), example.float(), check_trace=False)
        return torch.jit.script(HorizonGuard(traced, risk, *shape))


def max_difference(traced: torch.jit.ScriptModule, net: nn.Module, windows: np.ndarray) -> float:
    """Largest |probability difference| between the trace and the eager model over ``windows`` and batch sizes."""
    ref = ProbabilityModel(net).eval()
    x = torch.as_tensor(np.ascontiguousarray(windows, np.float32))
    worst = 0.0
    with torch.no_grad():
        for batch in (x, x[:1], x[: max(1, len(x) // 3)]):  # the trace must not depend on the batch size
            worst = max(worst, float((traced(batch) - ref(batch)).abs().max()))
            if hasattr(traced, "horizon_risk"):
                worst = max(worst, float((traced.horizon_risk(batch) - RiskModel(net).eval()(batch)).abs().max()))
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
    """Write the TorchScript file (sidecar embedded), then the sidecar beside it with the file's hash.

    With :func:`load_exported`, the one pair that writes and reads an export. ``out`` is a local path or a URI
    (``s3://bucket/model.pt``). The steps, each whole or not at all (:func:`hypo.storage.write_bytes`): the stale
    temporaries of earlier exports killed here are removed; the model is written (locally a temporary renamed
    over ``out``, on an object store one upload); then the sidecar beside it. A kill at any moment leaves the
    previous model (or none) or the new one, loadable as it is: a sidecar beside it that the kill left behind
    (the previous one, or none) is rewritten from the embedded copy when it is loaded (:func:`load_exported`).

    Returns:
        ``(model_path, sidecar)``: the sidecar as written beside the model, its ``model_sha256`` set (the copy
        embedded in the model has none).
    """
    out = check_out_file(out)
    embedded = sidecar.model_copy(update={"model_sha256": None})
    buf = io.BytesIO()
    with _quiet_jit():
        torch.jit.save(traced, buf, _extra_files={EXTRA_FILE: embedded.dumps()})
    data = buf.getvalue()
    written = sidecar.model_copy(update={"model_sha256": hashlib.sha256(data).hexdigest()})
    remove_stale_temporaries(out)
    _step("model")
    storage.write_bytes(out, data, on_step=lambda s: _step(f"model-{s}"))
    _step("model-replaced")
    storage.write_bytes(sidecar_path(out), written.dumps().encode(), on_step=lambda s: _step(f"sidecar-{s}"))
    return out, written


def _step(name: str) -> None:
    """Tests: end this process (SIGKILL) at the export step ``$HYPO_TEST_KILL_AT`` names."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def remove_stale_temporaries(model_path: str) -> list[str]:
    """Remove the temporaries that exports of ``model_path`` killed on this machine left beside it.

    The model's and its sidecar's (:func:`hypo.storage.stale_temporaries`); nothing on an object store, where a
    killed upload leaves no object. Returns the paths removed.
    """
    if storage.is_uri(model_path):
        return []
    removed = []
    for path in storage.stale_temporaries(model_path) + storage.stale_temporaries(sidecar_path(model_path)):
        with contextlib.suppress(OSError):
            os.remove(path)
            removed.append(path)
    return removed


def check_out_file(out: str, flag: str = "--out") -> str:
    """The absolute path (or URI) of a model file to write, its folder created; refused early when it cannot be.

    Args:
        out: The model file.
        flag: The option that named it, for the messages.

    Raises:
        HypoError: When ``out`` is a folder, or its folder cannot be created or written (as the kernel says; on
            an object store, its bucket is missing).
    """
    if storage.is_uri(out):
        storage.check_bucket(out, flag)
        if storage.exists(out) and not storage.is_file(out):
            raise HypoError(f"{flag} {out} is a folder; give the model file's path, e.g. {out.rstrip('/')}/model.pt")
        return out
    out = os.path.abspath(os.path.expanduser(out))
    if os.path.isdir(out):
        raise HypoError(f"{flag} {out} is a folder; give the model file's path, e.g. {os.path.join(out, 'model.pt')}")
    storage.writable_folder(os.path.dirname(out), flag)
    return out


def sidecar_path(model_path: str) -> str:
    """``model.pt`` -> ``model.json``."""
    root, _ = os.path.splitext(model_path)
    return root + ".json"


def load_exported(model_path: str, log=None) -> tuple[torch.jit.ScriptModule, Sidecar]:
    """Load an exported model and its sidecar (the copy embedded in the model file), migrated and validated.

    Most callers want :meth:`hypo.infer.model.ExportedModel.load`, which wraps this. ``model_path`` may be a URI
    (read through a local copy, :func:`hypo.mirror.local_copy`). The embedded sidecar is the one used; a sidecar
    file beside the model that does not match it (cut short, or left by an export killed between its two files)
    is rewritten from it, and temporaries of killed exports of this file are removed (both when the folder is
    writable), with a line to ``log`` (default: standard error).

    Raises:
        HypoError: When the file is missing or not a hypo export, its sidecar is invalid or of an unreadable
            schema (one line naming the file and the field, saying how to re-export), or its signals differ from
            hypo's.
    """
    try:
        local = local_copy(model_path) if storage.is_uri(model_path) else model_path
    except OSError:
        local = None
    if local is None or not os.path.isfile(local):
        raise HypoError(f"no model at {model_path}; make one with hypo export EXPERIMENT --out model.pt")
    extra = {EXTRA_FILE: ""}
    try:
        with _quiet_jit():
            module = torch.jit.load(local, map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise HypoError(f"{model_path}: not a TorchScript model ({type(exc).__name__})") from None
    try:
        raw = json.loads(extra[EXTRA_FILE] or "null")
    except json.JSONDecodeError:
        raw = None
    sidecar = read_sidecar(raw, model_path)
    if sidecar.signals != list(SIGNALS):
        raise HypoError(f"{model_path}: the model takes signals {sidecar.signals}, hypo has {list(SIGNALS)}")
    say = log or (lambda line: print(line, file=sys.stderr))
    with contextlib.suppress(OSError):  # a read-only place: the embedded copy rules all the same
        repair_beside(model_path, storage.sha256_file(local), raw, say)
        for path in remove_stale_temporaries(model_path):
            say(f"removed {path}, left by an export killed while writing")
    return module.eval(), sidecar


def repair_beside(model_path: str, sha: str, embedded: dict[str, Any], log) -> bool:
    """Rewrite the sidecar file beside a model from its embedded copy when the two differ; True when rewritten.

    The file beside is for people and other tools, so it must say what the embedded copy says, with the model
    file's hash ``sha`` as ``model_sha256``. One that does not (empty or cut short by a kill, the previous export's
    left by a kill between the model and its sidecar, or another export's copy) is replaced; none is left none.

    Raises:
        OSError: When the file cannot be read or written.
    """
    side = sidecar_path(model_path)
    if not storage.exists(side):
        return False
    try:
        beside = json.loads(storage.read_bytes(side).decode())
    except (UnicodeDecodeError, ValueError):
        beside, why = None, "not readable JSON (an export killed while writing it?)"
    else:
        why = "did not match the model (an export killed between the model and its sidecar, or another export's)"
    if isinstance(beside, dict) and beside.pop("model_sha256", sha) == sha and beside == embedded:
        return False
    storage.write_bytes(side, json.dumps({**embedded, "model_sha256": sha}, indent=2).encode())
    log(f"{side} {why}: rewritten from the sidecar embedded in {model_path}")
    return True
