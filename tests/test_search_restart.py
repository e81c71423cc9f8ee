"""A trial restarted from an older checkpoint than its last result: the stopper, the result files, the record.

The end-to-end case (a real worker dying after a result whose checkpoint Tune never recorded) is
``test_search.py::test_a_trial_restored_from_a_checkpoint_before_its_last_result_still_trains_every_epoch``.
"""

import json
import pickle
import types

from ray.tune.stopper import MaximumIterationStopper

from hypo.search.leaderboard import ORPHANED, load_trials, mark_orphans, trained_epochs
from hypo.search.result_logs import ProgressCsvLog, ResultJsonLog
from hypo.search.stoppers import LastEpoch

# Epochs a trial reports when its node is lost after epoch 3's result but before Tune recorded epoch 3's
# checkpoint: it restarts from epoch 2's checkpoint and reports 3 again.
RESTARTED = [1, 2, 3, 3, 4, 5, 6, 7, 8]


def _results(epochs):
    return [{"epoch": e, "training_iteration": e} for e in epochs]


def _first_stop(stopper, epochs):
    return next((r["epoch"] for r in _results(epochs) if stopper("t", r)), None)


def test_the_last_epoch_stopper_reads_the_epoch_a_result_reports():
    assert _first_stop(LastEpoch(8), range(1, 9)) == 8
    assert _first_stop(LastEpoch(8), RESTARTED) == 8
    # Ray's MaximumIterationStopper counts results: the repeated epoch ends the trial one epoch short.
    assert _first_stop(MaximumIterationStopper(8), RESTARTED) == 7
    # Tune hands the last result over again when a trial's function returns; a resumed search unpickles it.
    again = pickle.loads(pickle.dumps(LastEpoch(3)))
    assert again("t", {"epoch": 3}) and again("t", {"epoch": 3}) and not again("t", {"training_iteration": 2})
    assert not again.stop_all()


def test_the_record_keeps_each_epoch_once_from_the_run_that_went_on():
    rows = [dict(r, run=i >= 3) for i, r in enumerate(_results(RESTARTED))]
    kept = trained_epochs(rows)
    assert [r["epoch"] for r in kept] == list(range(1, 9))
    assert [r["run"] for r in kept] == [False, False] + [True] * 6  # epoch 3 from the restarted run
    assert trained_epochs(_results([1, 2, 1, 2, 3])) == _results([1, 2, 3])  # restarted from scratch
    assert trained_epochs(_results(range(1, 5))) == _results(range(1, 5))
    assert trained_epochs([]) == []


def test_load_trials_reads_a_restarted_trials_result_file_as_its_epochs(tmp_path):
    trial = tmp_path / "train_trial_abc_1"
    trial.mkdir()
    (trial / "params.json").write_text("{}")
    rows = [dict(r, trial_id="abc", done=i == len(RESTARTED) - 1) for i, r in enumerate(_results(RESTARTED))]
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (record,) = load_trials(str(tmp_path))
    assert [r["epoch"] for r in record.history] == list(range(1, 9)) and record.finished


def test_a_restarted_trial_keeps_the_drivers_result_files(tmp_path):
    """Tune's loggers copy storage's older file over the driver's when a trial restarts; these keep the driver's."""
    local, remote = tmp_path / "staging", tmp_path / "storage"
    local.mkdir()
    remote.mkdir()
    (remote / "result.json").write_text('{"epoch": 1}\n')
    import pyarrow.fs

    trial = types.SimpleNamespace(local_path=str(local), checkpoint=object(),
                                  storage=types.SimpleNamespace(trial_fs_path=str(remote),
                                                                storage_filesystem=pyarrow.fs.LocalFileSystem()))
    ResultJsonLog()._restore_from_remote("result.json", trial)  # no driver copy yet (a resumed search): storage's
    assert (local / "result.json").read_text() == '{"epoch": 1}\n'
    (local / "result.json").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    for log in (ResultJsonLog(), ProgressCsvLog()):
        log._restore_from_remote("result.json", trial)
    assert (local / "result.json").read_text() == '{"epoch": 1}\n{"epoch": 2}\n'


def test_a_trial_folder_the_resumed_search_does_not_know_is_marked_and_left_out(tmp_path):
    for name in ("train_trial_a_1", "train_trial_b_2", "train_trial_c_3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "params.json").write_text("{}")
    (tmp_path / "train_trial_a_1" / "result.json").write_text(json.dumps({"epoch": 1, "training_iteration": 1}))
    (tmp_path / "not_a_trial").mkdir()
    # The resumed search knows a and c; b was started by the killed run after its last snapshot.
    assert mark_orphans(str(tmp_path), {"train_trial_a_1", "train_trial_c_3"}) == ["train_trial_b_2"]
    assert (tmp_path / "train_trial_b_2" / ORPHANED).exists()
    assert sorted(t.path.rsplit("/", 1)[-1] for t in load_trials(str(tmp_path))) == ["train_trial_a_1",
                                                                                    "train_trial_c_3"]
    assert mark_orphans(str(tmp_path), {"train_trial_a_1", "train_trial_c_3"}) == []  # once
