"""The model object every caller shares: a TorchScript model and its sidecar, with scikit-learn's names.

    model = ExportedModel.load("model.pt")            # a file written by hypo export
    probs = model.predict_proba(windows)              # float32 [n, 3]: normal, hypotension, hypertension
    classes = model.predict(windows)                  # int64 [n]: the class at the sidecar's operating point
    print(model.describe())

``hypo predict`` (:func:`hypo.infer.predict.predict_case`), the alarm replay and the external validation score
this object, and a live server would too; a search's trial traced in memory without writing a file
(:func:`hypo.evaluate.export_trial.trial_model`) is the same object with ``origin="run"``. Windows are
``[n, window_s, 7]`` in physical units, signals in :data:`hypo.data.signals.SIGNALS` order; the train-split
z-score and the softmax are inside the module.

A model with per-horizon risks can be read at another horizon: ``model.at_horizon(600)`` is the same model whose
p(hypotension) column is its risk of hypotension by 600 s (``horizon_risk``), so that every caller of
:meth:`ExportedModel.predict_proba` (the alarm replay, ``hypo serve``) scores that horizon unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hypo.data.signals import CLASSES
from hypo.errors import ConfigError
from hypo.infer.sidecar import Sidecar

BATCH = 8192  # windows per forward pass
ORIGINS = ("export", "run")


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """A model that is applied, never trained: its TorchScript module and its typed sidecar.

    Attributes:
        module: Windows ``[n, window_s, 7]`` in physical units -> probabilities ``[n, 3]`` (softmax inside).
        sidecar: What it is and how to feed it (:class:`~hypo.infer.sidecar.Sidecar`).
        path: The ``model.pt`` it was loaded from, or the experiment folder of a trial traced in memory.
        origin: ``"export"`` (a file) or ``"run"`` (a search's trial, traced in memory).
        hypotension_by_s: None: :meth:`predict_proba` is the module's 3-class output (the primary horizon); a
            horizon of ``horizons_s``: its p(hypotension) column is the risk by that horizon (:meth:`at_horizon`).
    """

    module: Any
    sidecar: Sidecar
    path: str = ""
    origin: str = "export"
    hypotension_by_s: int | None = None

    @classmethod
    def load(cls, path: str) -> ExportedModel:
        """The model of a ``model.pt`` written by ``hypo export`` (see :func:`hypo.infer.export.load_exported`)."""
        from hypo.infer.export import load_exported

        module, sidecar = load_exported(path)
        return cls(module, sidecar, path, "export")

    def predict_proba(self, windows) -> np.ndarray:
        """Class probabilities float32 ``[n, 3]`` of ``windows`` ``[n, window_s, 7]`` (batched, no autograd).

        NaN rows where a window holds NaN outside the groups the sidecar's ``tolerates_missing`` lists. Read at a
        horizon (:meth:`at_horizon`), the hypotension column is the risk by it and the other two share the rest
        as the 3-class output shares its own.
        """
        import torch

        x = np.asarray(windows, np.float32)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), BATCH):
                out.append(self.module(torch.from_numpy(np.ascontiguousarray(x[i:i + BATCH]))).numpy())
        probs = np.concatenate(out) if out else np.zeros((0, len(CLASSES)), np.float32)
        if self.hypotension_by_s is None:
            return probs
        k = self.horizons_s.index(self.hypotension_by_s)
        return _hypotension_replaced(probs, self.predict_horizon_risk(x)[:, k])

    def at_horizon(self, horizon_s: int | None, where: str = "") -> ExportedModel:
        """The same model with its p(hypotension) column read as its risk of hypotension by ``horizon_s``.

        Args:
            horizon_s: A horizon of :attr:`horizons_s` in seconds; None: the model as it is (its 3-class output).
            where: Prefix of the error message (the model's row or file).

        Raises:
            ConfigError: A model without per-horizon risks, or a horizon it was not trained for (one line).
        """
        if horizon_s is None:
            return dataclasses.replace(self, hypotension_by_s=None)
        if not self.horizons_s:
            raise ConfigError(f"{where}the model gives no risk per horizon (a 3-class model of the "
                            f"{self.sidecar.horizon_s}-s horizon), so it cannot be read at {horizon_s} s; train it "
                            "with --head hazard or --head independent on a dataset built with --horizons")
        if horizon_s not in self.horizons_s:
            raise ConfigError(f"{where}the model has no risk by {horizon_s} s: its horizons are "
                            f"{','.join(map(str, self.horizons_s))} s")
        return dataclasses.replace(self, hypotension_by_s=int(horizon_s))

    @property
    def horizons_s(self) -> tuple[int, ...]:
        """The horizons of :meth:`predict_horizon_risk` (empty for a model with the 3-class output only)."""
        return tuple(self.sidecar.horizons_s or ())

    def predict_horizon_risk(self, windows) -> np.ndarray:
        """Risk of hypotension by each horizon float32 ``[n, H]`` (``horizons_s``); ``[n, 0]`` without them."""
        import torch

        x = np.asarray(windows, np.float32)
        if not self.horizons_s:
            return np.zeros((len(x), 0), np.float32)
        out = [np.zeros((0, len(self.horizons_s)), np.float32)]
        with torch.inference_mode():
            for i in range(0, len(x), BATCH):
                out.append(self.module.horizon_risk(torch.from_numpy(np.ascontiguousarray(x[i:i + BATCH]))).numpy())
        return np.concatenate(out)

    def predict(self, windows) -> np.ndarray:
        """The class of each window at the sidecar's operating point, int64 ``[n]`` (hypotension first)."""
        return self.decide(self.predict_proba(windows))

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """The class at the operating point of probabilities already computed (NaN rows give normal)."""
        from hypo.learn.operating_point import decide

        return decide(probs, self.sidecar.thresholds.operating_point())

    def describe(self) -> str:
        """One line: the model, where it came from, what it was trained on."""
        s, t, src = self.sidecar, self.sidecar.trial, self.sidecar.source
        tid = t.id if t else None
        what = f"{s.model.name} k={s.model.k} {(t.loss if t else None) or ''}".strip()
        where = (f"trial {tid} of {self.path}, epoch {t.epoch if t else None}" if self.origin == "run"
                 else f"{self.path}, trial {tid}")
        recal = s.recalibration
        return (f"{what} ({where}); trained on {src.name if src else '?'}" + (" (simulated)" if s.simulated else "")
                + f" data {s.fingerprints.dataset if s.fingerprints else '?'}"
                + (f"; already recalibrated ({recal.method}) on {recal.fitted_on.data}" if recal else "")
                + (f"; p(hypotension) read as its risk by {self.hypotension_by_s} s" if self.hypotension_by_s
                   else ""))


def _hypotension_replaced(probs: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """``probs`` with the hypotension column ``risk``, normal and hypertension scaled to share ``1 - risk``."""
    out = np.array(probs, np.float32, copy=True)
    rest = 1.0 - probs[:, 1]
    scale = np.divide(1.0 - risk, rest, out=np.zeros_like(rest), where=rest > 0)
    out[:, 0] = np.where(rest > 0, probs[:, 0] * scale, 1.0 - risk)  # all on hypotension: the rest is normal
    out[:, 2] = probs[:, 2] * scale
    out[:, 1] = risk
    return out
