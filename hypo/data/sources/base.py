"""The case record every source yields, and the interface sources implement."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hypo.data.art import ArterialLine
from hypo.data.signals import N_SIGNALS, SIGNALS, group_channels
from hypo.data.sources.spec import SourceSpec
from hypo.errors import CaseRejected


@dataclasses.dataclass
class Case:
    """One surgical case on a 1-second grid.

    Attributes:
        caseid: Case identifier (string; VitalDB case ids are written as decimal strings).
        subjectid: Patient identifier; splits are made on it, so repeated subjects share a split.
        signals: float32 array [seconds, 7] in :data:`hypo.data.signals.SIGNALS` order and physical units.
            NaN where nothing was recorded in that second, so cuff-reading times stay visible.
        duration_s: Length of the case in seconds (``signals.shape[0]``).
        art: The invasive arterial line at its native sample times, or ``None`` (no line, or not asked for).
            Kept apart from ``signals`` so that it can label windows but never enter one.
    """

    caseid: str
    subjectid: str
    signals: np.ndarray
    duration_s: int = -1
    art: ArterialLine | None = None

    def __post_init__(self) -> None:
        self.caseid = str(self.caseid)
        self.subjectid = str(self.subjectid)
        self.signals = np.asarray(self.signals, dtype=np.float32)
        if self.signals.ndim != 2 or self.signals.shape[1] != N_SIGNALS:
            raise CaseRejected(
                "bad shape", f"case {self.caseid}: expected [seconds, {N_SIGNALS}], got {self.signals.shape}"
            )
        if self.duration_s < 0:
            self.duration_s = int(self.signals.shape[0])

    def check_signals(self, allow_missing: tuple[str, ...] = ()) -> None:
        """Reject the case when a signal has no recorded value at all.

        Args:
            allow_missing: Signal groups (:data:`hypo.data.signals.MAY_BE_MISSING`) the case may lack entirely.

        Raises:
            CaseRejected: ``all-NaN signal`` naming the signal.
        """
        optional = set(group_channels(allow_missing))
        empty = [SIGNALS[i] for i in range(N_SIGNALS)
                 if i not in optional and not np.isfinite(self.signals[:, i]).any()]
        if empty:
            raise CaseRejected("all-NaN signal", f"case {self.caseid}: no values for {', '.join(empty)}")


@runtime_checkable
class Source(Protocol):
    """What the preprocessing job needs from a source. Instances must pickle (they travel to Ray tasks).

    ``case_refs`` runs once on the driver and returns small picklable dicts, each with at least ``caseid``;
    ``load_case`` runs inside a Ray task, once per ref, and raises :class:`CaseRejected` for unusable cases.
    """

    name: str

    def case_refs(self) -> list[dict[str, Any]]:
        """Return one small dict per case to load (at least ``caseid``)."""
        ...

    def load_case(self, ref: dict[str, Any]) -> Case:
        """Load one case; raise :class:`CaseRejected` with a reason when it cannot be used."""
        ...

    def fingerprint(self) -> str:
        """Return a stable hash of what this source will yield (recorded in the manifest)."""
        ...

    def report(self) -> dict[str, Any]:
        """Return a JSON-ready description (e.g. eligibility counts) for the manifest."""
        ...

    def describe(self) -> SourceSpec:
        """Return the options that build this source again (:func:`hypo.data.sources.factory.build_source`).

        Recorded in the manifest, so the alarm replay can reload a dataset's recordings; a source without it
        (a test's) builds datasets whose recordings cannot be replayed.
        """
        ...


def iter_cases(source: Source) -> Iterator[Case | CaseRejected]:
    """Yield each case of ``source`` in order, or the :class:`CaseRejected` that explains why not.

    This is the single-process path (tests, ``hypo.infer.predict``); the preprocessing job maps
    ``source.load_case`` over ``source.case_refs()`` with Ray Data instead.
    """
    for ref in source.case_refs():
        try:
            yield source.load_case(ref)
        except CaseRejected as exc:
            yield exc


SIMULATED_SOURCES = ("demo", "synthetic")  # never patients (hypo.data.manifest.Manifest.simulated)
