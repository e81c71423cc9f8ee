"""A tiny local HTTP server standing in for the VitalDB API in tests.

Usage::

    with serve({"/cases": table_bytes, "/1.0.1/7.vital": vital_bytes}) as srv:
        VitalDBSource(api_url=srv.url, ...)
        assert srv.hits["/1.0.1/7.vital"] == 1

It listens on 127.0.0.1 (port picked by the OS), serves a dict path -> bytes or the files of a folder,
answers 404 for anything else, counts requests per path, can fail the first N requests of a path with a 503,
and is shut down when the ``with`` block ends.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import vitaldb

from hypo.data.signals import BIS, DBP, ECG, MAC, MBP, N_SIGNALS, PLETH, SBP
from hypo.data.sources.base import Case


class VitalServer:
    """Files served, request counts and the base URL of a running server."""

    def __init__(self, files: Mapping[str, bytes] | str | Path, fail: Mapping[str, int] | None = None) -> None:
        self.files = files
        self.fail = dict(fail or {})
        self.hits: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.url = ""

    def lookup(self, path: str) -> bytes | None:
        if isinstance(self.files, Mapping):
            return self.files.get(path)
        root = Path(self.files).resolve()
        target = (root / path.lstrip("/")).resolve()
        if root in target.parents and target.is_file():
            return target.read_bytes()
        return None


def _handler(server: VitalServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            with server.lock:
                server.hits[path] += 1
                failing = server.fail.get(path, 0) > 0
                if failing:
                    server.fail[path] -= 1
            body = None if failing else server.lookup(path)
            code = 503 if failing else (200 if body is not None else 404)
            body = body if body is not None else b"no such file\n"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # keep test output clean
            pass

    return Handler


@contextlib.contextmanager
def serve(files: Mapping[str, bytes] | str | Path, fail: Mapping[str, int] | None = None) -> Iterator[VitalServer]:
    """Serve ``files`` on 127.0.0.1 for the duration of the ``with`` block.

    Args:
        files: URL path (``"/cases"``) -> bytes, or a folder whose files are served under their relative path.
        fail: URL path -> how many first requests answer HTTP 503 (to test retries).
    """
    state = VitalServer(files, fail)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "vitaldb-samples"
REAL_EXPORTS = {"2272": "case2272_1s_export.csv", "4481": "case4481_1s_export.csv", "4255": "case4255_1s_export.csv"}
EXPORT_WAVES = ("SNUADC/ECG_II", "SNUADC/ART")
EXPORT_NUMERICS = ("BIS/BIS", "BIS/SQI", "Solar8000/BT")


def export_to_vital(csv_path: Path, out: Path, crop_s: int = 5400, dtstart: float = 4102444800.0):
    """Build a genuine ``.vital`` file from a real VitalDB 1-second export (first column = seconds).

    Keeps :data:`EXPORT_WAVES` as 1 Hz wave tracks (the export has one point per second of them) and
    :data:`EXPORT_NUMERICS` as numeric tracks (one record per non-empty second), cropped to ``crop_s`` seconds.

    Returns:
        The cropped export as a DataFrame indexed by second, with the kept columns as float32.
    """
    df = pd.read_csv(csv_path, index_col=0, nrows=crop_s)
    df = df[list(EXPORT_WAVES + EXPORT_NUMERICS)].astype(np.float32)
    vf = vitaldb.VitalFile()
    vf.dtstart, vf.dtend, vf.dgmt = dtstart, dtstart + len(df), 0
    for name in EXPORT_WAVES:
        vf.add_track(name, [{"dt": dtstart, "val": df[name].to_numpy(np.float32)}], srate=1)
    for name in EXPORT_NUMERICS:
        col = df[name]
        recs = [{"dt": dtstart + float(t), "val": float(v)} for t, v in col[col.notna()].items()]
        vf.add_track(name, recs)
    assert vf.to_vital(str(out))
    return df


def make_case(caseid="7", seconds=1800, seed=0, subjectid=None):
    """A small case: waveforms with a gap, cuff readings every ~3 min, MAC and BIS with holes."""
    rng = np.random.default_rng(seed)
    t = np.arange(seconds)
    sig = np.full((seconds, N_SIGNALS), np.nan, dtype=np.float32)
    sig[:, ECG] = np.sin(t * 1.3) + rng.normal(0, 0.05, seconds)
    sig[:, PLETH] = 50 + 20 * np.sin(t * 1.1)
    sig[100:130, [ECG, PLETH]] = np.nan
    sig[::5, MAC] = 0.8 + rng.normal(0, 0.05, len(t[::5]))
    sig[::2, BIS] = 45 + rng.normal(0, 3, len(t[::2]))
    times = np.arange(37, seconds, 180)
    sig[times, MBP] = rng.uniform(55, 110, len(times))
    sig[times, SBP] = sig[times, MBP] + 40
    sig[times, DBP] = sig[times, MBP] - 15
    return Case(caseid, subjectid or caseid, sig)
