"""The equality gates: what hypo serve predicts live is what the offline causal replay scores, and the causal replay
is today's replay wherever causality changes nothing.

(a) A demo recording with gaps, no MAC track, BIS only from the 41st minute, cuff values stamped apart, cuff
artefacts, monitor-rate waves and a monitor restart (minutes without a message), streamed by hypo replay's client
into hypo serve's application (HTTP, and Socket.IO), gives the offline causal replay's prediction times,
probabilities within 1e-5 and alarm on/off times; and hypo evaluate --shadow, scoring what the server logged, gives
the offline scoring of those alarms.
(b) The causal pipeline equals the whole-recording preparation it replaced (kept here as the reference) on
recordings where every channel is present from the start and nothing implausible is near a window end; where a
group starts late it predicts what the whole-recording preparation could not, and nothing else changes.
"""

import asyncio
import math
import time
from pathlib import Path

import numpy as np
import pytest

from hypo.data.signals import SBP
from hypo.data.sources.vital import read_vital_case
from hypo.evaluate.alarms.metrics import AlarmConfig
from hypo.evaluate.alarms.replay import recording_track
from hypo.infer.alarm_policy import deployed_policy
from hypo.infer.model import ExportedModel
from hypo.infer.sidecar import may_lack
from hypo.serve.replay import live_shift, read_recording, stream_recording

from live_helpers import RECORDER, RESTART, events, gate_model, gate_recording, predictions, start_server

PROBS = ["p_normal", "p_hypotension", "p_hypertension"]


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    return {"model": gate_model(root), "recording": gate_recording(root / "OR-gate.vital")}


@pytest.fixture(scope="module")
def offline(gate):
    """The offline causal replay of the file: the replay's own code path (recording_track) and the policy the
    model carries."""
    model = ExportedModel.load(gate["model"])
    case = read_vital_case(gate["recording"], "g", "g", allow_missing=may_lack(model.sidecar))
    policy, _ = deployed_policy(model.sidecar)
    cfg = AlarmConfig(stride_s=policy.stride_s, m=policy.m, hysteresis=policy.hysteresis, max_gap_s=policy.max_gap_s)
    pred, track = recording_track(case, model, policy.stride_s)
    return {"pred": pred, "track": track, "on": track.on([policy.threshold], cfg)[0], "policy": policy, "cfg": cfg,
            "case": case}


def stream_with_restart(path, url, room, transport="http"):
    """Stream the recording live, as fast as the server answers, with the monitor silent during RESTART."""
    rec = read_recording(path, room)
    shift = live_shift(rec, 1e9, time.time())

    async def run():
        a = await stream_recording(rec, url, RECORDER, speed=math.inf, shift=shift, stop_s=RESTART[0],
                                   transport=transport)
        b = await stream_recording(rec, url, RECORDER, speed=math.inf, shift=shift, first_s=RESTART[1],
                                   transport=transport)
        return a, b

    return asyncio.run(run())


def transitions(t_end, on):
    on = np.asarray(on, bool)
    prev = np.r_[False, on[:-1]]
    return [int(t) for t in np.asarray(t_end)[on & ~prev]], [int(t) for t in np.asarray(t_end)[~on & prev]]


def test_the_recording_holds_what_the_gate_is_about(offline):
    pred, case = offline["pred"], offline["case"]
    probs = pred.probs[:, 1]
    early = (pred.t_end > 1200) & (pred.t_end < 2400)
    assert np.isfinite(probs[early]).mean() > 0.9  # BIS not recorded yet: predicted without it (absent so far)
    restart = (pred.t_end >= RESTART[0]) & (pred.t_end < RESTART[1])
    assert np.isnan(probs[restart]).all()  # nothing recorded: nothing predicted
    back = (pred.t_end > RESTART[1] + 90) & (pred.t_end < RESTART[1] + 400)
    assert np.isfinite(probs[back]).all()  # and predictions resume once the waves are back
    assert offline["on"].any() and not offline["on"].all() and pred.absent == ("mac",)
    merged = np.isnan(case.signals[pred.readings["time"], SBP])  # its systolic value was stamped 2 s earlier
    assert len(merged) >= 8 and merged.sum() >= 4  # cuff values stamped apart were grouped into readings


@pytest.mark.parametrize("transport", ["http", "socketio"])
def test_gate_a_live_equals_the_offline_causal_replay(gate, offline, tmp_path, transport):
    srv = start_server(gate["model"], tmp_path / "log")
    try:
        room = f"OR-gate-{transport}"
        a, b = stream_with_restart(gate["recording"], srv.url, room, transport)
        assert a.ok == a.sent and b.ok == b.sent, (a.errors, b.errors)
        live = predictions(srv, room)
        ev = events(srv, room)
    finally:
        srv.stop()
    pred = offline["pred"]
    assert live["t_end"].tolist() == pred.t_end.tolist()  # the same prediction times
    got = live[PROBS].to_numpy(np.float64)
    assert (np.isnan(got) == np.isnan(pred.probs)).all()
    np.testing.assert_allclose(got, pred.probs, atol=1e-5)  # the same probabilities
    assert live["alarm"].tolist() == offline["on"].tolist()  # the same alarm state after every prediction
    on, off = transitions(pred.t_end, offline["on"])
    assert ev[ev["kind"] == "alarm_on"]["t_end"].tolist() == on  # the same alarm on/off times
    assert ev[ev["kind"] == "alarm_off"]["t_end"].tolist() == off
    assert (live["threshold"] == np.float32(offline["policy"].threshold)).all()  # the policy the model carries


def test_shadow_scores_the_logged_alarms_as_the_offline_scoring_does(gate, offline, tmp_path, capsys):
    from hypo.cli.evaluate import main
    from hypo.evaluate.alarms.events import case_events
    from hypo.evaluate.alarms.metrics import case_counts
    from hypo.evaluate.alarms.result import AlarmResult

    srv = start_server(gate["model"], tmp_path / "log")
    try:
        stream_with_restart(gate["recording"], srv.url, "OR-gate")  # the file's name: its room
    finally:
        srv.stop()
    folder = str(Path(gate["recording"]).parent)  # OR-gate.vital: the room's recording
    log, out = str(tmp_path / "log"), str(tmp_path / "shadow")
    main(["--shadow", log, "--recordings", folder, "--out", out, "--bootstrap", "50"])
    printed = capsys.readouterr().out
    assert "silent trial split" in printed and "alarms as logged" in printed and "model (logged)" in printed
    result = AlarmResult.read(str(tmp_path / "shadow" / "alarms_shadow.json"))
    op = result.rows[0].operating_points["logged"]
    pred, cfg = offline["pred"], offline["cfg"]
    r = pred.readings
    ev = case_events("g", "g", int(offline["case"].duration_s), ExportedModel.load(gate["model"]).sidecar.label,
                     59, readings={"time": r["time"], "map": r["map"]})
    want = case_counts(offline["track"], ev, [offline["policy"].threshold], cfg)
    assert op["episodes"] == want.n_episodes and op["caught"] == int(want.caught[0]) > 0
    assert op["alarms"] == int(want.alarms[0]) and op["false_alarms"] == int(want.false[0])
    assert result.cases.scored == 1 and result.config.max_gap_s == 30 and result.simulated
    for argv, needle in ((["model.pt", "--shadow", log, "--recordings", folder], "MODEL_OR_RUN"),
                         (["--shadow", log], "needs --recordings"), (["--recordings", folder], "go with --shadow")):
        with pytest.raises(SystemExit):
            main(argv)
        assert needle in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- gate (b)


def whole_recording_prepare(case, rules, stride_s):
    """The preparation the causal pipeline replaced: groups absent and units decided on the whole recording."""
    from hypo.data.pipeline import clean_case
    from hypo.data.signals import group_channels
    from hypo.data.windows import complete_windows, window_ends
    from hypo.infer.predict import check_units
    from hypo.infer.sidecar import window_config

    cfg = window_config(rules, stride_s)
    check_units(case.signals)
    clean = clean_case(case, cfg)
    ends = window_ends(len(clean.filled), cfg.window_s, stride_s)
    complete = complete_windows(clean.cleaned, clean.filled, ends, cfg.window_s, group_channels(set(clean.absent)))
    return clean, ends, complete


@pytest.mark.parametrize("cid", [2, 3, 5])
@pytest.mark.parametrize("tolerant", [False, True])
def test_gate_b_the_causal_pipeline_is_the_old_one_where_causality_changes_nothing(gate, cid, tolerant):
    from hypo.data.sources.demo import simulate_case
    from hypo.infer.causal import prepare_case

    rules = ExportedModel.load(gate["model"]).sidecar  # takes MAC and BIS as missing
    rules = rules if tolerant else rules.model_copy(update={"tolerates_missing": []})
    case = simulate_case(cid)  # nothing implausible
    if tolerant:  # demo BIS and MAC begin a minute or more in: start where every channel has been recorded
        case.signals = case.signals[max(int(np.flatnonzero(np.isfinite(col))[0]) for col in case.signals.T):]
    clean, ends, complete = whole_recording_prepare(case, rules, 10)
    prep = prepare_case(case, rules, 10)
    assert (prep.ends == ends).all() and (prep.complete == complete).all() and complete.mean() > 0.8
    np.testing.assert_array_equal(prep.filled, clean.filled)
    np.testing.assert_array_equal(prep.cleaned, clean.cleaned)


def test_gate_b_a_group_that_starts_late_only_adds_predictions_before_it(gate):
    from hypo.data.signals import BIS
    from hypo.data.sources.demo import simulate_case
    from hypo.infer.causal import prepare_case

    rules = ExportedModel.load(gate["model"]).sidecar  # takes BIS as missing
    case = simulate_case(5)
    case.signals[:2400, BIS] = np.nan  # no BIS sensor for the first 40 minutes
    clean, ends, complete = whole_recording_prepare(case, rules, 10)
    prep = prepare_case(case, rules, 10)
    before = ends < 2400
    assert not complete[before & (ends > 400)].any()  # the whole-recording decision: BIS present, so a gap
    assert prep.complete[before].mean() > 0.8 and prep.absent_at[before, 1].all()  # live: BIS absent so far
    assert (prep.complete[ends >= 2460] == complete[ends >= 2460]).all()  # from its first minute on, the same
