"""A tiny in-test source with planted bad cases, so the pipeline's rejections can be checked exactly."""

from __future__ import annotations

import numpy as np

from hypo.config import fingerprint
from hypo.data.signals import BIS, DBP, ECG, MAC, MBP, N_SIGNALS, PLETH, SBP
from hypo.data.sources.base import Case
from hypo.errors import CaseRejected


def synthetic_case(caseid: int, seconds: int = 3600, seed: int = 0, max_gap: int = 300) -> np.ndarray:
    """A plausible case array: waveforms every second, cuff readings every 150-``max_gap`` s, a cuff zero."""
    rng = np.random.default_rng([seed, caseid])
    t = np.arange(seconds)
    sig = np.full((seconds, N_SIGNALS), np.nan, dtype=np.float32)
    sig[:, ECG] = np.sin(t * 1.3) + rng.normal(0, 0.05, seconds)
    sig[:, PLETH] = 50 + 20 * np.sin(t * 1.1)
    sig[::5, MAC] = 0.8 + rng.normal(0, 0.05, len(sig[::5]))
    sig[::2, BIS] = 45 + rng.normal(0, 3, len(sig[::2]))
    times = np.cumsum(rng.integers(150, max_gap, size=seconds // 150))
    times = times[times < seconds]
    mapv = rng.uniform(55, 110, len(times))
    sig[times, MBP] = mapv
    sig[times, SBP] = mapv + rng.uniform(25, 70, len(times))
    sig[times, DBP] = mapv - rng.uniform(10, 20, len(times))
    sig[times[3], [SBP, MBP, DBP]] = 0  # one cuff zero
    return sig


class FakeSource:
    """Cases 1..n are good; caseids listed in ``bad`` misbehave in the named way."""

    name = "fake"

    def __init__(self, n: int, bad: dict[str, str] | None = None, seconds: int = 3600, max_gap: int = 300):
        self.n, self.bad, self.seconds, self.max_gap = n, dict(bad or {}), seconds, max_gap

    def case_refs(self):
        return [{"caseid": str(i), "subject": str(i % max(self.n - 2, 1))} for i in range(1, self.n + 1)]

    def load_case(self, ref):
        cid = ref["caseid"]
        kind = self.bad.get(cid)
        sig = synthetic_case(int(cid), self.seconds, max_gap=self.max_gap)
        if kind == "short":
            sig = sig[:600]
        elif kind == "nan":
            sig[:, BIS] = np.nan
        elif kind == "missing":
            raise CaseRejected("missing track", f"case {cid}: no Primus/MAC")
        elif kind == "boom":
            raise RuntimeError("simulated bug")
        return Case(cid, ref["subject"], sig)

    def fingerprint(self):
        return fingerprint({"n": self.n, "bad": self.bad, "seconds": self.seconds, "max_gap": self.max_gap})

    def report(self):
        return {"n_cases": self.n}


class TracedSource(FakeSource):
    """A :class:`FakeSource` whose cases take ``delay_s`` to load and leave ``trace/<caseid>.<node id>`` behind.

    For the tests that take a node away while the preprocessing job runs: the trace says where each case went.
    Neither setting changes the windows (the fingerprint is the plain source's).
    """

    def __init__(self, n: int, delay_s: float = 0.0, trace: str | None = None, **kw):
        super().__init__(n, **kw)
        self.delay_s, self.trace = delay_s, trace

    def load_case(self, ref):
        import os
        import time

        if self.trace:
            import ray

            open(os.path.join(self.trace, f"{ref['caseid']}.{ray.get_runtime_context().get_node_id()}"), "w").close()
        time.sleep(self.delay_s)
        return super().load_case(ref)
