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
import dataclasses
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
from hypo.data.dataset import WindowArrays, empty_split_reason
from hypo.data.manifest import Manifest
from hypo.errors import ConfigError, DatasetError
from hypo.jsonio import jsonable
from hypo.learn.baseline import baseline_metrics, label_config, last_reading_class
from hypo.learn.checkpoint import load_checkpoint, load_model, make_checkpoint, save_checkpoint
from hypo.learn.losses import HorizonLoss, make_loss
from hypo.learn.metrics import RANK_METRICS, evaluate_scores, horizon_scores, prefixed
from hypo.learn.models import ModelConfig, as_tensor, build_model, predict_horizon_risk, predict_proba
from hypo.learn.train_config import RESUMABLE, TrainConfig

__all__ = ["ModelConfig", "TrainConfig", "TrainingData", "fit_arrays", "load_data", "load_model", "train"]

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


@dataclasses.dataclass
class TrainStep:
    """How one batch trains: the model, its optimizer and loss, bf16 autocast, and channel dropout.

    Attributes:
        model: The model (on the training tensors' device).
        optimizer: Its optimizer.
        loss_fn: The training loss (on the same device).
        amp: bf16 autocast for the forward pass.
        channel_dropout: Chance per window and group that a group is made absent (:func:`drop_channels`).
        groups: The groups the model reads (:func:`dropout_groups`, on the device), with ``channel_dropout`` > 0.
        multi: The model has per-horizon risks: the loss takes all its outputs (``model.outputs``) and targets
            [b, 1 + H] (:func:`training_targets`).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: torch.nn.Module
    amp: bool = False
    channel_dropout: float = 0.0
    groups: torch.Tensor | None = None
    multi: bool = False


def train_epoch(step: TrainStep, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                generator: torch.Generator) -> float:
    """One pass over ``x`` in batches of a seeded on-device permutation; returns the mean training loss.

    With ``step.channel_dropout`` > 0 every batch goes through :func:`drop_channels`.
    """
    model, optimizer = step.model, step.optimizer
    model.train()
    n = len(x)
    perm = torch.randperm(n, generator=generator, device=x.device)
    total = torch.zeros((), device=x.device)
    for i in range(0, n, batch_size):
        idx = perm[i : i + batch_size]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        if step.channel_dropout > 0:
            xb = drop_channels(xb, step.channel_dropout, step.groups, generator)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=step.amp):
            logits = model.outputs(xb) if step.multi else model(xb)
        loss = step.loss_fn(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
    return float(total) / n  # one device sync per epoch


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The splits a run trains and validates on, with the dataset's manifest (what a search's trials share).

    Attributes:
        train: The train split.
        val: The validation split.
        manifest: The dataset's manifest (window length, z-score, label rule, fingerprint).
        data_dir: Where the dataset is (recorded in ``metrics.json``), if known.
        baselines: Every named baseline's validation record (:func:`hypo.learn.baselines.baseline_records`), when
            already scored (a search scores them once); the first is the last reading.
    """

    train: WindowArrays
    val: WindowArrays
    manifest: Manifest
    data_dir: str | None = None
    baselines: tuple[dict[str, Any], ...] = ()

    @property
    def fingerprint(self) -> str:
        """The dataset's fingerprint."""
        return self.manifest.fingerprint

    @property
    def baseline(self) -> dict[str, Any] | None:
        """The last reading's ``val_*`` metrics, when the baselines were scored already."""
        return self.baselines[0]["metrics"] if self.baselines else None


def load_data(data_dir: str, manifest: Manifest | None = None) -> TrainingData:
    """The train and validation splits of a window dataset, with its manifest.

    Args:
        data_dir: The window dataset.
        manifest: Its manifest when already read (:func:`hypo.data.dataset.read_manifest`).
    """
    from hypo.data.dataset import load_split, read_manifest

    manifest = manifest if manifest is not None else read_manifest(data_dir)
    return TrainingData(load_split(data_dir, "train", manifest), load_split(data_dir, "val", manifest), manifest,
                        str(data_dir))


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


def check_data(cfg: TrainConfig, data: TrainingData) -> None:
    """Refuse data the run cannot train on: another window length, an empty split, NaN the model cannot take.

    Raises:
        DatasetError: One line saying which and what to do.
    """
    window_s = data.manifest.window_s
    if window_s != cfg.model.window_s:
        raise DatasetError(f"the dataset has {window_s}-s windows, the model takes {cfg.model.window_s}")
    for name, split in (("train", data.train), ("val", data.val)):
        if len(split) == 0:
            raise DatasetError(empty_split_reason(data.manifest, name))
    if not cfg.model.mask:
        check_no_missing(cfg.model, (("train", data.train.x), ("val", data.val.x)))
    if cfg.model.head != "class":
        have = data.manifest.horizons_s if data.manifest.horizons is not None else ()
        if len(have) != cfg.model.n_horizons or data.train.horizon_labels is None:
            raise DatasetError(f"the {cfg.model.head} head needs a dataset built with --horizons giving "
                               f"{cfg.model.n_horizons} horizons; this one has {len(have) or 'one'}")


def training_targets(model_cfg: ModelConfig, split: WindowArrays) -> np.ndarray:
    """What the loss trains on: the class labels [n], or with per-horizon risks [n, 1 + H].

    With per-horizon risks: the label, then hypotension by each horizon (:func:`hypo.data.windows.hypotension_by`,
    -1 unknown).
    """
    from hypo.data.windows import hypotension_by

    label = np.asarray(split.label, np.int64)
    if model_cfg.head == "class":
        return label
    return np.concatenate([label[:, None], hypotension_by(split.horizon_labels).astype(np.int64)], axis=1)


def prepare_device(cfg: TrainConfig) -> tuple[torch.device, bool]:
    """The run's device and whether bf16 autocast is on, with the process set up for it."""
    device = resolve_device(cfg.device)
    amp = use_amp(cfg.amp, device)
    if device.type == "cpu":
        keep_freed_memory()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device, amp


def build_step(cfg: TrainConfig, zscore: dict[str, list[float]], device: torch.device, amp: bool) -> TrainStep:
    """The model (seeded by ``cfg.seed``), Adam and the training loss on ``device``."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, zscore["mean"], zscore["std"]).to(device)
    fused = device.type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=fused)
    groups = dropout_groups(cfg.model.signals).to(device) if cfg.channel_dropout > 0 else None
    loss = make_loss(cfg.loss, cfg.gamma, cfg.alpha)
    multi = cfg.model.head != "class"
    loss = HorizonLoss(loss, cfg.model.head) if multi else loss
    return TrainStep(model, optimizer, loss.to(device), amp, cfg.channel_dropout, groups, multi)


def resume_step(step: TrainStep, cfg: TrainConfig, fp: str, path: str) -> tuple[int, list[dict[str, Any]]]:
    """Load a checkpoint's model and optimizer state into ``step``.

    Returns:
        ``(first epoch to train, history so far)``.
    """
    ckpt = load_checkpoint(path)
    _check_resume(ckpt, cfg, fp, path)
    step.model.load_state_dict(ckpt["model_state"])
    step.optimizer.load_state_dict(ckpt["optimizer_state"])
    fused = next(step.model.parameters()).device.type == "cuda"
    for group in step.optimizer.param_groups:  # a checkpoint may come from another kind of device
        group["fused"] = fused
    for p, st in step.optimizer.state.items():  # fused Adam keeps its step counts beside the parameters
        if "step" in st:
            st["step"] = st["step"].to(p.device if fused else "cpu", torch.float32)
    return int(ckpt["epoch"]) + 1, list(ckpt.get("history", []))


@dataclasses.dataclass
class Validation:
    """The validation split as every epoch scores it: windows, labels, the last reading's class, the loss."""

    x: np.ndarray
    label: np.ndarray
    y: torch.Tensor
    last: np.ndarray
    loss_fn: torch.nn.Module
    by_horizon: np.ndarray | None = None  # multi-horizon datasets: hypotension by each horizon [n, H]
    horizons: tuple[int, ...] = ()

    @classmethod
    def of(cls, cfg: TrainConfig, data: TrainingData) -> Validation:
        """The validation split of ``data``, with the run's loss (on the CPU)."""
        from hypo.data.windows import hypotension_by

        val = data.val
        by = hypotension_by(val.horizon_labels) if val.horizon_labels is not None else None
        return cls(val.x, val.label, as_tensor(np.asarray(val.label, np.int64)),
                   last_reading_class(val.last_map, val.last_sbp, label_config(data.manifest)),
                   make_loss(cfg.loss, cfg.gamma, cfg.alpha), by, data.manifest.horizons_s if by is not None else ())

    def score(self, model: torch.nn.Module, device: torch.device, amp: bool, warn: bool) -> dict[str, Any]:
        """``val_loss`` and the ``val_*`` metrics of ``model`` (with several horizons ``val_h<S>_*`` too)."""
        probs = predict_proba(model, self.x, EVAL_BATCH, device, amp)
        with torch.no_grad():  # log-probabilities are valid logits: the loss of the probabilities we scored
            val_loss = float(self.loss_fn(torch.log(torch.from_numpy(probs).clamp_min(1e-30)), self.y))
        scores = evaluate_scores(self.label, probs, self.last, where="val", warn=warn)
        if self.by_horizon is not None:  # a class head scores its p(hypotension) at every horizon
            risk = (predict_horizon_risk(model, self.x, EVAL_BATCH, device, amp) if model.cfg.n_horizons
                    else probs[:, 1])
            scores.update(horizon_scores(self.by_horizon, risk, self.horizons))
        return {"val_loss": val_loss, **prefixed(scores, "val_")}


def fit_arrays(cfg: TrainConfig, data: TrainingData, out_dir: str | None = None,
               on_epoch: Callable[[int, dict[str, Any], str], None] | None = None, resume_from: str | None = None,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train on splits already in memory (what the search's trials call).

    Args:
        cfg: The run.
        data: The splits and manifest (the last reading's validation metrics are computed here unless
            ``data.baselines`` holds them).
        out_dir: Local folder for ``checkpoint.pt``, ``best.pt`` and ``metrics.json`` (nothing written when None).
        on_epoch: Called after every epoch as ``on_epoch(epoch, metrics, checkpoint_dir)``; ``checkpoint_dir`` holds
            that epoch's ``checkpoint.pt`` and is deleted when the call returns.
        resume_from: A ``checkpoint.pt`` of the same configuration and dataset: training continues at its
            epoch + 1 with its optimizer state and history.
        log: Where the per-epoch lines go (silent when None).

    Returns:
        ``{"config", "dataset_fingerprint", "history", "best_epoch", "best", "baseline", ...}`` (also ``metrics.json``).
    """
    check_data(cfg, data)
    device, amp = prepare_device(cfg)
    zscore = {"mean": list(data.manifest.zscore.mean), "std": list(data.manifest.zscore.std)}
    step = build_step(cfg, zscore, device, amp)
    start, history = resume_step(step, cfg, data.fingerprint, resume_from) if resume_from else (1, [])
    # The model's first validation warns about classes absent from val; the baseline's would say the same.
    baseline = data.baseline or prefixed(baseline_metrics(data.val, data.manifest, where="val", warn=False), "val_")
    x = as_tensor(data.train.x).to(device, torch.float32)
    y = as_tensor(training_targets(cfg.model, data.train)).to(device)
    val = Validation.of(cfg, data)
    best = max(history, key=rank_key, default=None)
    run = RunRecord(cfg, data, device, amp, baseline, history)

    for epoch in range(start, cfg.epochs + 1):
        t0 = time.perf_counter()
        loss = train_epoch(step, x, y, cfg.batch_size, epoch_generator(cfg.seed, epoch, device))
        train_s = time.perf_counter() - t0
        metrics = {
            "epoch": epoch,
            "loss": loss,
            **val.score(step.model, device, amp, warn=epoch == start),
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
            log(epoch_line(metrics, cfg.epochs, is_best))
        run.best = best
        ckpt = make_checkpoint(step.model, step.optimizer, epoch, to_dict(cfg), data.fingerprint, zscore, history)
        if out_dir:  # metrics.json follows every epoch, so a killed run still leaves its record
            save_run(ckpt, out_dir, is_best, run.summary())
        if on_epoch:
            with tempfile.TemporaryDirectory(prefix="hypo-ckpt-") as tmp:
                save_checkpoint(ckpt, os.path.join(tmp, "checkpoint.pt"))
                on_epoch(epoch, metrics, tmp)

    run.best = best
    result = run.summary()
    if out_dir:
        storage.write_json(os.path.join(out_dir, "metrics.json"), jsonable(result))
    return result


def epoch_line(metrics: dict[str, Any], epochs: int, is_best: bool) -> str:
    """The console line of one epoch (``*`` marks a new best)."""
    return (f"epoch {metrics['epoch']:>3}/{epochs}  loss {metrics['loss']:.4f}  val mean AUROC "
            f"{metrics['val_mean_auroc']:.4f}  val sum AUPRC {metrics['val_sum_auprc']:.4f}  "
            f"{metrics['windows_per_s']:,.0f} windows/s" + ("  *" if is_best else ""))


def save_run(ckpt: dict[str, Any], out_dir: str, is_best: bool, record: dict[str, Any]) -> None:
    """Write the epoch's ``checkpoint.pt`` (and ``best.pt`` when it is the best) and ``metrics.json``."""
    path = save_checkpoint(ckpt, os.path.join(out_dir, "checkpoint.pt"))
    if is_best:
        shutil.copyfile(path, os.path.join(out_dir, "best.pt"))
    storage.write_json(os.path.join(out_dir, "metrics.json"), jsonable(record))


@dataclasses.dataclass
class RunRecord:
    """What ``metrics.json`` records of a run: its config, data, device, history, best epoch and baseline."""

    cfg: TrainConfig
    data: TrainingData
    device: torch.device
    amp: bool
    baseline: dict[str, Any]
    history: list[dict[str, Any]]
    best: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """The run's record: config, dataset fingerprint, per-epoch history, best epoch and baseline."""
        best = self.best
        return {
            "config": to_dict(self.cfg),
            "config_fingerprint": fingerprint(self.cfg),
            "dataset_fingerprint": self.data.fingerprint,
            "data": self.data.data_dir,
            "device": str(self.device),
            "amp": self.amp,
            "n_train": len(self.data.train),
            "n_val": len(self.data.val),
            "epochs_run": len(self.history),
            "best_epoch": best["epoch"] if best else None,
            "best": best,
            "baseline": self.baseline,
            "history": self.history,
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
