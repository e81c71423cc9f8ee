"""What ``hypo evaluate`` is asked to do: the external validation's request, and its defaults."""

from __future__ import annotations

import dataclasses

from hypo.evaluate.alarms.metrics import AlarmConfig

N_BOOT = 1000
CALIBRATION_SHARE = 0.3
THRESHOLDS_FROM_MODEL, THRESHOLDS_FROM_OTHER = "model", "other"


@dataclasses.dataclass(frozen=True)
class EvaluateRequest:
    """What ``hypo evaluate`` was asked to do (see its ``--help`` for each option).

    Attributes:
        model_or_run: An exported ``model.pt``, or a search's experiment folder.
        data: OTHER: the window dataset of another source.
        trial: Trial id of an experiment folder (default: the leaderboard's first).
        recalibrate: ``none`` or a method of :mod:`hypo.learn.recalibration`.
        calibration_share: Share of OTHER's subjects the map is fitted on (default 0.3, with a map only).
        seed: Seed of the calibration split and the bootstrap.
        n_boot: Bootstrap replicates over subjects.
        write_export: Where to write the recalibrated model, if anywhere.
        out: Folder for ``evaluation.json``, ``evaluation.md`` and the figures.
        alarms: Also score the model as an alarm on OTHER's test recordings.
        thresholds_from: ``model`` (the development dataset's validation split), ``other`` (OTHER's own) or a
            dataset folder, whose validation split fixes the alarm thresholds.
        alarm: The alarm policy and scoring.
        alarm_cases: At most this many test recordings.
        exclude_in_hypotension: Also show the hypotension figures without the windows whose last cuff reading is
            already below the threshold, beside the full ones (``evaluation.json`` always has both).
    """

    model_or_run: str
    data: str
    trial: str | None = None
    recalibrate: str = "none"
    calibration_share: float | None = None
    seed: int = 0
    n_boot: int = N_BOOT
    write_export: str | None = None
    out: str = "evaluation"
    alarms: bool = False
    thresholds_from: str = THRESHOLDS_FROM_MODEL
    alarm: AlarmConfig = dataclasses.field(default_factory=AlarmConfig)
    alarm_cases: int | None = None
    exclude_in_hypotension: bool = False
