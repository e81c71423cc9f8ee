"""Beds per CPU core that ``hypo serve`` holds with a p99 delay under 1 s (goal: at least 100 beds per core).

    python bench/serve.py                                    # 20 beds at 10x (200 bed-equivalents), Ray Serve
    python bench/serve.py --beds 40 --speed 10 --seconds 120 --transport http
    python bench/serve.py --quick                            # smoke test: 3 beds at 20x, in-process server

Simulated beds stream demo cases in Vital Recorder's format (``POST /api/send``, one message per second of
recording; over Socket.IO by default, as a recorder feeding a VitalServer, or ``--transport http``) with
monitor-rate waves: ECG at 500 Hz and pleth at 100 Hz, varying within each second, plus the
cuff, MAC and BIS as numbers; so a message is what a real anaesthesia set-up sends. ``--speed S`` streams each bed
S times faster than real time: the server does the work of ``beds x S`` real beds (bed-equivalents), each message
parsed and gridded, each bed's window prepared and scored every 10 s of recording. Beds start at staggered
moments within the second, as real ones do.

The server is ``hypo serve`` in its own process (Ray Serve on a local Ray, or ``--local``). The figures:

- **delay**: from the arrival of the message that completes a window to its prediction being logged (the server
  measures and logs it with every prediction; the journal's fsync follows within ``flush_s``);
- **CPU**: user + system time of the server's whole process tree (Ray's own processes included) over the
  streaming, per wall second; CPU per bed = that over bed-equivalents; beds per core = bed-equivalents over cores
  used, reported as held only if p99 delay < 1 s;
- **memory**: resident memory of the process tree while streaming minus before, per bed (memory grows with beds,
  not with speed).
"""

import argparse
import asyncio
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout

from hypo.data.signals import ECG, PLETH, SIGNALS, UNITS, VITALDB_TRACKS, WAVEFORMS  # noqa: E402
from hypo.data.sources.demo import simulate_case  # noqa: E402

GOAL = 100  # beds per core
PLACEHOLDER = "@@ROOM@@"
WAVE_RATES = {ECG: (500, 0.05), PLETH: (100, 2.0)}
CASES = (1, 2, 4, 6)  # demo cases long enough for the longest run (18,426 / 10,316 / 57,079 / 18,114 s)


class Bedside:
    """A demo case as a monitor sends it, one second at a time (JSON text with a placeholder room name)."""

    def __init__(self, cid: int, t0: float) -> None:
        self.case = simulate_case(cid)
        self.t0 = t0  # the stamp of second 0: live, on the bench's clock
        self.dtcase = t0

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - a few Bedsides live for the whole run
    def second(self, s: int) -> str:
        """Second ``s`` as the payload's JSON (room and token to fill in)."""
        rng = np.random.default_rng((int(self.case.caseid), s))
        t = self.t0 + s
        trks = []
        for i, (sig, name) in enumerate(zip(SIGNALS, VITALDB_TRACKS)):
            v = float(self.case.signals[s, i])
            if i in WAVEFORMS:
                if not np.isfinite(v):
                    continue
                srate, noise = WAVE_RATES[i]
                val = np.round(v + rng.normal(0, noise, srate), 3).tolist()
                trks.append({"name": name, "type": "wav", "srate": srate, "unit": UNITS[sig],
                             "recs": [{"dt": t, "val": val}]})
            elif np.isfinite(v):
                trks.append({"name": name, "type": "num", "unit": UNITS[sig], "recs": [{"dt": t + 0.5, "val": v}]})
        room = {"roomname": PLACEHOLDER, "dtstart": t, "dtend": t + 1, "dtcase": self.dtcase, "trks": trks}
        return json.dumps({"vrcode": "@@TOKEN@@", "rooms": [room]}, separators=(",", ":"))


async def bed(i: int, side: Bedside, url: str, token: str, speed: float, seconds: int, t_start: float,
              offset: float, session, transport: str, lat: list, lag: list) -> int:
    room, sent = f"BED-{i:03d}", 0
    sio = None
    if transport == "socketio":
        import socketio

        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(url, transports=["websocket"], auth={"token": token}, wait_timeout=30)
    try:
        for s in range(seconds):
            due = t_start + offset + (s + 1) / speed
            wait = due - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            lag.append(time.time() - due)
            text = side.second(s).replace(PLACEHOLDER, room).replace("@@TOKEN@@", token)
            t = time.perf_counter()
            if sio is not None:
                ack = await sio.call("send_data", zlib.compress(text.encode()), timeout=60)
                sent += bool(ack.get("ok"))
            else:
                body = urllib.parse.urlencode({"data": text})
                async with session.post(url + "/api/send", data=body,
                                        headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
                    await r.read()
                    sent += r.status == 200
            lat.append(time.perf_counter() - t)
    finally:
        if sio is not None:
            await sio.disconnect()
    return sent


async def stream_beds(url: str, token: str, n: int, speed: float, wall_s: float, transport: str):
    import aiohttp

    seconds = int(wall_s * speed)
    t_start = time.time() + 3.0  # the Socket.IO connections open meanwhile
    stamp0 = np.floor(t_start - seconds)  # every stamp lies in the past of the server's clock
    sides = [Bedside(cid, stamp0) for cid in CASES]
    lat: list = []
    lag: list = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        sent = await asyncio.gather(*(bed(i, sides[i % len(sides)], url, token, speed, seconds, t_start,
                                          (i / n) / speed, session, transport, lat, lag) for i in range(n)))
    return sum(sent), lat, lag, t_start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int):
    import psutil

    p = psutil.Process(pid)
    return [p] + p.children(recursive=True)


def usage(pid: int) -> tuple[float, float, dict]:
    """CPU seconds (user + system) and resident MiB of a process tree, and each process's (name, CPU) by pid."""
    import psutil

    rss, each = 0.0, {}
    for p in tree(pid):
        try:
            t = p.cpu_times()
            name = p.name()
            if name.startswith("ray::"):
                name = name[5:]
            each[p.pid] = (name, t.user + t.system)  # of this process; its children are in the tree
            rss += p.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            continue
    return sum(c for _, c in each.values()), rss, each


def by_process(before: dict, after: dict, wall: float) -> str:
    """The server's CPU split by process (Ray's proxy, the replicas, Ray's own daemons), in cores."""
    parts: dict = {}
    for pid, (name, c) in after.items():
        key = name.split(".")[0][:28]
        parts[key] = parts.get(key, 0.0) + (c - before.get(pid, (name, 0.0))[1]) / wall
    top = sorted(parts.items(), key=lambda kv: -kv[1])[:6]
    return ", ".join(f"{k} {v:.2f}" for k, v in top if v >= 0.005)


def start_server(model: str, log: str, port: int, local: bool, scorers: int, threads_env: dict) -> subprocess.Popen:
    args = [sys.executable, "-m", "hypo", "serve", model, "--log", log, "--port", str(port), "--scorers",
            str(scorers), "--max-clock-skew", "600"]
    args += ["--local"] if local else ["--address", "local"]
    env = {**os.environ, **threads_env, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    t0 = time.monotonic()
    while True:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise SystemExit("hypo serve did not start:\n" + "".join(out))
        out.append(line)
        if line.startswith("serving on"):
            return proc
        if time.monotonic() - t0 > 300:
            proc.kill()
            raise SystemExit("hypo serve did not start in 300 s:\n" + "".join(out))


def export_model(folder: str, name: str, k: int) -> str:
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from predict import untrained_model  # bench/predict.py: an untrained model exported as hypo exports models

    return untrained_model(name, k, os.path.join(folder, f"{name}.pt"))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--beds", type=int, default=20, help="simulated beds streaming at once")
    p.add_argument("--speed", type=float, default=10.0, help="seconds of recording per second for each bed")
    p.add_argument("--seconds", type=float, default=90.0, help="wall seconds of streaming")
    p.add_argument("--model", default=None, help="an exported model (default: an untrained lstm k=42, traced)")
    p.add_argument("--arch", default="lstm", help="architecture of the default model (lstm, cnn, cnn_cnn, ...)")
    p.add_argument("--k", type=int, default=42, help="width of the default model")
    p.add_argument("--scorers", type=int, default=1, help="Scorer replicas")
    p.add_argument("--transport", choices=("socketio", "http"), default="socketio",
                   help="Socket.IO over WebSocket (a recorder's VitalServer link; default) or POST /api/send")
    p.add_argument("--local", action="store_true", help="the server in one process, without Ray Serve")
    p.add_argument("--quick", action="store_true", help="smoke test: 3 beds at 20x for 8 s, --local")
    args = p.parse_args(argv)
    if args.quick:
        args.beds, args.speed, args.seconds, args.local, args.k = 3, 20.0, 8.0, True, 8
    with tempfile.TemporaryDirectory(prefix="hypo-bench-serve-") as tmp:
        model = args.model or export_model(tmp, args.arch, args.k)
        log = os.path.join(tmp, "log")
        os.makedirs(log)
        with open(os.path.join(log, "tokens.json"), "w") as f:
            json.dump({"recorders": {"bench": "bench-recorder-token"}}, f)
        port = free_port()
        server = start_server(model, log, port, args.local, args.scorers, {"OMP_NUM_THREADS": "1"})
        try:
            time.sleep(2.0)
            cpu0, rss0, each0 = usage(server.pid)
            t0 = time.time()
            sent, lat, lag, t_start = asyncio.run(stream_beds(f"http://127.0.0.1:{port}", "bench-recorder-token",
                                                              args.beds, args.speed, args.seconds, args.transport))
            wall = time.time() - t0
            cpu1, rss1, each1 = usage(server.pid)
            time.sleep(3.0)  # the last windows scored and flushed
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
        from hypo.serve.trial_log import read_log

        ev = read_log(log)
    pred = ev[ev["kind"] == "prediction"]
    steady = pred[pred["logged_at"] > t_start + min(10.0, args.seconds / 4)]  # past the start-up
    delay = steady["delay_s"].to_numpy(np.float64)
    planned = args.beds * args.speed
    equiv = sent / wall  # bed-seconds the server took per second (below the plan when it fell behind)
    cores = (cpu1 - cpu0) / wall
    res = {
        "beds": args.beds, "speed": args.speed, "bed_equivalents": equiv, "planned": planned, "wall_s": round(wall, 1),
        "messages": sent, "predictions": int(len(pred)), "server": "local" if args.local else "ray serve",
        "p50_delay_s": float(np.percentile(delay, 50)) if len(delay) else float("nan"),
        "p99_delay_s": float(np.percentile(delay, 99)) if len(delay) else float("nan"),
        "p99_post_s": float(np.percentile(lat, 99)) if lat else float("nan"),
        "p99_lag_s": float(np.percentile(lag, 99)) if lag else float("nan"), "transport": args.transport,
        "server_cores": cores, "cpu_ms_per_bed_s": 1000 * cores / equiv,
        "rss_mib": rss1, "rss_per_bed_mib": (rss1 - rss0) / args.beds,
        "beds_per_core": equiv / cores if cores > 0 else float("inf"),
    }
    # Held: every message accepted, sent on schedule (the server kept up), p99 delay under 1 s.
    held = (res["p99_delay_s"] < 1.0 and res["p99_lag_s"] < 1.0 and sent == args.beds * int(args.seconds * args.speed))
    print(f"hypo serve ({res['server']}, {args.transport}), {args.beds} beds at {args.speed:g}x = {planned:g} "
          f"bed-equivalents planned, {equiv:.0f} taken, for {wall:.0f} s: {sent} messages, {len(pred)} predictions; "
          f"messages sent p99 {res['p99_lag_s'] * 1000:.0f} ms behind schedule")
    print(f"  delay, last sample of a window arriving -> its prediction logged: p50 {res['p50_delay_s'] * 1000:.0f} ms,"
          f" p99 {res['p99_delay_s'] * 1000:.0f} ms (goal < 1 s); a message's round trip p99 "
          f"{res['p99_post_s'] * 1000:.0f} ms")
    print(f"  server CPU {cores:.2f} cores: {res['cpu_ms_per_bed_s']:.2f} ms per bed-second "
          f"({100 * cores / equiv:.3f}% of a core per bed); memory {rss1:.0f} MiB, "
          f"{res['rss_per_bed_mib']:.2f} MiB per bed")
    print(f"  CPU by process (cores): {by_process(each0, each1, wall)}")
    print(f"  beds per core: {res['beds_per_core']:.0f} (goal >= {GOAL})"
          + ("" if held else "  [NOT held: p99 delay or lag >= 1 s, or messages refused]"))
    res["held"] = bool(held)
    return res


if __name__ == "__main__":
    main()
