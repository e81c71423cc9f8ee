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

The format and the reader (:func:`read_log`) are :mod:`hypo.infer.silent_log`, shared with ``hypo evaluate
--shadow``. No patient identifier is written: rows hold the room name the recorder sends, times, values and reasons,
never a payload's content.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from hypo.data.signals import SIGNALS
from hypo.infer.silent_log import (
    EVENT_KINDS,
    EVENTS,
    INPUTS,
    clean_column,
    day_of,
    read_journal,
    read_log,
    room_folder,
    schemas,
)

__all__ = ["EVENTS", "EVENT_KINDS", "INPUTS", "TrialLog", "day_of", "read_log", "room_folder"]


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
        rows = list(read_journal(journal))
        groups: dict[tuple[str, str, str], list[dict]] = {}
        for r in rows:
            table = r.pop("_t", EVENTS)
            groups.setdefault((table, r.get("room") or "", day_of(r.get("time", math.nan))), []).append(r)
        tables = schemas()
        for (table, room, day), part in groups.items():
            folder = self.folder / table / room_folder(room) / f"day={day}"
            folder.mkdir(parents=True, exist_ok=True)
            schema = tables[table]
            cols = {f.name: [r.get(f.name) for r in part] for f in schema}
            tbl = pa.table({k: pa.array(clean_column(v, schema.field(k).type), type=schema.field(k).type)
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
