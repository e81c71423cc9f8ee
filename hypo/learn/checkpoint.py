"""Checkpoints: one ``checkpoint.pt`` per saved epoch, loadable with ``torch.load(..., weights_only=True)``.

Contents (tensors and plain Python values only)::

    format             "hypo-checkpoint/1"
    epoch              last finished epoch (1-based)
    model_state        the model's state_dict (z-score buffers ``zscore.mean`` / ``zscore.std`` included)
    optimizer_state    Adam's state_dict
    config             the TrainConfig as a dict (``config["model"]`` is the ModelConfig)
    dataset_fingerprint, zscore {"mean": [7], "std": [7]}, history [per-epoch metric dicts], hypo_version

    from hypo.learn.checkpoint import load_model
    model, cfg = load_model("runs/train/x/checkpoint.pt")
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import torch

from hypo import __version__
from hypo.errors import HypoError

FORMAT = "hypo-checkpoint/1"
REQUIRED = ("format", "epoch", "model_state", "optimizer_state", "config", "dataset_fingerprint", "zscore")


def make_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, epoch: int, config: dict[str, Any],
                    dataset_fingerprint: str, zscore: dict[str, Any], history: list[dict[str, Any]]) -> dict:
    """The checkpoint dict of a training run after ``epoch`` (tensors moved to the CPU)."""

    def cpu(obj):
        if isinstance(obj, torch.Tensor):
            return obj.detach().cpu().clone()
        if isinstance(obj, dict):
            return {k: cpu(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(cpu(v) for v in obj)
        return obj

    return {
        "format": FORMAT,
        "epoch": int(epoch),
        "model_state": cpu(model.state_dict()),
        "optimizer_state": cpu(optimizer.state_dict()),
        "config": config,
        "dataset_fingerprint": str(dataset_fingerprint),
        "zscore": {"mean": [float(v) for v in zscore["mean"]], "std": [float(v) for v in zscore["std"]]},
        "history": history,
        "hypo_version": __version__,
    }


def save_checkpoint(ckpt: dict, path: str) -> str:
    """Write ``ckpt`` to ``path`` atomically (a temporary name, then a rename); returns ``path``."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:8]}")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``.

    Args:
        path: A ``checkpoint.pt``, or a folder holding one.
        map_location: Where tensors go.

    Raises:
        HypoError: When the file is missing or is not a hypo checkpoint.
    """
    path = str(path)
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.pt")
    if not os.path.isfile(path):
        raise HypoError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise HypoError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or any(k not in ckpt for k in REQUIRED):
        raise HypoError(f"{path}: not a {FORMAT} checkpoint")
    return ckpt


def load_model(checkpoint_path: str, device: str | torch.device = "cpu"):
    """Rebuild the trained model of a checkpoint.

    Args:
        checkpoint_path: A ``checkpoint.pt`` (or its folder).
        device: Where the model goes.

    Returns:
        ``(model, config)``: the model in eval mode with the saved weights and z-score, and its
        :class:`hypo.learn.train.TrainConfig`.
    """
    from hypo.config import from_dict
    from hypo.learn.models import build_model
    from hypo.learn.train_config import TrainConfig

    ckpt = load_checkpoint(checkpoint_path)
    cfg = from_dict(TrainConfig, ckpt["config"])
    model = build_model(cfg.model, ckpt["zscore"]["mean"], ckpt["zscore"]["std"])
    model.load_state_dict(ckpt["model_state"])
    return model.to(device).eval(), cfg
