"""The exported model's sidecar as a typed record: how to feed the model, how to decide, and what produced it.

``hypo export`` writes it as ``model.json`` beside ``model.pt`` and embeds the same JSON in the TorchScript file
(:mod:`hypo.infer.export` reads and writes both; :func:`hypo.evaluate.export_trial.build_sidecar` fills it). Its
sections:

- how to feed it: ``input``, ``signals``, ``units``, and the training data's window rules (:class:`WindowRules`:
  window, fill rule, minimum length, cuff-reading merge gap, the groups it takes as missing, the groups it reads);
- what it returns and how to decide: ``output``, ``horizon_s`` (and for a model with per-horizon risks
  ``horizons_s`` and ``horizon_output``: its TorchScript method ``horizon_risk``), ``label``, ``thresholds``
  (:class:`Thresholds`: the window operating point), ``alarm_policy`` (:class:`AlarmPolicy`: the alarm the
  evaluation validated, which ``hypo serve`` runs);
- what produced it: ``zscore``, ``model``, ``trial``, ``metrics``, ``fingerprints``, ``source``, ``verification``,
  versions and time, and for a recalibrated export ``recalibration``; ``model_sha256`` in the file beside only.

Versions: ``schema_version`` is :data:`SCHEMA_VERSION`, or :data:`HORIZONS_SCHEMA` for a model with per-horizon
risks (``horizons_s``): a hypo from before them would read such a sidecar's primary output where its alarm policy
may mean a horizon's risk (``alarm_policy.horizon_s``), so it must refuse it rather than serve it. Older sidecars
are migrated as they are read (:func:`migrate`): the fields added since take the values those models had (schema 1:
no group taken as missing, every group read, cuff values merged 3 s apart; schemas 1 and 2: no validated alarm
policy, so ``hypo serve`` runs the window operating point's threshold with the default policy and says so). One too
old for that, or written by a newer hypo, is refused in one line that says to re-export it (:data:`REEXPORT`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from hypo.config import NIBP_MERGE_S, FillConfig, WindowConfig
from hypo.data.manifest import Label
from hypo.data.signals import GROUP_NAMES, MAY_BE_MISSING
from hypo.errors import HypoError
from hypo.learn.models import ModelConfig
from hypo.records import Record, config_field, parse_record, schema_version_of

FORMAT = "hypo-model/1"
SCHEMA_VERSION = 3
HORIZONS_SCHEMA = 4  # written by a model with per-horizon risks (see the module docstring); the newest this hypo reads
REEXPORT = "re-export it: hypo export RUN --out model.pt"
DROPPED_V1 = ("window_config_from",)  # schema-1 keys no longer written (the window config is required now)

Fill = config_field(FillConfig)
Model = config_field(ModelConfig)


class WindowRules(Record):
    """How a recording is prepared for a model: the rules its training windows were made with.

    A sidecar holds them (a :class:`Sidecar` is one); the alarm replay also builds them from a dataset's own window
    config (:func:`hypo.evaluate.alarms.replay.dataset_rules`).

    Attributes:
        window_s: Seconds per window.
        min_case_s: Shortest recording the training data kept.
        label: The label rule (also judges the outcome columns of ``hypo predict``).
        fill: The gap-filling rule.
        nibp_merge_s: Cuff values stamped at most this many seconds apart form one reading.
        tolerates_missing: Signal groups the model takes as missing (NaN); a recording may lack MAC or BIS then.
        signals_read: Signal groups the model reads (gaps in the others do not make a window incomplete).
    """

    window_s: int
    min_case_s: int
    label: Label
    fill: Fill
    nibp_merge_s: int = NIBP_MERGE_S
    tolerates_missing: list[str] = []
    signals_read: list[str] = list(GROUP_NAMES)


class InputSpec(Record):
    """The ``input`` section: the tensor the TorchScript model takes."""

    shape: list[int | str]
    dtype: str
    units: str
    missing_values: str | None = None  # schema-1 exports made before it lack it


class OutputSpec(Record):
    """The ``output`` section: what the model returns."""

    shape: list[int | str]
    meaning: str
    classes: list[str]


class Thresholds(Record):
    """The ``thresholds`` section: the label thresholds and the alarm thresholds of the operating point.

    ``p_hypotension`` / ``p_hypertension`` are None where no threshold reaches the specificity (never alarms).
    """

    KEEP_NULL: ClassVar[frozenset[str]] = frozenset({"p_hypotension", "p_hypertension"})
    hypo_map: float
    hyper_sbp: float
    p_hypotension: float | None = None
    p_hypertension: float | None = None
    specificity: float | None = None
    chosen_on: str | None = None
    rule: str | None = None
    before_recalibration: dict[str, Any] | None = None

    def operating_point(self) -> dict[str, float]:
        """``{"hypotension": t1, "hypertension": t2}`` for :func:`hypo.learn.operating_point.decide` (NaN: none)."""
        return {"hypotension": _nan(self.p_hypotension), "hypertension": _nan(self.p_hypertension)}


class AlarmPolicy(Record):
    """The ``alarm_policy`` section: the alarm the model was validated as, which ``hypo serve`` runs.

    ``hypo export`` replays the validation split's recordings (the alarm evaluation's replay, through the causal
    pipeline) and fixes the threshold there at the false-alarm target, with the policy it was scored under.

    Attributes:
        threshold: Threshold on p(hypotension), fixed on the validation split.
        m: Consecutive predictions at or above it that start an alarm.
        hysteresis: The alarm ends below ``threshold - hysteresis``.
        max_gap_s: Missing predictions for up to this long after a prediction hold the alarm's state.
        stride_s: Seconds between predictions it was scored at.
        operating_point: ``fa_target`` (at most ``target`` false alarms per hour) or ``sens_target``.
        target: The operating point's target.
        met: Whether the validation split met it.
        validation: The validation figures there (``sensitivity``, ``fa_per_h``, ``recordings``, ``hours``).
        chosen_on: Where: ``data`` (the dataset), ``dataset_fingerprint``, ``split``.
        horizon_s: ``hypo export --alarm-horizon``: the threshold is on the risk of hypotension by this horizon
            (``horizon_risk``; :meth:`hypo.infer.model.ExportedModel.at_horizon`), which ``hypo serve`` then
            scores; None (left out): on p(hypotension) at the primary horizon.
    """

    threshold: float
    m: int
    hysteresis: float
    max_gap_s: int
    stride_s: int
    horizon_s: int | None = None
    operating_point: str = "fa_target"
    target: float | None = None
    met: bool | None = None
    validation: dict[str, Any] | None = None
    chosen_on: dict[str, Any] | None = None

    def describe(self) -> str:
        """Where and how the threshold was fixed, in a few words."""
        v, on = self.validation or {}, self.chosen_on or {}
        what = (f"<= {self.target:g} false alarm/h" if self.operating_point == "fa_target" and self.target
                else f">= {100 * self.target:.0f}% sensitivity" if self.target else self.operating_point)
        figures = ", ".join(x for x in (
            f"sensitivity {100 * v['sensitivity']:.0f}%" if v.get("sensitivity") is not None else "",
            f"{v['fa_per_h']:.2f} false alarms/h" if v.get("fa_per_h") is not None else "",
            f"{v['recordings']} recordings" if v.get("recordings") is not None else "") if x)
        return ((f"on the risk of hypotension by {self.horizon_s} s, " if self.horizon_s is not None else "")
                + f"fixed on the {on.get('split', 'validation')} split of {on.get('data', '?')} for {what}"
                + ("" if self.met is None or self.met else ", target not met") + (f": {figures}" if figures else ""))


class ZScore(Record):
    """The training split's per-signal mean and standard deviation (inside the model; recorded here)."""

    mean: list[float]
    std: list[float]


class TrialInfo(Record):
    """The ``trial`` section: which trial of which search, at which epoch."""

    KEEP_NULL: ClassVar[frozenset[str]] = frozenset({"rank", "epoch", "loss", "gamma", "experiment", "checkpoint"})
    id: str
    rank: int | None = None
    epoch: int | None = None
    loss: str | None = None
    gamma: float | None = None
    channel_dropout: float | None = None  # schema-1 exports made before it lack it
    experiment: str | None = None
    checkpoint: str | None = None


class Metrics(Record):
    """The ``metrics`` section: validation metrics of the model and the baselines, test metrics of its report."""

    KEEP_NULL: ClassVar[frozenset[str]] = frozenset({"test"})
    val: dict[str, float | None]
    val_baseline: dict[str, float | None]
    val_baselines: dict[str, dict[str, float | None]] | None = None  # schema-1 exports made before it lack it
    test: dict[str, Any] | None = None


class Fingerprints(Record):
    """The ``fingerprints`` section: the dataset, config, search and checkpoint that produced the model."""

    KEEP_NULL: ClassVar[frozenset[str]] = frozenset({"checkpoint_dataset", "config", "search", "checkpoint_sha256"})
    dataset: str
    checkpoint_dataset: str | None = None
    config: str | None = None
    search: str | None = None
    checkpoint_sha256: str | None = None


class SourceInfo(Record):
    """The ``source`` section: where the training data came from, and whether they were simulated."""

    KEEP_NULL: ClassVar[frozenset[str]] = frozenset({"name", "cohort"})
    name: str | None = None
    simulated: bool = False
    cohort: dict[str, Any] | None = None


class Verification(Record):
    """The ``verification`` section: how far the written TorchScript model is from the model it was made from."""

    max_abs_difference: float | None = None
    tolerance: float | None = None
    recalibrated_max_abs_difference: float | None = None


class RecalibrationFit(Record):
    """Where a recalibration map was fitted (``recalibration.fitted_on``)."""

    KEEP_NULL: ClassVar[frozenset[str]] = frozenset({"cohort"})
    data: str
    dataset_fingerprint: str
    cohort: dict[str, Any] | None = None
    n_subjects: int
    n_windows: int
    split: str


class Recalibration(Record):
    """The ``recalibration`` section of a recalibrated export (:mod:`hypo.evaluate.external.recalibrated`)."""

    method: str
    parameters: dict[str, Any]
    share: float
    seed: int
    fitted_on: RecalibrationFit
    reported_on: dict[str, int]
    thresholds: dict[str, Any]
    export: dict[str, Any] | None = None
    base_model: dict[str, Any] | None = None


class Sidecar(WindowRules):
    """The exported model's sidecar (see the module docstring); its window rules are those of :class:`WindowRules`.

    Sections a hand-made or benchmark export may leave out (provenance, documentation) are None and not written.
    """

    ORDER: ClassVar[tuple[str, ...]] = (
        "format", "schema_version", "input", "tolerates_missing", "signals_read", "output", "signals", "units",
        "window_s", "stride_s", "horizon_s", "horizons_s", "horizon_output", "label", "thresholds", "alarm_policy",
        "fill", "nibp_merge_s",
        "min_case_s", "zscore",
        "model", "trial", "metrics", "fingerprints", "source", "verification", "hypo_version", "torch_version",
        "created", "recalibration", "model_sha256")

    format: Literal["hypo-model/1"] = FORMAT
    schema_version: int = SCHEMA_VERSION
    input: InputSpec | None = None
    output: OutputSpec | None = None
    signals: list[str]
    units: dict[str, str] | None = None
    stride_s: int | None = None
    horizon_s: int
    horizons_s: list[int] | None = None  # a model with per-horizon risks: its horizons (module.horizon_risk)
    horizon_output: OutputSpec | None = None  # and what horizon_risk returns
    thresholds: Thresholds
    alarm_policy: AlarmPolicy | None = None
    zscore: ZScore | None = None
    model: Model
    trial: TrialInfo | None = None
    metrics: Metrics | None = None
    fingerprints: Fingerprints | None = None
    source: SourceInfo | None = None
    verification: Verification | None = None
    hypo_version: str | None = None
    torch_version: str | None = None
    created: str | None = None
    recalibration: Recalibration | None = None
    model_sha256: str | None = None  # in model.json only: the hash of the model file it was written beside

    def to_dict(self) -> dict[str, Any]:
        """The sidecar as written (keys in the order exports have always had)."""
        d = super().to_dict()
        d["schema_version"] = HORIZONS_SCHEMA if self.horizons_s else SCHEMA_VERSION
        return {k: d[k] for k in self.ORDER if k in d}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Sidecar:
        """The sidecar of decoded JSON, migrated from older schemas and validated (:func:`read_sidecar`)."""
        return read_sidecar(data, where)

    @property
    def simulated(self) -> bool:
        """Whether the model was trained on simulated data."""
        return self.source is not None and self.source.simulated


def _nan(v: float | None) -> float:
    return float(v) if v is not None else float("nan")


def migrate(data: Any, where: str) -> dict[str, Any]:
    """The sidecar dict of any schema as the current schema's (see the module docstring).

    Raises:
        HypoError: Not a hypo sidecar, or written by a newer hypo (one line).
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise HypoError(f"{where}: no {FORMAT} sidecar embedded (not made by hypo export); re-export it")
    version = schema_version_of(data)
    if version < 1:
        raise HypoError(f"{where}: sidecar field schema_version: {data['schema_version']!r} is not a schema version; "
                        f"{REEXPORT}")
    if version > HORIZONS_SCHEMA:
        raise HypoError(f"{where}: its sidecar has schema {version}, this hypo reads up to {HORIZONS_SCHEMA}; "
                        "upgrade hypo (or re-export the model with this one)")
    if version == 1:  # the fields added since keep their defaults: what those models did
        data = {k: v for k, v in data.items() if k not in DROPPED_V1}
    if version < 3:  # no alarm policy was validated with the model
        data = {**{k: v for k, v in data.items() if k != "alarm_policy"}, "schema_version": SCHEMA_VERSION}
    return data


def read_sidecar(data: Any, where: str) -> Sidecar:
    """The typed sidecar of decoded JSON, migrated from older schemas and validated.

    Args:
        data: The decoded sidecar JSON.
        where: The file it came from (first in any message).

    Raises:
        HypoError: One line naming ``where`` and the field, saying to re-export.
    """
    old = isinstance(data, dict) and "schema_version" not in data
    current = migrate(data, where)
    hint = f"an export made by an older hypo (sidecar schema 1); {REEXPORT}" if old else REEXPORT
    return parse_record(Sidecar, current, where, hint=hint)


def may_lack(rules: WindowRules) -> tuple[str, ...]:
    """Signal groups a recording may lack entirely for this model: MAC or BIS, when it tolerates their absence.

    Models trained with channel dropout, or not reading a group at all, list it in ``tolerates_missing`` (exports
    made before it existed list nothing, and take every signal, as before).
    """
    tolerated = set(rules.tolerates_missing)
    return tuple(g for g in MAY_BE_MISSING if g in tolerated)


def window_config(rules: WindowRules, stride_s: int) -> WindowConfig:
    """The training data's window rules as a :class:`~hypo.config.WindowConfig`, with this run's stride."""
    return WindowConfig(window_s=int(rules.window_s), stride_s=int(stride_s), min_case_s=int(rules.min_case_s),
                        label=rules.label, fill=rules.fill, allow_missing=may_lack(rules),
                        nibp_merge_s=int(rules.nibp_merge_s))
