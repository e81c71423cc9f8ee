"""A record of every evaluation of an experiment's test split.

Ranking happens on the validation split; the test split should be looked at once, for the trial the leaderboard
chose. Nothing stops a person from evaluating several trials on it and keeping the best, so every look is
appended to ``EXPERIMENT/test_looks.jsonl`` (time, command, trials and their checkpoints) and reported with the
result: a report that is not the experiment's first look at its test split says so.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

LOOKS_FILE = "test_looks.jsonl"


def read_looks(exp_path: str) -> list[dict[str, Any]]:
    """Every recorded look at the test split of an experiment, oldest first (empty when none)."""
    path = os.path.join(os.path.expanduser(exp_path), LOOKS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def record_look(exp_path: str, by: str, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Append one look at the test split and say how many came before.

    Args:
        exp_path: Experiment folder.
        by: The command that looked (``hypo.evaluate.testsplit.report``, ``leaderboard --test``).
        trials: ``{"trial", "rank", "checkpoint_sha256"}`` of each trial evaluated.

    Returns:
        ``{"look": n (1 for the first), "earlier": [earlier looks], "this": this look}``.
    """
    earlier = read_looks(exp_path)
    look = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "by": by,
            "trials": trials}
    with open(os.path.join(os.path.expanduser(exp_path), LOOKS_FILE), "a") as f:
        f.write(json.dumps(look) + "\n")
    return {"look": len(earlier) + 1, "earlier": earlier, "this": look}


def describe_looks(looks: dict[str, Any]) -> str:
    """One line on how many times the test split has been looked at, and at which trials before."""
    if looks["look"] == 1:
        return "first look at this experiment's test split"
    seen = sorted({t["trial"] for e in looks["earlier"] for t in e["trials"]})
    return (f"look {looks['look']} at this experiment's test split (earlier looks evaluated trial(s) "
            f"{', '.join(seen)}): choosing among trials by their test scores would make these figures optimistic")
