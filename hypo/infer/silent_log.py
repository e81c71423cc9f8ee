"""The silent-trial log's format and its reader: what ``hypo serve`` writes and ``hypo evaluate --shadow`` reads.

    LOG/events/room=OR%201/day=2026-12-02/<segment>.parquet     predictions, alarm on/off, rejections, notes
    LOG/inputs/room=OR%201/day=2026-12-02/<segment>.parquet     each bed's recorded seconds (the model's 1-s grid)
    LOG/journal/<segment>.jsonl                                  the open segment (rows not yet in Parquet)

The writer is :class:`hypo.serve.trial_log.TrialLog`; the format (the tables' schemas, the partition folders) and
:func:`read_log` live here, in the deployed layer, so that the server (its restart) and the evaluation (which scores
a silent trial's logged predictions and alarms) read one format with one function: ``hypo.evaluate`` and
``hypo.serve`` are siblings and import neither the other.

``events`` rows: ``room``, ``time`` (unix), ``kind`` (:data:`EVENT_KINDS` and ``dropped``), ``case_start``,
``t_end``, ``status``, ``detail``, the three probabilities, ``threshold``, the inputs' availability per group, the
last cuff MAP and its age, the delay, ``alarm`` and ``alarm_run``, ``logged_at``, ``recorder``, ``transport``,
``n_bytes``, ``count``. ``inputs`` rows: ``room``, ``case_start``, ``t``, ``time`` and the seven signals.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from hypo.data.signals import GROUP_NAMES, SIGNALS

EVENTS, INPUTS = "events", "inputs"
EVENT_KINDS = ("prediction", "alarm_on", "alarm_off", "rejected", "note")
_F32 = ["p_normal", "p_hypotension", "p_hypertension", "threshold", *(f"avail_{g}" for g in GROUP_NAMES),
        "last_map", "last_map_age_s", "delay_s"]


def schemas():
    """The Arrow schemas of the two tables, ``{EVENTS: ..., INPUTS: ...}``."""
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


def clean_column(values: list, typ) -> list:
    """A column's JSON values as Arrow takes them for its type (NaN floats, None for missing others)."""
    import pyarrow as pa

    if pa.types.is_floating(typ):
        return [math.nan if v is None else float(v) for v in values]
    if pa.types.is_integer(typ):
        return [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else int(v) for v in values]
    if pa.types.is_boolean(typ):
        return [None if v is None else bool(v) for v in values]
    return [None if v is None else str(v) for v in values]


def read_journal(path: Path) -> Iterable[dict]:
    """The rows of a journal file (a line cut by a crash is skipped)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


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
    rows = [r for j in sorted((folder / "journal").glob("*.jsonl")) for r in read_journal(j)
            if r.get("_t", EVENTS) == table and (rooms is None or r.get("room") in set(rooms))]
    if rows:
        schema = schemas()[table]
        for r in rows:
            r.pop("_t", None)
        tbl = pa.table({f.name: pa.array(clean_column([r.get(f.name) for r in rows], f.type), type=f.type)
                        for f in schema}, schema=schema)
        frames.append(tbl.to_pandas())
    if not frames:
        return pd.DataFrame({f.name: pd.Series(dtype=object) for f in schemas()[table]})
    return pd.concat(frames, ignore_index=True)
