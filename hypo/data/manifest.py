"""The dataset manifest (``DIR/manifest.json``) as a typed record, and its one read/write pair.

The preprocessing job writes it (:func:`hypo.data.preprocess.make_manifest`, then :func:`write_manifest`); every
later stage reads it with :func:`read_manifest` and reads attributes (``manifest.label.hypo_map``,
``manifest.counts["val"].windows``), never keys. A manifest that does not validate is refused in one line naming
the file and the field.

Schema versions (``schema_version``; the on-disk ``format`` stays ``hypo-windows/1``):

- 1: manifests written before the record was typed (no ``schema_version``). They load through :func:`migrate`:
  the source's description (``source.spec``) is made from the source's report, as the alarm replay used to.
- 2: ``schema_version`` and ``source.spec`` (:class:`~hypo.data.sources.spec.SourceSpec`), written by
  ``source.describe()``.
- 3: the manifest's fields are those of 2; its window shards also carry what the current-pressure comparators read
  (``last_dbp``, ``earlier_map``, ``earlier_time``; ART: ``art_last_dbp``, ``art_earlier_map``:
  :func:`hypo.data.pipeline.window_schema`). A dataset of schema 1-2 migrates and reads as before; its windows lack
  those columns, so the boards leave out the rows that need them and say, in one line, that they need a rebuild
  (:func:`hypo.data.dataset.comparator_rebuild_note`).
  A multi-horizon build (``hypo windows --horizons``) adds the optional section ``horizons``
  (:class:`HorizonSection`) and the shard column ``horizon_labels``, with the same schema version: a reader that
  ignores them reads the primary horizon's dataset, which is what it is.

A newer schema, another format, or a version-1 file that does not validate is refused with how to rebuild it.
The dataset's fingerprint is computed from the window config, the source's fingerprint and the cases used, never
from this record's layout, so it is the same for the same build whatever the schema.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import ValidationInfo, field_validator

from hypo import storage
from hypo.config import LabelConfig, WindowConfig
from hypo.data.integrity import REPAIR, zscore_checksum
from hypo.data.signals import CLASSES, N_SIGNALS, SIGNALS
from hypo.data.sources.base import SIMULATED_SOURCES
from hypo.data.sources.spec import SourceSpec
from hypo.errors import DatasetError
from hypo.records import Record, config_field, parse_record, schema_version_of

FORMAT = "hypo-windows/1"
SCHEMA_VERSION = 3
MANIFEST = "manifest.json"
BUILD_HINT = "build one with python preprocessing/build_windows.py --source demo --out DIR"


Label = config_field(LabelConfig)
Window = config_field(WindowConfig)


class SplitCounts(Record):
    """One split of a dataset: its cases, subjects, windows and windows per class."""

    cases: int = 0
    subjects: int = 0
    windows: int = 0
    normal: int = 0
    hypotension: int = 0
    hypertension: int = 0

    def of(self, cls: str) -> int:
        """The windows of class ``cls`` (a name of :data:`hypo.data.signals.CLASSES`)."""
        return getattr(self, cls)


class ZScore(Record):
    """The per-signal mean and standard deviation the models standardise with, fitted on the train split.

    ``checksum`` (:func:`hypo.data.integrity.zscore_checksum` of the means and standard deviations) is checked when
    the manifest is read; manifests written before it have none (their z-score is checked against the train windows
    when they are loaded). A non-finite mean or a standard deviation that is not finite and > 0 is refused either
    way: the build never writes one (a constant signal's is 1), so the file was edited or damaged.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    fitted_on: str = "train"
    n_values: int | list[int] | None = None  # one count, or one per signal (cases lacking a group)
    checksum: str | None = None

    @field_validator("mean", "std")
    @classmethod
    def _one_per_signal(cls, v: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
        if len(v) != N_SIGNALS:
            raise ValueError(f"the manifest's zscore must hold {N_SIGNALS} means and stds, got {len(v)}")
        bad = [(s, x) for s, x in zip(SIGNALS, v) if not math.isfinite(x) or (info.field_name == "std" and x <= 0)]
        if bad:
            what = "finite" if info.field_name == "mean" else "finite and > 0"
            raise ValueError(f"every {info.field_name} must be {what}, got {bad[0][1]:g} for {bad[0][0]} (no build "
                             "writes that: the file was edited or damaged; re-run the hypo windows command that "
                             "built it to rewrite it)")
        return v

    @property
    def intact(self) -> bool:
        """Whether the means and standard deviations are those the build wrote (True when it recorded no checksum)."""
        return self.checksum is None or self.checksum == zscore_checksum(self.mean, self.std)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` as float32 arrays."""
        return np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)


class CaseTotals(Record):
    """Cases the source listed, used and rejected, and the hours of recording used."""

    listed: int
    ok: int
    rejected: int = 0
    case_hours: float = 0.0


class RejectedCase(Record):
    """A case the build rejected, and why."""

    caseid: str
    reason: str
    detail: str = ""


class AbsentGroups(Record):
    """``--allow-missing``: the groups cases may lack, and how many cases and windows (per split) lack each."""

    allowed: tuple[str, ...]
    cases: dict[str, int] = {}
    windows: dict[str, dict[str, int]] = {}
    note: str = ""


class DroppedWindows(Record):
    """Windows cut but not kept: still incomplete after filling, or without a label."""

    incomplete: int = 0
    no_label: int = 0


class LabelLead(Record):
    """Labels taken from a reading at or before the window end (the paper's carry-forward mode leaks so)."""

    count: int
    share: float


class ArtLabelSection(Record):
    """ART labels: the event definition, coverage rule, and what artefact removal took from the arterial line."""

    event: str
    coverage: str
    label_map_sbp: str
    art_last: str
    artefact_rules: dict[str, str]
    artefacts: dict[str, int]
    samples: int
    removed_share: float
    median_interval_s: float | None


class HorizonCounts(Record):
    """One horizon in one split: the kept windows per class at that horizon, and those without a label there."""

    normal: int = 0
    hypotension: int = 0
    hypertension: int = 0
    missing: int = 0


class HorizonSection(Record):
    """A multi-horizon dataset: its horizons, its primary one, and per split and horizon the labels it holds.

    Attributes:
        horizons_s: The horizons (seconds, ascending); column ``horizon_labels`` holds one class per horizon, in
            this order.
        primary_s: The horizon whose labels decide which windows are kept (the ``label`` column's).
        missing_label: The value of a label a window lacks at a horizon.
        rule: How a horizon's label is made, in words.
        counts: split -> horizon (seconds, as a string) -> :class:`HorizonCounts`.
    """

    horizons_s: tuple[int, ...]
    primary_s: int
    missing_label: int = -1
    rule: str = ""
    counts: dict[str, dict[str, HorizonCounts]] = {}

    def missing(self, horizon_s: int) -> int:
        """Kept windows without a label at ``horizon_s``, over every split."""
        return sum(c[str(horizon_s)].missing for c in self.counts.values() if str(horizon_s) in c)


class DatasetSource(Record):
    """The source a dataset was built from.

    Attributes:
        name: The source's name.
        fingerprint: Its fingerprint (what it yields).
        report: Its own description for people (eligibility, cohort, ``simulated``...), free-form per source.
        spec: The options that build it again (:func:`hypo.data.sources.factory.build_source`); None for a source
            that cannot describe itself (a test's).
    """

    name: str | None = None
    fingerprint: str | None = None
    report: dict[str, Any] = {}
    spec: SourceSpec | None = None


class Manifest(Record):
    """What a window dataset holds and how it was built (``DIR/manifest.json``).

    The fields :func:`hypo.data.preprocess.make_manifest` fills, in the order it writes them; sections a dataset
    lacks (``absent_groups`` without ``--allow-missing``, ``art_label`` for cuff labels) are None and not written.
    """

    format: str = FORMAT
    schema_version: int = SCHEMA_VERSION
    signals: tuple[str, ...]
    units: dict[str, str] = {}
    window_s: int
    stride_s: int | None = None
    horizon_s: int | None = None
    label: Label
    classes: tuple[str, ...] = CLASSES
    counts: dict[str, SplitCounts]
    zscore: ZScore
    cases: CaseTotals | None = None
    rejected_counts: dict[str, int] = {}
    rejected: tuple[RejectedCase, ...] = ()
    artefacts: dict[str, int] = {}
    artefacts_in_rejected_cases: dict[str, int] = {}
    nibp_merge_s: int | None = None
    nibp_merged_readings: int = 0
    absent_groups: AbsentGroups | None = None
    dropped_windows: DroppedWindows = DroppedWindows()
    labels_at_or_before_window_end: LabelLead | None = None
    label_source: str = "cuff"
    art_label: ArtLabelSection | None = None
    horizons: HorizonSection | None = None
    warnings: tuple[str, ...] = ()
    config: Window | None = None
    source: DatasetSource = DatasetSource()
    fingerprint: str
    created: str | None = None
    hypo_version: str | None = None
    wall_s: float | None = None

    @property
    def horizons_s(self) -> tuple[int, ...]:
        """Every horizon the windows are labelled at (a single-horizon dataset: its one horizon)."""
        return self.horizons.horizons_s if self.horizons is not None else (self.label.horizon_s,)

    def split_counts(self, split: str) -> SplitCounts:
        """The counts of ``split`` (all zero when the manifest has none)."""
        return self.counts.get(split) or SplitCounts()

    @property
    def simulated(self) -> bool:
        """Whether the dataset comes from the demo simulator (or test data), not from patients.

        Figures from a simulated dataset must never read as clinical performance.
        """
        return self.source.name in SIMULATED_SOURCES or bool(self.source.report.get("simulated"))

    @property
    def cohort(self) -> dict[str, Any]:
        """Which subjects the source draws from, comparable between datasets built differently.

        Two datasets with the same cohort can share subjects whatever else differs: the demo simulator's case *i*
        is the same subject for any ``--cases`` (so its cohort is the simulator version and seed, also for its
        cases written as ``.vital`` files), and every build from the VitalDB open dataset draws from the same
        patients. Other sources are identified by their fingerprint. Equal dicts mean the subjects may overlap.
        """
        name, rep = self.source.name, self.source.report
        if name == "demo":
            return {"source": "demo", "simulator": rep.get("simulator_version"), "seed": rep.get("seed")}
        sim = rep.get("simulator") or {}
        if isinstance(sim, dict) and sim.get("simulator_version"):  # demo cases written as .vital files
            return {"source": "demo", "simulator": sim["simulator_version"], "seed": sim.get("seed")}
        if name == "vitaldb":
            return {"source": "vitaldb"}
        return {"source": name, "fingerprint": self.source.fingerprint}


# ------------------------------------------------------------------------------------------ reading, writing


def rebuild_hint(data_dir: str) -> str:
    """How to replace a dataset hypo cannot read: build it again into a new folder, or delete it."""
    return f"rebuild it (hypo windows ... --out NEWDIR) or delete {data_dir}"


def write_manifest(data_dir: str, manifest: Manifest) -> None:
    """Write ``DIR/manifest.json`` (atomically)."""
    storage.write_json(storage.join(str(data_dir), MANIFEST), manifest.to_dict())


def read_manifest(data_dir: str) -> Manifest:
    """Read, migrate and check ``DIR/manifest.json``.

    Args:
        data_dir: Dataset folder (local path or URI).

    Returns:
        The manifest.

    Raises:
        DatasetError: When the manifest is missing, of another format or a newer schema, does not validate (one
            line naming the file and the field), or lists other signals; each says how to rebuild the dataset.
    """
    path = storage.join(str(data_dir), MANIFEST)
    if not storage.exists(path):
        raise DatasetError(f"no window dataset at {data_dir}: manifest.json missing; {BUILD_HINT}")
    try:
        raw = storage.read_json(path)
    except (ValueError, OSError) as exc:
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise DatasetError(f"{path}: unreadable manifest ({why}); {rebuild_hint(data_dir)}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        got = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise DatasetError(f"{data_dir}: dataset format {got!r}, expected {FORMAT!r}; {rebuild_hint(data_dir)}")
    manifest = parse_record(Manifest, migrate(raw, data_dir), path, hint=rebuild_hint(data_dir),
                            error=DatasetError)
    if not manifest.zscore.intact:
        raise DatasetError(f"{path}: field zscore: its means and standard deviations do not match their checksum "
                           f"(edited after the build?); {REPAIR}")
    if manifest.signals != SIGNALS:
        raise DatasetError(
            f"{data_dir}: the dataset has signals {list(manifest.signals)} but hypo expects these {N_SIGNALS} in "
            f"order: {list(SIGNALS)}; {rebuild_hint(data_dir)}"
        )
    return manifest


def migrate(raw: dict[str, Any], data_dir: str) -> dict[str, Any]:
    """A manifest's JSON brought to :data:`SCHEMA_VERSION` (the file itself is left as it is).

    Raises:
        DatasetError: For a schema this hypo does not know (a newer hypo wrote it).
    """
    version = schema_version_of(raw)
    if version == SCHEMA_VERSION:
        return raw
    if version not in (1, 2):
        raise DatasetError(f"{storage.join(str(data_dir), MANIFEST)}: schema_version {raw.get('schema_version')!r} "
                           f"is not one this hypo reads (up to {SCHEMA_VERSION}); update hypo, or "
                           f"{rebuild_hint(data_dir)}")
    if version == 2:  # 2 -> 3: the same fields; the windows' extra columns are read when there (dataset.py)
        return {**raw, "schema_version": SCHEMA_VERSION}
    source = raw.get("source") if isinstance(raw.get("source"), dict) else {}
    spec = legacy_source_spec(raw, source, data_dir)
    return {**raw, "schema_version": SCHEMA_VERSION,
            **({"source": {**source, "spec": spec}} if spec is not None else {})}


def legacy_source_spec(raw: dict[str, Any], source: dict[str, Any], data_dir: str) -> dict[str, Any] | None:
    """Schema 1 -> 2: a source's description made from its report, as the alarm replay used to rebuild it.

    Returns:
        The :class:`SourceSpec` fields, or None when the source cannot be rebuilt (another source, or a report
        lacking what it needs); its recordings then cannot be replayed, everything else reads as before.
    """
    name, rep = source.get("name"), source.get("report") or {}
    label, cfg = raw.get("label") or {}, raw.get("config") or {}
    common = {"name": name, "arterial": isinstance(label, dict) and label.get("source") == "art"}
    # groups the build let cases lack (--allow-missing): the source must read such cases again
    allow_missing = list((cfg.get("allow_missing") if isinstance(cfg, dict) else None) or rep.get("allow_missing")
                         or ())
    if name == "demo" and "n_cases" in rep:
        return {**common, "n_cases": rep["n_cases"], "seed": rep.get("seed", 0), "site": rep.get("site", "a")}
    if name == "vital-dir" and "folder" in rep:
        return {**common, "folder": rep["folder"], "track_map": rep.get("track_map"),
                "subjects": rep.get("subjects_file"), "allow_missing": allow_missing}
    if name == "vitaldb" and (rep.get("caseids_given") or "n_selected" in rep):
        picked = ({"caseids": sorted(listed_caseids(data_dir, raw.get("rejected") or ()), key=lambda c: (len(c), c))}
                  if rep.get("caseids_given") else {"n_cases": rep["n_selected"]})
        return {**common, **picked, "cache": rep.get("cache"), "api_url": rep.get("api_url"),
                "allow_missing": allow_missing}
    return None


def listed_caseids(data_dir: str, rejected) -> list[str]:
    """Every case a build listed: those written (``DIR/cases/case_<id>.json``) and those rejected.

    Args:
        data_dir: The dataset.
        rejected: The manifest's rejected cases (records or their JSON).
    """
    folder = storage.join(str(data_dir), "cases")
    ok = [storage.read_json(storage.join(folder, n))["caseid"] for n in storage.list_files(folder, ".json")]
    return [str(c) for c in ok] + [str(r.caseid if isinstance(r, RejectedCase) else r["caseid"]) for r in rejected]
