"""``hypo train`` as one job: one configuration trained on a window dataset, its best epoch beside the baseline.

train_job("data/demo", lambda window_s, absent: TrainConfig(...), out=None, resume=False)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

from hypo.config import fingerprint, to_dict
from hypo.errors import ConfigError
from hypo.learn.train_config import RESUMABLE, TrainConfig

# make_config(window_s, absent groups) -> the run's TrainConfig (its flags checked against the dataset)
MakeConfig = Callable[[int, tuple[str, ...]], TrainConfig]


def comparison_lines(best: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """The model's best validation epoch beside the last-reading baseline, one metric a line."""
    rows = [("mean AUROC", "mean_auroc"), ("sum AUPRC (hypo + hyper)", "sum_auprc")]
    for c in ("normal", "hypotension", "hypertension"):
        rows += [(f"AUROC {c}", f"auroc_{c}"), (f"AUPRC {c}", f"auprc_{c}"), (f"prevalence {c}", f"prevalence_{c}")]
    for s in ("normal", "hypotension", "hypertension", "none"):
        rows += [(f"last reading {s}: n", f"bylast_{s}_n"), (f"last reading {s}: mean AUROC", f"bylast_{s}_mean_auroc")]
    lines = [f"{'validation':<36} {'model':>10} {'baseline':>10}"]
    for name, key in rows:
        m, b = best.get(f"val_{key}", math.nan), baseline.get(f"val_{key}", math.nan)
        fmt = "{:>10.0f}" if key.endswith("_n") else "{:>10.4f}"
        lines.append(f"{name:<36} " + fmt.format(m) + " " + fmt.format(b))
    return lines


def default_run_folder(cfg: TrainConfig) -> str:
    """``runs/train/<model>-k<k>-<loss>-<hash>``: named by what defines the model, not by what --resume may change."""
    run_id = fingerprint({k: v for k, v in to_dict(cfg).items() if k not in RESUMABLE})
    return os.path.join("runs", "train", f"{cfg.model.name}-k{cfg.model.k}-{cfg.loss}-{run_id[:8]}")


def train_job(data_dir: str, make_config: MakeConfig, out: str | None = None, resume: bool = False,
              log: Callable[[str], None] = print, head: str = "class") -> dict[str, Any]:
    """Train one configuration on a window dataset and print its best epoch beside the baseline.

    Every flag and ``resume`` are checked from the manifest alone, before the splits are read.

    Args:
        data_dir: The window dataset.
        make_config: Builds the run's config for the dataset's window length and absent signal groups.
        out: The run folder (default :func:`default_run_folder`).
        resume: Continue from ``out/checkpoint.pt``.
        log: Where the lines go.
        head: The model's head (:data:`hypo.learn.models.HEADS`): ``hazard`` and ``independent`` give a risk for
            each horizon of a dataset built with ``--horizons``.

    Returns:
        The result of :func:`hypo.learn.train.fit_arrays`.

    Raises:
        ConfigError: A per-horizon head on a single-horizon dataset, or a bad flag.
    """
    from hypo.data.dataset import absent_groups, read_manifest
    from hypo.data.signals import GROUP_NAMES
    from hypo.learn.metrics import RANK_METRICS
    from hypo.learn.train import fit_arrays, load_data, resolve_device

    man = read_manifest(data_dir)
    cfg = make_config(man.window_s, absent_groups(man))
    if head != "class":
        if man.horizons is None:
            raise ConfigError(f"--head {head} needs a dataset built with hypo windows --horizons; {data_dir} has one "
                              f"horizon ({man.label.horizon_s} s)")
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, head=head,
                                                                 n_horizons=len(man.horizons_s)))
    out = out or default_run_folder(cfg)
    checkpoint = os.path.join(out, "checkpoint.pt") if resume else None
    if checkpoint and not os.path.exists(checkpoint):
        raise ConfigError(f"--resume: no checkpoint at {checkpoint}")
    data = load_data(data_dir, man)
    log(f"data {data_dir}: {len(data.train):,} train / {len(data.val):,} val windows, "
        f"label mode {man.label.mode}, fingerprint {data.fingerprint}")
    log(f"config {cfg.model.name} k={cfg.model.k} loss={cfg.loss} gamma={cfg.gamma} lr={cfg.lr} "
        f"batch={cfg.batch_size} epochs={cfg.epochs} seed={cfg.seed} device={resolve_device(cfg.device)}"
        + (f" signals={'+'.join(cfg.model.signals)}" if cfg.model.signals != GROUP_NAMES else "")
        + (f" channel_dropout={cfg.channel_dropout:g}" if cfg.channel_dropout else "")
        + (" (takes missing groups: availability mask)" if cfg.model.mask else ""))
    result = fit_arrays(cfg, data, out_dir=out, resume_from=checkpoint, log=log)
    if result["best"] is not None:
        log(f"best epoch {result['best_epoch']} (ranked on {', '.join(RANK_METRICS)}):")
        for line in comparison_lines(result["best"], result["baseline"]):
            log("  " + line)
        if man.horizons is not None:
            log("  hypotension by each horizon (validation AUROC / AUPRC): " + ", ".join(
                f"{h} s {result['best'].get(f'val_h{h}_auroc', math.nan):.4f} / "
                f"{result['best'].get(f'val_h{h}_auprc', math.nan):.4f}" for h in man.horizons_s))
    log(f"wrote {os.path.join(out, 'checkpoint.pt')}, best.pt and metrics.json")
    return result
