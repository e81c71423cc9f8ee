"""Experiment folders: where a search's results live, finding the latest, and reading them where they are.

A search writes its experiment to ``STORAGE/NAME`` (a local folder, a shared folder or ``s3://...``): Ray Tune's
trial folders and the search's own record, ``hypo_search.json`` (:data:`SEARCH_META`,
:class:`~hypo.search.record.SearchRecord`), which names the window dataset the trials were trained on
(:func:`experiment_dataset`).
"""

from __future__ import annotations

import hashlib
import os

from hypo import storage
from hypo.errors import ConfigError, HypoError
from hypo.search.record import SEARCH_META, read_search_record

__all__ = ["DEFAULT_STORAGE", "SEARCH_META", "experiment_dataset", "experiments_under", "latest_search",
           "local_experiment", "resolve_experiment"]

DEFAULT_STORAGE = "runs"


def experiment_dataset(exp_path: str, required: bool = True) -> str | None:
    """The window dataset an experiment's trials were trained on, as its search record names it.

    Args:
        exp_path: The experiment folder (a local one: :func:`local_experiment` mirrors a cloud one).
        required: Raise when no record names a dataset (else return None).

    Raises:
        HypoError: ``required`` and the folder holds no search record naming one; or the record cannot be read
            (:class:`~hypo.search.record.SearchRecordError`, whatever ``required`` says).
    """
    record = read_search_record(exp_path)
    data = record.data if record is not None else None
    if not data and required:
        raise HypoError(f"{exp_path}: no {SEARCH_META} naming the dataset; was it made by hypo's search?")
    return data or None


def local_experiment(exp_path: str, log=print) -> str:
    """A local folder holding the experiment: itself, or a mirror of it when it lives on cloud storage.

    Searches on a cluster write to ``--storage s3://...``; the leaderboard, report and export read a local
    mirror in ``~/.cache/hypo/experiments`` (refreshed on each call: only new or changed files are copied).
    What they write (leaderboard files, reports, the test-look record) goes into that mirror.

    Raises:
        HypoError: When the cloud folder cannot be read.
    """
    if not storage.is_uri(exp_path):
        return storage.absolute(exp_path)
    name = exp_path.rstrip("/").rsplit("/", 1)[-1]
    local = os.path.join(os.path.expanduser("~/.cache/hypo/experiments"),
                         f"{name}-{hashlib.sha256(exp_path.encode()).hexdigest()[:8]}")
    try:
        copied = storage.mirror_to_local(exp_path, local)
    except OSError as exc:
        raise HypoError(f"cannot read {exp_path}: {str(exc).splitlines()[0]}") from None
    log(f"{exp_path}: mirrored into {local} ({copied} new or changed files)")
    return local


def _is_experiment(path: str) -> bool:
    return os.path.isdir(path) and (os.path.exists(os.path.join(path, SEARCH_META))
                                    or any(e.startswith("train_trial") for e in os.listdir(path)))


def experiments_under(root: str) -> list[str]:
    """The experiment folders directly under ``root`` (those holding a search record or trials), newest first."""
    if not os.path.isdir(root):
        return []
    found = [os.path.join(root, name) for name in os.listdir(root) if _is_experiment(os.path.join(root, name))]
    return sorted(found, key=os.path.getmtime, reverse=True)


def resolve_experiment(arg: str | None, log=print) -> str:
    """The experiment to show: ``arg`` itself, or the newest one under ``arg`` (default ``runs/``).

    Raises:
        HypoError: When ``arg`` is neither an experiment nor a folder of experiments.
    """
    path = arg or DEFAULT_STORAGE
    if storage.is_uri(path) or os.path.exists(os.path.join(path, SEARCH_META)):
        return path
    found = experiments_under(path)
    if not found:
        if arg and os.path.isdir(path) and any(e.startswith("train_trial") for e in os.listdir(path)):
            return path
        raise HypoError(f"no experiment under {os.path.abspath(path)}; run a search first (python tune/search.py) "
                        "or name an experiment folder")
    log(f"latest experiment under {path}: {os.path.basename(found[0])}")
    if len(found) > 1:
        log("others (newest first): " + ", ".join(os.path.basename(p) for p in found[1:]))
    return found[0]


def latest_search(storage_path: str) -> str:
    """The name of the newest search under ``storage_path`` (not any folder: ``hypo train`` writes ``runs/train``).

    Raises:
        ConfigError: For cloud storage (name the search) or when there is none.
    """
    if storage.is_uri(storage_path):
        raise ConfigError(f"--resume with --storage {storage_path}: name the search with --name")
    root = os.path.abspath(os.path.expanduser(storage_path))
    found = experiments_under(root)
    if not found:
        raise ConfigError(f"--resume: no experiment under {root}; pass --name")
    return os.path.basename(found[0])
