"""Subject-level splits (PITFALLS.md 3): every case of a subject lands in the same split.

The split of a subject is a pure function of (seed, subjectid), so it is the same on every worker, for every
cohort size, and on a re-run: no global shuffle is needed and no subject can reach two splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from hypo.config import SplitConfig

SPLITS: tuple[str, ...] = ("train", "val", "test")


def subject_uniform(subjectid: str, seed: int) -> float:
    """A deterministic number in [0, 1) for a subject under ``seed``."""
    digest = hashlib.sha256(f"{seed}:{subjectid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(subjectid: str, cfg: SplitConfig) -> str:
    """Return ``"train"``, ``"val"`` or ``"test"`` for a subject."""
    u = subject_uniform(str(subjectid), cfg.seed)
    if u < cfg.train:
        return "train"
    if u < cfg.train + cfg.val:
        return "val"
    return "test"


def split_by_subject(subjectids: Iterable[str], cfg: SplitConfig) -> dict[str, str]:
    """Map each distinct subject to its split.

    Args:
        subjectids: Subject ids (repeats allowed).
        cfg: Fractions and seed.

    Returns:
        Dict subjectid -> split name.
    """
    return {s: assign_split(s, cfg) for s in dict.fromkeys(str(s) for s in subjectids)}
