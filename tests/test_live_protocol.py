"""Vital Recorder's live payloads (tests/data/live): the HTTP form, the deflated Socket.IO argument, nan tokens,
control characters, bad values, and every refusal of a payload as a whole."""

import math
import urllib.parse
import zlib
from pathlib import Path

import numpy as np
import pytest

from hypo.serve.bed import TrackResolver, full_track_map, matches
from hypo.serve.eio3 import parse_sio
from hypo.serve.protocol import PayloadRejected, decode_deflated, decode_form, encode_payload, parse_json

LIVE = Path(__file__).parent / "data" / "live"


def text(name):
    return (LIVE / name).read_text()


def test_recorder_payload_from_the_form_field_data():
    body = urllib.parse.urlencode({"data": text("recorder_one_second.json")}).encode()
    p = decode_form(body)
    assert p.vrcode == "VRTEST001" and len(p.rooms) == 1 and not p.dropped
    room = p.rooms[0]
    assert room.room == "OR 1" and room.dtend - room.dtstart == 1 and room.dtcase == room.dtstart - 3600
    trk = {t.name: t for t in room.tracks}
    assert set(trk) == {"SNUADC/ECG_II", "SNUADC/PLETH", "Solar8000/NIBP_SBP", "Solar8000/NIBP_MBP",
                        "Solar8000/NIBP_DBP", "Primus/MAC", "BIS/BIS", "Solar8000/HR", "Primus/AGENT1_NAME"}
    ecg = trk["SNUADC/ECG_II"]
    assert ecg.kind == "wav" and ecg.srate == 100 and ecg.unit == "mV"
    (dt, samples), = ecg.recs
    assert dt == room.dtstart and samples.shape == (100,) and np.isnan(samples).sum() == 2  # nan and -nan tokens
    assert trk["Solar8000/NIBP_SBP"].recs == ((room.dtstart + 0.4, 118.0),)  # device from "dname"
    assert math.isnan(trk["BIS/BIS"].recs[0][1])  # a bare nan number: a missing value, kept as vitaldb keeps it
    assert trk["Primus/AGENT1_NAME"].kind == "str" and trk["Primus/AGENT1_NAME"].recs[0][1] == "SEVO"


def test_deflated_send_data_with_a_trailing_nul_equals_the_form():
    blob = (LIVE / "recorder_one_second.zlib").read_bytes()
    a = decode_deflated(blob)
    b = parse_json(text("recorder_one_second.json"))
    assert a.nbytes == len(blob)
    for ta, tb in zip(a.rooms[0].tracks, b.rooms[0].tracks):
        assert (ta.name, ta.kind, ta.srate, ta.unit) == (tb.name, tb.kind, tb.srate, tb.unit)
        for (da, va), (db, vb) in zip(ta.recs, tb.recs):
            assert da == db
            np.testing.assert_array_equal(va, vb) if ta.kind == "wav" else None
    # A text argument (a sender that does not compress) is the JSON itself.
    assert decode_deflated(text("two_rooms.json")).rooms[1].room == "OR 2"


def test_two_rooms_and_numeric_type_codes():
    p = parse_json(text("two_rooms.json"))
    assert [r.room for r in p.rooms] == ["OR 1", "OR 2"]
    assert p.rooms[1].tracks[1].kind == "num" and p.rooms[1].tracks[1].recs == ((p.rooms[1].dtstart + 0.5, 59.5),)


def test_bad_values_are_dropped_and_counted_the_rest_is_used():
    p = parse_json(text("bad_values.json"))
    assert p.dropped == {"non-numeric value": 3, "record without a time": 1, "wave track without a sampling rate": 1,
                         "track without name": 1, "track of unknown type": 1, "room without roomname": 1}
    (room,) = p.rooms
    (mbp,) = [t for t in room.tracks if t.name == "Solar8000/NIBP_MBP"]
    assert mbp.recs == ((room.dtstart + 0.3, 77.0),)


def test_nan_tokens_inside_strings_are_left_alone_and_control_characters_go():
    p = parse_json('{"rooms":[{"roomname":"nan\x07 room","trks":[{"name":"A/nan","type":"num","recs":'
                   '[{"dt":1,"val":NaN},{"dt":2,"val":-inf},{"dt":3,"val":Infinity}]}]}]}\x00')
    room = p.rooms[0]
    assert room.room == "nan room" and room.tracks[0].name == "A/nan"
    vals = [v for _, v in room.tracks[0].recs]
    assert math.isnan(vals[0]) and vals[1] == -math.inf and vals[2] == math.inf
    # What the project's sender writes reads back, NaN included, and "NaN" in a name survives.
    t = encode_payload("tok", [{"roomname": "NaN ward", "trks": [{"name": "X", "type": "num",
                                                                   "recs": [{"dt": 1, "val": float("nan")}]}]}])
    assert '"NaN ward"' in t and ":nan}" in t
    assert parse_json(t).rooms[0].room == "NaN ward"


@pytest.mark.parametrize("body, reason, status", [
    (b"{not json", "malformed json", 400),
    (b'["a list"]', "not a vital recorder payload", 400),
    (b'{"vrcode": "x"}', "not a vital recorder payload", 400),
])
def test_malformed_payloads_are_refused_with_a_reason(body, reason, status):
    for decode in (lambda b: decode_deflated(zlib.compress(b)),
                   lambda b: decode_form(urllib.parse.urlencode({"data": b.decode()}).encode())):
        with pytest.raises(PayloadRejected) as exc:
            decode(body)
        assert (exc.value.reason, exc.value.status) == (reason, status)


def test_bad_zlib_truncated_stream_missing_field_and_size_limits():
    blob = (LIVE / "recorder_one_second.zlib").read_bytes()
    for bad, reason in ((b"\x78\x9cnot deflate", "bad zlib stream"), (blob[:-20], "bad zlib stream")):
        with pytest.raises(PayloadRejected) as exc:
            decode_deflated(bad)
        assert exc.value.reason == reason and exc.value.status == 400
    with pytest.raises(PayloadRejected) as exc:
        decode_form(b"other=1")
    assert exc.value.reason == "no data field"
    with pytest.raises(PayloadRejected) as exc:
        decode_deflated(b"\0" * 2000, limit=1000)
    assert (exc.value.reason, exc.value.status) == ("payload too large", 413)
    bomb = zlib.compress(b"{" + b" " * (5 << 20) + b"}")  # 5 MB of blanks deflate to a few kB
    assert len(bomb) < 10_000
    with pytest.raises(PayloadRejected) as exc:
        decode_deflated(bomb, inflated_limit=1 << 20)
    assert exc.value.reason == "payload too large"


def test_track_names_match_as_vitaldb_matches_them():
    assert matches("Solar8000/NIBP_MBP", "Solar8000/NIBP_MBP")
    assert matches("Solar8000/NIBP_MBP", "NIBP_MBP")  # vitaldb: the file's name ends with the candidate
    assert matches("NIBP_MBP", "Solar8000/NIBP_MBP")  # a live track sent without its device
    assert not matches("Philips/NIBP_MBP", "Solar8000/NIBP_MBP")
    res = TrackResolver(full_track_map({"nibp_mbp": ["Intellivue/NIBP_MEAN", "Solar8000/NIBP_MBP"]}))
    got = res.resolve([("Solar8000/NIBP_MBP", "mmHg"), ("Intellivue/NIBP_MEAN", "mmHg"), ("Solar8000/HR", "/min")])
    assert got == {"Solar8000/NIBP_MBP": None, "Intellivue/NIBP_MEAN": "nibp_mbp", "Solar8000/HR": None}
    # Units are checked as the .vital reader checks them: a cuff in kPa is refused, the choice stays open.
    res = TrackResolver(full_track_map(None))
    assert res.resolve([("Solar8000/NIBP_SBP", "kPa")]) == {"Solar8000/NIBP_SBP": None}
    assert "kPa" in res.refused["Solar8000/NIBP_SBP"] and "nibp_sbp" not in res.chosen


def test_socketio4_packets_of_the_older_generation():
    assert parse_sio('2["join_vr","VR1"]') == {"type": 2, "attachments": 0, "nsp": "/", "id": None,
                                               "data": ["join_vr", "VR1"]}
    pkt = parse_sio('51-7["send_data",{"_placeholder":true,"num":0}]')
    assert (pkt["type"], pkt["attachments"], pkt["id"]) == (5, 1, 7)
    assert parse_sio('0/admin,')["nsp"] == "/admin"
