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


def monitor_rate_vital(case, path, dtstart=4102444800.4, tracks=None, seed=1):
    """The case as a monitor records it: ECG at 500 Hz and pleth at 100 Hz, samples varying within each second
    (so which sample of a second is taken matters), a record per second starting off the second, and a few samples
    missing; the numbers as hypo writes them (``tracks``: their names, None leaves one out)."""
    import vitaldb

    from hypo.data.signals import ECG, PLETH, VITALDB_TRACKS, WAVEFORMS

    names = list(tracks or VITALDB_TRACKS)
    write_vital_case(case, path, tracks=[None if i in WAVEFORMS else n for i, n in enumerate(names)], dtstart=dtstart)
    vf = vitaldb.VitalFile(str(path))
    rng = np.random.default_rng(seed)
    for i, srate in ((ECG, 500), (PLETH, 100)):
        held = np.repeat(case.signals[:, i].astype(np.float32), srate).reshape(-1, srate)
        held = held + rng.normal(0, 0.05 if i == ECG else 2.0, held.shape).astype(np.float32)
        held[rng.uniform(size=held.shape) < 0.002] = np.nan
        recs = [{"dt": dtstart + s, "val": held[s]} for s in range(len(held)) if np.isfinite(held[s]).any()]
        vf.add_track(names[i], recs, srate=srate, unit=UNITS[SIGNALS[i]])
    vf.to_vital(str(path))
    return str(path)


class MapTracker(nn.Module):
    """A stand-in model for tests of the alarm path: p(hypotension) rises as the last cuff MAP falls below 70."""

    def forward(self, x):
        z = (70.0 - x[:, -1, MBP]) / 2.0
        return torch.stack([torch.zeros_like(z), z, torch.full_like(z, -20.0)], dim=1)


def tracker_model(folder) -> str:
    """The MapTracker exported as hypo exports models (TorchScript + sidecar), alarm threshold 0.5."""
    wc = WindowConfig(stride_s=10)
    example = torch.from_numpy(np.full((4, wc.window_s, len(SIGNALS)), 70.0, np.float32))
    sidecar = tracker_sidecar(wc)
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


class WholeWindow(nn.Module):
    """A stand-in model for the equality gates: p(hypotension) follows the last cuff MAP, nudged by the mean of every
    channel over the window (so a difference in any value of any second shows); MAC and BIS may be missing (NaN)."""

    def forward(self, x):
        z = (70.0 - x[:, -1, MBP]) / 2.0
        w = torch.tensor([0.5, 0.002, -0.003, 0.002, 0.004, 0.3, -0.004])
        z = z + torch.tanh((torch.nan_to_num(x, nan=0.0).mean(dim=1) * w).sum(dim=1) - 0.2)
        return torch.stack([torch.zeros_like(z), z, torch.full_like(z, -20.0)], dim=1)


def gate_model(folder, policy=None) -> str:
    """:class:`WholeWindow` exported as hypo exports models: it takes MAC and BIS as missing (``tolerates_missing``)
    and carries a validated alarm policy (threshold 0.5, m 2, hysteresis 0.05, max gap 30 s at a 10-s stride)."""
    from hypo.infer.sidecar import AlarmPolicy

    wc = WindowConfig(stride_s=10)
    example = torch.from_numpy(np.full((4, wc.window_s, len(SIGNALS)), 70.0, np.float32))
    sidecar = Sidecar.from_dict(tracker_sidecar(wc), "gate").model_copy(update={
        "tolerates_missing": ["mac", "bis"],
        "alarm_policy": policy or AlarmPolicy(threshold=0.5, m=2, hysteresis=0.05, max_gap_s=30, stride_s=10,
                                              met=True, chosen_on={"data": "hand-made", "split": "val"})})
    path, _ = write_exported(trace_model(WholeWindow(), example), sidecar, os.path.join(str(folder), "gate.pt"))
    return path


RESTART = (3000, 3330)  # the monitor restarts: no value, and no message, for 5.5 minutes


def gate_recording(path, cid=6, seconds=4200) -> str:
    """A demo recording with everything a live stream meets (the equality gates' file).

    Case 6 (hypotensive from 903 s on), with: monitor-rate waves varying within each second; an ECG gap of 20 s
    (windows across it incomplete) and a pleth gap of 5 s (interpolated); no MAC track at all; BIS only from the
    41st minute on (absent so far before, then a group like any other); every other cuff reading's systolic and mean
    values stamped 2 s and 1 s before its diastolic one (grouped into one reading); a few cuff artefacts; and a
    monitor restart, minutes without any value (:data:`RESTART`; a stream sends nothing then).
    """
    from hypo.data.signals import BIS, DBP, ECG, NIBP, PLETH, SBP, VITALDB_TRACKS

    case = simulate_case(cid)
    sig = case.signals[:seconds].copy()
    sig[400:420, ECG] = np.nan
    sig[1000:1005, PLETH] = np.nan
    sig[:2400, BIS] = np.nan
    sig[RESTART[0]:RESTART[1]] = np.nan  # the monitor restarts: nothing recorded
    readings = np.flatnonzero(np.isfinite(sig[:, list(NIBP)]).all(axis=1))
    for k, t in enumerate(readings[readings > 3]):
        if k % 2:
            sig[t - 2, SBP], sig[t, SBP] = sig[t, SBP], np.nan
            sig[t - 1, MBP], sig[t, MBP] = sig[t, MBP], np.nan
        elif k % 7 == 0:
            sig[t, DBP] = sig[t, SBP] + 5  # an artefact: SBP <= DBP, removed as a whole reading
    case.signals, case.art = sig, None
    tracks = list(VITALDB_TRACKS)
    tracks[list(SIGNALS).index("mac")] = None
    return monitor_rate_vital(case, path, tracks=tracks)


def tracker_sidecar(wc) -> dict:
    """The sidecar dict of the stand-in models (as ``hypo export`` writes one, without provenance)."""
    return {"format": "hypo-model/1", "schema_version": SCHEMA_VERSION, "signals": list(SIGNALS),
            "units": dict(UNITS), "window_s": wc.window_s,
            "stride_s": wc.stride_s, "horizon_s": wc.label.horizon_s, "label": to_dict(wc.label),
            "thresholds": {"hypo_map": 65.0, "hyper_sbp": 160.0, "p_hypotension": 0.5, "p_hypertension": 0.5},
            "fill": to_dict(wc.fill), "nibp_merge_s": wc.nibp_merge_s, "min_case_s": wc.min_case_s,
            "tolerates_missing": [], "signals_read": ["ecg", "nibp", "pleth", "mac", "bis"],
            "input": {"shape": ["n", wc.window_s, len(SIGNALS)], "dtype": "float32", "units": "physical"},
            "output": {"shape": ["n", 3], "meaning": "class probabilities (a stand-in following the cuff MAP)",
                       "classes": list(CLASSES)},
            "model": {"name": "cnn", "k": 4},  # a valid config; the module is the stand-in
            "source": {"simulated": True}}
