"""Local folders and object stores (``s3://``, ``gs://``, ...) through pyarrow's filesystems.

Every path a command takes may be a local folder or a URI. For ``s3://`` pyarrow finds the server and the
credentials as the AWS tools do: the endpoint from ``AWS_ENDPOINT_URL`` (a MinIO, a local test server; unset: AWS
itself), the credentials from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``~/.aws`` or the instance's role.
hypo never takes credentials as arguments and never writes them anywhere.

What a reader may trust, on a disk and on an object store alike:

- **Whole files only.** Locally a file is written to a hidden temporary name beside the target (``.NAME.tmp-HOST-PID-
  RANDOM``), flushed, then renamed over the target. An object store has no rename; there each file is one upload
  under its final name, from bytes already complete in memory or on disk: an object appears whole when its upload
  completes, and a killed upload leaves none (only an incomplete multipart upload, which no listing shows; a bucket
  lifecycle rule ``AbortIncompleteMultipartUpload`` removes those). So no temporary name is ever written there.
- **Listings never see half-written names**: :func:`list_files` and :func:`list_dirs` skip names starting with ``.``
  or ``_``, which is where local temporaries live.
- **Final name last: a set of files counts as complete only when its completion marker is there**, written after
  every file it vouches for: a case's shard, then its summary ``cases/case_ID.json``; a dataset's shards, then
  ``manifest.json``; a model ``model.pt`` (its sidecar embedded), then ``model.json``; the files of a report, a
  leaderboard or an evaluation, then their JSON record (:func:`hypo.mirror.push` uploads JSON files last).
- **Claims are exclusive** (:func:`create_exclusive`): ``O_CREAT | O_EXCL`` on a disk, a conditional put
  (``If-None-Match: *``) on S3, so two processes can never both believe they created the same file.

Readers on this machine work on local copies of what they read from an object store, and what they write goes
back to it (:mod:`hypo.mirror`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import socket
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

_TMP = ".tmp-"  # in every local temporary's name: .NAME.tmp-HOST-PID-RANDOM


def is_uri(path: str) -> bool:
    """True for ``scheme://...`` paths other than ``file://``."""
    return "://" in str(path) and not str(path).startswith("file://")


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """Return the filesystem and the path inside it; local paths are made absolute.

    ``s3://`` URIs reach the endpoint ``AWS_ENDPOINT_URL`` names (pyarrow's ``from_uri`` reads it, since pyarrow 13).
    """
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


def parent(path: str) -> str:
    """The folder holding ``path`` (a local path or a URI)."""
    return posixpath.dirname(str(path).rstrip("/")) if is_uri(path) else os.path.dirname(absolute(path))


def exists(path: str) -> bool:
    """Whether a file or folder exists."""
    fs, p = resolve(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def is_file(path: str) -> bool:
    """Whether ``path`` is a file (an object, on an object store)."""
    fs, p = resolve(path)
    return fs.get_file_info(p).type == pafs.FileType.File


def makedirs(path: str) -> None:
    """Create a folder and its parents; on an object store, check that the bucket exists (there are no folders).

    Raises:
        HypoError: The bucket does not exist (one line).
    """
    if is_uri(path):
        check_bucket(path)
        return
    fs, p = resolve(path)
    fs.create_dir(p, recursive=True)


def check_bucket(uri: str, flag: str = "") -> None:
    """Refuse a URI whose bucket is missing, in one line, before any work.

    Raises:
        HypoError: No such bucket (or the server cannot be reached).
    """
    from hypo.errors import HypoError

    fs, p = resolve(uri)
    bucket = p.split("/", 1)[0]
    try:
        found = fs.get_file_info(bucket).type != pafs.FileType.NotFound
    except OSError as exc:
        raise HypoError(f"{flag + ' ' if flag else ''}{uri}: {str(exc).splitlines()[0]}") from None
    if not found:
        raise HypoError(f"{flag + ' ' if flag else ''}{uri}: no bucket {bucket!r} there (create it first)")


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


def temporary_name(path: str) -> str:
    """The hidden temporary a local write of ``path`` goes through: ``.NAME.tmp-HOST-PID-RANDOM`` beside it."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{_TMP}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def write_bytes(path: str, data: bytes, on_step: Callable[[str], None] | None = None) -> None:
    """Write ``data`` to ``path`` whole or not at all (see the module docstring).

    Args:
        path: A local path (written through :func:`temporary_name`, fsynced, renamed) or a URI (one upload).
        data: The file's whole content.
        on_step: Called with ``"partial"`` (half the data written) and ``"written"`` (all of it, the temporary not
            yet renamed, the upload not yet completed); tests kill the process there.
    """
    step = on_step or (lambda _: None)
    fs, p = resolve(path)
    if is_uri(path):  # an object appears whole when its upload completes (on close); no folders to create
        with fs.open_output_stream(p) as f:
            f.write(data[: len(data) // 2])
            step("partial")
            f.write(data[len(data) // 2 :])
            step("written")
        return
    os.makedirs(os.path.dirname(p), exist_ok=True)
    tmp = temporary_name(p)
    try:
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            step("partial")
            f.write(data[len(data) // 2 :])
            f.flush()
            os.fsync(f.fileno())
        step("written")
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_folder(os.path.dirname(p))


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_bytes(path: str) -> bytes:
    """The whole content of a file or object."""
    fs, p = resolve(path)
    with fs.open_input_stream(p) as f:
        return f.read()


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, whole or not at all."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str) -> Any:
    """Read a JSON file."""
    return json.loads(read_bytes(path).decode())


def write_parquet(path: str, table: pa.Table) -> tuple[str, int]:
    """Write a Parquet file whole or not at all (zstd-compressed); returns the SHA-256 and the size of its bytes."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest(), len(data)


def remove(path: str) -> None:
    """Delete a file or object if it is there.

    On S3 through boto3: pyarrow's delete leaves an empty marker object for the folder, which would then seem to
    exist.
    """
    if str(path).startswith("s3://"):
        import boto3

        bucket, _, key = str(path)[len("s3://") :].partition("/")
        boto3.client("s3").delete_object(Bucket=bucket, Key=key)
        return
    fs, p = resolve(path)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_file(p)


def create_exclusive(path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` only if nothing is there yet, atomically; False when something is.

    Locally an exclusive create (a hard link of a complete temporary, which fails when the name exists, like
    ``O_CREAT | O_EXCL``; both hold on NFS v3 and later); on S3 a conditional put
    (``If-None-Match: *``, through boto3, which reads the same ``AWS_ENDPOINT_URL`` and credentials), which the
    store refuses (``PreconditionFailed``) when the key exists. Of two processes racing, exactly one gets True.
    Other object stores have no such put here: they check, then write (not atomic).
    """
    if not is_uri(path):
        return _create_exclusive_local(absolute(path), data)
    if not str(path).startswith("s3://"):
        if exists(path):
            return False
        write_bytes(path, data)
        return True
    return _s3_put_if_absent(path, data)


def _create_exclusive_local(path: str, data: bytes) -> bool:
    """Create ``path`` exclusively, its content whole from the start: a hard link of a complete temporary.

    ``link`` fails when the name exists, as ``O_CREAT | O_EXCL`` does, and the file never shows half its content;
    where the filesystem has no hard links, ``O_CREAT | O_EXCL``.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    finally:
        os.remove(tmp)
    _fsync_folder(os.path.dirname(path))
    return True


def _s3_put_if_absent(uri: str, data: bytes) -> bool:
    import boto3
    from botocore.exceptions import ClientError

    bucket, _, key = uri[len("s3://") :].partition("/")
    try:
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise OSError(f"{uri}: {exc}") from None
    return True


def stale_temporaries(path: str) -> list[str]:
    """Temporaries of ``path`` (a local file) left by killed processes of this machine, to be removed.

    Those :func:`temporary_name` makes (``.NAME.tmp-HOST-PID-*``), and ``NAME.tmp-PID`` as ``hypo export`` named them
    before; only of this host and only when that process is gone, so a write in progress is never touched.
    """
    folder, name = os.path.split(absolute(path))
    if not os.path.isdir(folder):
        return []
    host, stale = socket.gethostname(), []
    for entry in os.listdir(folder):
        if entry.startswith(f".{name}{_TMP}{host}-"):
            pid = entry[len(f".{name}{_TMP}{host}-") :].split("-", 1)[0]
        elif entry.startswith(f"{name}{_TMP}"):
            pid = entry[len(f"{name}{_TMP}") :]
        else:
            continue
        if pid.isdigit() and not _alive(int(pid)):
            stale.append(os.path.join(folder, entry))
    return sorted(stale)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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


def sha256_file(path: str) -> str:
    """Hex SHA-256 of a local file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
