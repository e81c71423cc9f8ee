"""The live service: payloads in, beds updated, windows scored, alarms stepped, everything logged and shown.

One :class:`LiveService` owns every bed (so a bed's buffer and its recorder's Socket.IO session never split); the
scoring of windows is handed to a ``score`` coroutine: in ``hypo serve`` a call to the Ray Serve ``Scorer``
deployment, whose replicas batch the forward pass across beds (``serve.batch``); in tests and ``--local`` runs a
:class:`LocalScorer` in this process. Each bed has a queue and a worker, so its predictions step its alarm in
time order while different beds are scored concurrently (and so batched together).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections import Counter
from typing import Any

import numpy as np

from hypo.data.signals import GROUP_NAMES
from hypo.errors import ConfigError
from hypo.infer.alarm_policy import AlarmState, Policy
from hypo.serve.auth import Tokens, is_loopback
from hypo.serve.bed import Bed, full_track_map
from hypo.serve.protocol import MAX_PAYLOAD_BYTES, PayloadRejected, decode_deflated, decode_form
from hypo.serve.scorer import BedScorer, PreparedWindow
from hypo.serve.trial_log import EVENTS, INPUTS, TrialLog, day_of, read_log

SERVING_KEYS = ("model", "sha256", "name", "k", "window_s", "stride_s", "horizon_s", "alarm_horizon_s", "label",
                "nibp_merge_s", "threshold", "m", "hysteresis", "max_gap_s", "policy_notes", "simulated")
RESEARCH_NOTICE = "Research software, not a medical device: for silent trials; do not use for clinical decisions."
# A message none of whose records could be used for these reasons is answered 409: it came too late, too early, or
# again (a recorder resending after a reconnection); nothing in it was used, nothing in it is used twice.
UNUSABLE_NOW = {"late record", "far-future time", "too far ahead of the stream", "before the case start",
                "out of order", "duplicate record", "duplicate samples"}


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Options of ``hypo serve`` (a plain dataclass: it travels to Ray Serve replicas as a dict).

    Attributes:
        model: The exported model.
        log_dir: The silent-trial log folder.
        host: Bind address (the page needs a viewer token unless it is loopback).
        port: HTTP port.
        stride_s: Seconds between a bed's predictions (default: the stride the model's alarm policy was validated
            at, else 10).
        track_map: JSON track map (as for ``.vital`` folders), or None for VitalDB's names.
        tokens: Tokens file, or None for ``LOG/tokens.json``.
        threshold: Alarm threshold (default: the model's, fixed on validation).
        m: Consecutive predictions at or above it that start an alarm (default: the model's policy).
        hysteresis: The alarm ends below threshold - hysteresis (default: the model's policy).
        max_gap_s: Missing predictions for up to this long hold the alarm state (default: the model's policy).
        stale_after_s: A bed without data for this long is shown stale.
        max_clock_skew_s: Records stamped later than the server's clock plus this are refused.
        max_payload_bytes: Largest payload accepted (bytes as received).
        flush_s: Log flush interval (a crash loses at most this).
        segment_s: Seconds of log per Parquet segment.
        scorers: Replicas of the scoring deployment (Ray Serve).
    """

    model: str
    log_dir: str
    host: str = "127.0.0.1"
    port: int = 8000
    stride_s: int | None = None
    track_map: str | None = None
    tokens: str | None = None
    threshold: float | None = None
    m: int | None = None
    hysteresis: float | None = None
    max_gap_s: int | None = None
    stale_after_s: float = 30.0
    max_clock_skew_s: float = 300.0
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    flush_s: float = 0.5
    segment_s: float = 600.0
    scorers: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:  # 0: any free port (tests)
            raise ConfigError(f"--port must be in 1..65535, got {self.port}")
        if self.stale_after_s <= 0 or self.max_clock_skew_s < 0 or self.flush_s <= 0 or self.segment_s <= 0:
            raise ConfigError("--stale-after, --flush and the segment length must be > 0, --max-clock-skew >= 0")
        if self.scorers < 1:
            raise ConfigError(f"--scorers must be >= 1, got {self.scorers}")


def load_track_map_of(cfg: ServeConfig) -> dict | None:
    """The track map a config names (None: VitalDB's names)."""
    if not cfg.track_map:
        return None
    from hypo.data.sources.vital import load_track_map

    return load_track_map(cfg.track_map)


def bed_scorer(cfg: ServeConfig) -> BedScorer:
    """The scorer a config describes (loads the model)."""
    return BedScorer(cfg.model, cfg.stride_s, cfg.threshold, cfg.m, cfg.hysteresis, cfg.max_gap_s)


class LocalScorer:
    """A :class:`BedScorer` in this process with a small batcher (what ``serve.batch`` does in the Scorer replicas).

    Windows that arrive within ``wait_s`` of each other are scored in one forward pass.
    """

    def __init__(self, scorer: BedScorer, max_batch: int = 256, wait_s: float = 0.005) -> None:
        self.scorer, self.max_batch, self.wait_s = scorer, max_batch, wait_s
        self._queue: list[tuple[np.ndarray, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def __call__(self, rows: np.ndarray, end: int, known: np.ndarray | None = None) -> dict[str, Any]:
        """Prepare the window ending at ``end`` and score it with whatever else arrives meanwhile."""
        prep = self.scorer.prepare(rows, end, known)
        if prep.x is None:
            return result_of(prep, None)
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((prep.x, fut))
        if len(self._queue) >= self.max_batch:
            self._run()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._later())
        return result_of(prep, await fut)

    async def _later(self) -> None:
        await asyncio.sleep(self.wait_s)
        self._run()

    def _run(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            probs = self.scorer.predict_proba(np.stack([x for x, _ in batch]))
        except Exception as exc:  # noqa: BLE001 - every waiting bed gets the error
            for _, f in batch:
                f.set_exception(exc)
            return
        for (_, f), p in zip(batch, probs):
            f.set_result(p)


def result_of(prep: PreparedWindow, probs: np.ndarray | None) -> dict[str, Any]:
    """A scoring result as it travels back to the service (plain types)."""
    return {"end": prep.end, "status": "predicted" if probs is not None else prep.status, "detail": prep.detail,
            "probs": None if probs is None else [float(v) for v in probs], "availability": prep.availability}


class LiveService:
    """All beds of one server (see the module docstring).

    Args:
        cfg: The options.
        score: ``await score(rows, end, known)`` -> :func:`result_of` dict.
        describe: What the scorer runs (:meth:`BedScorer.describe`).
        tokens: Who may post and look.
        track_map: The track map (loaded).
    """

    def __init__(self, cfg: ServeConfig, score, describe: dict[str, Any], tokens: Tokens,
                 track_map: dict | None = None) -> None:
        self.cfg = cfg
        self.score = score
        self.model = describe
        self.policy = Policy(describe["threshold"], describe["m"], describe["hysteresis"], describe["max_gap_s"],
                             describe["stride_s"])
        self.window_s, self.stride_s, self.history_s = describe["window_s"], describe["stride_s"], describe["history_s"]
        self.tokens = tokens
        self.open_page = is_loopback(cfg.host)
        self.track_map = full_track_map(track_map)
        self.log = TrialLog(cfg.log_dir, cfg.flush_s, cfg.segment_s)
        self.beds: dict[str, Bed] = {}
        self.queues: dict[str, asyncio.Queue] = {}
        self.subscribers: set[asyncio.Queue] = set()
        self.rejected: Counter = Counter()
        self.dropped: Counter = Counter()
        self.n_payloads = 0
        self.in_flight = 0  # windows queued or being scored
        self._tasks: list[asyncio.Task] = []  # the log's flusher and the page's ticker
        self._workers: list[asyncio.Task] = []  # one per bed
        self._started = False
        self._restored: dict[str, Bed] = {}
        # What "missing" means per group on the overview: no value within the fill rule's reach.
        self.missing_after = {"ecg": 10, "pleth": 10, "nibp": 900, "mac": 300, "bis": 300}

    # -- life cycle ----------------------------------------------------------------------------------------------

    def open(self) -> dict[str, int]:
        """Open the log (writing leftovers of a crash) and restore each bed's state from it; returns counts.

        The log's first row of each run is a note ``serving`` (room ``""``) saying what runs: the model, its
        hash, its label rule and the alarm policy, with where the policy comes from (``hypo evaluate --shadow``
        reads it).
        """
        self.log.open()
        n = self._restore()
        t = time.time()
        self.log.append(EVENTS, {"room": "", "time": t, "kind": "note", "status": "serving", "logged_at": t,
                                 "detail": json.dumps({k: self.model.get(k) for k in SERVING_KEYS}),
                                 "threshold": self.policy.threshold})
        return {"beds_restored": n}

    def ensure_started(self) -> None:
        """Start the background tasks (log flushing, the page's ticker) on the running event loop, once."""
        if self._started:
            return
        self._started = True
        self._tasks = [asyncio.ensure_future(self._flush_loop()), asyncio.ensure_future(self._tick_loop())]
        for room in list(self._restored):
            self._start_bed(self._restored.pop(room))

    async def close(self) -> None:
        """Finish queued windows, stop the tasks and close the log (written as Parquet)."""
        for q in list(self.queues.values()):
            await q.put(None)
        await asyncio.gather(*self._workers, return_exceptions=True)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks, self._workers = [], []
        self.log.close()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.flush_s)
            await asyncio.to_thread(self.log.write_lines, self.log.take())  # fsync off the event loop
            if self.log.rotation_due():
                path = self.log.rotate()
                if path:
                    await asyncio.to_thread(self.log.write_segment, path)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.publish({"type": "overview", **self.overview()})

    # -- input ---------------------------------------------------------------------------------------------------

    def authorize(self, credential: str | None) -> str | None:
        """The recorder a connection-level credential names, None when none was given.

        Raises:
            PayloadRejected: ``unauthorized`` (401) for a credential that is no recorder's.
        """
        if not credential:
            return None
        name = self.tokens.recorder(credential)
        if name is None:
            raise PayloadRejected("unauthorized", "unknown recorder token", 401)
        return name

    def ingest(self, body: bytes | str, transport: str, credential: str | None = None) -> dict[str, Any]:
        """Take one payload (``http``: the form body; ``socketio``: the deflated JSON) and apply it.

        Returns:
            ``{"ok": True, "rooms", "used", "dropped"}``.

        Raises:
            PayloadRejected: The payload as a whole was refused (counted and logged with its reason).
        """
        self.ensure_started()
        arrival = time.time()
        recorder, payload = None, None
        try:
            recorder = self.authorize(credential)
            decode = decode_form if transport == "http" else decode_deflated
            payload = decode(body, self.cfg.max_payload_bytes)
            if recorder is None:
                recorder = self.tokens.recorder(payload.vrcode)
                if recorder is None:
                    raise PayloadRejected("unauthorized", "no registered recorder token (the payload's vrcode, or an "
                                                          "Authorization: Bearer token)", 401)
            out = self._apply(payload, arrival, recorder, transport)
        except PayloadRejected as exc:
            rooms = [r.room for r in payload.rooms] if payload is not None and recorder is not None else [""]
            self.reject(exc, arrival, rooms or [""], recorder, transport, len(body))
            raise
        self.n_payloads += 1
        return out

    def reject(self, exc: PayloadRejected, arrival: float, rooms: list[str], recorder: str | None, transport: str,
               n_bytes: int) -> None:
        """Count and log a refused payload (its reason, sender and size; never its content)."""
        self.rejected[exc.reason] += 1
        for room in rooms:
            self.log.append(EVENTS, {"room": room, "time": arrival, "kind": "rejected", "status": exc.reason,
                                     "detail": exc.detail, "recorder": recorder, "transport": transport,
                                     "n_bytes": n_bytes, "logged_at": arrival})

    def _bed_for(self, room: str, dtcase: float, dtstart: float, arrival: float) -> Bed:
        bed = self.beds.get(room)
        origin = dtcase if math.isfinite(dtcase) else None
        if bed is not None and (origin is None or abs(origin - bed.origin) < 0.5):
            return bed
        if origin is None:  # no case start given: the grid starts at the first whole second seen
            origin = math.floor(dtstart) if math.isfinite(dtstart) else math.floor(arrival)
        start = max(0, int(math.floor(dtstart - origin))) if math.isfinite(dtstart) else 0
        new = Bed(room, origin, self.track_map, self.window_s, self.stride_s, self.history_s, start_s=start)
        if bed is not None:
            self._note(room, arrival, "new case", f"case start moved from {bed.origin:.0f} to {origin:.0f}")
            q = self.queues.pop(room, None)
            if q is not None:
                q.put_nowait(None)  # the old case's worker finishes its queue, then stops
        self._start_bed(new)
        return new

    def _start_bed(self, bed: Bed) -> None:
        self.beds[bed.room] = bed
        q: asyncio.Queue = asyncio.Queue()
        self.queues[bed.room] = q
        self._workers = [t for t in self._workers if not t.done()]
        self._workers.append(asyncio.ensure_future(self._worker(bed, q)))

    def _apply(self, payload, arrival: float, recorder: str, transport: str) -> dict[str, Any]:
        used, dropped, on_beds = 0, Counter(payload.dropped), Counter()
        max_time = arrival + self.cfg.max_clock_skew_s
        for msg in payload.rooms:
            bed = self._bed_for(msg.room, msg.dtcase, msg.dtstart, arrival)
            acc = bed.accept(msg, arrival, max_time)
            used += acc.used
            dropped.update(acc.dropped)
            on_beds.update(acc.dropped)
            for name in acc.unknown:
                self._note(msg.room, arrival, "unknown track", f"{name}: no signal of the track map uses it")
            for name, why in acc.refused.items():
                self._note(msg.room, arrival, "wrong units", f"{name} refused: {why}")
            for fin in acc.finals:
                if len(fin.seconds):
                    self.log.append_inputs(msg.room, bed.origin, fin.seconds, fin.rows)
            for reason, n in (acc.dropped + msg.dropped).items():
                self.log.append(EVENTS, {"room": msg.room, "time": arrival, "kind": "dropped", "status": reason,
                                         "count": n, "recorder": recorder, "transport": transport,
                                         "logged_at": arrival})
            q = self.queues[msg.room]
            for end, rows, known in acc.due:
                q.put_nowait((end, rows, known, arrival))
                self.in_flight += 1
        unnamed = payload.dropped.get("room without roomname")
        if unnamed:
            self.log.append(EVENTS, {"room": "", "time": arrival, "kind": "dropped", "status": "room without roomname",
                                     "count": unnamed, "recorder": recorder, "transport": transport,
                                     "logged_at": arrival})
        self.dropped.update(dropped)
        if payload.rooms and used == 0 and on_beds and set(on_beds) <= UNUSABLE_NOW:
            raise PayloadRejected(max(on_beds, key=on_beds.get), "no record could be used: "
                                  + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())), 409)
        return {"ok": True, "rooms": len(payload.rooms), "used": used, "dropped": dict(dropped)}

    def _note(self, room: str, t: float, status: str, detail: str) -> None:
        self.log.append(EVENTS, {"room": room, "time": t, "kind": "note", "status": status, "detail": detail,
                                 "logged_at": t})

    # -- scoring -------------------------------------------------------------------------------------------------

    async def _worker(self, bed: Bed, q: asyncio.Queue) -> None:
        while True:
            item = await q.get()
            if item is None:
                return
            end, rows, known, arrival = item
            try:
                res = await self.score(rows, end, known)
            except Exception as exc:  # noqa: BLE001 - a failing scorer gives no prediction, the bed goes on
                res = {"end": end, "status": "error", "detail": f"{type(exc).__name__}: {exc}"[:300], "probs": None,
                       "availability": {}}
            try:
                self._record(bed, res, arrival)
            finally:
                self.in_flight -= 1

    def _record(self, bed: Bed, res: dict[str, Any], arrival: float) -> None:
        probs = res["probs"]
        p = probs[1] if probs is not None else math.nan
        changed = bed.apply(res["end"], p, self.policy, res["status"], res["detail"])
        now = time.time()
        t = bed.origin + res["end"]
        cuff_map, cuff_age = bed.last_cuff()
        avail = res.get("availability") or {}
        row = {"room": bed.room, "time": t, "kind": "prediction", "case_start": bed.origin, "t_end": res["end"],
               "status": res["status"], "detail": res["detail"],
               "p_normal": probs[0] if probs else math.nan, "p_hypotension": p,
               "p_hypertension": probs[2] if probs else math.nan, "threshold": self.policy.threshold,
               **{f"avail_{g}": avail.get(g, math.nan) for g in GROUP_NAMES},
               "last_map": cuff_map, "last_map_age_s": cuff_age, "alarm": bed.alarm.on, "alarm_run": bed.alarm.run,
               "delay_s": now - arrival, "logged_at": now}
        self.log.append(EVENTS, row)
        if changed:
            kind = "alarm_on" if bed.alarm.on else "alarm_off"
            self.log.append(EVENTS, {"room": bed.room, "time": t, "kind": kind, "case_start": bed.origin,
                                     "t_end": res["end"], "p_hypotension": p, "threshold": self.policy.threshold,
                                     "alarm": bed.alarm.on, "alarm_run": bed.alarm.run, "logged_at": now})
            self.publish({"type": "alarm", "room": bed.room, "alarm": bed.alarm.on, "t_end": res["end"],
                          "time": now, "bed": bed.summary(now, self.cfg.stale_after_s, self.missing_after)})
        self.publish({"type": "prediction", "room": bed.room, "t_end": res["end"], "p_hypotension": _num(p),
                      "alarm": bed.alarm.on})

    # -- restart -------------------------------------------------------------------------------------------------

    def _restore(self) -> int:
        """Rebuild each bed from the log's recent days: its last scored window, alarm and recent seconds.

        And what is known of its case: the causal pipeline's counts of every logged second.
        """
        from hypo.data.signals import SIGNALS
        from hypo.infer.causal import tally_rows

        today = time.time()
        days = [day_of(today - 86400 * k) for k in range(3)]
        ev = read_log(self.cfg.log_dir, EVENTS, days=days)
        pred = ev[ev["kind"] == "prediction"]
        if pred.empty:
            return 0
        inputs = read_log(self.cfg.log_dir, INPUTS, days=days)
        n = 0
        for room, g in pred.groupby("room"):
            g = g.sort_values("time")
            last = g.iloc[-1]
            origin = float(last["case_start"])
            g = g[np.isclose(g["case_start"].astype(float), origin)]
            end = int(last["t_end"])
            bed = Bed(str(room), origin, self.track_map, self.window_s, self.stride_s, self.history_s,
                      start_s=end + 1 - self.window_s)
            rows = inputs[(inputs["room"] == room) & np.isclose(inputs["case_start"].astype(float), origin)]
            rows = rows.sort_values("t").drop_duplicates("t", keep="last")
            secs = rows["t"].to_numpy(np.int64)
            vals = rows[list(SIGNALS)].to_numpy(np.float32)
            done = max(end + 1, int(secs.max()) + 1 if len(secs) else 0)
            known = tally_rows(vals[secs < done]).sum(axis=0)
            recent = secs > end - self.history_s
            risk = [(int(e), float(p), bool(a)) for e, p, a in
                    zip(g["t_end"], g["p_hypotension"], g["alarm"]) if e > end - 3600]
            p = g["p_hypotension"].to_numpy(np.float64)
            seen = np.isfinite(p)
            gap = len(p) - 1 - int(np.flatnonzero(seen)[-1]) if seen.any() else len(p)
            state = AlarmState(bool(last["alarm"]), int(last["alarm_run"]), bool(seen.any()), gap)
            bed.restore(end, state, secs[recent], vals[recent], done, risk, known)
            self._restored[bed.room] = bed
            self.beds[bed.room] = bed
            n += 1
        return n

    # -- output --------------------------------------------------------------------------------------------------

    def publish(self, event: dict[str, Any]) -> None:
        """Send an event to every live page (a page too slow to keep up misses events, never blocks the server)."""
        for q in list(self.subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                pass

    def subscribe(self) -> asyncio.Queue:
        """A queue of events for one page (remove it with :meth:`unsubscribe`)."""
        q: asyncio.Queue = asyncio.Queue(maxsize=256)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        """Stop sending events to ``q``."""
        self.subscribers.discard(q)

    def overview(self) -> dict[str, Any]:
        """Every bed's summary, the model and the notice."""
        now = time.time()
        return {"now": now, "notice": RESEARCH_NOTICE, "model": self.model, "stale_after_s": self.cfg.stale_after_s,
                "beds": [self.beds[r].summary(now, self.cfg.stale_after_s, self.missing_after)
                         for r in sorted(self.beds)]}

    def bed_view(self, room: str) -> dict[str, Any] | None:
        """One bed's last hour (None for an unknown room)."""
        bed = self.beds.get(room)
        if bed is None:
            return None
        now = time.time()
        return {"notice": RESEARCH_NOTICE, "threshold": self.policy.threshold, "stride_s": self.stride_s,
                **bed.view(), "summary": bed.summary(now, self.cfg.stale_after_s, self.missing_after)}

    def health(self) -> dict[str, Any]:
        """Counts for monitoring: payloads, rejections and dropped records by reason, beds."""
        return {"payloads": self.n_payloads, "rejected": dict(self.rejected), "dropped": dict(self.dropped),
                "beds": len(self.beds), "in_flight": self.in_flight}


def _num(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
