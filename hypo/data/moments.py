"""Per-signal running moments, combined across cases, for the train-only z-score (PITFALLS.md 4)."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Moments:
    """Count, mean and sum of squared deviations per signal (Chan et al.'s parallel update)."""

    n: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, n_signals: int) -> Moments:
        """Moments of nothing."""
        return cls(0, np.zeros(n_signals), np.zeros(n_signals))

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """Moments of windows ``x`` [n, steps, signals] (every value counts once per window it is in)."""
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
        if len(flat) == 0:
            return cls.empty(x.shape[-1])
        mean = flat.mean(axis=0)
        return cls(len(flat), mean, ((flat - mean) ** 2).sum(axis=0))

    def combine(self, other: Moments) -> Moments:
        """Moments of the union of two samples."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta**2 * self.n * other.n / n
        return Moments(n, mean, m2)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (1 where a signal is constant, so the z-score stays finite)."""
        std = np.sqrt(self.m2 / max(self.n, 1))
        return np.where(std > 0, std, 1.0)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"n": self.n, "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Moments:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["n"]), np.asarray(d["mean"], dtype=np.float64), np.asarray(d["m2"], dtype=np.float64))
