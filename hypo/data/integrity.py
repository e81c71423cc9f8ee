"""Is a window dataset on disk what its build wrote? Shards checked on resume, the z-score checked on load.

A damaged folder (a shard deleted, truncated or overwritten; a manifest edited by hand) must never pass as a
dataset, nor stay damaged after the user re-runs the command that built it:

- each case's summary (``DIR/cases/case_<id>.json``) records its shard as written (:func:`shard_record`: path,
  rows, bytes and SHA-256). A re-run of ``hypo windows`` checks every done case's shard against it
  (:func:`check_done_cases`) and builds again the cases whose shards are missing or damaged, saying which. Cases
  written before shards were recorded are checked for their row count (the Parquet footer) only, and the re-run
  says so;
- the manifest's z-score (what every model standardises its inputs with) carries a checksum of its means and
  standard deviations (:func:`zscore_checksum`), checked when the manifest is read; manifests written before it
  have none, and their z-score is checked against the train windows themselves when the train split is loaded
  (:func:`check_zscore_against`). Impossible values (a non-finite mean, a standard deviation <= 0) are refused
  whatever the manifest's age (:class:`hypo.data.manifest.ZScore`).

The dataset's fingerprint covers neither (it is the build's identity: its rules, its source and the cases used), so
an intact dataset keeps the fingerprint it always had.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hypo import storage
from hypo.config import fingerprint
from hypo.data.moments import Moments
from hypo.data.splits import SPLITS
from hypo.errors import DatasetError

REPAIR = "re-run the hypo windows command that built it: it rebuilds what is missing or damaged"
SHOWN = 8  # damaged cases named one by one on the console; the rest counted


def shard_path(split: str, name: str) -> str:
    """A case's shard relative to the dataset folder: ``windows/<split>/<name>.parquet``."""
    return f"windows/{split}/{name}.parquet"


def shard_record(split: str, name: str, rows: int, data_sha256: str, n_bytes: int) -> dict[str, Any]:
    """What a case summary records of its shard as written (``summary["shard"]``)."""
    return {"path": shard_path(split, name), "rows": int(rows), "bytes": int(n_bytes), "sha256": data_sha256}


def zscore_checksum(mean: Iterable[float], std: Iterable[float]) -> str:
    """The checksum of a z-score's means and standard deviations (the manifest's ``zscore.checksum``)."""
    return fingerprint({"mean": [float(v) for v in mean], "std": [float(v) for v in std]})


# ------------------------------------------------------------------------------------------ shards on resume


def _sha256(path: str) -> str:
    fs, p = storage.resolve(path)
    h = hashlib.sha256()
    with fs.open_input_stream(p) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _sizes(out: str, splits: Iterable[str]) -> dict[str, int]:
    """``windows/<split>/<file>`` -> size in bytes of every shard on disk (one listing per split)."""
    sizes = {}
    for split in splits:
        fs, p = storage.resolve(storage.join(out, "windows", split))
        for info in fs.get_file_info(pafs.FileSelector(p, allow_not_found=True)):
            if info.type == pafs.FileType.File:
                sizes[f"windows/{split}/{info.base_name}"] = info.size
    return sizes


def shard_damage(out: str, summary: dict[str, Any], name: str, size: int | None) -> str | None:
    """Why the shard of a done case is not what its summary records (None when it is).

    Args:
        out: The dataset folder.
        summary: The case's summary.
        name: The case's shard name.
        size: The shard's size on disk (None: missing).
    """
    if size is None:
        return "shard missing"
    rec = summary.get("shard")
    path = storage.join(out, *shard_path(summary["split"], name).split("/"))
    if rec is not None:
        if not (isinstance(rec, dict) and isinstance(rec.get("bytes"), int) and isinstance(rec.get("sha256"), str)):
            return "summary damaged (its shard record)"
        if size != rec["bytes"]:
            return f"shard damaged ({size} bytes, {rec['bytes']} written)"
        return None if _sha256(path) == rec["sha256"] else "shard damaged (its SHA-256 differs from the one written)"
    try:  # a case written before shards were recorded: its row count, from the Parquet footer
        fs, p = storage.resolve(path)
        with fs.open_input_file(p) as f:
            rows = pq.ParquetFile(f).metadata.num_rows
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        return f"shard damaged (unreadable: {str(exc).splitlines()[0][:80]})"
    return None if rows == summary["n_windows"] else f"shard damaged ({rows} rows, {summary['n_windows']} written)"


def check_done_cases(out: str, names: Iterable[str], log: Callable[[str], None] = print,
                     threads: int = 8) -> dict[str, dict[str, Any]]:
    """The done cases of a build whose shards are intact; the others are removed so that the build redoes them.

    Args:
        out: The dataset folder.
        names: Shard names of the cases with a summary (``DIR/cases/<name>.json``).
        log: Where the repair and the legacy note are said.
        threads: Shards read at once (checksums of a large dataset on cloud storage).

    Returns:
        Shard name -> summary of every intact done case.
    """
    names = sorted(names)
    sizes = _sizes(out, SPLITS)

    def check(name: str) -> tuple[dict[str, Any] | None, str | None]:
        s = _read_summary(out, name)
        if s is None:
            return None, "summary unreadable"
        return s, shard_damage(out, s, name, sizes.get(shard_path(s["split"], name)))

    with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:  # reads overlap on cloud storage
        checked = dict(zip(names, pool.map(check, names)))
    summaries = {n: s for n, (s, _) in checked.items()}
    damage = {n: why for n, (_, why) in checked.items() if why is not None}
    for name in damage:
        s = summaries[name]
        for path in [shard_path(sp, name) for sp in ((s["split"],) if s else SPLITS)] + [f"cases/{name}.json"]:
            _remove(storage.join(out, *path.split("/")))
    if damage:
        named = ", ".join(f"{n} ({why})" for n, why in list(damage.items())[:SHOWN])
        more = f" and {len(damage) - SHOWN} more" if len(damage) > SHOWN else ""
        log(f"repairing: {len(damage)} of {len(names)} done cases are missing or damaged on disk and are built "
            f"again: {named}{more}")
    legacy = sum(s is not None and "shard" not in s for s in summaries.values())
    if legacy:
        log(f"note: {legacy} of {len(names)} done cases were written before hypo recorded their shards' checksums: "
            "their shards were checked for their row count only (a build into a new --out records checksums)")
    return {n: s for n, s in summaries.items() if n not in damage}


def _read_summary(out: str, name: str) -> dict[str, Any] | None:
    """A done case's summary, or None when it is not readable JSON of a case written to a split."""
    try:
        s = storage.read_json(storage.join(out, "cases", name + ".json"))
    except (ValueError, OSError):
        return None
    ok = isinstance(s, dict) and s.get("split") in SPLITS and isinstance(s.get("n_windows"), int)
    return s if ok else None


def _remove(path: str) -> None:
    fs, p = storage.resolve(path)
    try:
        fs.delete_file(p)
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------------------------ the z-score


def check_zscore_against(zscore, x: np.ndarray, where: str, chunk: int = 65536) -> None:
    """Refuse a manifest z-score that is not the one of the train windows ``x`` (manifests without a checksum).

    Args:
        zscore: The manifest's :class:`~hypo.data.manifest.ZScore`.
        x: float32 [n, window_s, 7]: every train window.
        where: The dataset (for the message).
        chunk: Windows per pass (bounded float64 memory).

    Raises:
        DatasetError: When a mean or standard deviation differs from the windows' own.
    """
    moments = Moments.empty(x.shape[-1])
    for start in range(0, len(x), chunk):
        moments = moments.combine(Moments.of(x[start:start + chunk]))
    mean, std = np.asarray(zscore.mean, np.float64), np.asarray(zscore.std, np.float64)
    tol = 1e-5 * np.maximum(moments.std, 1e-6)
    bad = ~(np.abs(mean - moments.mean) <= tol) | ~(np.abs(std - moments.std) <= tol)
    if bad.any():
        from hypo.data.signals import SIGNALS

        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{where}/manifest.json: its z-score is not the train windows' own ({SIGNALS[i]}: mean {mean[i]:g}, std "
            f"{std[i]:g} in the manifest, {moments.mean[i]:g} and {moments.std[i]:g} in the windows; edited after "
            f"the build?); {REPAIR}")
