"""The configuration of one training run, in a module of its own so that training and checkpoints share it.

:class:`TrainConfig` is saved inside every checkpoint and ``metrics.json``; :mod:`hypo.learn.checkpoint` rebuilds
models from it and :mod:`hypo.learn.train` runs it, so it sits below both (no import circle between them).
"""

from __future__ import annotations

import dataclasses
import math

from hypo.config import register_config
from hypo.data.signals import GROUP_NAMES
from hypo.errors import ConfigError
from hypo.learn.losses import make_loss
from hypo.learn.models import ModelConfig

DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "bf16", "off")
RESUMABLE = ("epochs", "device", "amp")  # what a --resume may change; everything else must match


def needs_mask(channel_dropout: float, absent: tuple[str, ...] | list[str], signals=None) -> bool:
    """Whether a model must take missing groups (``ModelConfig.mask``).

    Args:
        channel_dropout: The run's channel dropout.
        absent: Signal groups some windows of the dataset lack (:func:`hypo.data.dataset.absent_groups`).
        signals: The groups the model reads (default all): absent groups it does not read need no mask.
    """
    read = set(GROUP_NAMES if signals is None else signals)
    return channel_dropout > 0 or bool(read & set(absent))


@register_config
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run (the unit of the search); saved in every checkpoint and ``metrics.json``.

    Attributes:
        model: Model type and width.
        loss: ``"ce"`` or ``"focal"``.
        gamma: Focal gamma (0 for ``"ce"``).
        alpha: Optional per-class loss weights (normal, hypotension, hypertension).
        lr: Adam learning rate (Keras default 1e-3).
        betas: Adam betas (Keras defaults).
        eps: Adam epsilon (Keras default 1e-7; PyTorch's is 1e-8).
        batch_size: Windows per step (the paper: 4096).
        epochs: Epochs (the paper: 35).
        seed: Seeds the initialisation and every epoch's batch order.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: ``"auto"`` (bf16 autocast on CUDA only), ``"bf16"`` or ``"off"``.
        channel_dropout: Training only: the chance that a signal group of a training window is made absent (NaN)
            in a batch, independently per window and group, so the model learns to predict without it. Needs a
            model with the availability mask (``model.mask``). Written only when above 0.
    """

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: str = "ce"
    gamma: float = 0.0
    alpha: tuple[float, float, float] | None = None
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-7
    batch_size: int = 4096
    epochs: int = 35
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channel_dropout: float = 0.0

    def omitted_fields(self) -> tuple[str, ...]:
        """Fields left out of ``to_dict`` while at their defaults (configs without them keep their dict)."""
        return ("channel_dropout",) if self.channel_dropout == 0 else ()

    def __post_init__(self) -> None:
        if not isinstance(self.model, ModelConfig):
            raise ConfigError(f"TrainConfig.model must be a ModelConfig, got {type(self.model).__name__}")
        make_loss(self.loss, self.gamma, self.alpha)  # validates loss, gamma and alpha
        checks = [
            (math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"betas must be 2 values in [0, 1), "
                                                                            f"got {self.betas}"),
            (self.eps > 0, f"eps must be > 0, got {self.eps}"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch size must be >= 1, got "
                                                                         f"{self.batch_size}"),
            (isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.device.split(":")[0] in DEVICES, f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}"),
            (self.amp in AMP_MODES, f"amp must be one of {AMP_MODES}, got {self.amp!r}"),
            (isinstance(self.channel_dropout, (int, float)) and 0 <= self.channel_dropout < 1,
             f"channel dropout must be in [0, 1), got {self.channel_dropout!r}"),
            (self.channel_dropout == 0 or self.model.mask,
             "channel dropout needs a model with the availability mask (ModelConfig mask=True)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
