"""``hypo replay``: stream ``.vital`` recordings to a live server as Vital Recorder does, in real time or faster.

    hypo replay case.vital --to http://127.0.0.1:8000 --token-file serve-log/tokens.json
    hypo replay recordings/ --to http://127.0.0.1:8000 --speed 60 --transport socketio --token TOKEN

Each recording becomes one room (``--room NAME``, or the file's name; a folder streams every file at once, one
room each) and is sent as one message per second of recording: VitalDB's Web Monitoring JSON (``rooms`` ->
``trks`` -> ``recs``), every track of the file with its own name, type, unit and sampling rate, wave samples as
they lie in the file (a run of missing samples is left out, as a monitor sends nothing), a missing number as the
recorder's ``nan`` token. Over HTTP it is the form field ``data`` of ``POST /api/send``; over Socket.IO the event
``send_data`` with the JSON zlib-deflated (Engine.IO 4 by default; ``--eio 3`` speaks the older protocol of
VitalDB's reference server, over WebSocket). The recorder's token goes where a Vital Recorder puts its code: the
payload's ``vrcode``.

Times are shifted so the stream is live: at ``--speed 1`` each second is stamped with the wall clock when it is
sent; faster, the recording is stamped so that its last second lands at the moment it is sent, never in the
future (``--keep-times`` sends the file's own times). The shift is a whole number of seconds, so the 1-s grid of
the recording is kept. This is the project's test harness, demo and load generator (``bench/serve.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hypo.data.seconds import physical_samples
from hypo.errors import ConfigError, HypoError
from hypo.serve.protocol import encode_payload

TRACK_KIND = {1: "wav", 2: "num", 5: "str"}


@dataclasses.dataclass
class Recording:
    """A ``.vital`` file read for streaming: its span and its tracks' records (wave samples in physical units)."""

    path: str
    room: str
    dtstart: float
    dtend: float
    tracks: list[dict[str, Any]]

    @property
    def duration_s(self) -> int:
        """Seconds of recording (the file's 1-s grid)."""
        return int(math.ceil(self.dtend - self.dtstart))


def read_recording(path: str | os.PathLike, room: str | None = None) -> Recording:
    """Read every track of a ``.vital`` file (vitaldb) as the recorder would have sent it.

    Raises:
        HypoError: When the file cannot be read.
    """
    import vitaldb

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise HypoError(f"no recording at {path}")
    try:
        vf = vitaldb.VitalFile(path)
    except Exception as exc:  # noqa: BLE001 - vitaldb raises many kinds for a bad file
        raise HypoError(f"{path}: not a readable .vital file ({type(exc).__name__}: {exc})") from None
    if not vf.trks or not vf.dtend > vf.dtstart:
        raise HypoError(f"{path}: no tracks or no time span")
    tracks = []
    for full, trk in vf.trks.items():
        kind = TRACK_KIND.get(int(trk.type))
        if kind is None:
            continue
        recs = []
        for r in trk.recs:
            val = r["val"]
            if kind == "wav":  # physical units as the reader computes them (integer storage: gain and offset)
                val = physical_samples(val, int(trk.fmt or 1), float(trk.gain), float(trk.offset))
            recs.append((float(r["dt"]), val))
        recs.sort(key=lambda r: r[0])
        tracks.append({"name": full, "kind": kind, "srate": float(trk.srate or 0), "unit": str(trk.unit or ""),
                       "recs": recs})
    return Recording(path, room or Path(path).stem, float(vf.dtstart), float(vf.dtend), tracks)


def _wave_piece(dt: float, srate: float, val: np.ndarray, t0: float, t1: float) -> list[tuple[float, list]]:
    """The samples of a wave record whose times lie in ``[t0, t1)``, split at runs of missing samples."""
    n = len(val)
    k0 = max(0, math.ceil((t0 - dt) * srate - 1e-6))
    k1 = min(n, math.ceil((t1 - dt) * srate - 1e-6))
    if k0 >= k1:
        return []
    seg = val[k0:k1]
    ok = np.isfinite(seg)
    if ok.all():
        return [(dt + k0 / srate, seg)]
    out = []
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))
    for a, b in zip(edges[0::2], edges[1::2]):
        out.append((dt + (k0 + a) / srate, seg[a:b]))
    return out


def room_messages(rec: Recording, shift: float = 0.0, first_s: int = 0, stop_s: int | None = None
                  ) -> Iterator[dict[str, Any]]:
    """The recording as one room message per second (VitalDB's format), times shifted by ``shift`` seconds.

    Args:
        rec: The recording.
        shift: Added to every time (a whole number of seconds keeps the grid).
        first_s: First second to send.
        stop_s: Stop before this second (default: the end).

    Yields:
        Room dicts ``{roomname, dtstart, dtend, dtcase, seqid, trks}`` covering ``[t, t + 1)`` each.
    """
    stop_s = rec.duration_s if stop_s is None else min(stop_s, rec.duration_s)
    cursors = [0] * len(rec.tracks)
    for i, trk in enumerate(rec.tracks):  # skip to first_s
        t0 = rec.dtstart + first_s
        recs = trk["recs"]
        c = 0
        if trk["kind"] == "wav":
            while c < len(recs) and recs[c][0] + len(recs[c][1]) / trk["srate"] <= t0:
                c += 1
        else:
            while c < len(recs) and recs[c][0] < t0:
                c += 1
        cursors[i] = c
    for s in range(first_s, stop_s):
        t0, t1 = rec.dtstart + s, rec.dtstart + s + 1
        if s == rec.duration_s - 1:
            t1 = max(t1, rec.dtend + 1)  # numbers stamped at the very end still go out
        trks = []
        for i, trk in enumerate(rec.tracks):
            recs, c, out = trk["recs"], cursors[i], []
            if trk["kind"] == "wav":
                sr = trk["srate"]
                while c < len(recs) and recs[c][0] < t1:
                    dt, val = recs[c]
                    out += [{"dt": round(d + shift, 6), "val": v.tolist()} for d, v in _wave_piece(dt, sr, val, t0, t1)]
                    if dt + len(val) / sr <= t1:
                        c += 1
                    else:
                        break
            else:
                while c < len(recs) and recs[c][0] < t1:
                    dt, val = recs[c]
                    if trk["kind"] == "num":
                        val = float(val) if val is not None else math.nan
                    out.append({"dt": round(dt + shift, 6), "val": val})
                    c += 1
            cursors[i] = c
            if out:
                t = {"name": trk["name"], "type": trk["kind"], "unit": trk["unit"], "recs": out}
                if trk["kind"] == "wav":
                    t["srate"] = trk["srate"]
                trks.append(t)
        yield {"roomname": rec.room, "seqid": s, "dtstart": t0 + shift, "dtend": rec.dtstart + s + 1 + shift,
               "dtcase": rec.dtstart + shift, "ptcon": 1, "recording": 1, "trks": trks}


def live_shift(rec: Recording, speed: float, now: float | None = None, first_s: int = 0) -> float:
    """The whole-second shift that makes a recording live when streamed from ``now`` at ``speed``.

    At speed 1 second ``first_s`` is stamped ``now``; faster, the stamps are chosen so the last second is sent
    when it ends (stamps never run ahead of the wall clock).
    """
    now = time.time() if now is None else now
    remaining = rec.duration_s - first_s
    start = now - remaining + remaining / speed  # the stamp of second first_s
    return float(math.floor(start - (rec.dtstart + first_s)))


def encode_for(transport: str, vrcode: str, room: dict[str, Any]) -> bytes:
    """A message's bytes: the URL-encoded form body (HTTP) or the deflated JSON (Socket.IO)."""
    import urllib.parse

    text = encode_payload(vrcode, [room])
    if transport == "http":
        return urllib.parse.urlencode({"data": text}).encode()
    return zlib.compress(text.encode())


def recordings_in(path: str | os.PathLike, room: str | None = None) -> list[Recording]:
    """The recordings of ``path``: one file (room ``room`` or its name) or every ``.vital`` file of a folder.

    In a folder each file is a room named after it (prefixed ``ROOM-`` when ``room`` is given).

    Raises:
        HypoError: No such file or folder, or a folder without ``.vital`` files.
    """
    p = Path(path)
    if p.is_file():
        return [read_recording(p, room)]
    if not p.is_dir():
        raise HypoError(f"no recording or folder at {path}")
    files = sorted(f for f in p.rglob("*.vital") if f.is_file() and not f.name.startswith("."))
    if not files:
        raise HypoError(f"no .vital files in {path}")
    return [read_recording(f, f"{room}-{f.stem}" if room else f.stem) for f in files]


@dataclasses.dataclass
class SendResult:
    """What one streamed recording got back."""

    room: str
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = dataclasses.field(default_factory=dict)


class _HttpSender:
    def __init__(self, url: str, session) -> None:
        self.url, self.session = url.rstrip("/") + "/api/send", session

    async def send(self, body: bytes) -> tuple[bool, str]:
        async with self.session.post(self.url, data=body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
            if r.status == 200:
                return True, ""
            try:
                j = await r.json(content_type=None)
                return False, str(j.get("reason") or r.status)
            except Exception:  # noqa: BLE001 - any non-JSON error body
                return False, f"HTTP {r.status}"

    async def close(self) -> None:
        pass


class _SocketIOSender:
    def __init__(self, url: str, token: str) -> None:
        import socketio

        self.sio = socketio.AsyncClient(reconnection=True)
        self.url, self.token = url, token

    async def open(self) -> None:
        try:
            await self.sio.connect(self.url, transports=["websocket"], auth={"token": self.token}, wait_timeout=10)
        except Exception:
            http = getattr(self.sio.eio, "http", None)  # python-engineio leaves its HTTP session open on failure
            if http is not None and not http.closed:
                await http.close()
            raise

    async def send(self, body: bytes) -> tuple[bool, str]:
        ack = await self.sio.call("send_data", body, timeout=30)
        if isinstance(ack, dict) and ack.get("ok"):
            return True, ""
        return False, str((ack or {}).get("reason") if isinstance(ack, dict) else ack)

    async def close(self) -> None:
        await self.sio.disconnect()


async def stream_recording(rec: Recording, url: str, token: str, speed: float = 1.0, transport: str = "http",
                           eio: int = 4, keep_times: bool = False, first_s: int = 0, stop_s: int | None = None,
                           session=None, t_start: float | None = None, shift: float | None = None) -> SendResult:
    """Stream one recording to ``url`` (see the module docstring); returns what was sent and how it was answered.

    Args:
        rec: The recording.
        url: The server, e.g. ``http://127.0.0.1:8000``.
        token: The recorder's token (sent as the payload's ``vrcode``).
        speed: Seconds of recording per second of wall clock (``inf``: as fast as the server answers).
        transport: ``http`` or ``socketio``.
        eio: Engine.IO protocol of the Socket.IO transport (4, or 3 over WebSocket).
        keep_times: Send the file's own times instead of live ones.
        first_s: First second of the recording to send.
        stop_s: Stop before this second.
        session: An ``aiohttp.ClientSession`` to reuse (HTTP).
        t_start: Wall time of second ``first_s`` (default now), so that many streams share one clock.
        shift: Seconds added to the file's times (default: live, :func:`live_shift`; 0 with ``keep_times``).
    """
    t_start = time.time() if t_start is None else t_start
    if shift is None:
        shift = 0.0 if keep_times else live_shift(rec, speed if math.isfinite(speed) else 1e9, t_start, first_s)
    res = SendResult(rec.room)
    own = None
    if transport == "http":
        import aiohttp

        if session is None:
            own = session = aiohttp.ClientSession()
        sender = _HttpSender(url, session)
    elif transport == "socketio":
        if eio == 3:
            from hypo.serve.eio3 import EIO3Client

            sender = EIO3Client(url, token)
        else:
            sender = _SocketIOSender(url, token)
        await sender.open()
    else:
        raise ConfigError(f"--transport must be http or socketio, got {transport!r}")
    try:
        for i, room in enumerate(room_messages(rec, shift, first_s, stop_s)):
            if math.isfinite(speed):
                delay = t_start + (i + 1) / speed - time.time()  # a second is sent once it has ended
                if delay > 0:
                    await asyncio.sleep(delay)
            ok, why = await sender.send(encode_for(transport, token, room))
            res.sent += 1
            if ok:
                res.ok += 1
            else:
                res.errors[why] = res.errors.get(why, 0) + 1
    finally:
        await sender.close()
        if own is not None:
            await own.close()
    return res


async def stream_all(recs: list[Recording], url: str, token: str, **kwargs) -> list[SendResult]:
    """Stream several recordings at once on one clock (one HTTP session), each as its own room."""
    import aiohttp

    t_start = time.time()
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        return list(await asyncio.gather(*(stream_recording(r, url, token, session=session, t_start=t_start,
                                                            **kwargs) for r in recs)))


def replay(path: str, url: str, token: str, speed: float = 1.0, room: str | None = None, transport: str = "http",
           eio: int = 4, keep_times: bool = False, log=print) -> list[SendResult]:
    """``hypo replay``: stream a recording or a folder of them (see the module docstring).

    Raises:
        ConfigError: A bad speed, transport or Engine.IO version.
        HypoError: No recording, or the server refused every message.
    """
    if not speed > 0:
        raise ConfigError(f"--speed must be > 0, got {speed}")
    if eio not in (3, 4):
        raise ConfigError(f"--eio must be 3 or 4, got {eio}")
    recs = recordings_in(path, room)
    total = sum(r.duration_s for r in recs)
    log(f"streaming {len(recs)} recording(s), {total / 3600:.1f} h in all, to {url} over {transport} at "
        f"{speed:g}x (about {max(r.duration_s for r in recs) / speed / 60:.1f} min)")
    import socketio

    try:
        results = asyncio.run(stream_all(recs, url, token, speed=speed, transport=transport, eio=eio,
                                         keep_times=keep_times))
    except (OSError, socketio.exceptions.ConnectionError) as exc:
        raise HypoError(f"cannot reach {url} ({transport}): {exc}") from None
    for r in results:
        errs = ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items()))
        log(f"  {r.room}: {r.ok}/{r.sent} messages accepted" + (f"; refused: {errs}" if errs else ""))
    if all(r.ok == 0 for r in results):
        raise HypoError("the server accepted no message (see the reasons above)")
    return results
