"""``hypo serve``: run a model live on monitor streams, in silent mode, as a Ray Serve application.

    hypo serve model.pt --log serve-log                        # http://127.0.0.1:8000, a local Ray
    hypo serve model.pt --log serve-log --host 0.0.0.0 --port 8000 --stride 10 --tokens tokens.json --scorers 4

Two deployments (:mod:`hypo.serve.deployments`): ``Ingest``, the FastAPI ingress and the single owner of every
bed (buffers, alarm states, Socket.IO sessions, the log), and ``Scorer``, whose replicas prepare windows and run
the batched forward pass across beds (``serve.batch``); ``--scorers N`` scales that part out over the Ray
cluster. ``--local`` runs the same application in this process under uvicorn, without Ray (development, tests).
The server prints its address and the tokens file, then runs until Ctrl-C (or SIGTERM), when it finishes the
windows in flight and writes the log's open segment as Parquet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import threading
import time

from hypo.errors import ConfigError, HypoError
from hypo.serve.auth import is_loopback, tokens_for
from hypo.serve.service import LiveService, LocalScorer, ServeConfig, bed_scorer, load_track_map_of

APP_NAME = "hypo-serve"


def local_service(cfg: ServeConfig) -> LiveService:
    """A service scoring in this process (``--local``, tests)."""
    scorer = bed_scorer(cfg)
    tokens, _, _ = tokens_for(cfg.log_dir, cfg.tokens)
    return LiveService(cfg, LocalScorer(scorer), scorer.describe(), tokens, load_track_map_of(cfg))


def check_port(host: str, port: int) -> None:
    """Refuse early, in one line, a port something else listens on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise HypoError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port") from None


class LocalServer:
    """The application under uvicorn in a background thread (``--local`` and the tests).

    Args:
        cfg: The options (``port`` 0 picks a free one).
        service: A ready service (default: :func:`local_service`).
    """

    def __init__(self, cfg: ServeConfig, service: LiveService | None = None) -> None:
        self.cfg = cfg
        self.service = service or local_service(cfg)
        self.port = cfg.port
        self._server = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.cfg.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalServer:
        """Open the log (restoring beds), start serving, and wait until the port answers."""
        import uvicorn

        from hypo.serve.app import build_app

        self.service.open()
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so (else small responses written in
        # two parts wait for the client's delayed ACK, 40 ms each).
        family = socket.AF_INET6 if ":" in self.cfg.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.cfg.host, self.cfg.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(build_app(self.service), log_level="warning", lifespan="off", ws="auto",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name="hypo-serve", daemon=True)
        self._thread.start()
        t0 = time.monotonic()
        while not self._server.started:
            if time.monotonic() - t0 > timeout or not self._thread.is_alive():
                raise HypoError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def call(self, coro_fn, timeout: float = 30.0):
        """Run ``coro_fn()`` on the server's event loop and return its result (tests)."""
        fut = asyncio.run_coroutine_threadsafe(coro_fn(), self._loop)
        return fut.result(timeout)

    def stop(self, clean: bool = True) -> None:
        """Stop serving; ``clean`` finishes queued windows and writes the log as Parquet (False: as a crash)."""
        if self._server is None:
            return
        if clean:
            self.call(self.service.close)
        self._server.should_exit = True
        self._thread.join(10)
        self._server = None
        if not clean:
            self.service.log.abandon()  # what a killed process leaves: the journal as last flushed


def run(cfg: ServeConfig, local: bool = False, address: str | None = None, log=print) -> None:
    """``hypo serve``: check everything that can be checked, start the application, serve until Ctrl-C.

    Raises:
        HypoError: A model, tokens file, track map, log folder or port that cannot be used.
    """
    from hypo.storage import writable_folder

    writable_folder(cfg.log_dir)
    scorer = bed_scorer(cfg)  # the model loads, its sidecar is complete, the threshold is known
    load_track_map_of(cfg)
    tokens, tokens_path, created = tokens_for(cfg.log_dir, cfg.tokens)
    check_port(cfg.host, cfg.port)
    d = scorer.describe()
    log(f"hypo serve: model {d['name']} k={d['k']} ({cfg.model}), a window of {d['window_s']} s every "
        f"{d['stride_s']} s" + ("  [model trained on simulated data]" if d["simulated"] else ""))
    for note in scorer.notes:  # the alarm policy: validated with the model, and anything given on the command line
        log(f"  {note}")
    log(f"  tokens: {tokens_path}" + (" (created: one recorder and one viewer token)" if created else "")
        + f"; {len(tokens.recorders)} recorder(s)")
    page = "open to this machine only" if is_loopback(cfg.host) else "viewer token required (?token=...)"
    log(f"  silent-trial log: {os.path.abspath(cfg.log_dir)}; research screen: http://{cfg.host}:{cfg.port}/ "
        f"({page})")
    log("  research software, not a medical device: predictions are logged and shown on the research screen only")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if local:
        server = LocalServer(cfg, LiveService(cfg, LocalScorer(scorer), d, tokens, load_track_map_of(cfg))).start()
        log(f"serving on {server.url} in this process (--local); Ctrl-C stops")
        _wait(stop)
        log("stopping: finishing the windows in flight and writing the log...")
        server.stop()
        log("stopped; the log is written")
        return
    _run_ray(cfg, address, stop, log)


def _wait(stop: threading.Event) -> None:
    """Until Ctrl-C or SIGTERM; then further Ctrl-C are ignored while the log is written (seconds)."""
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_ray(cfg: ServeConfig, address: str | None, stop: threading.Event, log) -> None:
    from ray import serve

    from hypo.runtime import init_ray
    from hypo.serve.deployments import application

    init_ray(address, include_dashboard=False)
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    handle = serve.run(application(cfg), name=APP_NAME, route_prefix="/")
    log(f"serving on http://{cfg.host}:{cfg.port} (Ray Serve: 1 ingest replica owning every bed, {cfg.scorers} "
        f"scorer replica(s)); Ctrl-C stops")
    _wait(stop)
    log("stopping: finishing the windows in flight and writing the log...")
    try:
        handle.close_log.remote().result(timeout_s=60)
    finally:
        serve.shutdown()
    log("stopped; the log is written")


def config_from_args(**kwargs) -> ServeConfig:
    """A :class:`ServeConfig` from command-line values (unknown keys are a programming error)."""
    fields = {f.name for f in dataclasses.fields(ServeConfig)}
    bad = set(kwargs) - fields
    if bad:
        raise ConfigError(f"unknown serve option(s): {', '.join(sorted(bad))}")
    return ServeConfig(**kwargs)
