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
