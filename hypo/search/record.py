"""The search record (``EXPERIMENT/hypo_search.json``) as a typed record, and its one read/write pair.

A search writes it when it starts (:func:`hypo.search.tuner.run_search`): its settings, the dataset it trains on
(path, fingerprint, label rule, source) and every baseline's validation metrics. The leaderboard, the report, the
export, ``hypo evaluate RUN`` and ``search --resume`` read it with :func:`read_search_record` and read attributes.

Schema versions (``schema_version``):

- 1: records written before the record was typed (no ``schema_version``); the oldest hold a single ``baseline``
  (the last reading's metrics) instead of ``baselines``. They load through :func:`migrate`.
- 2: ``schema_version``; ``baselines`` always a list.

A record that cannot be read (cut short, not JSON, a field of the wrong type) is refused in one line naming the
file and what to do; a record of a newer schema says to update hypo.
"""

from __future__ import annotations

from typing import Any

from hypo import storage
from hypo.data.manifest import Label
from hypo.errors import HypoError
from hypo.learn.baselines import BaselineRecord, baseline_list
from hypo.records import Record, parse_record, schema_version_of

SEARCH_META = "hypo_search.json"  # written by the search into the experiment folder
SCHEMA_VERSION = 2
REPAIR = ("a search writes it when it starts: restore the file, or run the search again under a new --name "
          "(its trials' own files still read)")


class SearchRecordError(HypoError):
    """A search record that cannot be read; the message is one line naming the file and what to do."""


class SearchRecord(Record):
    """What a search records about itself (``hypo_search.json``).

    Attributes:
        schema_version: :data:`SCHEMA_VERSION`.
        search: The search's settings as ``to_dict(SearchConfig)`` wrote them (``SearchConfig`` reads them back;
            a field newer than the search is absent, and means its default).
        code_layout: The module layout Tune pickled (:data:`hypo.search.tuner.CODE_LAYOUT`); a resume needs the same.
        search_fingerprint: The settings' fingerprint.
        data: The window dataset's path (absolute), where its trials trained.
        dataset_fingerprint: That dataset's fingerprint when the search started.
        label: The dataset's label rule.
        source: The dataset's source (its name).
        simulated: Whether that source is simulated (every output then says so).
        baselines: Every baseline's validation row (:class:`~hypo.learn.baselines.BaselineRecord`).
    """

    schema_version: int = SCHEMA_VERSION
    search: dict[str, Any] = {}
    code_layout: str | None = None
    search_fingerprint: str | None = None
    data: str | None = None
    dataset_fingerprint: str | None = None
    label: Label | None = None
    source: str | None = None
    simulated: bool = False
    baselines: tuple[BaselineRecord, ...] = ()

    def planned_trials(self, found: int) -> int:
        """How many trials the search planned (``found``, the trials there are, when its settings do not say)."""
        from hypo.search.space import planned_trials

        s = self.search
        if "space" not in s:
            return found
        return planned_trials(s["space"], s["samples"], s.get("sampler"), s.get("models"), s.get("paper_ks"))

    @property
    def trial_epoch_budget(self) -> int | None:
        """The search's budget of trial-epochs, if it had one."""
        return self.search.get("trial_epoch_budget")


def record_path(exp_path: str) -> str:
    """Where an experiment's search record is."""
    return storage.join(str(exp_path), SEARCH_META)


def write_search_record(exp_path: str, record: SearchRecord) -> None:
    """Write ``EXPERIMENT/hypo_search.json`` (atomically; local or cloud storage)."""
    storage.write_json(record_path(exp_path), record.to_dict())


def read_search_record(exp_path: str) -> SearchRecord | None:
    """The search record of an experiment folder (local or cloud storage), or None when there is none.

    Raises:
        SearchRecordError: When the file is cut short, is not JSON, does not validate (one line naming the field),
            or comes from a newer hypo.
    """
    path = record_path(storage.absolute(exp_path) if not storage.is_uri(exp_path) else exp_path)
    if not storage.exists(path):
        return None
    try:
        raw = storage.read_json(path)
    except (ValueError, OSError) as exc:
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise SearchRecordError(f"{path}: unreadable search record ({why}); {REPAIR}") from None
    if not isinstance(raw, dict):
        raise SearchRecordError(f"{path}: a search record holds a JSON object, not {type(raw).__name__}; {REPAIR}")
    return parse_record(SearchRecord, migrate(raw, path), path, hint=REPAIR, error=SearchRecordError)


def migrate(raw: dict[str, Any], path: str) -> dict[str, Any]:
    """A search record's JSON brought to :data:`SCHEMA_VERSION` (the file itself is left as it is).

    Raises:
        SearchRecordError: For a schema this hypo does not know (a newer hypo wrote it).
    """
    version = schema_version_of(raw)
    if version == SCHEMA_VERSION:
        return raw
    if version != 1:
        raise SearchRecordError(f"{path}: schema_version {raw.get('schema_version')!r} is not one this hypo reads "
                                f"(up to {SCHEMA_VERSION}); update hypo")
    old = raw.get("baselines") or raw.get("baseline")  # the oldest searches recorded the last reading alone
    baselines = [b.to_dict() for b in baseline_list(old)] if isinstance(old, (list, dict)) else old
    return {**{k: v for k, v in raw.items() if k != "baseline"}, "schema_version": SCHEMA_VERSION,
            "baselines": baselines or []}
