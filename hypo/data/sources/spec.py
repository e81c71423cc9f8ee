"""A source as a record: its name and the options that build it (:func:`~hypo.data.sources.factory.build_source`).

Every source describes itself (``source.describe()``); the manifest records that description, so a later stage
(the alarm replay, ``hypo evaluate --alarms``) rebuilds the very source a dataset was built from, and
``hypo windows`` builds its source from the same record made from its flags. Options that do not apply to a
source stay None and are left out of the file.
"""

from __future__ import annotations

from hypo.records import Record


class SourceSpec(Record):
    """A source's name and its options.

    Attributes:
        name: ``demo``, ``vital-dir`` or ``vitaldb`` (a source that cannot be rebuilt, such as a test's, has none).
        n_cases: demo: cases ``1..n_cases``; vitaldb: the first ``n_cases`` eligible cases (None: all).
        seed: demo: the simulator seed.
        site: demo: the simulated hospital (``a`` or ``b``).
        folder: vital-dir: the folder of ``.vital`` files (absolute).
        track_map: vital-dir: signal -> candidate track names, complete (the track-map file as read).
        subjects: vital-dir: the CSV mapping caseid to subjectid, if any.
        caseids: vitaldb: exactly these cases instead of the eligible ones.
        cache: vitaldb: the download cache (a folder or a URI).
        api_url: vitaldb: the API address.
        arterial: The source reads each case's arterial line too (ART labels).
        allow_missing: Signal groups (``mac``, ``bis``) a ``.vital`` file may lack (``--allow-missing``).
    """

    name: str
    n_cases: int | None = None
    seed: int | None = None
    site: str | None = None
    folder: str | None = None
    track_map: dict[str, tuple[str, ...]] | None = None
    subjects: str | None = None
    caseids: tuple[str, ...] | None = None
    cache: str | None = None
    api_url: str | None = None
    arterial: bool = False
    allow_missing: tuple[str, ...] = ()

    def reading(self, arterial: bool, allow_missing: tuple[str, ...]) -> SourceSpec:
        """The same source, reading the arterial line or not, and letting cases lack the groups named."""
        return self.model_validate({**self.model_dump(), "arterial": arterial, "allow_missing": allow_missing})
