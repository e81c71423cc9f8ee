"""Ray Tune stoppers of the search (a module of their own: Tune pickles them into the experiment)."""

from __future__ import annotations

import time
from typing import Any

from ray import tune


class NoTrialStarted(tune.Stopper):
    """Ends the search when no trial has reported anything ``timeout_s`` after the start.

    Bounds the wait for an autoscaler that never adds a node able to hold a trial; once any trial reports, it
    never fires (trials then queue behind each other as usual).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.started: float | None = None
        self.seen = False

    def __getstate__(self) -> dict[str, Any]:  # a restored search starts its own clock
        return {"timeout_s": self.timeout_s, "started": None, "seen": False}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """A trial reported: the cluster can run trials."""
        self.seen = True
        return False

    def stop_all(self) -> bool:
        """True once ``timeout_s`` passed with no trial reporting."""
        if self.started is None:
            self.started = time.monotonic()
        return not self.seen and time.monotonic() - self.started > self.timeout_s


class LastEpoch(tune.Stopper):
    """Stops a trial once it reports its last epoch (``epochs``), read from the result itself.

    Ray's ``MaximumIterationStopper`` counts the results it is handed per trial instead. A trial whose node is
    lost after Tune received an epoch's result but before it recorded that epoch's checkpoint (Tune asks for the
    checkpoint in a second call to the trial's actor) restarts from the checkpoint before and reports that epoch
    again: counted twice, the trial was stopped one epoch short of its last (7 of 8), and marked finished. The
    epoch a result carries is what the trial has trained; a restored trial's results carry the epochs it goes on
    from, and a restored search keeps no count to go stale.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = int(epochs)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True when the result is the trial's last epoch (or later)."""
        return reported_epoch(result) >= self.epochs

    def stop_all(self) -> bool:
        """Never: each trial ends on its own."""
        return False


def reported_epoch(result: dict[str, Any]) -> int:
    """The epoch a trial's result reports: its ``epoch``, else Tune's ``training_iteration`` (one per epoch)."""
    epoch = result.get("epoch")
    return int(epoch if isinstance(epoch, (int, float)) else result.get("training_iteration") or 0)


class TrialEpochBudget(tune.Stopper):
    """Ends the search once its trials have reported ``budget`` epochs in all (a budget of trial-epochs).

    Each reported epoch of any trial is one trial-epoch. An epoch a trial reported before is not counted again:
    Tune hands a trial's last result to the stoppers a second time when its function returns, and a trial
    restored from a checkpoint goes on from that checkpoint's epoch. The trial whose epoch reaches the budget
    ends there as finished; the trials still running are stopped with the search. The count survives a resume.
    """

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self.epochs: dict[str, int] = {}  # trial id -> highest epoch it reported

    @property
    def spent(self) -> int:
        """Trial-epochs reported so far."""
        return sum(self.epochs.values())

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """Count the trial's epoch; stop it when the budget is spent."""
        epoch = int(result.get("training_iteration") or 0)
        if epoch > self.epochs.get(trial_id, 0):
            self.epochs[trial_id] = epoch
        return self.spent >= self.budget

    def stop_all(self) -> bool:
        """True once the budget is spent."""
        return self.spent >= self.budget
