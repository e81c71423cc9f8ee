"""``hypo serve`` as users run it: the Ray Serve application (a local Ray), fed by ``hypo replay`` over HTTP, Socket.IO
and the older Engine.IO 3, stopped with Ctrl-C: the log holds the predictions and alarms of the offline causal replay,
under the alarm policy the export carries."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hypo.data.sources.vital import read_vital_case
from hypo.evaluate.alarms.replay import recording_track
from hypo.infer.alarm_policy import deployed_policy
from hypo.infer.model import ExportedModel
from hypo.serve.trial_log import read_log

from live_helpers import demo_model, demo_recording, tokens_file

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hypo(*args, **kw):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "hypo", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def test_hypo_serve_on_ray_serve_fed_by_hypo_replay(tmp_path_factory, tmp_path):
    model = demo_model(tmp_path_factory)
    rec = demo_recording(tmp_path / "case2.vital", cid=2, seconds=1300)
    log = tmp_path / "log"
    log.mkdir()
    tokens = tokens_file(log)
    port = free_port()
    server = hypo("serve", model, "--log", str(log), "--port", str(port), "--address", "local", "--scorers", "1")
    lines = []
    try:
        t0 = time.monotonic()
        while not any(line.startswith("serving on") for line in lines):
            line = server.stdout.readline()
            assert line or server.poll() is None, "".join(lines)
            lines.append(line)
            assert time.monotonic() - t0 < 240, "".join(lines)
        assert "research software, not a medical device" in "".join(lines)
        url = f"http://127.0.0.1:{port}"
        for room, extra in (("OR-http", []), ("OR-sio", ["--transport", "socketio"]),
                            ("OR-eio3", ["--transport", "socketio", "--eio", "3"])):
            r = hypo("replay", rec, "--to", url, "--token-file", tokens, "--speed", "1000", "--room", room, *extra)
            out, _ = r.communicate(timeout=300)
            assert r.returncode == 0 and "1300/1300 messages accepted" in out, out
        time.sleep(2)
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=120)
        assert server.returncode == 0 and "the log is written" in out, out
    finally:
        if server.poll() is None:
            server.kill()
    exported = ExportedModel.load(model)
    policy, _ = deployed_policy(exported.sidecar)  # the policy the export carries, as the server ran it
    off, _ = recording_track(read_vital_case(rec, "x", "x"), exported, policy.stride_s)  # the offline causal replay
    on = policy.on(off.probs[:, 1])
    ev = read_log(log)
    assert not list((log / "journal").glob("*.jsonl"))
    assert exported.sidecar.alarm_policy is not None and "validated with the model" in "".join(lines)
    for room in ("OR-http", "OR-sio", "OR-eio3"):
        p = ev[(ev["room"] == room) & (ev["kind"] == "prediction")].sort_values("t_end")
        assert p["t_end"].tolist() == off.t_end.tolist(), room
        got = p[["p_normal", "p_hypotension", "p_hypertension"]].to_numpy(np.float64)
        assert (np.isnan(got) == np.isnan(off.probs)).all()
        np.testing.assert_allclose(got, off.probs, atol=1e-5)
        assert p["alarm"].tolist() == on.tolist()
        starts = ev[(ev["room"] == room) & (ev["kind"] == "alarm_on")]["t_end"].tolist()
        assert starts == [int(t) for t, a, b in zip(off.t_end, on, np.r_[False, on[:-1]]) if a and not b]
        assert p["delay_s"].max() < 10
