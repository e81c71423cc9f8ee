"""Train one configuration: a model, a loss, Adam, and the validation split scored every epoch.

    hypo train --data data/demo --model cnn_cnn --k 42 --loss focal --gamma 2 --epochs 35

The training split lives in memory as tensors (on the GPU when there is one, with bf16 autocast there) and
batches are drawn by a seeded permutation of indices on the same device: no DataLoader, so the input pipeline
is never the bottleneck for these small models (on the CPU, glibc is told to keep freed activation buffers:
:func:`keep_freed_memory`, 2-3x faster). Epoch ``e``'s permutation depends only on (seed, e), so a run
resumed from a checkpoint continues exactly as the uninterrupted run would. After every epoch the validation
metrics (:mod:`hypo.learn.metrics`, stratified by the last reading's class) and a checkpoint go to ``on_epoch``;
the last-reading baseline's validation metrics are computed once and reported beside the model.
Writes ``OUT/checkpoint.pt`` (last epoch), ``OUT/best.pt`` (best validation epoch) and ``OUT/metrics.json``.
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from hypo import storage
from hypo.config import fingerprint, to_dict
from hypo.data.dataset import empty_split_reason
from hypo.errors import ConfigError, DatasetError
from hypo.learn.baseline import baseline_metrics, label_config, last_reading_class
from hypo.learn.checkpoint import load_checkpoint, load_model, make_checkpoint, save_checkpoint
from hypo.learn.losses import make_loss
from hypo.learn.metrics import RANK_METRICS, evaluate_scores, prefixed
from hypo.learn.models import ModelConfig, as_tensor, build_model, predict_proba
from hypo.learn.train_config import RESUMABLE, TrainConfig

__all__ = ["ModelConfig", "TrainConfig", "fit_arrays", "load_data", "load_model", "train"]

EVAL_BATCH = 16384


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's ``device`` (``"auto"``: CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available here")
    return torch.device(name)


def use_amp(mode: str, device: torch.device) -> bool:
    """Whether bf16 autocast is on (``"auto"``: on CUDA only)."""
    return mode == "bf16" or (mode == "auto" and device.type == "cuda")


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """On glibc, keep up to ``limit`` bytes of freed memory for reuse instead of returning it to the OS.

    CPU training allocates and frees the same tens-of-MB activation buffers every step; glibc's defaults unmap
    them on free and page-fault them back in on the next step, which makes the conv models 2-3x slower
    (``bench/train.py --glibc-default``). Raising the mmap and trim thresholds keeps them in the heap; the cost
    is up to ``limit`` bytes of resident memory the process no longer gives back. Process-wide, idempotent.

    Returns:
        Whether the thresholds were set (False off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from malloc.h
        return bool(libc.mallopt(m_mmap_threshold, ctypes.c_int(limit))) and bool(
            libc.mallopt(m_trim_threshold, ctypes.c_int(limit)))
    except (OSError, AttributeError):
        return False


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The generator of epoch ``epoch``'s batch order: a function of (seed, epoch) only, so resumes replay it."""
    return torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + int(epoch))


def dropout_groups(signals) -> torch.Tensor:
    """Membership matrix [groups, 7] (float) of the signal groups a model reads, for :func:`drop_channels`."""
    from hypo.data.signals import GROUPS, N_SIGNALS

    m = torch.zeros(len(signals), N_SIGNALS)
    for j, g in enumerate(signals):
        m[j, list(GROUPS[g])] = 1.0
    return m


def drop_channels(xb: torch.Tensor, p: float, groups: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``xb`` with each signal group of each window made absent (NaN) with chance ``p`` (channel dropout).

    Args:
        xb: A batch [b, steps, 7] in physical units.
        p: Chance per window and group.
        groups: Membership matrix [groups, 7] (:func:`dropout_groups`) on ``xb``'s device.
        generator: The epoch's generator, so a resumed run drops the same groups.
    """
    drop = torch.rand(len(xb), len(groups), generator=generator, device=xb.device) < p
    channels = (drop.to(groups.dtype) @ groups) > 0  # [b, 7]
    return xb.masked_fill(channels[:, None, :], float("nan"))


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: torch.nn.Module, x: torch.Tensor,
                y: torch.Tensor, batch_size: int, generator: torch.Generator, amp: bool = False,
                channel_dropout: float = 0.0, groups: torch.Tensor | None = None) -> float:
    """One pass over ``x`` in batches of a seeded on-device permutation; returns the mean training loss.

    With ``channel_dropout`` > 0 every batch goes through :func:`drop_channels` (``groups``: the groups read).
    """
    model.train()
    n = len(x)
    perm = torch.randperm(n, generator=generator, device=x.device)
    total = torch.zeros((), device=x.device)
    for i in range(0, n, batch_size):
        idx = perm[i : i + batch_size]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        if channel_dropout > 0:
            xb = drop_channels(xb, channel_dropout, groups, generator)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(xb)
        loss = loss_fn(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
    return float(total) / n  # one device sync per epoch


def load_data(data_dir: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The train and validation splits of a window dataset, with its manifest and fingerprint.

    Args:
        data_dir: The window dataset.
        manifest: Its manifest when already read (:func:`hypo.data.dataset.read_manifest`).
    """
    from hypo.data.dataset import load_split, read_manifest

    manifest = manifest if manifest is not None else read_manifest(data_dir)
    return {
        "train": load_split(data_dir, "train", manifest),
        "val": load_split(data_dir, "val", manifest),
        "manifest": manifest,
        "fingerprint": manifest["fingerprint"],
        "data": str(data_dir),
    }


def check_no_missing(model_cfg: ModelConfig, splits) -> None:
    """Refuse windows with NaN in a signal a model without the availability mask reads (its loss would be NaN).

    Args:
        model_cfg: The model.
        splits: ``(name, x)`` pairs, ``x`` [n, steps, 7].

    Raises:
        DatasetError: Naming the split and the signal groups, and how to train on them.
    """
    from hypo.data.signals import GROUPS

    for name, xs in splits:
        seen = np.zeros(np.shape(xs)[-1], bool)
        for i in range(0, len(xs), 65536):  # in blocks: no full-size temporary
            seen |= np.isnan(np.asarray(xs[i : i + 65536])).any(axis=(0, 1))
        nan = [g for g in model_cfg.signals if seen[list(GROUPS[g])].any()]
        if nan:
            raise DatasetError(f"the {name} split has windows without {', '.join(nan)} (NaN, e.g. cases kept with "
                               "--allow-missing); train with --channel-dropout P (a model that takes missing groups), "
                               "or leave those groups out of the model's signals")


def rank_key(metrics: dict[str, Any]) -> tuple[float, ...]:
    """Sort key of an epoch's metrics: RANK_METRICS in order, NaN lowest (as the leaderboard ranks)."""
    return tuple(v if isinstance(v, (int, float)) and math.isfinite(v) else -math.inf
                 for v in (metrics.get(k) for k in RANK_METRICS))


def fit_arrays(cfg: TrainConfig, data: dict[str, Any], out_dir: str | None = None,
               on_epoch: Callable[[int, dict[str, Any], str], None] | None = None, resume_from: str | None = None,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train on splits already in memory (what the search's trials call).

    Args:
        cfg: The run.
        data: ``{"train", "val"}`` WindowArrays, ``"manifest"``, optionally ``"fingerprint"`` and ``"baseline"``
            (the baseline's ``val_*`` metrics, computed here when absent).
        out_dir: Local folder for ``checkpoint.pt``, ``best.pt`` and ``metrics.json`` (nothing written when None).
        on_epoch: Called after every epoch as ``on_epoch(epoch, metrics, checkpoint_dir)``; ``checkpoint_dir`` holds
            that epoch's ``checkpoint.pt`` and is deleted when the call returns.
        resume_from: A ``checkpoint.pt`` of the same configuration and dataset: training continues at its
            epoch + 1 with its optimizer state and history.
        log: Where the per-epoch lines go (silent when None).

    Returns:
        ``{"config", "dataset_fingerprint", "history", "best_epoch", "best", "baseline", ...}`` (also ``metrics.json``).
    """
    manifest = data["manifest"]
    fp = str(data.get("fingerprint") or manifest["fingerprint"])
    train_a, val_a = data["train"], data["val"]
    if int(manifest["window_s"]) != cfg.model.window_s:
        raise DatasetError(f"the dataset has {manifest['window_s']}-s windows, the model takes {cfg.model.window_s}")
    for name, split in (("train", train_a), ("val", val_a)):
        if len(split) == 0:
            raise DatasetError(empty_split_reason(manifest, name))
    if not cfg.model.mask:
        check_no_missing(cfg.model, (("train", train_a.x), ("val", val_a.x)))
    device = resolve_device(cfg.device)
    amp = use_amp(cfg.amp, device)
    if device.type == "cpu":
        keep_freed_memory()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(cfg.seed)
    zscore = {"mean": list(manifest["zscore"]["mean"]), "std": list(manifest["zscore"]["std"])}
    model = build_model(cfg.model, zscore["mean"], zscore["std"]).to(device)
    fused = device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused)
    loss_fn = make_loss(cfg.loss, cfg.gamma, cfg.alpha).to(device)
    val_loss_fn = make_loss(cfg.loss, cfg.gamma, cfg.alpha)
    config = to_dict(cfg)

    history: list[dict[str, Any]] = []
    start = 1
    if resume_from:
        ckpt = load_checkpoint(resume_from)
        _check_resume(ckpt, cfg, fp, resume_from)
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        for group in optimizer.param_groups:  # a checkpoint may come from another kind of device
            group["fused"] = fused
        for p, st in optimizer.state.items():  # fused Adam keeps its step counts beside the parameters
            if "step" in st:
                st["step"] = st["step"].to(p.device if fused else "cpu", torch.float32)
        history = list(ckpt.get("history", []))
        start = int(ckpt["epoch"]) + 1

    # The model's first validation warns about classes absent from val; the baseline's would say the same.
    baseline = data.get("baseline") or prefixed(baseline_metrics(val_a, manifest, where="val", warn=False), "val_")
    x = as_tensor(train_a.x).to(device, torch.float32)
    y = as_tensor(np.asarray(train_a.label, np.int64)).to(device)
    groups = dropout_groups(cfg.model.signals).to(device) if cfg.channel_dropout > 0 else None
    last_val = last_reading_class(val_a.last_map, val_a.last_sbp, label_config(manifest))
    y_val = as_tensor(np.asarray(val_a.label, np.int64))
    best = max(history, key=rank_key, default=None)

    for epoch in range(start, cfg.epochs + 1):
        t0 = time.perf_counter()
        loss = train_epoch(model, optimizer, loss_fn, x, y, cfg.batch_size, epoch_generator(cfg.seed, epoch, device),
                           amp, cfg.channel_dropout, groups)
        train_s = time.perf_counter() - t0
        probs = predict_proba(model, val_a.x, EVAL_BATCH, device, amp)
        with torch.no_grad():  # log-probabilities are valid logits: the loss of the probabilities we scored
            val_loss = float(val_loss_fn(torch.log(torch.from_numpy(probs).clamp_min(1e-30)), y_val))
        scores = evaluate_scores(val_a.label, probs, last_val, where="val", warn=epoch == start)
        metrics = {
            "epoch": epoch,
            "loss": loss,
            "val_loss": val_loss,
            **prefixed(scores, "val_"),
            "baseline_val_mean_auroc": baseline.get("val_mean_auroc", math.nan),
            "baseline_val_sum_auprc": baseline.get("val_sum_auprc", math.nan),
            "windows_per_s": len(x) / train_s,
            "train_s": train_s,
            "epoch_s": time.perf_counter() - t0,
        }
        history.append(metrics)
        is_best = best is None or rank_key(metrics) > rank_key(best)
        if is_best:
            best = metrics
        if log:
            log(f"epoch {epoch:>3}/{cfg.epochs}  loss {loss:.4f}  val mean AUROC {metrics['val_mean_auroc']:.4f}  "
                f"val sum AUPRC {metrics['val_sum_auprc']:.4f}  {metrics['windows_per_s']:,.0f} windows/s"
                + ("  *" if is_best else ""))
        ckpt = make_checkpoint(model, optimizer, epoch, config, fp, zscore, history)
        if out_dir:  # metrics.json follows every epoch, so a killed run still leaves its record
            path = save_checkpoint(ckpt, os.path.join(out_dir, "checkpoint.pt"))
            if is_best:
                shutil.copyfile(path, os.path.join(out_dir, "best.pt"))
            storage.write_json(os.path.join(out_dir, "metrics.json"),
                               json_safe(summary(cfg, data, device, amp, history, best, baseline)))
        if on_epoch:
            with tempfile.TemporaryDirectory(prefix="hypo-ckpt-") as tmp:
                save_checkpoint(ckpt, os.path.join(tmp, "checkpoint.pt"))
                on_epoch(epoch, metrics, tmp)

    result = summary(cfg, data, device, amp, history, best, baseline)
    if out_dir:
        storage.write_json(os.path.join(out_dir, "metrics.json"), json_safe(result))
    return result


def summary(cfg: TrainConfig, data: dict[str, Any], device: torch.device, amp: bool, history: list[dict[str, Any]],
            best: dict[str, Any] | None, baseline: dict[str, Any]) -> dict[str, Any]:
    """The run's record: config, dataset fingerprint, per-epoch history, best epoch and baseline."""
    return {
        "config": to_dict(cfg),
        "config_fingerprint": fingerprint(cfg),
        "dataset_fingerprint": str(data.get("fingerprint") or data["manifest"]["fingerprint"]),
        "data": data.get("data"),
        "device": str(device),
        "amp": amp,
        "n_train": len(data["train"]),
        "n_val": len(data["val"]),
        "epochs_run": len(history),
        "best_epoch": best["epoch"] if best else None,
        "best": best,
        "baseline": baseline,
        "history": history,
    }


def _check_resume(ckpt: dict[str, Any], cfg: TrainConfig, fp: str, path: str) -> None:
    """Refuse to resume a checkpoint of another model, loss or dataset (epochs may grow)."""
    if ckpt["dataset_fingerprint"] != fp:
        raise DatasetError(f"{path} was trained on dataset {ckpt['dataset_fingerprint']}, this one is {fp}")
    have = {k: v for k, v in ckpt["config"].items() if k not in RESUMABLE}
    want = {k: v for k, v in to_dict(cfg).items() if k not in RESUMABLE}
    if have != want:
        diff = sorted(k for k in want if have.get(k) != want[k])
        raise ConfigError(f"{path} holds another configuration ({', '.join(diff)} differ); cannot resume from it")


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def train(train_cfg: TrainConfig, data_dir: str, out_dir: str | None = None,
          on_epoch: Callable[[int, dict[str, Any], str], None] | None = None, resume_from: str | None = None,
          log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train one configuration on a window dataset folder.

    Args:
        train_cfg: The run.
        data_dir: Window dataset folder (local path or URI).
        out_dir: Output folder (``checkpoint.pt``, ``best.pt``, ``metrics.json``), or None.
        on_epoch: ``on_epoch(epoch, metrics, checkpoint_dir)`` after every epoch.
        resume_from: Checkpoint to continue from.
        log: Where per-epoch lines go.

    Returns:
        The result dict of :func:`fit_arrays`.
    """
    return fit_arrays(train_cfg, load_data(data_dir), out_dir=out_dir, on_epoch=on_epoch, resume_from=resume_from,
                      log=log)
