"""Engine.IO 3 / Socket.IO 4 over WebSocket: the protocol of VitalDB's reference VitalServer, for older recorders.

VitalDB's VitalServer ran Socket.IO 2.3 (Engine.IO protocol 3, Socket.IO protocol 4); a recorder built against it,
like any client of the C++ Socket.IO library 2.x, speaks that generation, and only over WebSocket. python-socketio
5, which serves everything else here, speaks only Engine.IO 4 / Socket.IO 5 (JavaScript Socket.IO 3 and later) and
answers an ``EIO=3`` request with an error. This module serves that older generation on the same path
(``/socket.io/?EIO=3&transport=websocket``) for the one thing a recorder does: the root namespace, the events
``send_data`` (binary: deflated JSON) and ``join_vr`` (its code), acknowledgements, and pings. Long-polling with
``EIO=3`` is refused with a message saying to use WebSocket (the C++ client never polls; a JavaScript 2.x client
can be told ``transports: ['websocket']``).

The wire format (Engine.IO 3): a text frame is ``<packet type><data>`` (``0`` open, ``1`` close, ``2`` ping, ``3``
pong, ``4`` message); a binary frame is the byte ``0x04`` followed by the data. A Socket.IO 4 packet inside a
message is ``<type>[<attachments>-][/<nsp>,][<ack id>]<json>`` (``0`` connect, ``1`` disconnect, ``2`` event,
``3`` ack, ``4`` error, ``5`` binary event, ``6`` binary ack); a binary event's placeholders
``{"_placeholder": true, "num": i}`` stand for the binary frames that follow it. Unlike Engine.IO 4, the client
sends the pings and the server answers them.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import urllib.parse
from typing import Any

PING_INTERVAL_MS, PING_TIMEOUT_MS = 25_000, 60_000
_SIO = re.compile(r"^(\d)(?:(\d+)-)?(?:(/[^,]*),)?(\d+)?(.*)$", re.S)


def parse_sio(text: str) -> dict[str, Any]:
    """Parse a Socket.IO 4 packet (the part after Engine.IO's ``4``).

    Returns:
        ``{"type", "attachments", "nsp", "id", "data"}``.

    Raises:
        ValueError: When it is not a packet.
    """
    m = _SIO.match(text)
    if not m:
        raise ValueError("not a Socket.IO packet")
    typ, att, nsp, pid, rest = m.groups()
    data = json.loads(rest) if rest else None
    return {"type": int(typ), "attachments": int(att or 0), "nsp": nsp or "/", "id": int(pid) if pid else None,
            "data": data}


def _fill(obj: Any, blobs: list[bytes]) -> Any:
    if isinstance(obj, dict):
        if obj.get("_placeholder") is True and isinstance(obj.get("num"), int) and 0 <= obj["num"] < len(blobs):
            return blobs[obj["num"]]
        return {k: _fill(v, blobs) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, blobs) for v in obj]
    return obj


class EIO3Session:
    """One recorder's Engine.IO 3 WebSocket session on the server.

    Args:
        handler: ``await handler(event, args, state) -> ack value`` for ``send_data`` / ``join_vr``; ``state`` is
            this session's dict (``credential``, ``sid``).
        credential: The ``?token=`` of the connection, if any.
    """

    def __init__(self, handler, credential: str | None = None) -> None:
        self.handler = handler
        self.state = {"sid": secrets.token_urlsafe(12), "credential": credential, "transport": "socketio-eio3"}

    async def run(self, receive, send) -> None:
        """Serve the session over an ASGI WebSocket (after ``websocket.connect``)."""
        await send({"type": "websocket.accept"})
        opening = {"sid": self.state["sid"], "upgrades": [], "pingInterval": PING_INTERVAL_MS,
                   "pingTimeout": PING_TIMEOUT_MS}
        await send({"type": "websocket.send", "text": "0" + json.dumps(opening)})
        await send({"type": "websocket.send", "text": "40"})  # Socket.IO 4: the root namespace joins at once
        pending: dict[str, Any] | None = None
        blobs: list[bytes] = []
        timeout = (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000
        while True:
            try:
                msg = await asyncio.wait_for(receive(), timeout)
            except asyncio.TimeoutError:
                await send({"type": "websocket.close", "code": 1000})
                return
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("bytes") is not None:
                data = msg["bytes"]
                if pending is None or not data or data[0] != 4:
                    continue  # a binary frame nobody announced
                blobs.append(data[1:])
                if len(blobs) == pending["attachments"]:
                    pending["data"] = _fill(pending["data"], blobs)
                    await self._event(pending, send)
                    pending, blobs = None, []
                continue
            text = msg.get("text") or ""
            if not text:
                continue
            kind, body = text[0], text[1:]
            if kind == "2":
                await send({"type": "websocket.send", "text": "3" + body})
            elif kind == "1":
                await send({"type": "websocket.close", "code": 1000})
                return
            elif kind == "4":
                try:
                    pkt = parse_sio(body)
                except ValueError:
                    continue
                if pkt["nsp"] != "/":
                    await send({"type": "websocket.send", "text": f'44{pkt["nsp"]},"Invalid namespace"'})
                elif pkt["type"] == 1:
                    await send({"type": "websocket.close", "code": 1000})
                    return
                elif pkt["type"] == 5 and pkt["attachments"]:
                    pending, blobs = pkt, []
                elif pkt["type"] in (2, 5):
                    await self._event(pkt, send)

    async def _event(self, pkt: dict[str, Any], send) -> None:
        data = pkt["data"]
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return
        ack = await self.handler(data[0], data[1:], self.state)
        if isinstance(ack, dict) and ack.get("ok") is False:
            await send({"type": "websocket.send", "text": "42" + json.dumps(["hypo_error", ack])})
        if pkt["id"] is not None:
            await send({"type": "websocket.send", "text": f"43{pkt['id']}" + json.dumps([ack])})


async def refuse_polling(send) -> None:
    """Answer an ``EIO=3`` long-polling request: this server speaks Engine.IO 3 over WebSocket only."""
    body = json.dumps({"code": 3, "message": "Engine.IO 3 is served over WebSocket only: connect with "
                                             "transport=websocket (or use Engine.IO 4, Socket.IO 3+ clients)"})
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})


class EIO3Client:
    """A minimal Engine.IO 3 WebSocket client that emits ``send_data`` as an older recorder does (tests, replay).

    Args:
        url: The server (``http://host:port``).
        token: Sent as ``?token=`` (connection credential) and usable as the payload's ``vrcode``.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        u = urllib.parse.urlsplit(url)
        scheme = "wss" if u.scheme == "https" else "ws"
        q = {"EIO": "3", "transport": "websocket", **({"token": token} if token else {})}
        self.ws_url = f"{scheme}://{u.netloc}/socket.io/?{urllib.parse.urlencode(q)}"
        self.ws = None
        self.next_id = 0
        self.last_ping = 0.0
        self.events: list[tuple[str, Any]] = []

    async def open(self) -> None:
        """Connect and wait for the open packet and the namespace's connect."""
        import websockets

        self.ws = await websockets.connect(self.ws_url, max_size=None)
        first = await self.ws.recv()
        if not isinstance(first, str) or not first.startswith("0"):
            raise ConnectionError(f"not an Engine.IO 3 open packet: {first!r:.80}")
        second = await self.ws.recv()
        if second != "40":
            raise ConnectionError(f"the root namespace was refused: {second!r:.200}")
        self.last_ping = time.monotonic()

    async def emit(self, event: str, blob: bytes | None = None, *args: Any, ack: bool = True) -> Any:
        """Emit an event (a binary first argument goes as an attachment); returns the ack's value when asked."""
        pid = ""
        if ack:
            pid, self.next_id = str(self.next_id), self.next_id + 1
        if time.monotonic() - self.last_ping > PING_INTERVAL_MS / 2000:
            await self.ws.send("2")
            self.last_ping = time.monotonic()
        if blob is not None:
            head = json.dumps([event, {"_placeholder": True, "num": 0}, *args])
            await self.ws.send(f"451-{pid}{head}")
            await self.ws.send(b"\x04" + bytes(blob))
        else:
            await self.ws.send(f"42{pid}{json.dumps([event, *args])}")
        if not ack:
            return None
        while True:
            frame = await self.ws.recv()
            if not isinstance(frame, str):
                continue
            if frame.startswith(f"43{pid}["):
                return json.loads(frame[2 + len(pid):])[0]
            if frame.startswith("42"):
                ev = json.loads(frame[2:])
                self.events.append((ev[0], ev[1:]))

    async def send(self, body: bytes) -> tuple[bool, str]:
        """``send_data`` as :mod:`hypo.serve.replay` sends it; returns ``(ok, reason)``."""
        ack = await self.emit("send_data", body)
        if isinstance(ack, dict) and ack.get("ok"):
            return True, ""
        return False, str(ack.get("reason") if isinstance(ack, dict) else ack)

    async def close(self) -> None:
        """Say goodbye and close."""
        if self.ws is not None:
            try:
                await self.ws.send("41")
                await self.ws.close()
            finally:
                self.ws = None
