"""Exceptions that carry a one-line message for the user."""

from __future__ import annotations


class HypoError(Exception):
    """Base class: an error whose message is one line a user can act on."""


class ConfigError(HypoError, ValueError):
    """A configuration value or command-line argument is invalid."""


class DatasetError(HypoError):
    """A window dataset is missing, incomplete or does not match what the caller expects."""


class Interrupted(HypoError):
    """The user stopped a command (Ctrl-C) after it saved what it had; the message says how to continue (exit 130)."""


class CaseRejected(HypoError):
    """A case cannot be used; ``reason`` is a short machine-friendly tag, the message says why.

    Args:
        reason: Short tag used to count rejections (e.g. ``"missing track"``, ``"too short"``).
        detail: One line of detail for the log.
        artefacts: What artefact removal had removed from the case before it was rejected (rule -> count), when
            it got that far; counted in the manifest like the artefacts of used cases.
    """

    def __init__(self, reason: str, detail: str = "", artefacts: dict[str, int] | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.artefacts = artefacts
        super().__init__(f"{reason}: {detail}" if detail else reason)
