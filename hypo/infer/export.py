"""Export a trained trial as a self-contained TorchScript model with a JSON sidecar.

    python -m hypo.export runs/hypo-search --out model.pt               # the leaderboard's first trial
    python -m hypo.export runs/hypo-search --out model.pt --trial 3f2a_00001

``model.pt`` takes windows ``float32 [n, window_s, 7]`` in **physical units** (signals in
:data:`hypo.signals.SIGNALS` order) and returns class probabilities ``[n, 3]`` (normal, hypotension,
hypertension): the training split's z-score and the softmax are inside, so it runs with ``torch.jit.load``
alone, without hypo. The trace is checked against the eager model on validation windows before it is written.

``model.json`` (also embedded in ``model.pt`` as the extra file ``hypo_model.json``) says how to feed it and
what it was: signals and units, window, horizon, label thresholds, the alarm thresholds of the operating point
(fixed on the validation split, :mod:`hypo.operating_point`), the dataset's gap-filling rule and minimum
recording length (so ``hypo.predict`` prepares recordings exactly as the training data were), validation
metrics (and the test metrics of ``hypo.report`` when its report of the same checkpoint exists), and the
dataset, config and checkpoint fingerprints.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from hypo import __version__
from hypo.config import WindowConfig, from_dict, to_dict
from hypo.errors import ConfigError, HypoError
from hypo.operating_point import SPECIFICITY, alarm_thresholds, describe
from hypo.runtime import OneLineParser
from hypo.signals import CLASSES, SIGNALS, UNITS

FORMAT = "hypo-model/1"
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
        """Probabilities [n, 3] of windows ``x`` [n, window_s, 7] in physical units (NaN in, NaN out)."""
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


def window_config(manifest: dict[str, Any]) -> WindowConfig:
    """The dataset's window config (fill rule, labels, minimum length), which ``hypo.predict`` must repeat.

    Raises:
        HypoError: When the manifest records none (a dataset not written by ``preprocessing/build_windows.py``).
    """
    cfg = manifest.get("config") or {}
    if not {"window_s", "fill", "label"} <= set(cfg):
        raise HypoError("the dataset's manifest records no window config (fill rule, labels), so predictions could "
                        "not repeat its preprocessing; rebuild it with preprocessing/build_windows.py")
    return from_dict(WindowConfig, cfg)


def _metric_subset(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    keys = ["mean_auroc", "sum_auprc"] + [f"{m}_{c}" for c in CLASSES for m in ("auroc", "auprc", "prevalence")]
    return {k: _num(row.get(f"{prefix}{k}")) for k in keys}


def _num(v):
    return float(v) if isinstance(v, (int, float, np.floating)) and np.isfinite(v) else None


def _test_metrics(chosen, sha: str) -> dict[str, Any] | None:
    """The test summary of ``hypo.report`` for this very checkpoint, if a report was written (the default folder)."""
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


def build_sidecar(chosen, manifest: dict, cfg, ckpt: dict, thresholds: dict[str, float], specificity: float,
                  max_diff: float, checkpoint_sha: str) -> dict[str, Any]:
    """The sidecar dict (see the module docstring)."""
    from hypo.config import fingerprint
    from hypo.sources.base import is_simulated

    wc = window_config(manifest)
    best = chosen.record.best() or {}
    return {
        "format": FORMAT,
        "input": {"shape": ["n", int(manifest["window_s"]), len(SIGNALS)], "dtype": "float32",
                  "units": "physical (see units); no normalisation needed: the train-split z-score is inside",
                  "missing_values": "none allowed: a window holding NaN gets NaN probabilities; fill gaps with "
                                    "the fill rule below first (hypo.predict does, and skips windows it cannot fill)"},
        "output": {"shape": ["n", len(CLASSES)], "meaning": "class probabilities (softmax)", "classes": list(CLASSES)},
        "signals": list(SIGNALS),
        "units": dict(UNITS),
        "window_s": int(manifest["window_s"]),
        "stride_s": int(manifest.get("stride_s", wc.stride_s)),
        "horizon_s": int(manifest["label"]["horizon_s"]),
        "label": manifest["label"],
        "thresholds": {
            "hypo_map": float(manifest["label"]["hypo_map"]),
            "hyper_sbp": float(manifest["label"]["hyper_sbp"]),
            "p_hypotension": _num(thresholds["hypotension"]),
            "p_hypertension": _num(thresholds["hypertension"]),
            "specificity": specificity,
            "chosen_on": "validation",
            "rule": describe(specificity),
        },
        "fill": to_dict(wc.fill),
        "min_case_s": int(wc.min_case_s),
        "zscore": ckpt["zscore"],
        "model": to_dict(cfg.model),
        "trial": {"id": chosen.trial_id, "rank": chosen.rank, "epoch": chosen.epoch, "loss": cfg.loss,
                  "gamma": cfg.gamma, "experiment": chosen.exp_path, "checkpoint": chosen.checkpoint},
        "metrics": {"val": _metric_subset(best, "val_"),
                    "val_baseline": _metric_subset(chosen.meta.get("baseline") or {}, "val_"),
                    "test": _test_metrics(chosen, checkpoint_sha)},
        "fingerprints": {
            "dataset": manifest["fingerprint"],
            "checkpoint_dataset": ckpt["dataset_fingerprint"],
            "config": fingerprint(cfg),
            "search": chosen.meta.get("search_fingerprint"),
            "checkpoint_sha256": checkpoint_sha,
        },
        "source": {"name": (manifest.get("source") or {}).get("name"), "simulated": is_simulated(manifest)},
        "verification": {"max_abs_difference": max_diff, "tolerance": TOLERANCE},
        "hypo_version": __version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


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
        HypoError: When the trace disagrees with the eager model, or anything :func:`hypo.report.choose_trial`
            and :func:`hypo.report.load_trial` refuse.
    """
    from hypo.dataset import load_split
    from hypo.models import predict_proba
    from hypo.report import choose_trial, load_trial
    from hypo.storage import sha256_file

    if not 0 < specificity < 1:
        raise ConfigError(f"--specificity must be in (0, 1), got {specificity}")
    check_out_file(out)
    chosen = choose_trial(exp_path, trial)
    model, cfg, ckpt, manifest = load_trial(chosen)
    val = load_split(chosen.data_dir, "val", manifest)
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
    out, side_path = write_exported(traced, sidecar, out)
    t = sidecar["thresholds"]
    log(f"trial {chosen.trial_id} (rank {chosen.rank}: {cfg.model.name} k={cfg.model.k} {cfg.loss}), epoch "
        f"{chosen.epoch}; trace matches the model within {diff:.1e}"
        + ("  [trained on simulated data]" if sidecar["source"]["simulated"] else ""))
    log(f"  alarm thresholds (validation, {100 * specificity:.0f}% specificity): p(hypotension) >= "
        f"{t['p_hypotension']:.4f}, p(hypertension) >= {t['p_hypertension']:.4f}")
    log(f"wrote {out} and {side_path}")
    return sidecar


def write_exported(traced: torch.jit.ScriptModule, sidecar: dict[str, Any], out: str) -> tuple[str, str]:
    """Write the TorchScript file (sidecar embedded) atomically, then the sidecar beside it with the file's hash.

    Returns:
        ``(model_path, sidecar_path)``; ``sidecar["model_sha256"]`` is set.
    """
    from hypo.storage import sha256_file

    out = check_out_file(out)
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        with _quiet_jit():
            torch.jit.save(traced, tmp, _extra_files={EXTRA_FILE: json.dumps(sidecar, indent=2)})
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    sidecar["model_sha256"] = sha256_file(out)
    side = sidecar_path(out)
    with open(side, "w") as f:
        json.dump(sidecar, f, indent=2)
    return out, side


def check_out_file(out: str) -> str:
    """The absolute path of a model file to write, its folder created; refused early when it cannot be written.

    Raises:
        HypoError: When ``out`` is a folder, or its folder cannot be created or written.
    """
    from hypo.storage import writable_folder

    out = os.path.abspath(os.path.expanduser(out))
    if os.path.isdir(out):
        raise HypoError(f"--out {out} is a folder; give the model file's path, e.g. {os.path.join(out, 'model.pt')}")
    writable_folder(os.path.dirname(out))
    return out


def sidecar_path(model_path: str) -> str:
    """``model.pt`` -> ``model.json``."""
    root, _ = os.path.splitext(model_path)
    return root + ".json"


def load_exported(model_path: str) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported model and its sidecar (the copy embedded in the model file).

    Raises:
        HypoError: When the file is missing or not a hypo export, its signals differ from hypo's, or a sidecar
            file beside it belongs to another export.
    """
    if not os.path.isfile(model_path):
        raise HypoError(f"no model at {model_path}; make one with python -m hypo.export EXPERIMENT --out model.pt")
    extra = {EXTRA_FILE: ""}
    try:
        with _quiet_jit():
            module = torch.jit.load(model_path, map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise HypoError(f"{model_path}: not a TorchScript model ({type(exc).__name__})") from None
    try:
        sidecar = json.loads(extra[EXTRA_FILE] or "null")
    except json.JSONDecodeError:
        sidecar = None
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise HypoError(f"{model_path}: no {FORMAT} sidecar embedded (not made by python -m hypo.export); re-export it")
    _check_beside(model_path, sidecar)
    if sidecar.get("signals") != list(SIGNALS):
        raise HypoError(f"{model_path}: the model takes signals {sidecar.get('signals')}, hypo has {list(SIGNALS)}")
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point of ``python -m hypo.export``; user errors end in one line on stderr with status 2."""
    from hypo.runtime import one_line_errors

    p = OneLineParser(prog="hypo.export", description="Export a trial as TorchScript + JSON sidecar.")
    p.add_argument("experiment", help="experiment folder of a hypo search (storage/name)")
    p.add_argument("--out", default="model.pt", help="TorchScript file to write (sidecar: same name, .json)")
    p.add_argument("--trial", default=None, help="trial id (default: the leaderboard's first)")
    p.add_argument("--specificity", type=float, default=SPECIFICITY,
                   help="specificity of the alarm thresholds, fixed on the validation split")
    args = p.parse_args(argv)
    with one_line_errors("hypo.export"):
        return export_model(args.experiment, args.out, args.trial, args.specificity)


if __name__ == "__main__":
    main()
