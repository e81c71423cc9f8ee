"""The silent-trial log: every prediction, alarm change, rejected payload and recorded second, as Parquet.

    LOG/events/room=OR%201/day=2026-12-02/<segment>.parquet     predictions, alarm on/off, rejections, notes
    LOG/inputs/room=OR%201/day=2026-12-02/<segment>.parquet     each bed's recorded seconds (the model's 1-s grid)
    LOG/journal/<segment>.jsonl                                  the open segment (rows not yet in Parquet)

Rows are appended to a journal (JSON lines) and flushed to disk, ``fsync`` included, every ``flush_s`` seconds:
a crash loses at most that much. Every ``segment_s`` seconds (and on a clean stop) the journal is closed and
written as Parquet, one file per table, room and UTC day, named after the segment; then the journal is deleted.
Writing a segment is idempotent (its files are overwritten whole), so a crash at any point, followed by
:meth:`TrialLog.recover` at the next start, neither loses nor duplicates rows. The key of an event row is
``(room, time, kind)``; of an input row ``(room, case_start, t)``. Room names are percent-encoded in folder names.

No patient identifier is written: rows hold the room name the recorder sends, times, values and reasons, never a
payload's content.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from hypo.data.signals import GROUP_NAMES, SIGNALS

EVENTS, INPUTS = "events", "inputs"
EVENT_KINDS = ("prediction", "alarm_on", "alarm_off", "rejected", "note")
_F32 = ["p_normal", "p_hypotension", "p_hypertension", "threshold", *(f"avail_{g}" for g in GROUP_NAMES),
        "last_map", "last_map_age_s", "delay_s"]


def _schemas():
    import pyarrow as pa

    events = pa.schema([
        ("room", pa.string()), ("time", pa.float64()), ("kind", pa.string()), ("case_start", pa.float64()),
        ("t_end", pa.int64()), ("status", pa.string()), ("detail", pa.string()),
        *((c, pa.float32()) for c in _F32),
        ("alarm", pa.bool_()), ("alarm_run", pa.int32()), ("logged_at", pa.float64()), ("recorder", pa.string()),
        ("transport", pa.string()), ("n_bytes", pa.int64()), ("count", pa.int64()),
    ])
    inputs = pa.schema([("room", pa.string()), ("case_start", pa.float64()), ("t", pa.int64()),
                        ("time", pa.float64()), *((s, pa.float32()) for s in SIGNALS)])
    return {EVENTS: events, INPUTS: inputs}


def room_folder(room: str) -> str:
    """The partition folder name of a room (percent-encoded; ``_unknown`` for a payload without one)."""
    return "room=" + (urllib.parse.quote(room, safe="") if room else "_unknown")


def day_of(t: float) -> str:
    """The UTC day of a unix time, ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.gmtime(t if math.isfinite(t) else 0))


class TrialLog:
    """The log of one server (see the module docstring). Not thread-safe: one owner appends.

    Args:
        folder: The log folder (created).
        flush_s: Seconds between journal flushes (a crash loses at most this).
        segment_s: Seconds between Parquet segments.
    """

    def __init__(self, folder: str | os.PathLike, flush_s: float = 0.5, segment_s: float = 600.0) -> None:
        self.folder = Path(folder)
        self.flush_s, self.segment_s = float(flush_s), float(segment_s)
        self.pending: list[str] = []
        self._journal = None
        self._segment = ""
        self._segment_t0 = 0.0
        self._last_flush = 0.0
        self._lock = threading.RLock()  # journal writes and segment writes may run in threads; appends do not

    # -- writing -----------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the folders, write leftover journals of an earlier run as Parquet, start a segment."""
        (self.folder / "journal").mkdir(parents=True, exist_ok=True)
        self.recover()
        self._new_segment()

    def _new_segment(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._segment = f"{stamp}-{secrets.token_hex(4)}"
        self._journal = open(self.folder / "journal" / f"{self._segment}.jsonl", "a", encoding="utf-8")
        self._segment_t0 = time.monotonic()

    def append(self, table: str, row: dict[str, Any]) -> None:
        """Queue one row for the next flush (``table``: ``events`` or ``inputs``)."""
        self.pending.append(json.dumps({"_t": table, **row}, allow_nan=True, separators=(",", ":")))

    def append_inputs(self, room: str, case_start: float, seconds: np.ndarray, rows: np.ndarray) -> None:
        """Queue recorded seconds of a bed (rows float32 [n, 7])."""
        for s, r in zip(seconds.tolist(), rows.tolist()):
            self.pending.append(json.dumps({"_t": INPUTS, "room": room, "case_start": case_start, "t": s,
                                            "time": case_start + s, **dict(zip(SIGNALS, r))},
                                           allow_nan=True, separators=(",", ":")))

    def flush(self, force: bool = False) -> bool:
        """Write queued rows to the journal and fsync (every ``flush_s`` unless ``force``); returns whether due."""
        now = time.monotonic()
        if not force and now - self._last_flush < self.flush_s:
            return False
        self._last_flush = now
        self.write_lines(self.take())
        return True

    def take(self) -> list[str]:
        """The queued rows, taken (to write with :meth:`write_lines`, e.g. in a thread)."""
        lines, self.pending = self.pending, []
        return lines

    def write_lines(self, lines: list[str]) -> None:
        """Append rows to the journal and fsync it (thread-safe: one writer at a time)."""
        with self._lock:
            if lines and self._journal is not None:
                self._journal.write("\n".join(lines) + "\n")
                self._journal.flush()
                os.fsync(self._journal.fileno())

    def rotation_due(self) -> bool:
        """Whether the open segment is older than ``segment_s``."""
        return time.monotonic() - self._segment_t0 >= self.segment_s

    def rotate(self) -> str | None:
        """Close the open segment and start another.

        Returns:
            The closed journal's path, to write with :meth:`write_segment` (in a thread if need be).
        """
        self.flush(force=True)
        if self._journal is None:
            return None
        with self._lock:
            path = self._journal.name
            self._journal.close()
            self._new_segment()
        return path

    def write_segment(self, journal: str | os.PathLike) -> int:
        """Write a closed journal as Parquet (one file per table, room and day), then delete it; returns rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        journal = Path(journal)
        rows = list(_read_journal(journal))
        groups: dict[tuple[str, str, str], list[dict]] = {}
        for r in rows:
            table = r.pop("_t", EVENTS)
            groups.setdefault((table, r.get("room") or "", day_of(r.get("time", math.nan))), []).append(r)
        schemas = _schemas()
        for (table, room, day), part in groups.items():
            folder = self.folder / table / room_folder(room) / f"day={day}"
            folder.mkdir(parents=True, exist_ok=True)
            schema = schemas[table]
            cols = {f.name: [r.get(f.name) for r in part] for f in schema}
            tbl = pa.table({k: pa.array(_clean(v, schema.field(k).type), type=schema.field(k).type)
                            for k, v in cols.items()}, schema=schema)
            final = folder / f"{journal.stem}.parquet"
            tmp = folder / f".{journal.stem}.parquet.tmp"
            pq.write_table(tbl, tmp)
            os.replace(tmp, final)  # idempotent: a crash and a second write give the same file
        journal.unlink(missing_ok=True)
        return len(rows)

    def recover(self) -> int:
        """Write every leftover journal (a crash, or a stop without rotation) as Parquet; returns rows written."""
        n = 0
        for j in sorted((self.folder / "journal").glob("*.jsonl")):
            if self._journal is not None and Path(self._journal.name) == j:
                continue
            n += self.write_segment(j)
        return n

    @property
    def is_open(self) -> bool:
        """Whether a segment is open (between :meth:`open` and :meth:`close`)."""
        return self._journal is not None

    def abandon(self) -> None:
        """Close the journal file as a killed process leaves it: rows not flushed are lost (tests of a crash)."""
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        self.pending = []

    def close(self) -> None:
        """Flush, write the open segment as Parquet and close (a clean stop)."""
        if self._journal is None:
            return
        self.flush(force=True)
        with self._lock:
            path = self._journal.name
            self._journal.close()
            self._journal = None
        self.write_segment(path)


def _clean(values: list, typ) -> list:
    import pyarrow as pa

    if pa.types.is_floating(typ):
        return [math.nan if v is None else float(v) for v in values]
    if pa.types.is_integer(typ):
        return [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else int(v) for v in values]
    if pa.types.is_boolean(typ):
        return [None if v is None else bool(v) for v in values]
    return [None if v is None else str(v) for v in values]


def _read_journal(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash


def read_log(folder: str | os.PathLike, table: str = EVENTS, rooms: Iterable[str] | None = None,
             days: Iterable[str] | None = None):
    """The rows of a log as a DataFrame: its Parquet files plus any journal not yet written as Parquet.

    Args:
        folder: The log folder.
        table: ``events`` or ``inputs``.
        rooms: Only these rooms (default all).
        days: Only these UTC days' Parquet files, ``YYYY-MM-DD`` (default all; journals are always read).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    wanted = None if rooms is None else {room_folder(r) for r in rooms}
    frames = []
    base = folder / table
    if base.is_dir():
        for rdir in sorted(base.iterdir()):
            if wanted is not None and rdir.name not in wanted:
                continue
            for f in sorted(rdir.glob("day=*/*.parquet")):
                if days is not None and f.parent.name[4:] not in set(days):
                    continue
                frames.append(pq.read_table(f).to_pandas())
    rows = [r for j in sorted((folder / "journal").glob("*.jsonl")) for r in _read_journal(j)
            if r.get("_t", EVENTS) == table and (rooms is None or r.get("room") in set(rooms))]
    if rows:
        schema = _schemas()[table]
        for r in rows:
            r.pop("_t", None)
        tbl = pa.table({f.name: pa.array(_clean([r.get(f.name) for r in rows], f.type), type=f.type)
                        for f in schema}, schema=schema)
        frames.append(tbl.to_pandas())
    if not frames:
        return pd.DataFrame({f.name: pd.Series(dtype=object) for f in _schemas()[table]})
    return pd.concat(frames, ignore_index=True)
