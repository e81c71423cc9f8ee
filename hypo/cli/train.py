"""``hypo train``: train one model configuration on a window dataset.

    hypo train --data data/demo --model cnn_cnn --k 42 --loss focal --gamma 2 --epochs 35

The work is :func:`hypo.learn.train_job.train_job` (training: :func:`hypo.learn.train.fit_arrays`); this is its
command-line front.
"""

from __future__ import annotations

import argparse
from typing import Any

from hypo.data.signals import GROUP_NAMES, parse_groups
from hypo.errors import ConfigError
from hypo.learn.losses import LOSSES
from hypo.learn.models import HEADS, MODELS, ModelConfig
from hypo.learn.train_config import AMP_MODES, TrainConfig, needs_mask
from hypo.learn.train_job import train_job
from hypo.runtime import OneLineParser, one_line_errors

PROG = "hypo train"


def parse_args(argv: list[str] | None = None, prog: str = PROG) -> argparse.Namespace:
    """Command-line arguments of ``hypo train``."""
    p = OneLineParser(prog=prog, description="Train one model configuration on a window dataset.")
    p.add_argument("--data", required=True, help="window dataset folder (local path or s3://...)")
    p.add_argument("--model", choices=MODELS, default="cnn_cnn", help="model type")
    p.add_argument("--k", type=int, default=42, help="width k (42: the paper's CNN*CNN)")
    p.add_argument("--loss", choices=LOSSES, default="focal", help="loss function")
    p.add_argument("--gamma", type=float, default=None, help="focal gamma (default 2 for focal, 0 for ce)")
    p.add_argument("--alpha", type=float, nargs=3, default=None, metavar=("NORMAL", "HYPO", "HYPER"),
                   help="per-class loss weights")
    p.add_argument("--epochs", type=int, default=35, help="epochs (the paper: 35)")
    p.add_argument("--batch-size", type=int, default=4096, help="windows per step (the paper: 4096)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=AMP_MODES, default="auto", help="bf16 autocast (auto: on CUDA)")
    p.add_argument("--channel-dropout", type=float, default=0.0, metavar="P",
                   help="training only: make each signal group (ecg, nibp, pleth, mac, bis) of a window absent with "
                        "chance P, so the model learns to predict without it (it then takes NaN for missing "
                        "groups and gets their availability mask as extra input channels)")
    p.add_argument("--signals", default=None, metavar="GROUPS",
                   help="signal groups the model reads, e.g. ecg,nibp,pleth (default all: ecg,nibp,pleth,mac,bis)")
    p.add_argument("--head", choices=HEADS, default="class",
                   help="class: the 3-class output only (default); hazard: also a discrete-time hazard head, a risk "
                        "by each horizon that cannot fall as the horizon grows; independent: a risk per horizon "
                        "(datasets built with hypo windows --horizons)")
    p.add_argument("--out", default=None, help="local output folder (default runs/train/<model>-k<k>-<loss>-<hash>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace, window_s: int = 60, absent: tuple[str, ...] = ()) -> TrainConfig:
    """The TrainConfig the arguments describe (validated), for a dataset of ``window_s``-second windows.

    ``absent``: signal groups some of the dataset's windows lack; a model reading them takes missing groups.
    """
    gamma = args.gamma if args.gamma is not None else (2.0 if args.loss == "focal" else 0.0)
    dropout = getattr(args, "channel_dropout", 0.0) or 0.0
    try:
        signals = parse_groups(args.signals) if getattr(args, "signals", None) else GROUP_NAMES
    except ValueError as exc:
        raise ConfigError(f"--signals: {exc}") from None
    return TrainConfig(
        model=ModelConfig(name=args.model, k=args.k, window_s=window_s, signals=signals,
                          mask=needs_mask(dropout, absent, signals)),
        channel_dropout=dropout,
        loss=args.loss,
        gamma=gamma,
        alpha=tuple(args.alpha) if args.alpha else None,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
    )


def main(argv: list[str] | None = None, prog: str = PROG) -> dict[str, Any]:
    """Entry point of ``hypo train``; user errors end in one line on stderr with status 2."""
    args = parse_args(argv, prog)
    # Without --resume a run starts again at epoch 1 and overwrites its checkpoint.
    again = ("re-run the same command to resume" if args.resume else
             "re-run it with --resume added to continue from its last finished epoch (without it, training starts "
             "again at epoch 1)")
    with one_line_errors(prog, on_interrupt=again):
        return train_job(args.data, lambda window_s, absent: config_from_args(args, window_s, absent), out=args.out,
                         resume=args.resume, log=lambda s: print(s, flush=True), head=args.head)
