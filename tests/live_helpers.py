"""Helpers of the live-server tests: models, demo recordings, a server in this process, waiting and reading."""

import asyncio
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn

from hypo.config import WindowConfig, to_dict
from hypo.data.signals import CLASSES, MBP, SIGNALS, UNITS
from hypo.data.sources.demo import simulate_case
from hypo.data.sources.vital import write_vital_case
from hypo.infer.export import trace_model, write_exported
from hypo.infer.sidecar import SCHEMA_VERSION, Sidecar
from hypo.serve.auth import Tokens
from hypo.serve.replay import read_recording, stream_recording
from hypo.serve.server import LocalServer
from hypo.serve.service import ServeConfig
from hypo.serve.trial_log import read_log

RECORDER, VIEWER = "recorder-token-0001", "viewer-token-0001"


def demo_model(tmp_path_factory) -> str:
    """A model trained on demo cases (one epoch), exported; made once per test session and shared by modules."""
    from demo_experiment import exported_demo_model

    root = tmp_path_factory.getbasetemp() / "live-demo-model"
    model = root / "model.pt"
    if not model.exists():
        exported_demo_model(root, epochs=1)
    return str(model)


class MapTracker(nn.Module):
    """A stand-in model for tests of the alarm path: p(hypotension) rises as the last cuff MAP falls below 70."""

    def forward(self, x):
        z = (70.0 - x[:, -1, MBP]) / 2.0
        return torch.stack([torch.zeros_like(z), z, torch.full_like(z, -20.0)], dim=1)


def tracker_model(folder) -> str:
    """The MapTracker exported as hypo exports models (TorchScript + sidecar), alarm threshold 0.5."""
    wc = WindowConfig(stride_s=10)
    example = torch.from_numpy(np.full((4, wc.window_s, len(SIGNALS)), 70.0, np.float32))
    sidecar = {"format": "hypo-model/1", "schema_version": SCHEMA_VERSION, "signals": list(SIGNALS),
               "units": dict(UNITS), "window_s": wc.window_s,
               "stride_s": wc.stride_s, "horizon_s": wc.label.horizon_s, "label": to_dict(wc.label),
               "thresholds": {"hypo_map": 65.0, "hyper_sbp": 160.0, "p_hypotension": 0.5, "p_hypertension": 0.5},
               "fill": to_dict(wc.fill), "nibp_merge_s": wc.nibp_merge_s, "min_case_s": wc.min_case_s,
               "tolerates_missing": [], "signals_read": ["ecg", "nibp", "pleth", "mac", "bis"],
               "input": {"shape": ["n", wc.window_s, len(SIGNALS)], "dtype": "float32", "units": "physical"},
               "output": {"shape": ["n", 3], "meaning": "class probabilities (a stand-in following the cuff MAP)",
                          "classes": list(CLASSES)},
               "model": {"name": "cnn", "k": 4},  # a valid config; the module is the MapTracker
               "source": {"simulated": True}}
    path, _ = write_exported(trace_model(MapTracker(), example), Sidecar.from_dict(sidecar, "tracker"),
                             os.path.join(str(folder), "tracker.pt"))
    return path


def demo_recording(path, cid=2, seconds=1500, **kw) -> str:
    """A simulated demo case cropped to ``seconds`` as a .vital file (case 2 goes below MAP 65 at 641 s)."""
    case = simulate_case(cid)
    case.signals, case.art = case.signals[:seconds], None
    return str(write_vital_case(case, path, **kw))


def tokens_file(folder) -> str:
    """A tokens file with the test's recorder and viewer tokens."""
    path = os.path.join(str(folder), "tokens.json")
    with open(path, "w") as f:
        json.dump({"recorders": {"recorder-1": RECORDER}, "viewers": {"viewer-1": VIEWER}}, f)
    Tokens.load(path)
    return path


def start_server(model, log_dir, **cfg) -> LocalServer:
    """A LocalServer on a free port of 127.0.0.1 with the test tokens."""
    os.makedirs(log_dir, exist_ok=True)
    cfg = {"port": 0, "tokens": tokens_file(log_dir), **cfg}
    return LocalServer(ServeConfig(model=model, log_dir=str(log_dir), **cfg)).start()


def wait_idle(server, timeout=60.0) -> None:
    """Wait until every queued window is scored and logged, then flush the log."""
    t0 = time.monotonic()
    while server.service.in_flight:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{server.service.in_flight} windows still in flight")
        time.sleep(0.02)

    async def flush():
        server.service.log.flush(force=True)

    server.call(flush)


def events(server, room=None):
    wait_idle(server)
    df = read_log(server.cfg.log_dir, "events", rooms=None if room is None else [room])
    return df


def predictions(server_or_dir, room):
    d = server_or_dir if isinstance(server_or_dir, str) else server_or_dir.cfg.log_dir
    if not isinstance(server_or_dir, str):
        wait_idle(server_or_dir)
    df = read_log(d, "events", rooms=[room])
    return df[df["kind"] == "prediction"].sort_values("t_end").reset_index(drop=True)


def stream(path, url, room, token=RECORDER, speed=math.inf, **kw):
    """Stream a recording (hypo replay's client) and return its SendResult."""
    rec = read_recording(path, room)
    return asyncio.run(stream_recording(rec, url, token, speed=speed, **kw))
