"""hypo serve's machinery end to end, in this process (uvicorn on 127.0.0.1, free ports): a demo recording streamed
over HTTP, Socket.IO (Engine.IO 4) and the older Engine.IO 3 gives the predictions and alarms hypo predict gives
offline; bad input of every kind is refused with its reason, counted and logged while other beds are served;
tokens; no patient identifier in the log; a restart (clean, or after a crash) continues every bed."""

import asyncio
import json
import math
import time
import urllib.parse
import zlib

import numpy as np
import pytest
import requests
import socketio

from hypo.data.sources.vital import read_vital_case
from hypo.infer.alarm_policy import alarm_on_loop
from hypo.infer.model import ExportedModel
from hypo.infer.predict import predict_case
from hypo.serve.eio3 import EIO3Client
from hypo.serve.protocol import encode_payload
from hypo.serve.replay import live_shift, read_recording, room_messages
from hypo.serve.trial_log import read_log

from live_helpers import RECORDER, VIEWER, demo_recording, events, predictions, start_server, stream, tracker_model

PROBS = ["p_normal", "p_hypotension", "p_hypertension"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The stand-in model that follows the cuff MAP (exported as hypo exports; no training, so the module stays
    fast). A trained model's live predictions are checked against hypo predict in tests/test_live_ray.py."""
    return tracker_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return demo_recording(tmp_path_factory.mktemp("rec") / "case2.vital", cid=2, seconds=1500)


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    srv = start_server(model, tmp_path_factory.mktemp("serve-log"))
    yield srv
    srv.stop()


def post(url, text, token=None, form=True, headers=None):
    body = urllib.parse.urlencode({"data": text}).encode() if form else text
    h = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    return requests.post(url + "/api/send", data=body, headers=h, timeout=30)


def test_http_stream_predicts_what_hypo_predict_predicts_offline(server, model, recording):
    res = stream(recording, server.url, "OR-http")
    assert res.ok == res.sent == 1500, res.errors
    live = predictions(server, "OR-http")
    off = predict_case(read_vital_case(recording, "x", "x"), ExportedModel.load(model), 10)
    assert live["t_end"].tolist() == off.t_end.tolist()  # a prediction every 10 s, at the same window ends
    got = live[PROBS].to_numpy(np.float64)
    assert (np.isnan(got) == np.isnan(off.probs)).all() and np.isfinite(got).all(axis=1).sum() > 100
    assert live["alarm"].any() and not live["alarm"].all()  # the recording goes hypotensive, and recovers
    np.testing.assert_allclose(got, off.probs, atol=1e-5)
    want_alarm = alarm_on_loop(off.probs[:, 1], server.service.policy.threshold)
    assert live["alarm"].tolist() == want_alarm.tolist()
    ev = events(server, "OR-http")
    on = ev[ev["kind"] == "alarm_on"]["t_end"].tolist()
    assert on == [int(t) for t, a, b in zip(off.t_end, want_alarm, np.r_[False, want_alarm[:-1]]) if a and not b]
    assert live["time"].tolist() == (live["case_start"] + live["t_end"]).tolist()
    assert (live["delay_s"] < 30).all() and set(live["status"]) <= {"predicted", "incomplete", "waiting"}
    avail = live[live["status"] == "predicted"][[f"avail_{g}" for g in ("ecg", "nibp", "pleth", "mac", "bis")]]
    assert (avail.to_numpy() == 1).all()  # a window the model scores has every value (after filling)


@pytest.mark.parametrize("room, eio", [("OR-sio4", 4), ("OR-sio3", 3)])
def test_socketio_of_both_generations_logs_what_http_logs(server, recording, room, eio):
    res = stream(recording, server.url, room, transport="socketio", eio=eio)
    assert res.ok == res.sent == 1500, res.errors
    a, b = predictions(server, room), predictions(server, "OR-http")
    assert a["t_end"].tolist() == b["t_end"].tolist()
    np.testing.assert_array_equal(a[PROBS].to_numpy(), b[PROBS].to_numpy())
    assert a["alarm"].tolist() == b["alarm"].tolist()


def one_second(room, t, case=None, **extra):
    """A one-second room message stamped ``t`` (a cuff reading and a second of both waves) of the case started at
    ``case`` (default 100 s before)."""
    ecg = {"name": "SNUADC/ECG_II", "type": "wav", "srate": 2, "unit": "mV", "recs": [{"dt": t, "val": [0.1, 0.2]}]}
    pleth = {"name": "SNUADC/PLETH", "type": "wav", "srate": 2, "recs": [{"dt": t, "val": [50, 51]}]}
    cuff = {"name": "Solar8000/NIBP_MBP", "type": "num", "unit": "mmHg", "recs": [{"dt": t + 0.5, "val": 80}]}
    return {"roomname": room, "dtstart": t, "dtend": t + 1, "dtcase": t - 100 if case is None else case, **extra,
            "trks": [ecg, pleth, cuff]}


def test_bad_input_is_refused_counted_and_logged_while_other_beds_are_served(server, recording):
    url, now = server.url, math.floor(time.time())
    good = read_recording(recording, "OR-good")
    shift = live_shift(good, 1e9, time.time())

    async def good_bed():
        from hypo.serve.replay import stream_recording

        return await stream_recording(good, url, RECORDER, speed=300, shift=shift)

    async def everything():
        bed = asyncio.ensure_future(good_bed())
        await asyncio.sleep(0.3)
        out = await asyncio.to_thread(bad_inputs, url, now)
        return await bed, out

    res, answers = asyncio.run(everything())
    assert res.ok == res.sent == 1500, res.errors  # the good bed was served throughout
    assert len(predictions(server, "OR-good")) == 145
    for name, (status, reason) in answers.items():
        assert (status, reason) == EXPECTED[name], name
    ev = events(server)
    rejected = ev[ev["kind"] == "rejected"]
    for reason in ("malformed json", "unauthorized", "payload too large", "bad zlib stream", "late record",
                   "far-future time", "no data field"):
        assert reason in set(rejected["status"]), reason
    dropped = ev[(ev["kind"] == "dropped") & (ev["room"] == "OR-bad")].groupby("status")["count"].sum()
    assert dropped["non-numeric value"] >= 1 and dropped["duplicate record"] >= 1 and dropped["duplicate samples"] >= 1
    notes = ev[(ev["kind"] == "note") & (ev["room"] == "OR-bad")]
    assert (notes["status"] == "unknown track").sum() == 1  # told once per bed, not every second
    health = requests.get(url + "/api/health", timeout=10).json()
    assert health["rejected"]["malformed json"] >= 1 and health["dropped"]["duplicate record"] >= 1


EXPECTED = {
    "malformed json": (400, "malformed json"),
    "no data field": (400, "no data field"),
    "not a payload": (400, "not a vital recorder payload"),
    "no token": (401, "unauthorized"),
    "wrong bearer token": (401, "unauthorized"),
    "50 MB": (413, "payload too large"),
    "first second": (200, None),
    "unknown track, NaN and a string in numbers, a duplicate": (200, None),
    "the same message again": (409, "duplicate samples"),
    "a late record": (409, "late record"),
    "far-future times": (409, "far-future time"),
    "socketio bad zlib": (400, "bad zlib stream"),
    "socketio 12 MB": (413, "payload too large"),
    "socketio 50 MB": (1009, "connection closed: message too big"),
    "socketio bad token": (401, "unauthorized"),
}


def bad_inputs(url, now):
    """Every kind of bad input, answered; returns name -> (status, reason)."""
    out = {}

    def http(name, resp):
        out[name] = (resp.status_code, resp.json().get("reason"))

    case = now - 100
    good = encode_payload(RECORDER, [one_second("OR-bad", now, case)])
    http("malformed json", post(url, good[:-5]))
    http("no data field", requests.post(url + "/api/send", data={"other": good}, timeout=10))
    http("not a payload", post(url, json.dumps({"vrcode": RECORDER})))
    http("no token", post(url, encode_payload("", [one_second("OR-bad", now, case)])))
    http("wrong bearer token", post(url, good, token="not-a-token-at-all"))
    http("50 MB", requests.post(url + "/api/send", data=b"data=" + b"x" * (50 << 20),
                                headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60))
    http("first second", post(url, good))
    room = one_second("OR-bad", now + 1, case)
    room["trks"].append({"name": "Solar8000/HR", "type": "num", "recs": [{"dt": now + 1.2, "val": 70}]})
    room["trks"][2]["recs"] += [{"dt": now + 1.6, "val": "high"}, {"dt": now + 1.7, "val": float("nan")},
                                {"dt": now + 1.7, "val": float("nan")}]
    http("unknown track, NaN and a string in numbers, a duplicate", post(url, encode_payload(RECORDER, [room])))
    http("the same message again", post(url, encode_payload(RECORDER, [room])))
    late = {"roomname": "OR-bad", "dtcase": case,
            "trks": [{"name": "BIS/BIS", "type": "num", "recs": [{"dt": now + 0.3, "val": 45}]}]}
    http("a late record", post(url, encode_payload(RECORDER, [late])))
    http("far-future times", post(url, encode_payload(RECORDER, [one_second("OR-bad", now + 86400, case)])))

    sio = socketio.Client(reconnection=False)
    sio.connect(url, transports=["websocket"], auth={"token": RECORDER}, wait_timeout=10)
    errors = []
    sio.on("hypo_error", errors.append)
    for name, blob in (("socketio bad zlib", b"\x78\x9c garbage"), ("socketio 12 MB", b"\0" * (12 << 20))):
        ack = sio.call("send_data", blob, timeout=60)
        out[name] = (ack["status"], ack["reason"])
    assert len(errors) == 2 and errors[0]["reason"] == "bad zlib stream"
    # Beyond the WebSocket frame limit (16 MB, uvicorn's, also in Ray Serve's proxy) the web server closes the
    # connection (code 1009, message too big) before the application sees a byte.
    with pytest.raises(socketio.exceptions.TimeoutError):
        sio.call("send_data", b"\0" * (50 << 20), timeout=5)
    t0 = time.monotonic()
    while sio.connected and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    out["socketio 50 MB"] = (1009, "connection closed: message too big") if not sio.connected else (200, None)
    sio.disconnect()
    bad, why = socketio.Client(), []
    bad.on("connect_error", why.append)
    try:
        bad.connect(url, transports=["websocket"], auth={"token": "wrong-token-xyz"}, wait_timeout=10)
        out["socketio bad token"] = (200, None)
    except socketio.exceptions.ConnectionError:
        assert "unauthorized" in str(why)  # the refusal's message reaches the client
        out["socketio bad token"] = (401, "unauthorized")
    return out


def test_eio3_refuses_polling_and_unknown_tokens(server):
    r = requests.get(server.url + "/socket.io/?EIO=3&transport=polling", timeout=10)
    assert r.status_code == 400 and "WebSocket only" in r.json()["message"]

    async def bad_token():
        c = EIO3Client(server.url, "wrong-token-xyz")
        with pytest.raises(ConnectionError, match="unauthorized"):
            await c.open()

    asyncio.run(bad_token())

    async def join_vr_then_send():  # the reference server's handshake: join_vr with the recorder's code
        c = EIO3Client(server.url)
        await c.open()
        assert (await c.emit("join_vr", None, RECORDER)) == {"ok": True}
        t = math.floor(time.time())
        ack = await c.emit("send_data", zlib.compress(encode_payload("", [one_second("OR-eio3", t)]).encode()))
        await c.close()
        return ack

    assert asyncio.run(join_vr_then_send())["ok"]


def test_the_page_needs_a_viewer_token_off_loopback(server):
    assert requests.get(server.url + "/", timeout=10).status_code == 200  # 127.0.0.1: open to this machine
    server.service.open_page = False  # as when bound to another interface
    try:
        s = requests.Session()
        for path in ("/", "/api/beds", "/api/beds/OR-http", "/events", "/bed/OR-http", "/static/live.js"):
            assert s.get(server.url + path, timeout=10).status_code == 401, path
        assert s.get(server.url + "/?token=wrong-token", timeout=10).status_code == 401
        r = s.get(server.url + f"/?token={VIEWER}", timeout=10)
        assert r.status_code == 200 and "not a medical device" in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        beds = s.get(server.url + "/api/beds", timeout=10).json()  # the cookie carries the token
        assert "OR-http" in {b["room"] for b in beds["beds"]} and "not a medical device" in beds["notice"]
        assert s.get(server.url + "/api/beds/OR-http", timeout=10).json()["risk"]
        # A recorder token is no viewer token.
        assert requests.get(server.url + f"/?token={RECORDER}", timeout=10).status_code == 401
    finally:
        server.service.open_page = True


def test_no_patient_identifier_reaches_the_log(model, tmp_path):
    srv = start_server(model, tmp_path / "log")
    try:
        t = math.floor(time.time())
        room = one_second("OR-9", t, ptname="DOE^JANE", ptid="PT-123456789", hid="HID-987654321")
        assert post(srv.url, encode_payload(RECORDER, [room])).status_code == 200
        bad = encode_payload(RECORDER, [one_second("OR-9", t + 1, ptname="DOE^JANE")])
        assert post(srv.url, bad[:-3] + "DOE^JANE").status_code == 400
        assert post(srv.url, encode_payload("PT-123456789", [room])).status_code == 401
    finally:
        srv.stop()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "log").rglob("*") if p.is_file() and p.name != "tokens.json")
    assert b"OR-9" in blob
    for ident in (b"DOE", b"JANE", b"123456789", b"987654321"):
        assert ident not in blob


def test_restart_continues_every_bed_without_duplicates_or_gaps(model, recording, tmp_path):
    rec = read_recording(recording, "OR-r")
    shift = live_shift(rec, 1e9, time.time())
    whole = start_server(model, tmp_path / "whole")
    stream(recording, whole.url, "OR-r", shift=shift)
    ref = predictions(whole, "OR-r")
    whole.stop()

    for clean in (True, False):
        log = tmp_path / f"restart-{clean}"
        a = start_server(model, log)
        stream(recording, a.url, "OR-r", shift=shift, stop_s=800)
        before = predictions(a, "OR-r")
        a.stop(clean=clean)
        if not clean:
            assert list((log / "journal").glob("*.jsonl")), "a crash leaves the journal"
        b = start_server(model, log)
        bed = b.service.beds["OR-r"]
        assert bed.next_end == int(before["t_end"].max()) + 10 and bed.alarm.on == bool(before["alarm"].iloc[-1])
        stream(recording, b.url, "OR-r", shift=shift, first_s=800)
        b.stop()
        got = read_log(log, "events", rooms=["OR-r"])
        pred = got[got["kind"] == "prediction"].sort_values("t_end")
        assert not got.duplicated(["room", "time", "kind", "status"]).any()  # the key (room, time) is unique
        assert pred["t_end"].tolist() == ref["t_end"].tolist()  # nothing skipped
        np.testing.assert_allclose(pred[PROBS].to_numpy(np.float64), ref[PROBS].to_numpy(np.float64), atol=1e-5)
        assert pred["alarm"].tolist() == ref["alarm"].tolist()  # the alarm state continued
        assert not list((log / "journal").glob("*.jsonl"))  # every segment written as Parquet
        inputs = read_log(log, "inputs", rooms=["OR-r"])
        assert not inputs.duplicated(["room", "case_start", "t"]).any() and len(inputs) == 1500


def test_a_silent_bed_goes_stale_and_a_reconnecting_recorder_continues(model, recording, tmp_path):
    srv = start_server(model, tmp_path / "log", stale_after_s=2.0)
    try:
        rec = read_recording(recording, "OR-s")
        shift = live_shift(rec, 1e9, time.time())
        stream(recording, srv.url, "OR-s", shift=shift, stop_s=700, transport="socketio")
        beds = {b["room"]: b for b in requests.get(srv.url + "/api/beds", timeout=10).json()["beds"]}
        assert not beds["OR-s"]["stale"]
        time.sleep(2.5)
        beds = {b["room"]: b for b in requests.get(srv.url + "/api/beds", timeout=10).json()["beds"]}
        assert beds["OR-s"]["stale"] and beds["OR-s"]["data_age_s"] > 2
        # The recorder reconnects (a new Socket.IO session) and goes on: the same bed, the same case.
        stream(recording, srv.url, "OR-s", shift=shift, first_s=700, transport="socketio")
        p = predictions(srv, "OR-s")
        assert p["t_end"].tolist() == list(range(59, 1500, 10))
        assert (p["case_start"] == p["case_start"].iloc[0]).all()
    finally:
        srv.stop()


def test_a_new_case_in_a_room_starts_a_new_bed(model, tmp_path):
    srv = start_server(model, tmp_path / "log")
    try:
        t = math.floor(time.time())
        assert post(srv.url, encode_payload(RECORDER, [one_second("OR-c", t)])).status_code == 200
        room = one_second("OR-c", t + 1)
        room["dtcase"] = t + 1  # the recorder started a new case
        assert post(srv.url, encode_payload(RECORDER, [room])).status_code == 200
        assert srv.service.beds["OR-c"].origin == t + 1
        ev = events(srv, "OR-c")
        assert "new case" in set(ev["status"])
    finally:
        srv.stop()


def test_messages_cover_the_recording_in_vitaldbs_format(recording):
    rec = read_recording(recording, "OR-f")
    msgs = list(room_messages(rec, 0.0, stop_s=3))
    assert [m["dtend"] - m["dtstart"] for m in msgs] == [1, 1, 1] and msgs[0]["dtcase"] == rec.dtstart
    names = {t["name"]: t for t in msgs[0]["trks"]}
    assert names["SNUADC/ECG_II"]["type"] == "wav" and names["SNUADC/ECG_II"]["srate"] == 1
    assert all(set(r) == {"dt", "val"} for t in msgs[0]["trks"] for r in t["recs"])
    json.loads(json.dumps(msgs))  # plain JSON types
