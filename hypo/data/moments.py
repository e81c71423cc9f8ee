"""Per-signal running moments, combined across cases, for the train-only z-score (PITFALLS.md 4).

Windows of a case that lacks a signal group (``--allow-missing``) hold NaN there; such values are left out, so
the count ``n`` becomes one number per signal (it stays a single number while every signal has the same count).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Moments:
    """Count, mean and sum of squared deviations per signal (Chan et al.'s parallel update)."""

    n: int | np.ndarray
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
        valid = ~np.isnan(flat)
        if valid.all():
            mean = flat.mean(axis=0)
            return cls(len(flat), mean, ((flat - mean) ** 2).sum(axis=0))
        n = valid.sum(axis=0)
        mean = np.where(valid, flat, 0.0).sum(axis=0) / np.maximum(n, 1)
        m2 = np.where(valid, (flat - mean) ** 2, 0.0).sum(axis=0)
        return cls(_count(n), mean, m2)

    def combine(self, other: Moments) -> Moments:
        """Moments of the union of two samples."""
        if np.all(other.n == 0):
            return self
        if np.all(self.n == 0):
            return other
        n = np.asarray(self.n) + np.asarray(other.n)
        safe = np.maximum(n, 1)
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / safe
        m2 = self.m2 + other.m2 + delta**2 * np.asarray(self.n) * other.n / safe
        return Moments(_count(n), mean, m2)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (1 where a signal is constant or unseen, so the z-score stays finite)."""
        std = np.sqrt(self.m2 / np.maximum(self.n, 1))
        return np.where(std > 0, std, 1.0)

    @property
    def n_total(self) -> int | list[int]:
        """The count as JSON: one number, or one per signal when signals were seen different numbers of times."""
        return self.n if np.ndim(self.n) == 0 else [int(v) for v in self.n]

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"n": self.n_total, "mean": self.mean.tolist(), "m2": self.m2.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Moments:
        """Inverse of :meth:`to_dict`."""
        n = d["n"]
        n = int(n) if np.ndim(n) == 0 else np.asarray(n, dtype=np.int64)
        return cls(n, np.asarray(d["mean"], dtype=np.float64), np.asarray(d["m2"], dtype=np.float64))


def _count(n) -> int | np.ndarray:
    """A per-signal count array as one int when every signal has the same count."""
    n = np.asarray(n, dtype=np.int64)
    return int(n.flat[0]) if n.ndim == 0 or (n == n.flat[0]).all() else n
