"""Claiming an experiment's name: two searches started at the same moment with the same ``--name`` never merge.

A new search claims ``STORAGE/NAME`` before Ray starts by creating ``NAME/hypo_claim.json`` exclusively
(:func:`hypo.storage.create_exclusive`: ``O_CREAT | O_EXCL`` on a disk, a conditional put ``If-None-Match: *`` on
S3). Of two searches racing for one name exactly one creates it; the other is refused in one line before any work.
The claim stays with the experiment (who started it, where, when; never a credential). A search that fails before
its record (``hypo_search.json``) is written gives its claim back, so the name can be used again; one killed in
that moment leaves a claim without a record, which the next search with that name reports (delete it, or choose
another name).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import socket
import time
import uuid

from hypo import storage
from hypo.errors import ConfigError
from hypo.search.record import SEARCH_META

CLAIM = "hypo_claim.json"
BARRIER_ENV = "HYPO_TEST_CLAIM_BARRIER"  # tests: a folder where racing searches wait just before claiming


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim this process holds on an experiment (:func:`claim_experiment`)."""

    exp_path: str
    token: str
    made_folder: bool = False  # a local folder the claim created (removed again when the claim is given back)

    @property
    def path(self) -> str:
        """The claim file."""
        return storage.join(self.exp_path, CLAIM)

    def release(self) -> None:
        """Give the name back when no search record was written under it (a search that failed to start)."""
        if storage.exists(storage.join(self.exp_path, SEARCH_META)):
            return
        held = read_claim(self.exp_path)
        if held is not None and held.get("token") == self.token:
            storage.remove(self.path)
            if self.made_folder:
                with contextlib.suppress(OSError):
                    os.rmdir(self.exp_path)  # only when empty


def read_claim(exp_path: str) -> dict | None:
    """The claim on an experiment (``{}`` when its file is still being written), or None when it has none."""
    path = storage.join(exp_path, CLAIM)
    try:
        return json.loads(storage.read_bytes(path).decode() or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {} if storage.exists(path) else None


def describe_claim(claim: dict | None) -> str:
    """``pid P on HOST at TIME`` of a claim (empty when it says nothing yet)."""
    by = (claim or {}).get("claimed_by") or {}
    return f"pid {by.get('pid')} on {by.get('host')} at {by.get('at')}" if by else ""


def claim_experiment(exp_path: str) -> Claim:
    """Claim the experiment ``exp_path`` for a new search, atomically; the loser of a race is refused.

    Raises:
        ConfigError: Another search holds the claim (one line: who, and what to do).
    """
    _wait_at_barrier()
    token = uuid.uuid4().hex
    body = {"claimed_by": {"host": socket.gethostname(), "pid": os.getpid(),
                           "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
            "token": token}
    made = not storage.is_uri(exp_path) and not os.path.exists(exp_path)
    if storage.is_uri(exp_path):
        storage.makedirs(exp_path)  # the bucket must exist
    if not storage.create_exclusive(storage.join(exp_path, CLAIM), json.dumps(body, indent=2).encode()):
        who = describe_claim(read_claim(exp_path))
        raise ConfigError(f"{exp_path} was claimed by another search ({who or 'starting now'}): two searches with "
                          "one --name would merge; choose another --name")
    return Claim(exp_path, token, made)


def unrecorded_claim(exp_path: str) -> str | None:
    """The one-line reason a name is taken by a claim with no search record, or None."""
    claim = read_claim(exp_path)
    if claim is None or storage.exists(storage.join(exp_path, SEARCH_META)):
        return None
    who = describe_claim(claim)
    return (f"{exp_path} is claimed by a search ({who or 'starting now'}) that has written no record yet: it is "
            f"starting, or was killed before it could (then delete {storage.join(exp_path, CLAIM)}); or choose "
            "another --name")


def _wait_at_barrier(timeout_s: float = 120.0) -> None:
    """Tests: say this process arrived (``BARRIER/arrived-PID``), then wait for ``BARRIER/go``."""
    folder = os.environ.get(BARRIER_ENV)
    if not folder:
        return
    open(os.path.join(folder, f"arrived-{os.getpid()}"), "w").close()
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < deadline:
        time.sleep(0.01)
