"""Local copies of what lives on an object store, and outputs staged there: the cache under ``~/.cache/hypo``.

Commands read an experiment on a store through a local mirror (:func:`mirror`, kept in step with the store on every
call: new or changed files copied, files gone from the store deleted) and one object through a local copy
(:func:`local_copy`); what they write into a mirror goes back with :func:`push` (JSON records last: they are the
completion markers of what they describe, :mod:`hypo.storage`). Outputs named by a URI are written into a local
staging folder uploaded when the command succeeds (:func:`staged_folder`, :func:`staged_out`). The copies are a
cache: deleting them is always safe. For local paths every function here is the path itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator

import pyarrow.fs as pafs

from hypo.storage import absolute, check_bucket, is_uri, join, resolve, temporary_name, writable_folder, write_bytes

CACHE = "~/.cache/hypo"

# A file's state as a mirror records it: (size, mtime in ns)
State = tuple[int, int]


def _files(fs: pafs.FileSystem, root: str) -> dict[str, pafs.FileInfo]:
    """Files under ``root`` (recursively) by path relative to it, '/'-separated; hidden names skipped."""
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return {}
    found = {}
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        rel = posixpath.relpath(info.path, root)
        if info.type == pafs.FileType.File and not any(part.startswith(".") for part in rel.split("/")):
            found[rel] = info
    return found


def _state(info: pafs.FileInfo) -> State:
    return int(info.size), int(info.mtime_ns or 0)


def _local_state(path: str) -> State:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


# local mirror folder -> its files' states as this process last mirrored or pushed them
_MIRRORED: dict[str, dict[str, State]] = {}


def mirror(uri: str, local_dir: str) -> int:
    """Bring the local copy ``local_dir`` of the folder ``uri`` in step with it; returns the files copied.

    Files new or changed on the store (size or time) are copied (each to a temporary, then renamed); files the store
    no longer holds are deleted here, so nothing stale is read. Files this process wrote into the copy since it
    first mirrored it, and has not pushed yet (:func:`push`), are left as they are.
    """
    fs, root = resolve(uri)
    remote = {rel: _state(info) for rel, info in _files(fs, root).items()}
    first = os.path.abspath(local_dir) not in _MIRRORED
    known = _MIRRORED.setdefault(os.path.abspath(local_dir), {})

    def ours(rel: str, path: str) -> bool:  # written here by this process, not pushed
        return not first and (rel not in known or _local_state(path) != known[rel])

    for rel in _local_files(local_dir):
        path = os.path.join(local_dir, *rel.split("/"))
        if rel not in remote and not ours(rel, path):
            os.remove(path)
            known.pop(rel, None)
    copied = 0
    for rel, state in remote.items():
        dest = os.path.join(local_dir, *rel.split("/"))
        if os.path.exists(dest) and (_local_state(dest) == state or ours(rel, dest)):
            if _local_state(dest) == state:
                known[rel] = state
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = temporary_name(dest)
        try:
            pafs.copy_files(posixpath.join(root, rel), tmp, source_filesystem=fs,
                            destination_filesystem=pafs.LocalFileSystem())
            os.utime(tmp, ns=(state[1], state[1]))
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        known[rel] = state
        copied += 1
    return copied


def _local_files(local_dir: str) -> list[str]:
    return sorted(_files(pafs.LocalFileSystem(), os.path.abspath(local_dir))) if os.path.isdir(local_dir) else []


def push(local_dir: str, uri: str) -> list[str]:
    """Upload the files of ``local_dir`` that are new or changed since it was mirrored (all, if never) to ``uri``.

    JSON files go last: they are the completion markers of what they describe (the module docstring).

    Returns:
        The URIs written.
    """
    local_dir = os.path.abspath(local_dir)
    known = _MIRRORED.setdefault(local_dir, {})
    todo = [rel for rel in _local_files(local_dir) if known.get(rel) != _local_state(os.path.join(local_dir, rel))]
    todo.sort(key=lambda rel: (rel.endswith(".json"), rel))
    for rel in todo:
        with open(os.path.join(local_dir, *rel.split("/")), "rb") as f:
            write_bytes(join(uri, rel), f.read())
    if todo:  # the copies now match the store's objects, as a listing (what mirror() compares) shows them
        fs, root = resolve(uri)
        stored = _files(fs, root)
        for rel in todo:
            state = _state(stored[rel])
            os.utime(os.path.join(local_dir, *rel.split("/")), ns=(state[1], state[1]))
            known[rel] = state
    return [join(uri, rel) for rel in todo]


@contextlib.contextmanager
def staged_folder(path: str, flag: str = "--out") -> Iterator[str]:
    """A local folder to write a command's outputs into: ``path`` itself, or for a URI a staging folder.

    A staging folder is uploaded to ``path`` when the block ends without an error (:func:`push`: JSON records
    last), and removed either way; a failed or killed command leaves nothing on the store.

    Raises:
        HypoError: ``path`` cannot be written (:func:`writable_folder`), or its bucket does not exist.
    """
    if not is_uri(path):
        yield writable_folder(path, flag)
        return
    check_bucket(path, flag)
    stage = tempfile.mkdtemp(prefix=f"hypo-out-{socket.gethostname()}-{os.getpid()}-")
    try:
        yield stage
        push(stage, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        _MIRRORED.pop(os.path.abspath(stage), None)


@contextlib.contextmanager
def staged_out(out_dir: str | None, log: Callable[[str], None] = print,
               flag: str = "--out") -> Iterator[tuple[str | None, Callable[[str], None]]]:
    """An output folder as a local one for a block of work, and a ``log`` that names the folder as the user did.

    Yields ``(folder, log)``: ``out_dir`` itself when local (None when None; not created here), or for a URI a
    :func:`staged_folder` uploaded when the block ends without an error, ``log`` naming the URI instead.
    """
    if out_dir is None or not is_uri(out_dir):
        yield out_dir, log
        return
    with staged_folder(out_dir, flag) as stage:
        yield stage, lambda line: log(line.replace(stage, out_dir.rstrip("/")))


def local_copy(uri: str) -> str:
    """A local copy of one file on an object store, refreshed when the object changed; a local path as it is.

    The copy lives in ``~/.cache/hypo/objects`` under the object's own base name.
    """
    if not is_uri(uri):
        return absolute(uri)
    fs, p = resolve(uri)
    info = fs.get_file_info(p)
    folder = os.path.join(os.path.expanduser(CACHE), "objects", hashlib.sha256(str(uri).encode()).hexdigest()[:16])
    dest = os.path.join(folder, posixpath.basename(p))
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"{uri}: no such object")
    if os.path.exists(dest) and _local_state(dest) == _state(info):
        return dest
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_name(dest)
    try:
        pafs.copy_files(p, tmp, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        os.utime(tmp, ns=(_state(info)[1], _state(info)[1]))
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest
