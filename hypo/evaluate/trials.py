"""The trial an evaluation is about: the leaderboard's first (or a named one) at its best validation epoch.

:func:`choose_trial` finds it and its checkpoint; :func:`load_trial` loads its model, config, checkpoint and the
dataset manifest, refusing a dataset rebuilt since training. The report, the export and the alarm evaluation all
start here (``hypo.evaluate.testsplit.report`` re-exports both, where they used to live).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hypo.errors import HypoError
from hypo.search.experiments import experiment_dataset, local_experiment
from hypo.search.leaderboard import TrialRecord, leaderboard_frame, load_trials
from hypo.search.record import SearchRecord, read_search_record


@dataclasses.dataclass
class ChosenTrial:
    """The trial a report or an export is about, and where everything it needs lives."""

    exp_path: str
    trial_id: str
    rank: int | None
    epoch: int
    checkpoint: str
    record: TrialRecord
    row: dict[str, Any]
    meta: SearchRecord
    data_dir: str


def choose_trial(exp_path: str, trial_id: str | None = None) -> ChosenTrial:
    """The leaderboard's first trial (or ``trial_id``) at its best validation epoch, with its checkpoint.

    Raises:
        HypoError: No experiment, no dataset recorded, unknown trial, or the best epoch's checkpoint not kept.
    """
    exp_path = local_experiment(exp_path, log=lambda _: None)
    meta = read_search_record(exp_path)
    records = load_trials(exp_path)
    data_dir = experiment_dataset(exp_path)
    df = leaderboard_frame(records)
    ranked = df[df["rank"].notna()]
    if trial_id is not None:
        rows = ranked[ranked["trial"] == trial_id]
        if rows.empty:
            known = ", ".join(map(str, ranked["trial"].head(8)))
            raise HypoError(f"{exp_path}: no trial {trial_id!r}; trials by rank: {known}")
    else:
        rows = ranked
    row = rows.iloc[0].to_dict()
    if row.get("best_epoch") is None or not math.isfinite(float(row["best_epoch"])):
        raise HypoError(f"trial {row['trial']} reported no epoch with a validation score; nothing to evaluate")
    epoch = int(row["best_epoch"])
    record = next(r for r in records if r.trial_id == row["trial"])
    ckpt = record.checkpoint_for(epoch)
    if ckpt is None:
        raise HypoError(f"trial {row['trial']}: the checkpoint of its best epoch {epoch} was not kept")
    return ChosenTrial(exp_path, str(row["trial"]), int(row["rank"]), epoch, ckpt, record, row, meta, str(data_dir))




def load_trial(chosen: ChosenTrial):
    """The trial's model, TrainConfig, checkpoint dict and the dataset manifest, with fingerprints checked.

    Raises:
        HypoError: When the dataset folder now holds another dataset than the one the trial was trained on.
    """
    from hypo.data.dataset import read_manifest
    from hypo.learn.checkpoint import load_checkpoint, load_model

    manifest = read_manifest(chosen.data_dir)
    ckpt = load_checkpoint(chosen.checkpoint)
    if ckpt["dataset_fingerprint"] != manifest.fingerprint:
        raise HypoError(f"trial {chosen.trial_id} was trained on dataset {ckpt['dataset_fingerprint']} but "
                        f"{chosen.data_dir} now holds {manifest.fingerprint}; evaluate on the dataset it was "
                        "trained on")
    model, cfg = load_model(chosen.checkpoint)
    return model, cfg, ckpt, manifest
