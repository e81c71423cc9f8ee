"""Local folders and cloud storage (``s3://``, ``gs://``, ...) through pyarrow's filesystems.

Writes are atomic: data goes to a hidden temporary name beside the target, then is moved into place, so a
killed job never leaves a half-written shard under a real name (readers skip names starting with '.').
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def is_uri(path: str) -> bool:
    """True for ``scheme://...`` paths other than ``file://``."""
    return "://" in str(path) and not str(path).startswith("file://")


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """Return the filesystem and the path inside it; local paths are made absolute."""
    path = str(path)
    if is_uri(path):
        fs, inner = pafs.FileSystem.from_uri(path)
        return fs, inner
    if path.startswith("file://"):
        path = path[len("file://") :]
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def absolute(path: str) -> str:
    """A URI as it is; a local path (``~`` expanded, ``file://`` dropped) made absolute."""
    return str(path) if is_uri(path) else resolve(path)[1]


def join(base: str, *parts: str) -> str:
    """Join path parts of a local path or a URI."""
    if is_uri(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def exists(path: str) -> bool:
    """Whether a file or folder exists."""
    fs, p = resolve(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def makedirs(path: str) -> None:
    """Create a folder and its parents (no-op on object stores)."""
    fs, p = resolve(path)
    fs.create_dir(p, recursive=True)


def mirror_to_local(uri: str, local_dir: str) -> int:
    """Copy every file under ``uri`` (cloud storage) into ``local_dir``, skipping files already there unchanged.

    Args:
        uri: A folder on cloud storage (``s3://...``).
        local_dir: The local folder to mirror it into (created).

    Returns:
        The number of files copied.
    """
    fs, root = resolve(uri)
    local = pafs.LocalFileSystem()
    copied = 0
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type != pafs.FileType.File:
            continue
        dest = os.path.join(local_dir, *posixpath.relpath(info.path, root).split("/"))
        if os.path.exists(dest) and os.path.getsize(dest) == info.size:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        pafs.copy_files(info.path, dest, source_filesystem=fs, destination_filesystem=local)
        copied += 1
    return copied


def writable_folder(path: str, flag: str = "--out") -> str:
    """Create a local output folder, or refuse it in one line before any work is done.

    Args:
        path: The folder (``~`` expanded).
        flag: The option that named it, for the message.

    Returns:
        The folder's absolute path.

    Raises:
        HypoError: When ``path`` is a file, or the folder cannot be created or written: permissions (which do
            not stop root) are asked first, then a file is made and removed there, as the kernel must allow (a
            read-only filesystem, ``/sys``).
    """
    from hypo.errors import HypoError

    folder = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise HypoError(f"{flag} {folder} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise HypoError(f"{flag}: cannot create {folder}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise HypoError(f"{flag}: cannot write into {folder} (permission denied)")
    probe = os.path.join(folder, f".hypo-write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.remove(probe)
    except OSError as exc:
        raise HypoError(f"{flag}: cannot write into {folder}: {exc.strerror or exc}") from None
    return folder


def list_files(path: str, suffix: str = "") -> list[str]:
    """Base names of the files directly under ``path`` ending with ``suffix`` (hidden files skipped)."""
    fs, p = resolve(path)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    names = [posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.File]
    return sorted(n for n in names if n.endswith(suffix) and not n.startswith((".", "_")))


def list_dirs(path: str) -> list[str]:
    """Base names of the folders directly under ``path`` (hidden ones skipped); on object stores, the prefixes."""
    fs, p = resolve(path)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    return sorted(n for n in (posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.Directory)
                  if not n.startswith((".", "_")))


def _atomic_write(path: str, data: bytes) -> None:
    fs, p = resolve(path)
    parent = posixpath.dirname(p) if is_uri(path) else os.path.dirname(p)
    fs.create_dir(parent, recursive=True)
    if is_uri(path):  # object stores publish an object atomically on close
        with fs.open_output_stream(p) as f:
            f.write(data)
        return
    tmp = os.path.join(parent, f".{os.path.basename(p)}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    _atomic_write(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str) -> Any:
    """Read a JSON file."""
    fs, p = resolve(path)
    with fs.open_input_stream(p) as f:
        return json.loads(f.read().decode())


def write_parquet(path: str, table: pa.Table) -> tuple[str, int]:
    """Write a Parquet file atomically (zstd-compressed); returns the SHA-256 and the size of the bytes written."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    _atomic_write(path, data)
    return hashlib.sha256(data).hexdigest(), len(data)


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a local file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
