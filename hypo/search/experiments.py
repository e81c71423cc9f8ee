"""Experiment folders: where a search's results live, finding the latest, and reading them where they are.

A search writes its experiment to ``STORAGE/NAME`` (a local folder, a shared folder or ``s3://...``): Ray Tune's
trial folders and the search's own record, ``hypo_search.json`` (:data:`SEARCH_META`,
:class:`~hypo.search.record.SearchRecord`), which names the window dataset the trials were trained on
(:func:`experiment_dataset`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from collections.abc import Callable, Iterator

import pyarrow.fs as pafs

from hypo import mirror, storage
from hypo.errors import ConfigError, HypoError
from hypo.search.record import SEARCH_META, read_search_record

__all__ = ["DEFAULT_STORAGE", "SEARCH_META", "experiment_dataset", "experiments_under", "latest_search",
           "experiment_folder", "local_experiment", "resolve_experiment", "show_paths", "shown"]

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


def _mirror_folder(exp_uri: str) -> str:
    """Where an experiment on an object store is mirrored: ``~/.cache/hypo/experiments/HASH/NAME``."""
    name = exp_uri.rstrip("/").rsplit("/", 1)[-1]
    tag = hashlib.sha256(exp_uri.rstrip("/").encode()).hexdigest()[:12]
    return os.path.join(os.path.expanduser(mirror.CACHE), "experiments", tag, name)


# local mirror -> the experiment URI it mirrors (this process's)
_ORIGINS: dict[str, str] = {}


def local_experiment(exp_path: str, log=print) -> str:
    """A local folder holding the experiment: itself, or a mirror of it when it lives on an object store.

    Searches on a cluster write to ``--storage s3://...``; the leaderboard, report and export read a local mirror
    in ``~/.cache/hypo/experiments`` (brought in step on each call: new or changed files copied, files gone from the
    store deleted; :func:`hypo.mirror.mirror`). What they write there goes back to the store when their
    :func:`experiment_folder` block ends. The mirror is a cache: delete it at any time.

    Raises:
        HypoError: When the experiment on the store cannot be read.
    """
    if not storage.is_uri(exp_path):
        return storage.absolute(exp_path)
    uri = exp_path.rstrip("/")
    local = _mirror_folder(uri)
    try:
        copied = mirror.mirror(uri, local)
    except OSError as exc:
        raise HypoError(f"cannot read {uri}: {str(exc).splitlines()[0]}") from None
    if not os.path.isdir(local):
        raise HypoError(f"no experiment folder at {uri}")
    _ORIGINS[local] = uri
    log(f"{uri}: read through its local mirror {local} ({copied} new or changed files)")
    return local


def shown(path: str) -> str:
    """``path`` as the user knows it: a path inside an experiment's local mirror as its URI on the store."""
    for local, uri in _ORIGINS.items():
        if path == local or path.startswith(local + os.sep):
            return uri + path[len(local) :].replace(os.sep, "/")
    return path


def show_paths(text: str) -> str:
    """``text`` with every mirror folder it names replaced by its experiment's URI (for console lines)."""
    for local, uri in sorted(_ORIGINS.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(local, uri)
    return text


@contextlib.contextmanager
def experiment_folder(exp_path: str, log=print) -> Iterator[tuple[str, Callable[[str], None]]]:
    """The experiment as a local folder for a block of work; what the block writes into it reaches the store.

    Yields ``(folder, log)``: the folder (the experiment itself, or its mirror), and ``log`` naming the store's
    URIs instead of the mirror's paths. When the block ends without an error, the files it wrote into a mirror are
    uploaded (:func:`hypo.mirror.push`, JSON records last).

    Raises:
        HypoError: When the experiment on the store cannot be read.
    """
    if not storage.is_uri(exp_path):
        yield storage.absolute(exp_path), log
        return
    local = local_experiment(exp_path, log=log)

    def say(line: str) -> None:
        log(show_paths(line))

    try:
        yield local, say
    except HypoError as exc:  # its message names the store, as the user does
        exc.args = tuple(show_paths(a) if isinstance(a, str) else a for a in exc.args)
        raise
    mirror.push(local, _ORIGINS[local])


def _is_experiment(path: str) -> bool:
    return os.path.isdir(path) and (os.path.exists(os.path.join(path, SEARCH_META))
                                    or any(e.startswith("train_trial") for e in os.listdir(path)))


def experiments_under(root: str) -> list[str]:
    """The experiment folders directly under ``root`` (those holding a search record or trials), newest first.

    On an object store, those holding a search record, newest record first.
    """
    if storage.is_uri(root):
        fs, inner = storage.resolve(root)
        found = []
        for name in storage.list_dirs(root):
            info = fs.get_file_info(f"{inner.rstrip('/')}/{name}/{SEARCH_META}")
            if info.type == pafs.FileType.File:
                found.append((info.mtime_ns or 0, storage.join(root.rstrip("/"), name)))
        return [uri for _, uri in sorted(found, reverse=True)]
    if not os.path.isdir(root):
        return []
    found = [os.path.join(root, name) for name in os.listdir(root) if _is_experiment(os.path.join(root, name))]
    return sorted(found, key=os.path.getmtime, reverse=True)


def _has_trials(path: str) -> bool:
    return any(name.startswith("train_trial") for name in storage.list_dirs(path))


def resolve_experiment(arg: str | None, log=print) -> str:
    """The experiment to show: ``arg`` itself, or the newest one under ``arg`` (default ``runs/``).

    Raises:
        HypoError: When ``arg`` is neither an experiment nor a folder of experiments.
    """
    path = arg or DEFAULT_STORAGE
    if storage.exists(storage.join(path, SEARCH_META)):
        return path
    found = experiments_under(path)
    if not found:
        if arg and storage.exists(path) and _has_trials(path):
            return path
        raise HypoError(f"no experiment under {storage.absolute(path)}; run a search first (python tune/search.py) "
                        "or name an experiment folder")
    name = posixpath.basename if storage.is_uri(path) else os.path.basename
    log(f"latest experiment under {path}: {name(found[0])}")
    if len(found) > 1:
        log("others (newest first): " + ", ".join(name(p) for p in found[1:]))
    return found[0]


def latest_search(storage_path: str) -> str:
    """The name of the newest search under ``storage_path`` (not any folder: ``hypo train`` writes ``runs/train``).

    Raises:
        ConfigError: When there is none.
    """
    root = storage.absolute(storage_path)
    found = experiments_under(root)
    if not found:
        raise ConfigError(f"--resume: no experiment under {root}; pass --name")
    return posixpath.basename(found[0]) if storage.is_uri(root) else os.path.basename(found[0])
