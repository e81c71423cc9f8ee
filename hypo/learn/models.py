"""The study's four models, built from a frozen :class:`ModelConfig`.

Every model takes windows ``[batch, 60, 7]`` in physical units, applies the dataset's train-split z-score as a
fixed first layer (:class:`ZScore`: buffers saved in the ``state_dict``, never trained) and returns 3 logits
(normal, hypotension, hypertension); the softmax lives in the loss and in :func:`predict_proba`.

Choices the paper leaves open, fixed here (Keras defaults, since the study used Keras):
- convolutions use "valid" padding (no padding), so the shapes are exact: cnn_cnn 60 -> 58 -> 14 -> 12 -> 3;
  cnn_lstm 60 -> 20 (stride 3) -> 5; max pooling drops the remainder (floor).
- ReLU after every convolution and hidden dense layer; "global pooling" in cnn is global max pooling.
- Keras initialisers: Glorot-uniform kernels, zero biases, orthogonal recurrent kernels, forget-gate bias 1.
  PyTorch's LSTM has two bias vectors (Keras one), so an LSTM layer has ``4 * k`` more parameters than Keras'.
- k scales the widths: lstm and cnn_lstm LSTM(k), cnn Conv(k), cnn_cnn Conv(k) -> Conv(round(1.5 k)) ->
  Dense(round(50 k / 42)), so k = 42 is the paper's CNN*CNN (42, 63, 50). cnn_lstm's convolution keeps 21 maps.
- Under autocast (bf16 on CUDA) the LSTM layers still run in float32 (:func:`last_hidden`).

Missing inputs (``ModelConfig.signals`` and ``ModelConfig.mask``; defaults give exactly the models above):
- ``signals`` names the signal groups the model reads (:data:`hypo.data.signals.GROUPS`; ablation searches train
  on subsets): the other channels are dropped right after the z-score, so they may hold anything, NaN included.
- ``mask`` (models trained with channel dropout, or on datasets whose cases lack a group): the model derives an
  availability mask from the NaN in its input, per time step and group (a group is available where all its
  channels are finite), feeds an unavailable group as 0 after its z-score (its training mean) and gets the mask as
  extra input channels (one per group read). Without it a NaN input gives NaN, as before.

Several horizons (``ModelConfig.head``; datasets built with ``hypo windows --horizons``): the last layer also gives
one logit ``a_k`` per horizon ``h_k`` (ascending), beside the 3 class logits of the primary horizon, which stay
what ``forward`` returns (so every metric, board and export reads the model as before):
- ``hazard``: a discrete-time hazard ``q_k = sigmoid(a_k)`` (hypotension first between ``h_{k-1}`` and ``h_k``);
  the cumulative risk of hypotension by ``h_k`` is ``1 - prod_{j<=k} (1 - q_j)``, computed as
  ``-expm1(cumsum(logsigmoid(-a)))``: monotone non-decreasing in ``k`` by construction (:func:`cumulative_risk`);
- ``independent``: ``sigmoid(a_k)`` per horizon, each its own head (nothing ties the horizons together).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
from torch import nn

from hypo.config import register_config
from hypo.data.signals import GROUP_NAMES, GROUPS, N_SIGNALS, group_channels, parse_groups
from hypo.errors import ConfigError

MODELS: tuple[str, ...] = ("lstm", "cnn", "cnn_cnn", "cnn_lstm")
HEADS: tuple[str, ...] = ("class", "hazard", "independent")
N_CLASSES = 3
PAPER_K = 42  # cnn_cnn at k = 42 is the paper's 42 / 63 / 50
CNN_DENSE = 7  # cnn: Conv -> global pooling -> Dense(7)
CNN_LSTM_MAPS, CNN_LSTM_STRIDE = 21, 3
POOL = 4
HAZARD_BIAS_INIT = -2.0  # hazard head: initial logit of each step's hazard


@register_config
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which model and how wide.

    Attributes:
        name: One of ``MODELS``.
        k: Width (LSTM cell size, or convolution maps; see the module docstring).
        window_s: Time steps per window (the dataset's ``window_s``).
        signals: Signal groups the model reads (default all five; see the module docstring).
        mask: Take missing groups as NaN and give the model their availability mask as extra channels.
        head: ``class`` (the 3 class logits only), ``hazard`` or ``independent`` (also one risk per horizon; see
            the module docstring).
        n_horizons: The horizons of the per-horizon risks (0 with ``head="class"``).

    ``signals``, ``mask``, ``head`` and ``n_horizons`` are written only when they differ from their defaults, so
    configs (and checkpoints) of models without them keep their dicts and fingerprints.
    """

    name: str = "cnn_cnn"
    k: int = PAPER_K
    window_s: int = 60
    signals: tuple[str, ...] = GROUP_NAMES
    mask: bool = False
    head: str = "class"
    n_horizons: int = 0

    def omitted_fields(self) -> tuple[str, ...]:
        """Fields left out of ``to_dict`` while at their defaults."""
        return tuple(n for n, default in (("signals", GROUP_NAMES), ("mask", False), ("head", "class"),
                                          ("n_horizons", 0)) if getattr(self, n) == default)

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ConfigError(f"model must be one of {MODELS}, got {self.name!r}")
        try:
            signals = parse_groups(self.signals)
        except ValueError as exc:
            raise ConfigError(f"model signals: {exc}") from None
        if not signals:
            raise ConfigError("model signals: at least one signal group is needed")
        object.__setattr__(self, "signals", signals)
        if not isinstance(self.mask, bool):
            raise ConfigError(f"mask must be true or false, got {self.mask!r}")
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {HEADS}, got {self.head!r}")
        if (self.head == "class") != (self.n_horizons == 0) or self.n_horizons < 0:
            raise ConfigError(f"head {self.head!r} with {self.n_horizons} horizons: the hazard and independent heads "
                              "need a dataset built with --horizons (n_horizons >= 1); the class head takes none")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {self.k!r}")
        if self.name == "cnn_cnn" and _conv_pool_len(_conv_pool_len(self.window_s)) < 1:
            raise ConfigError(f"cnn_cnn needs windows of at least 26 steps, got {self.window_s}")
        if self.name == "cnn_lstm" and ((self.window_s - 3) // CNN_LSTM_STRIDE + 1) // POOL < 1:
            raise ConfigError(f"cnn_lstm needs windows of at least 12 steps, got {self.window_s}")

    @property
    def channels(self) -> list[int]:
        """The input channels the model reads (indices into :data:`hypo.data.signals.SIGNALS`)."""
        return group_channels(self.signals)

    @property
    def n_inputs(self) -> int:
        """Channels of the model body's input: the signals read, plus one mask channel per group with ``mask``."""
        return len(self.channels) + (len(self.signals) if self.mask else 0)

    @property
    def tolerates_missing(self) -> tuple[str, ...]:
        """Groups that may be NaN in the input: those not read, and with ``mask`` every group."""
        return GROUP_NAMES if self.mask else tuple(g for g in GROUP_NAMES if g not in self.signals)

    @property
    def n_outputs(self) -> int:
        """Outputs of the last layer: the 3 class logits, then one per horizon."""
        return N_CLASSES + self.n_horizons

    @property
    def widths(self) -> tuple[int, ...]:
        """cnn_cnn's (conv1, conv2, dense) widths at this k."""
        return self.k, max(1, round(1.5 * self.k)), max(1, round(50 * self.k / PAPER_K))


def _conv_pool_len(steps: int) -> int:
    """Steps after a valid kernel-3 convolution and a max pool of 4."""
    return (steps - 2) // POOL


class ZScore(nn.Module):
    """Fixed z-score: ``(x - mean) / std`` per signal, with the train split's statistics as buffers.

    A signal with zero spread (constant in train) is only centred.
    """

    def __init__(self, mean, std) -> None:
        super().__init__()
        mean = torch.as_tensor(np.asarray(mean, np.float32))
        std = torch.as_tensor(np.asarray(std, np.float32))
        if mean.shape != (N_SIGNALS,) or std.shape != (N_SIGNALS,):
            raise ConfigError(f"z-score needs {N_SIGNALS} means and stds, got {tuple(mean.shape)}, {tuple(std.shape)}")
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", torch.where(std > 0, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised ``x`` (same shape)."""
        return (x - self.mean) / self.std


def last_hidden(lstm: nn.LSTM, seq: torch.Tensor) -> torch.Tensor:
    """The LSTM's last hidden state [batch, k], computed in float32 even under autocast.

    Autocast runs cuDNN RNNs in float16 whatever its dtype, and bf16 training has no gradient scaler to keep
    float16 gradients from underflowing; the LSTMs are small, so float32 (TF32 on recent GPUs) costs little.
    """
    with torch.autocast(seq.device.type, enabled=False):
        _, (h, _) = lstm(seq.float())
    return h[-1]


class LSTMNet(nn.Module):
    """LSTM(k) over the time steps; its last hidden state -> Linear(3)."""

    def __init__(self, k: int, n_in: int = N_SIGNALS, n_out: int = N_CLASSES) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_in, k, batch_first=True)
        self.head = nn.Linear(k, n_out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 3] of standardised windows ``z`` [batch, steps, 7]."""
        return self.head(last_hidden(self.lstm, z))


class CNNNet(nn.Module):
    """Conv1d(3, k) -> ReLU -> global max pooling -> Dense(7) -> ReLU -> Linear(3)."""

    def __init__(self, k: int, n_in: int = N_SIGNALS, n_out: int = N_CLASSES) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_in, k, 3)
        self.dense = nn.Linear(k, CNN_DENSE)
        self.head = nn.Linear(CNN_DENSE, n_out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 3] of standardised windows ``z`` [batch, steps, 7]."""
        h = torch.relu(self.conv(z.transpose(1, 2))).amax(dim=2)
        return self.head(torch.relu(self.dense(h)))


class CNNCNNNet(nn.Module):
    """Conv1d(3, c1) -> MaxPool(4) -> Conv1d(3, c2) -> MaxPool(4) -> Flatten -> Dense(d) -> Linear(3)."""

    def __init__(self, k: int, window_s: int = 60, n_in: int = N_SIGNALS, n_out: int = N_CLASSES) -> None:
        super().__init__()
        c1, c2, d = ModelConfig("cnn_cnn", k, window_s).widths
        self.conv1 = nn.Conv1d(n_in, c1, 3)
        self.conv2 = nn.Conv1d(c1, c2, 3)
        self.pool = nn.MaxPool1d(POOL)
        self.steps = _conv_pool_len(_conv_pool_len(window_s))
        self.dense = nn.Linear(c2 * self.steps, d)
        self.head = nn.Linear(d, n_out)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The second pooling's output [batch, c2, steps] (3 steps for 60-s windows)."""
        h = self.pool(torch.relu(self.conv1(z.transpose(1, 2))))
        return self.pool(torch.relu(self.conv2(h)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 3] of standardised windows ``z`` [batch, steps, 7]."""
        h = self.features(z).flatten(1)
        return self.head(torch.relu(self.dense(h)))


class CNNLSTMNet(nn.Module):
    """Conv1d(3, 21, stride 3): 20 steps -> MaxPool(4): 5 steps -> LSTM(k), last hidden -> Linear(3)."""

    def __init__(self, k: int, n_in: int = N_SIGNALS, n_out: int = N_CLASSES) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_in, CNN_LSTM_MAPS, 3, stride=CNN_LSTM_STRIDE)
        self.pool = nn.MaxPool1d(POOL)
        self.lstm = nn.LSTM(CNN_LSTM_MAPS, k, batch_first=True)
        self.head = nn.Linear(k, n_out)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """The LSTM's input sequence [batch, 5, 21] (for 60-s windows)."""
        h = self.pool(torch.relu(self.conv(z.transpose(1, 2))))
        return h.transpose(1, 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 3] of standardised windows ``z`` [batch, steps, 7]."""
        return self.head(last_hidden(self.lstm, self.features(z)))


class HypoNet(nn.Module):
    """A model body behind the fixed z-score layer: physical-unit windows in, 3 logits out."""

    def __init__(self, cfg: ModelConfig, mean, std) -> None:
        super().__init__()
        self.cfg = cfg
        self.zscore = ZScore(mean, std)
        n_in, n_out = cfg.n_inputs, cfg.n_outputs
        if cfg.name == "lstm":
            self.body = LSTMNet(cfg.k, n_in, n_out)
        elif cfg.name == "cnn":
            self.body = CNNNet(cfg.k, n_in, n_out)
        elif cfg.name == "cnn_cnn":
            self.body = CNNCNNNet(cfg.k, cfg.window_s, n_in, n_out)
        else:
            self.body = CNNLSTMNet(cfg.k, n_in, n_out)
        keras_init_(self.body)
        if cfg.head == "hazard":  # start from a small hazard per step (q ~ 0.1), not 0.5: risks near 1 at 15 min
            with torch.no_grad():
                self.body.head.bias[N_CLASSES:] = HAZARD_BIAS_INIT
        self.subset = len(cfg.channels) < N_SIGNALS
        channels = cfg.channels
        # Not saved in the state_dict (they follow from the config), so checkpoints keep their keys.
        self.register_buffer("channel_index", torch.tensor(channels, dtype=torch.long), persistent=False)
        membership = torch.zeros(len(channels), len(cfg.signals))  # channel read -> its group
        for j, g in enumerate(cfg.signals):
            for i in GROUPS[g]:
                membership[channels.index(i), j] = 1.0
        self.register_buffer("membership", membership, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [batch, 3] of windows ``x`` [batch, window_s, 7] in physical units (the primary horizon)."""
        out = self.outputs(x)
        return out if self.cfg.n_horizons == 0 else out[:, :N_CLASSES]

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every output [batch, 3 + n_horizons]: the class logits, then the per-horizon logits."""
        z = self.zscore(x)
        if not (self.subset or self.cfg.mask):
            return self.body(z)
        if self.subset:
            x, z = x.index_select(2, self.channel_index), z.index_select(2, self.channel_index)
        if not self.cfg.mask:
            return self.body(z)
        # A group is available at a time step when all its channels are finite.
        missing = (~torch.isfinite(x)).to(self.membership.dtype) @ self.membership  # [batch, steps, groups]
        available = missing == 0
        per_channel = (available.to(self.membership.dtype) @ self.membership.T) > 0
        z = torch.where(per_channel, z, torch.zeros_like(z))
        return self.body(torch.cat([z, available.to(z.dtype)], dim=2))


def cumulative_risk(horizon_logits: torch.Tensor, head: str) -> torch.Tensor:
    """The risk of hypotension by each horizon [batch, H] from the per-horizon logits (module docstring).

    ``hazard``: ``1 - prod_{j<=k} sigmoid(-a_j)``, a running sum of non-positive log-survivals, so it never falls
    as ``k`` grows (also in floating point: adding a non-positive number never raises a float).
    """
    if head == "hazard":
        return -torch.expm1(torch.cumsum(nn.functional.logsigmoid(-horizon_logits.float()), dim=1))
    return torch.sigmoid(horizon_logits.float())


@torch.no_grad()
def predict_horizon_risk(model: HypoNet, x, batch_size: int = 16384, device: str | torch.device | None = None,
                         amp: bool = False) -> np.ndarray:
    """The risk of hypotension by each horizon [n, H] (float32 numpy) of windows ``x`` [n, window_s, 7].

    Args:
        model: A model with a ``hazard`` or ``independent`` head.
        x: Windows in physical units.
        batch_size: Windows per forward pass.
        device: Where to run (default: where the model is).
        amp: bf16 autocast (CUDA).
    """
    cfg = model.cfg
    if cfg.n_horizons == 0:
        raise ConfigError("this model has no per-horizon head (head 'class')")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    xt = as_tensor(x)
    out = [np.zeros((0, cfg.n_horizons), np.float32)]
    for i in range(0, len(xt), batch_size):
        xb = xt[i : i + batch_size].to(device, torch.float32, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            extra = model.outputs(xb)[:, N_CLASSES:]
        out.append(cumulative_risk(extra, cfg.head).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out).astype(np.float32, copy=False)


def build_model(cfg: ModelConfig, mean, std) -> HypoNet:
    """The model ``cfg`` describes, with the train split's z-score ``mean`` and ``std`` (7 values each).

    Args:
        cfg: Model type and width.
        mean: Per-signal means (the manifest's ``zscore.mean``).
        std: Per-signal standard deviations.

    Returns:
        The model (float32, on the CPU, freshly initialised from the global torch seed).
    """
    return HypoNet(cfg, mean, std)


@torch.no_grad()
def keras_init_(module: nn.Module) -> None:
    """Initialise like Keras: Glorot-uniform kernels, orthogonal recurrent kernels, zero biases, forget bias 1."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LSTM):
            for name, p in m.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(p)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(p)
                else:
                    nn.init.zeros_(p)
                    if name.startswith("bias_ih"):
                        p[m.hidden_size : 2 * m.hidden_size] = 1.0  # gates i, f, g, o: forget bias 1


def as_tensor(x) -> torch.Tensor:
    """A tensor sharing memory with ``x``; read-only numpy arrays (Arrow, Ray's object store) are never written."""
    if isinstance(x, torch.Tensor):
        return x
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(x)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the fixed z-score buffers are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def predict_proba(model: nn.Module, x, batch_size: int = 16384, device: str | torch.device | None = None,
                  amp: bool = False) -> np.ndarray:
    """Class probabilities [n, 3] (float32 numpy) of windows ``x`` [n, window_s, 7] (numpy or tensor).

    Args:
        model: A model from :func:`build_model`.
        x: Windows in physical units.
        batch_size: Windows per forward pass.
        device: Where to run (default: where the model is).
        amp: bf16 autocast (CUDA).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    xt = as_tensor(x)
    out = []
    for i in range(0, len(xt), batch_size):
        xb = xt[i : i + batch_size].to(device, torch.float32, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(xb)
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    model.train(was_training)
    if not out:
        return np.zeros((0, N_CLASSES), np.float32)
    return torch.cat(out).numpy()
