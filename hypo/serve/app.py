"""The HTTP side of ``hypo serve``: one ASGI application around a :class:`~hypo.serve.service.LiveService`.

Routes (FastAPI):

- ``POST /api/send``: VitalDB's Web Monitoring API, the form field ``data`` holding the JSON; answered ``200``
  ``{"ok": true, "used", "dropped": {reason: n}}``, or ``400`` (malformed form / JSON, not a recorder's payload),
  ``401`` (no registered recorder token), ``409`` (no record usable: every one late, far in the future...),
  ``413`` (too large), each ``{"ok": false, "reason", "detail"}``;
- ``/socket.io/``: Socket.IO, event ``send_data`` (deflated JSON) and ``join_vr`` on the root namespace. Engine.IO
  4 / Socket.IO 5 (JavaScript Socket.IO 3+, python-socketio 5) over WebSocket or long-polling, by python-socketio;
  Engine.IO 3 / Socket.IO 4 (VitalDB's reference server's generation) over WebSocket, by :mod:`hypo.serve.eio3`.
  A refused payload is answered in the acknowledgement (``{"ok": false, "reason", ...}``) and by the event
  ``hypo_error``; an unknown token at connection is refused (``connect_error``);
- ``GET /`` (all beds), ``GET /bed/{room}`` (one bed), ``GET /events`` (server-sent events), ``GET /api/beds``,
  ``GET /api/beds/{room}``, ``GET /api/health``: the research screen, which needs a viewer token unless the
  server listens on the loopback interface only.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from hypo.serve.eio3 import EIO3Session, refuse_polling
from hypo.serve.protocol import PayloadRejected
from hypo.serve.service import RESEARCH_NOTICE, LiveService

VIEWER_COOKIE = "hypo_viewer"
# Engine.IO's own limit, as uvicorn's (Ray Serve's proxy's) WebSocket frame limit: above the service's own limit, so
# the service can say why it refuses a payload between the two; beyond it the connection is closed (code 1009).
TRANSPORT_LIMIT = 16 << 20
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


def _static(name: str) -> str:
    return resources.files("hypo.serve").joinpath("static", name).read_text(encoding="utf-8")


def build_app(service: LiveService):
    """The ASGI application of a service (FastAPI routes, Socket.IO of both generations, the page)."""
    import socketio

    api = FastAPI(title="hypo serve", docs_url=None, redoc_url=None, openapi_url=None)
    pages = {name: _static(name) for name in ("index.html", "bed.html", "live.js", "style.css")}
    _ingest_route(api, service)
    _page_routes(api, service, pages)
    _events_route(api, service)
    sio, handle = _socketio_server(service)
    return _asgi_app(service, socketio.ASGIApp(sio, other_asgi_app=api), handle)


def _refusal(exc: PayloadRejected) -> JSONResponse:
    return JSONResponse({"ok": False, "reason": exc.reason, "detail": exc.detail}, status_code=exc.status)


def _ingest_route(api: FastAPI, service: LiveService) -> None:
    """``POST /api/send``: VitalDB's Web Monitoring API (the form field ``data``), its size checked as it streams."""

    @api.post("/api/send")
    async def send(request: Request):
        service.ensure_started()
        limit = service.cfg.max_payload_bytes
        try:
            declared = int(request.headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            exc = PayloadRejected("payload too large", f"a request body of {declared:,} bytes exceeds the limit "
                                                       f"of {limit:,}", 413)
            service.reject(exc, _now(), [""], None, "http", declared)
            return _refusal(exc)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                exc = PayloadRejected("payload too large", f"a request body of more than {limit:,} bytes", 413)
                service.reject(exc, _now(), [""], None, "http", size)
                return _refusal(exc)
            chunks.append(chunk)
        auth = request.headers.get("authorization") or ""
        credential = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        try:
            return service.ingest(b"".join(chunks), "http", credential)
        except PayloadRejected as exc:
            return _refusal(exc)


def _viewer_ok(service: LiveService, request: Request) -> tuple[bool, str | None]:
    """Whether the page may be shown (loopback, or a viewer token), and a token to set as a cookie."""
    if service.open_page:
        return True, None
    token = request.query_params.get("token")
    if token and service.tokens.viewer(token):
        return True, token
    return bool(service.tokens.viewer(request.cookies.get(VIEWER_COOKIE))), None


def _page_routes(api: FastAPI, service: LiveService, pages: dict[str, str]) -> None:
    """The research screen's pages, script and JSON, behind the viewer check."""

    def guarded(body, media: str = "text/html", status: int = 200, request: Request | None = None):
        ok, new = _viewer_ok(service, request)
        if not ok:
            msg = ("<!doctype html><title>hypo serve</title><p>" + RESEARCH_NOTICE + "</p><p>This screen needs a "
                   "viewer token: open it as <code>/?token=...</code> (see the server's tokens file).</p>")
            return HTMLResponse(msg, status_code=401, headers=SECURITY_HEADERS)
        resp = (JSONResponse(body, status_code=status, headers=SECURITY_HEADERS) if media == "application/json"
                else Response(body, media_type=media, status_code=status, headers=SECURITY_HEADERS))
        if new:
            resp.set_cookie(VIEWER_COOKIE, new, httponly=True, samesite="strict")
        return resp

    @api.get("/")
    async def index(request: Request):
        service.ensure_started()
        return guarded(pages["index.html"], request=request)

    @api.get("/bed/{room:path}")
    async def bed_page(room: str, request: Request):
        return guarded(pages["bed.html"], request=request)

    @api.get("/static/live.js")
    async def script(request: Request):
        return guarded(pages["live.js"], "text/javascript", request=request)

    @api.get("/static/style.css")
    async def style(request: Request):
        return guarded(pages["style.css"], "text/css", request=request)

    @api.get("/api/beds")
    async def beds(request: Request):
        return guarded(service.overview(), "application/json", request=request)

    @api.get("/api/beds/{room:path}")
    async def bed(room: str, request: Request):
        view = service.bed_view(room)
        if view is None:
            return guarded({"error": f"no bed {room!r}"}, "application/json", 404, request)
        return guarded(view, "application/json", request=request)

    @api.get("/api/health")
    async def health(request: Request):
        return guarded(service.health(), "application/json", request=request)


def _events_route(api: FastAPI, service: LiveService) -> None:
    """``GET /events``: server-sent events for live pages."""

    @api.get("/events")
    async def events(request: Request):
        service.ensure_started()
        if not _viewer_ok(service, request)[0]:
            return JSONResponse({"error": "viewer token required"}, status_code=401)
        q = service.subscribe()

        async def stream():
            try:
                yield _sse({"type": "overview", **service.overview()})
                while True:
                    try:
                        ev = await asyncio.wait_for(q.get(), 15)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield _sse(ev)
            finally:
                service.unsubscribe(q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _socketio_server(service: LiveService):
    """The Engine.IO 4 Socket.IO server and the event handler it shares with Engine.IO 3 sessions.

    Returns:
        ``(sio, handle)``: the python-socketio server and ``await handle(event, args, state)`` -> the ack.
    """
    import socketio

    sio = socketio.AsyncServer(async_mode="asgi", max_http_buffer_size=TRANSPORT_LIMIT, logger=False,
                               engineio_logger=False)

    @sio.event
    async def connect(sid, environ, auth=None):
        service.ensure_started()
        token = (auth or {}).get("token") if isinstance(auth, dict) else None
        if not token:
            token = (urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("token") or [None])[0]
        try:
            service.authorize(token)
        except PayloadRejected as exc:
            service.reject(exc, _now(), [""], None, "socketio", 0)
            raise socketio.exceptions.ConnectionRefusedError("unauthorized: unknown recorder token") from None
        await sio.save_session(sid, {"credential": token})

    async def handle(event: str, args: list, state: dict) -> dict:
        if event == "join_vr":
            code = args[0] if args and isinstance(args[0], str) else None
            if service.tokens.recorder(code):
                state["credential"] = code
                return {"ok": True}
            exc = PayloadRejected("unauthorized", "join_vr with an unregistered recorder code", 401)
            service.reject(exc, _now(), [""], None, state.get("transport", "socketio"), 0)
            return {"ok": False, "reason": exc.reason, "detail": exc.detail, "status": exc.status}
        if event != "send_data":
            return {"ok": False, "reason": "unknown event", "detail": f"this server takes send_data and join_vr, "
                                                                       f"not {event!r}", "status": 400}
        try:
            return service.ingest(args[0] if args else b"", "socketio", state.get("credential"))
        except PayloadRejected as exc:
            return {"ok": False, "reason": exc.reason, "detail": exc.detail, "status": exc.status}

    @sio.on("send_data")
    async def send_data(sid, data=b""):
        state = await sio.get_session(sid)
        ack = await handle("send_data", [data], state)
        if not ack.get("ok"):
            await sio.emit("hypo_error", ack, to=sid)
        return ack

    @sio.on("join_vr")
    async def join_vr(sid, code=None):
        state = await sio.get_session(sid)
        ack = await handle("join_vr", [code], state)
        await sio.save_session(sid, state)
        return ack

    return sio, handle


def _asgi_app(service: LiveService, inner, handle):
    """The outer ASGI app: Engine.IO 3 WebSockets to :mod:`hypo.serve.eio3`, everything else to ``inner``."""

    async def app(scope, receive, send):
        async def send_fixed(message):
            if message["type"] == "websocket.close" and "code" not in message:
                message = {**message, "code": 1000}  # Ray Serve's proxy needs the code ASGI makes optional
            await send(message)

        if scope["type"] in ("http", "websocket") and scope.get("path", "").rstrip("/") == "/socket.io":
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode())
            if (query.get("EIO") or [""])[0] == "3":
                if scope["type"] == "http":
                    return await refuse_polling(send)
                first = await receive()  # websocket.connect
                if first["type"] != "websocket.connect":
                    return
                token = (query.get("token") or [None])[0]
                try:
                    service.ensure_started()
                    service.authorize(token)
                except PayloadRejected as exc:
                    service.reject(exc, _now(), [""], None, "socketio-eio3", 0)
                    await send_fixed({"type": "websocket.accept"})
                    await send_fixed({"type": "websocket.send", "text": '44"unauthorized: unknown recorder token"'})
                    await send_fixed({"type": "websocket.close", "code": 4401})
                    return
                return await EIO3Session(handle, token).run(receive, send_fixed)
        return await inner(scope, receive, send_fixed)

    return app


def _sse(event: dict) -> str:
    return f"event: {event.get('type', 'message')}\ndata: {json.dumps(event, allow_nan=False)}\n\n"


def _now() -> float:
    import time

    return time.time()
