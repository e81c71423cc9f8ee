"""Tune's per-trial result files (``result.json``, ``progress.csv``), kept whole when a trial restarts.

Tune writes them in the driver's staging folder and copies that folder to the experiment's storage every few
checkpoints. When a trial restarts after its node was lost, Tune's loggers first copy the storage's older file
back over the driver's own, so the epochs reported since the last copy vanished from the trial's record. Here the
driver's copy is kept when it exists (it is newer than, or the same as, the storage's); a search resumed by
another process (``--resume``) has no copy of its own and starts from the storage's, as Tune does.

A module of its own: Tune pickles the callbacks into the experiment (``tuner.pkl``), so this path must stay.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback


class _KeepDriverCopy:
    """Skip Tune's copy from storage when the driver already holds the trial's file."""

    def _restore_from_remote(self, file_name: str, trial) -> None:
        if Path(trial.local_path, file_name).exists():
            return
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class ResultJsonLog(_KeepDriverCopy, JsonLoggerCallback):
    """Tune's ``result.json`` logger (one line per reported epoch), whole across trial restarts."""


class ProgressCsvLog(_KeepDriverCopy, CSVLoggerCallback):
    """Tune's ``progress.csv`` logger, whole across trial restarts."""
