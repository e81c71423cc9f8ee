"""Building a source from its description (:class:`~hypo.data.sources.spec.SourceSpec`), the one place that does.

``hypo windows`` makes the description from its flags (:func:`spec_from_flags`); the alarm replay and
``hypo evaluate --alarms`` take it from the dataset's manifest, where ``source.describe()`` recorded it. Both
build the source with :func:`build_source`.
"""

from __future__ import annotations

from typing import Any

from hypo.data.sources.base import Source
from hypo.data.sources.spec import SourceSpec
from hypo.errors import ConfigError

SOURCE_NAMES = ("demo", "vitaldb", "vital-dir")
DEMO_CASES = 200  # --source demo without --cases


def spec_from_flags(
    name: str,
    *,
    cases: int | None = None,
    seed: int = 0,
    site: str | None = None,
    path: str | None = None,
    track_map: str | None = None,
    subjects: str | None = None,
    cache: str | None = None,
    api_url: str | None = None,
) -> SourceSpec:
    """The description of the source ``hypo windows --source NAME`` names, from its flags (one keyword each).

    Args:
        name: ``demo`` (the embedded simulator), ``vitaldb`` (the open dataset) or ``vital-dir``.
        cases: ``--cases``: demo: how many (default 200); vitaldb: the first N eligible (default all).
        seed: ``--seed``: the demo simulator's seed.
        site: ``--site``: demo only, the simulated hospital ``a`` (default) or ``b`` (for external validation).
        path: ``--path``: vital-dir's folder of ``.vital`` files.
        track_map: ``--track-map``: vital-dir's JSON file mapping signal names to track names (read here).
        subjects: ``--subjects``: vital-dir's CSV file with columns caseid,subjectid.
        cache: ``--cache``: vitaldb's download cache (local folder or ``s3://...``).
        api_url: ``--api-url``: the VitalDB API address (default the package's, or ``HYPO_VITALDB_URL``).

    Raises:
        ConfigError: Unknown source, a flag of another source, or a missing one, in one line naming the flag.
    """
    if cases is not None and cases <= 0:
        raise ConfigError(f"--cases must be a positive number, got {cases}")
    if site is not None and name != "demo":
        raise ConfigError(f"--site chooses a simulated hospital of the demo source; leave it out with --source {name}")
    if name == "demo":
        return SourceSpec(name=name, n_cases=cases or DEMO_CASES, seed=seed, site=site or "a")
    if name == "vitaldb":
        return SourceSpec(name=name, n_cases=cases, cache=cache, api_url=api_url)
    if name == "vital-dir":
        if not path:
            raise ConfigError("--source vital-dir needs --path FOLDER (a folder of .vital files)")
        from hypo.data.sources.vital import load_track_map

        return SourceSpec(name=name, folder=path, track_map=load_track_map(track_map) if track_map else None,
                          subjects=subjects)
    raise ConfigError(f"unknown source {name!r}; choose one of {', '.join(SOURCE_NAMES)}")


def build_source(spec: SourceSpec) -> Source:
    """The source ``spec`` describes (``source.describe()`` gives a spec that builds the same source again).

    Raises:
        ConfigError: For a source hypo cannot build (one line naming it), or options the source refuses.
    """
    if spec.name == "demo":
        from hypo.data.sources.demo import DemoSource

        if spec.n_cases is None:
            raise ConfigError("the demo source's description names no number of cases (n_cases)")
        return DemoSource(n_cases=spec.n_cases, seed=spec.seed or 0, arterial=spec.arterial, site=spec.site or "a")
    if spec.name == "vitaldb":
        from hypo.data.sources.vitaldb_open import VitalDBSource

        return VitalDBSource(n_cases=spec.n_cases, caseids=spec.caseids, cache=spec.cache, api_url=spec.api_url,
                             arterial=spec.arterial, allow_missing=spec.allow_missing)
    if spec.name == "vital-dir":
        from hypo.data.sources.vital import VitalDirSource

        if not spec.folder:
            raise ConfigError("the vital-dir source's description names no folder")
        return VitalDirSource(spec.folder, track_map=spec.track_map, subjects=spec.subjects, arterial=spec.arterial,
                              allow_missing=spec.allow_missing)
    raise ConfigError(f"unknown source {spec.name!r}; choose one of {', '.join(SOURCE_NAMES)}")


def make_source(name: str, *, arterial: bool = False, allow_missing: tuple[str, ...] = (), **flags: Any) -> Source:
    """The source ``hypo windows`` flags name (:func:`spec_from_flags`), built (:func:`build_source`).

    Args:
        name: ``demo``, ``vitaldb`` or ``vital-dir``.
        arterial: Read each case's arterial line too (``Case.art``), as ART labels need.
        allow_missing: Signal groups (``mac``, ``bis``) a ``.vital`` file may lack (``--allow-missing``).
        **flags: The keywords of :func:`spec_from_flags` (``cases``, ``seed``, ``site``, ``path``, ...).

    Raises:
        ConfigError: Unknown source or missing argument, in one line.
    """
    return build_source(spec_from_flags(name, **flags).reading(arterial, tuple(allow_missing)))
