"""Vital Recorder's live payload: JSON in VitalDB's Web Monitoring format, from HTTP or Socket.IO, parsed once.

A payload is one JSON object (typically one second of data)::

    {"vrcode": "VR123ABCD", "ver": "1.15.5",
     "rooms": [{"roomname": "OR1", "dtstart": 1733140800.0, "dtend": 1733140801.0, "dtcase": 1733137200.0,
                "seqid": 42, "devs": [...],
                "trks": [{"name": "SNUADC/ECG_II", "type": "wav", "srate": 500, "unit": "mV",
                          "recs": [{"dt": 1733140800.0, "val": [0.11, 0.12, ...]}]},
                         {"name": "Solar8000/NIBP_MBP", "type": "num", "unit": "mmHg",
                          "recs": [{"dt": 1733140800.4, "val": 72}]}]}]}

It arrives two ways, as VitalDB's servers take it:

- ``POST /api/send`` with the URL-encoded form field ``data`` holding the JSON (:func:`decode_form`);
- the Socket.IO event ``send_data`` whose argument is the JSON **zlib-deflated** (binary; :func:`decode_deflated`).
  Like vitaldb/vitalserver's ``minimum_vitalserver.js`` we inflate it, strip control characters and tolerate the
  ``nan`` tokens the recorder writes for missing numbers (here they become NaN, the value vitaldb's own files hold;
  the reference server meant to turn them into ``""``).

Everything wrong with a payload as a whole is a :class:`PayloadRejected` with a short ``reason`` (counted and
logged) and the HTTP status it is answered with. Records are parsed leniently: a record that is not ``{dt, val}``
with a finite time, or a number track's value that is a string, is dropped and counted in ``Payload.dropped``;
the rest of the payload is used.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import urllib.parse
import zlib
from collections import Counter
from typing import Any

import numpy as np

MAX_PAYLOAD_BYTES = 8 << 20  # a second of a full anaesthesia set-up deflates to tens of kB; 8 MB is generous
MAX_INFLATED_BYTES = 32 << 20

# vitaldb's track type codes (in .vital files) and the live format's names.
TRACK_TYPES = {"wav": "wav", "num": "num", "str": "str", 1: "wav", 2: "num", 5: "str"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A JSON string (left alone) or a bare nan / inf token (made JSON's NaN / Infinity, which Python's json reads).
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|(-?)\b(nan|inf(?:inity)?)\b', re.IGNORECASE)
_NAN_OUTSIDE_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\bNaN\b')


class PayloadRejected(Exception):
    """A payload that cannot be used as a whole.

    Attributes:
        reason: Short, fixed reason (``malformed json``, ``bad zlib stream``, ``payload too large``, ...): counted
            and logged.
        detail: One line for the sender (never the payload's content).
        status: HTTP status it is answered with.
    """

    def __init__(self, reason: str, detail: str, status: int = 400) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.status = reason, detail, status


@dataclasses.dataclass(frozen=True)
class TrackData:
    """One track of one room in one payload.

    Attributes:
        name: The track's full name, ``DEVICE/TRACK`` when the payload names the device.
        kind: ``wav``, ``num`` or ``str``.
        srate: Samples per second (waves; 0 for others).
        unit: The unit the track declares ('' when none).
        recs: ``(dt, val)`` in payload order: a float for ``num``, a float64 array of samples for ``wav`` (NaN where
            the recorder wrote ``nan``), a string for ``str``.
    """

    name: str
    kind: str
    srate: float
    unit: str
    recs: tuple[tuple[float, Any], ...]


@dataclasses.dataclass(frozen=True)
class RoomData:
    """One room (bed) in one payload: the span it covers and its tracks.

    Attributes:
        room: ``roomname``.
        dtstart: Start of the span the message covers (unix seconds; NaN when not given).
        dtend: End of the span (NaN when not given): data before it is complete.
        dtcase: Start of the case (unix seconds; NaN when not given or 0).
        tracks: The room's tracks.
        dropped: The room's records dropped while parsing, by reason.
    """

    room: str
    dtstart: float
    dtend: float
    dtcase: float
    tracks: tuple[TrackData, ...]
    dropped: Counter = dataclasses.field(default_factory=Counter)


@dataclasses.dataclass(frozen=True)
class Payload:
    """A parsed payload.

    Attributes:
        vrcode: The recorder's code ('' when none).
        rooms: Its rooms.
        nbytes: Size as received (compressed for Socket.IO).
        dropped: Records dropped while parsing, by reason (every room's, and rooms without a name).
    """

    vrcode: str
    rooms: tuple[RoomData, ...]
    nbytes: int
    dropped: Counter


def _too_large(n: int, limit: int, what: str) -> PayloadRejected:
    return PayloadRejected("payload too large", f"{what} of {n:,} bytes exceeds the limit of {limit:,}", 413)


def decode_form(body: bytes, limit: int = MAX_PAYLOAD_BYTES) -> Payload:
    """Parse an ``application/x-www-form-urlencoded`` body whose field ``data`` holds the JSON (``POST /api/send``).

    Raises:
        PayloadRejected: ``payload too large`` (413), ``no data field`` or ``malformed json`` (400).
    """
    if len(body) > limit:
        raise _too_large(len(body), limit, "a request body")
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=False, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadRejected("malformed form", f"not a URL-encoded form ({type(exc).__name__})") from None
    data = fields.get("data")
    if not data:
        raise PayloadRejected("no data field", "POST the payload as the form field 'data' (VitalDB's Web Monitoring "
                                               "API)")
    return parse_json(data[-1], len(body))


def decode_deflated(blob: bytes | bytearray | str, limit: int = MAX_PAYLOAD_BYTES,
                    inflated_limit: int = MAX_INFLATED_BYTES) -> Payload:
    """Parse a Socket.IO ``send_data`` argument: the JSON, zlib-deflated.

    A text argument is taken as the JSON itself (a sender that does not compress). The inflated size is capped
    (``inflated_limit``), so a small deflate bomb cannot exhaust memory.

    Raises:
        PayloadRejected: ``payload too large`` (413), ``bad zlib stream`` or ``malformed json`` (400).
    """
    if isinstance(blob, str):
        if len(blob) > limit:
            raise _too_large(len(blob), limit, "a payload")
        return parse_json(blob, len(blob))
    if not isinstance(blob, (bytes, bytearray)):
        raise PayloadRejected("not a payload", f"send_data takes deflated JSON bytes, got {type(blob).__name__}")
    if len(blob) > limit:
        raise _too_large(len(blob), limit, "a payload")
    d = zlib.decompressobj()
    try:
        raw = d.decompress(bytes(blob), inflated_limit)
    except zlib.error as exc:
        raise PayloadRejected("bad zlib stream", f"cannot inflate the payload ({exc})") from None
    if d.unconsumed_tail:
        raise _too_large(inflated_limit + 1, inflated_limit, "an inflated payload")
    if not d.eof:
        raise PayloadRejected("bad zlib stream", "the deflated payload is truncated")
    return parse_json(raw.decode("utf-8", errors="replace"), len(blob))


def _nan_tokens(text: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group(2) is None:
            return m.group(0)
        return "NaN" if m.group(2).lower() == "nan" else f"{m.group(1)}Infinity"

    return _TOKENS.sub(sub, text)


def parse_json(text: str, nbytes: int | None = None) -> Payload:
    """Parse the payload's JSON text (control characters stripped, ``nan`` tokens read as NaN).

    Raises:
        PayloadRejected: ``malformed json`` or ``not a vital recorder payload`` (no ``rooms`` list).
    """
    try:
        obj = json.loads(text)  # most messages: plain JSON, read at once
    except (json.JSONDecodeError, RecursionError):
        try:  # the recorder's dialect: control characters and bare nan tokens
            obj = json.loads(_nan_tokens(_CONTROL.sub("", text)))
        except (json.JSONDecodeError, RecursionError) as exc:
            msg = getattr(exc, "msg", type(exc).__name__)
            raise PayloadRejected("malformed json", f"{msg} at character {getattr(exc, 'pos', '?')}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("rooms"), list):
        raise PayloadRejected("not a vital recorder payload", "expected an object with a 'rooms' list "
                                                              "(VitalDB's Web Monitoring format)")
    dropped: Counter = Counter()
    rooms = []
    for r in obj["rooms"]:
        room = _room(r, dropped)
        if room is not None:
            rooms.append(room)
    vrcode = obj.get("vrcode")
    return Payload(vrcode if isinstance(vrcode, str) else "", tuple(rooms), len(text) if nbytes is None else nbytes,
                   dropped)


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return math.nan
    try:
        return float(v)
    except ValueError:
        return math.nan


def _room(r: Any, dropped: Counter) -> RoomData | None:
    if not isinstance(r, dict) or not isinstance(r.get("roomname"), str) or not r["roomname"].strip():
        dropped["room without roomname"] += 1
        return None
    dtcase = _float(r.get("dtcase"))
    tracks, own = [], Counter()
    for t in r.get("trks") or ():
        trk = _track(t, own)
        if trk is not None:
            tracks.append(trk)
    dropped.update(own)
    return RoomData(r["roomname"].strip(), _float(r.get("dtstart")), _float(r.get("dtend")),
                    dtcase if dtcase > 0 else math.nan, tuple(tracks), own)


def track_full_name(t: dict) -> str:
    """``DEVICE/TRACK``: the track's name, prefixed with its device when the payload gives one separately."""
    name = str(t.get("name") or "").strip()
    dev = next((t[k] for k in ("dname", "devname", "device") if isinstance(t.get(k), str) and t[k].strip()), "")
    return f"{dev.strip()}/{name}" if dev and "/" not in name else name


def _track(t: Any, dropped: Counter) -> TrackData | None:
    if not isinstance(t, dict) or not str(t.get("name") or "").strip():
        dropped["track without name"] += 1
        return None
    kind = TRACK_TYPES.get(t.get("type"))
    if kind is None:
        dropped["track of unknown type"] += 1
        return None
    srate = _float(t.get("srate")) if kind == "wav" else 0.0
    if kind == "wav" and not (math.isfinite(srate) and 0 < srate <= 10_000):
        dropped["wave track without a sampling rate"] += len(t.get("recs") or ()) or 1
        return None
    recs = []
    for rec in t.get("recs") or ():
        if not isinstance(rec, dict):
            dropped["malformed record"] += 1
            continue
        dt = _float(rec.get("dt"))
        if not math.isfinite(dt):
            dropped["record without a time"] += 1
            continue
        val = rec.get("val")
        if kind == "num":
            if val is None or val == "":  # the reference server's stand-in for a nan token
                val = math.nan
            if isinstance(val, bool) or not isinstance(val, (int, float)):
                dropped["non-numeric value"] += 1
                continue
            recs.append((dt, float(val)))
        elif kind == "wav":
            if not isinstance(val, list):
                dropped["non-numeric value"] += 1
                continue
            samples = _samples(val)
            if samples is None:
                dropped["non-numeric value"] += 1
                continue
            recs.append((dt, samples))
        else:
            recs.append((dt, str(val)))
    return TrackData(track_full_name(t), kind, srate, str(t.get("unit") or ""), tuple(recs))


def _samples(val: list) -> np.ndarray | None:
    """A wave record's samples as float64 (``nan`` tokens, ``null`` and ``""`` as NaN); None if any is not a number."""
    try:
        out = np.asarray(val, np.float64)  # None -> NaN; a numeric string is taken as its number
        return out if out.ndim == 1 else None
    except (TypeError, ValueError):
        pass
    val = [math.nan if v is None or v == "" else v for v in val]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in val):
        return None
    return np.asarray(val, np.float64)


def encode_payload(vrcode: str, rooms: list[dict[str, Any]]) -> str:
    """The JSON text of a payload (NaN written as the recorder writes it: ``nan``), for senders and tests."""
    text = json.dumps({"vrcode": vrcode, "rooms": rooms}, separators=(",", ":"), allow_nan=True)
    return _NAN_OUTSIDE_STRINGS.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "nan", text)
