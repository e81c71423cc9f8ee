"""Build a source from command-line style arguments (``--source demo|vitaldb|vital-dir``)."""

from __future__ import annotations

from hypo.data.sources.base import Source
from hypo.errors import ConfigError

SOURCE_NAMES = ("demo", "vitaldb", "vital-dir")


def make_source(
    name: str,
    *,
    cases: int | None = None,
    seed: int = 0,
    path: str | None = None,
    cache: str | None = None,
    track_map: str | None = None,
    subjects: str | None = None,
    api_url: str | None = None,
    arterial: bool = False,
    site: str | None = None,
    allow_missing: tuple[str, ...] = (),
) -> Source:
    """Return the source called ``name``.

    Args:
        name: ``demo`` (the embedded simulator), ``vitaldb`` (the open dataset) or ``vital-dir``.
        cases: Number of cases (demo: required, default 200; vitaldb: first N eligible, default all).
        seed: Demo simulator seed.
        path: Folder of ``.vital`` files (vital-dir).
        cache: Download cache of the vitaldb source (local folder or ``s3://...``).
        track_map: JSON file mapping signal names to track names (vital-dir).
        subjects: CSV file with columns caseid,subjectid (vital-dir).
        api_url: VitalDB API address (default the package's, or ``HYPO_VITALDB_URL``).
        arterial: Yield each case's arterial line too (``Case.art``), as ART labels need.
        site: Demo only: the simulated hospital, ``"a"`` (default) or ``"b"`` (for external validation).
        allow_missing: Signal groups (``mac``, ``bis``) a ``.vital`` file may lack (``--allow-missing``).

    Raises:
        ConfigError: Unknown source or missing argument, in one line.
    """
    if cases is not None and cases <= 0:
        raise ConfigError(f"--cases must be a positive number, got {cases}")
    if site is not None and name != "demo":
        raise ConfigError(f"--site chooses a simulated hospital of the demo source; leave it out with --source {name}")
    if name == "demo":
        from hypo.data.sources.demo import DemoSource

        return DemoSource(n_cases=cases or 200, seed=seed, arterial=arterial, site=site or "a")
    if name == "vitaldb":
        from hypo.data.sources.vitaldb_open import VitalDBSource

        return VitalDBSource(n_cases=cases, cache=cache, api_url=api_url, arterial=arterial,
                             allow_missing=allow_missing)
    if name == "vital-dir":
        if not path:
            raise ConfigError("--source vital-dir needs --path FOLDER (a folder of .vital files)")
        from hypo.data.sources.vital import VitalDirSource, load_track_map

        tmap = load_track_map(track_map) if track_map else None
        return VitalDirSource(path, track_map=tmap, subjects=subjects, arterial=arterial,
                              allow_missing=allow_missing)
    raise ConfigError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")
