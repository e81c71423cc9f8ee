"""The external validation's result as a typed record (``evaluation.json``), and what ``evaluate_external`` returns.

:class:`ExternalResult` is written by :func:`hypo.evaluate.external.validation.write_results` (NaN as null, as
always) and read back with ``ExternalResult.read(path)`` (a wrong field stops with one line naming the file and the
field). Its ``sections`` stay the JSON-ready dicts the section functions return (section name -> evaluation set ->
figures): a list further sections slot into, each with its own keys. The recalibration record is the one the
recalibrated export's sidecar holds (:class:`hypo.infer.sidecar.Recalibration`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from hypo.data.manifest import Label
from hypo.evaluate.alarms.result import AlarmResult
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import Fingerprints, Recalibration, SourceInfo
from hypo.records import Record

FORMAT = "hypo-external/1"


class ModelInfo(Record):
    """The model evaluated: where it came from, what it is, and what it was trained on."""

    path: str
    origin: str
    describe: str
    fingerprints: Fingerprints | None
    source: SourceInfo | None
    label: Label


class MissingGroup(Record):
    """A signal group some windows lack: how many windows, cases and subjects, and what was done with them."""

    windows: int
    cases: int
    subjects: int
    treatment: str


class DataInfo(Record):
    """OTHER, the dataset the model was scored on: what it is and how many windows were scored."""

    path: str
    fingerprint: str
    provenance: str
    simulated: bool
    n_windows: int
    n_subjects: int
    n_cases: int
    n_windows_left_out: int
    splits_pooled: list[str]
    missing_groups: dict[str, MissingGroup]


class EvaluationSet(Record):
    """An evaluation set's size and the alarm thresholds that apply to its probabilities."""

    name: str
    n_windows: int
    n_subjects: int
    thresholds: dict[str, float | None]


class ExternalResult(Record):
    """``evaluation.json`` (see the module docstring)."""

    format: Literal["hypo-external/1"] = FORMAT
    created: str
    model: ModelInfo
    data: DataInfo
    notes: list[str]
    recalibrate: str
    seed: int
    hypo_version: str
    recalibration: Recalibration | None = None
    evaluation_sets: dict[str, EvaluationSet]
    sections: dict[str, dict[str, Any]]
    exclude_in_hypotension: bool = False


@dataclasses.dataclass(frozen=True)
class ExternalRun:
    """What :func:`~hypo.evaluate.external.validation.evaluate_external` returns.

    Attributes:
        results: The record written as ``evaluation.json``.
        paths: Name -> path of every file written (``json``, ``md``, the figures).
        export: ``{"path", "model_sha256"}`` of the recalibrated export written, or None.
        model: The model evaluated (``hypo evaluate --alarms`` scores the same one).
        alarms: With ``--alarms``: the model as an alarm on OTHER's test recordings.
    """

    results: ExternalResult
    paths: dict[str, str]
    export: dict[str, Any] | None
    model: ExportedModel
    alarms: AlarmResult | None = None
