"""The embedded demo cohort: a seeded simulator of VitalDB-like surgical cases.

Everything this module yields is **simulated**. It exists so that the whole pipeline (preprocessing, search,
evaluation) runs without downloading anything; no figure computed on it says anything about clinical performance.

What it imitates (one row per second, :data:`hypo.data.signals.SIGNALS` order, NaN where nothing was recorded):

- NIBP: a cuff reading every 2.5-5 min (sometimes a gap over 6 min), SBP > MAP > DBP, NaN in between.
- MAC and BIS: numerics every few seconds, with gaps; ECG and PLETH: one point-sample of the cardiac cycle
  per second (as in VitalDB's 1-s export), with short dropouts.
- Case durations follow the quantiles of the VitalDB clinical table; about 4.7% of cases repeat a subject.
- A latent MAP with an induction dip, hypotension episodes ended by a simulated vasopressor (sometimes
  overshooting) and hypertension episodes. Most episodes are foreshadowed 5-10 min ahead in the other signals:
  deepening anaesthesia (MAC up, BIS down, smaller pleth pulse) before hypotension, lightening (BIS up, MAC down,
  faster heart, vasoconstriction) before hypertension. Some precursors lead nowhere and some episodes come
  unannounced, so the task is learnable but not trivial.
- Artefacts at low rates: cuff zeros, MAP spikes, SBP/DBP swaps, BIS outside 0-100, negative MAC, dropped segments.
- An invasive arterial line in about 60% of cases (``Case.art``; as in VitalDB, where 3,463 of 6,388 cases list
  one): the latent MAP and pulse pressure with beat-to-beat noise, numerics every ~2 s from placement (around
  induction) to removal, with zeroing, flushes (a square jump to ~300 mmHg), short spikes, damping episodes
  (narrowed pulse pressure) and blocked-line dropouts. It comes from its own random stream, after everything
  else, so the seven signals are exactly what they were before the simulator had an arterial line.

A case depends only on ``(seed, caseid)``: ``DemoSource(500)`` is exactly the first 500 cases of
``DemoSource(5064)``. ``site="b"`` simulates a second hospital for external validation (another monitor, cuff
values stamped apart, another cuff interval, an older and sicker mix, TIVA cases without MAC; see
:mod:`hypo.data.sources.demo_sites`) from its own random streams; site A, the default, is unchanged. Example::

    source = DemoSource(n_cases=200, seed=0)
    case = source.load_case({"caseid": "7"})   # case.signals: float32 [seconds, 7]
    site_b = DemoSource(n_cases=200, site="b")
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from hypo.config import fingerprint as hash_obj
from hypo.data.art import ART_VITALDB_TRACKS, ArterialLine
from hypo.data.signals import BIS, DBP, ECG, MAC, MBP, N_SIGNALS, NIBP, PLETH, SBP, VITALDB_TRACKS
from hypo.data.sources.base import Case
from hypo.data.sources.demo_sites import SITE_B, PatientMix, SiteProfile
from hypo.data.sources.spec import SourceSpec
from hypo.errors import CaseRejected, ConfigError

SIMULATOR_VERSION = "demo-sim-1"  # the seven signals; unchanged by the arterial line (its own stream)
ART_SIMULATOR_VERSION = "demo-art-1"
NOT_CLINICAL = "simulated cases from the embedded demo simulator; not clinical data, not clinical performance"

# VitalDB clinical table: case duration quantiles (hours) at these probabilities.
DURATION_PROBS = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 1.0)
DURATION_HOURS = (0.456, 0.733, 1.035, 1.224, 1.721, 2.757, 4.187, 5.603, 6.614, 8.803, 17.36)
# 6,388 cases from 6,090 subjects: a case reuses the subject of a uniformly chosen earlier case with this probability.
REPEAT_P = 1.0 - 6090 / 6388
SUBJECT_ID_BASE = 100_000  # subject ids are numbered apart from case ids so that mixing them up shows

# Independent random streams per (seed, caseid); the subject stream is keyed by the subject's first case.
_STREAM_CASE, _STREAM_DURATION, _STREAM_SUBJECT, _STREAM_PATIENT, _STREAM_ART, _STREAM_SITE = 0, 1, 2, 3, 4, 5

# Cuff: seconds between readings; a long gap with this probability.
NIBP_INTERVAL_S = (150, 300)
NIBP_LONG_GAP_S = (361, 900)
NIBP_LONG_GAP_P = 0.06
SYSTOLIC_SHARE = 0.65  # SBP = MAP + 0.65 PP, DBP = MAP - 0.35 PP
# Numerics: seconds between samples (inclusive-exclusive integers).
MAC_INTERVAL_S = (2, 8)
BIS_INTERVAL_S = (1, 6)

# Episodes per hour of maintenance, and their shape (seconds).
P_INDUCTION_HYPO = 0.45
HYPO_PER_H = 0.5
HYPER_PER_H = 0.55
FALSE_PRECURSOR_PER_H = 0.35
P_SILENT = 0.2  # an episode without a precursor
LEAD_S = (300, 600)  # precursor starts this long before the blood pressure moves
HYPO_DURATION_S = (300, 1500)
HYPER_DURATION_S = (240, 900)
P_OVERSHOOT = 0.3

# Artefact rates: per cuff reading, and events per hour.
P_CUFF_ZERO, P_MAP_SPIKE, P_SWAP = 0.006, 0.004, 0.004
BIS_BAD_PER_H, MAC_NEG_PER_H = 1.0, 0.5
SHORT_DROPOUT_PER_H, SEGMENT_DROP_PER_H = 4.0, 0.3

# Arterial line: share of cases with one, numeric interval (s), and its artefacts (events per hour, seconds).
P_ART_LINE = 0.6
ART_INTERVAL_S = 2.0
ART_PP_GAIN = 1.15  # invasive pulse pressure runs a little wider than the cuff's
ART_NOISE_MMHG = 2.0
ART_FLUSH_PER_H, ART_FLUSH_S, FLUSH_MMHG = 0.8, (4, 12), 300.0
ART_ZERO_PER_H, ART_ZERO_S = 0.2, (10, 40)
ART_SPIKE_PER_H = 1.0
ART_DAMP_PER_H, ART_DAMP_S = 0.4, (120, 900)
ART_DROPOUT_PER_H, ART_DROPOUT_S = 1.0, (10, 180)


# Site A: the simulator as it always was (its values are the constants above); site B: hypo.data.sources.demo_sites.
SITE_A = SiteProfile(
    name="a", simulator_version=SIMULATOR_VERSION, stream_key=None, subject_id_base=SUBJECT_ID_BASE,
    nibp_interval_s=NIBP_INTERVAL_S, nibp_long_gap_s=NIBP_LONG_GAP_S, nibp_long_gap_p=NIBP_LONG_GAP_P,
    nibp_stagger_p=0.0, nibp_stagger_s=0, p_tiva=0.0, p_induction_hypo=P_INDUCTION_HYPO, hypo_per_h=HYPO_PER_H,
    hyper_per_h=HYPER_PER_H, patient=PatientMix(map=(86.0, 8.0, 70.0, 108.0), pp=(48.0, 8.0, 30.0, 70.0),
                                                hr=(72.0, 10.0, 50.0, 100.0)),
    tracks=VITALDB_TRACKS, art_tracks=ART_VITALDB_TRACKS,
    description="simulated site A: the default demo cohort (VitalDB track names, a cuff every 2.5-5 min)",
)
SITES: dict[str, SiteProfile] = {"a": SITE_A, "b": SITE_B}


def site_profile(site: str) -> SiteProfile:
    """The profile of simulated site ``site`` (``"a"`` or ``"b"``).

    Raises:
        ConfigError: On an unknown site.
    """
    if site not in SITES:
        raise ConfigError(f"demo source: unknown site {site!r}; one of {', '.join(SITES)}")
    return SITES[site]


def _rng(seed: int, caseid: int, stream: int, site: SiteProfile = SITE_A) -> np.random.Generator:
    key = [int(seed), int(caseid), stream]
    return np.random.default_rng(key if site.stream_key is None else [*key, int(site.stream_key)])


def case_duration_s(caseid: int, seed: int = 0, site: str = "a") -> int:
    """Duration of a simulated case, drawn from the VitalDB duration quantiles (piecewise-linear inverse CDF).

    Args:
        caseid: Case number (1-based).
        seed: Simulator seed.
        site: Simulated site (``"a"``, the default cohort, or ``"b"``).

    Returns:
        Seconds.
    """
    u = _rng(seed, caseid, _STREAM_DURATION, site_profile(site)).random()
    return int(round(float(np.interp(u, DURATION_PROBS, DURATION_HOURS)) * 3600))


def _subject_root(caseid: int, seed: int, site: SiteProfile = SITE_A) -> int:
    """First case of the subject of ``caseid``: follow 'reuses the subject of case j < i' links back."""
    i = int(caseid)
    while i > 1:
        rng = _rng(seed, i, _STREAM_SUBJECT, site)
        if rng.random() >= REPEAT_P:
            break
        i = int(rng.integers(1, i))
    return i


def case_subjectid(caseid: int, seed: int = 0, site: str = "a") -> str:
    """Subject id of a simulated case (cheap: no signals are simulated).

    Args:
        caseid: Case number (1-based).
        seed: Simulator seed.
        site: Simulated site; each site numbers its subjects apart (site A 100000 + n, site B 200000 + n).

    Returns:
        A decimal string, shared by every case of the same simulated subject.
    """
    prof = site_profile(site)
    return str(prof.subject_id_base + _subject_root(caseid, seed, prof))


@functools.cache
def _beat_templates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One cardiac cycle on a phase grid [0, 1): ECG (mV at unit R wave) and pleth (0-1)."""
    ph = np.linspace(0.0, 1.0, 256, endpoint=False)

    def bump(a: float, mu: float, w: float) -> np.ndarray:
        return a * np.exp(-0.5 * ((ph - mu) / w) ** 2)

    ecg = bump(0.12, 0.15, 0.025) + bump(-0.12, 0.235, 0.008) + bump(1.0, 0.25, 0.01)
    ecg += bump(-0.25, 0.27, 0.01) + bump(0.3, 0.5, 0.045)
    pleth = bump(1.0, 0.42, 0.07) + bump(0.35, 0.65, 0.07)
    pleth = (pleth - pleth.min()) / (pleth.max() - pleth.min())
    return ph, ecg, pleth


def _slow(rng: np.random.Generator, t: np.ndarray, sd: float, step: float) -> np.ndarray:
    """Slow drift: piecewise-linear through normal knots every ``step`` seconds."""
    knots = np.arange(0.0, t[-1] + step + 1, step)
    return np.interp(t, knots, rng.normal(0.0, sd, len(knots)))


def _sample_times(rng: np.random.Generator, n: int, lo: int, hi: int, start: int = 0) -> np.ndarray:
    """Seconds at which a numeric is recorded: gaps drawn from ``lo..hi-1``, from ``start`` on."""
    times = start + np.cumsum(rng.integers(lo, hi, size=n // lo + 2))
    return times[times < n]


def _cuff_times(rng: np.random.Generator, n: int, site: SiteProfile = SITE_A) -> np.ndarray:
    gaps = rng.integers(*site.nibp_interval_s, size=n // site.nibp_interval_s[0] + 2, endpoint=True)
    long = rng.random(len(gaps)) < site.nibp_long_gap_p
    gaps[long] = rng.integers(*site.nibp_long_gap_s, size=int(long.sum()), endpoint=True)
    times = int(rng.integers(10, 120)) + np.concatenate(([0], np.cumsum(gaps)))
    return times[times < n]


def _add(arr: np.ndarray, t: np.ndarray, knots: list[float], values: list[float], op: Any = np.add) -> None:
    """Combine a piecewise-linear bump (zero outside ``knots``) into ``arr`` over the seconds it covers."""
    lo, hi = max(int(knots[0]), 0), min(int(knots[-1]) + 1, len(arr))
    if hi > lo:
        op(arr[lo:hi], np.interp(t[lo:hi], knots, values), out=arr[lo:hi])


def _episodes(rng: np.random.Generator, t_ind: float, t_maint: float, t_emerge: float,
              site: SiteProfile = SITE_A) -> list[tuple]:
    """Onsets of the case's events: (kind, onset_s, duration_s, with_precursor); kind 'hypo', 'hyper' or 'false'."""
    hours = max(t_emerge - t_maint, 0.0) / 3600
    events = []
    if rng.random() < site.p_induction_hypo:  # the induction itself is the precursor
        events.append(("hypo", t_ind + rng.uniform(300, 720), rng.uniform(*HYPO_DURATION_S), False))
    for kind, rate, dur in (("hypo", site.hypo_per_h, HYPO_DURATION_S), ("hyper", site.hyper_per_h, HYPER_DURATION_S),
                            ("false", FALSE_PRECURSOR_PER_H, HYPER_DURATION_S)):
        for onset in rng.uniform(t_maint, max(t_emerge, t_maint), rng.poisson(rate * hours)):
            events.append((kind, onset, rng.uniform(*dur), kind == "false" or rng.random() >= P_SILENT))
    return events


def _patient(root: int, seed: int, site: SiteProfile = SITE_A) -> dict[str, float]:
    """Traits of a simulated subject, shared by all of its cases."""
    rng = _rng(seed, root, _STREAM_PATIENT, site)
    mix = site.patient

    def trait(mean: float, sd: float, lo: float, hi: float) -> float:
        return float(np.clip(rng.normal(mean, sd), lo, hi))

    return {
        "map": trait(*mix.map),
        "pp": trait(*mix.pp),
        "hr": trait(*mix.hr),
        "r_amp": rng.uniform(0.8, 1.5),
        "pleth_amp": rng.uniform(15, 40),
        "pleth_base": rng.uniform(15, 40),
    }


def _events(rng: np.random.Generator, t0: float, t1: float, per_h: float, length: tuple[float, float]):
    """Start and length (s) of Poisson events over ``[t0, t1)``."""
    k = rng.poisson(per_h * max(t1 - t0, 0.0) / 3600)
    return rng.uniform(t0, max(t1, t0), k), rng.uniform(*length, k)


def simulate_art(caseid: int, seed: int, n: int, t_ind: float, lat_map: np.ndarray,
                 lat_pp: np.ndarray, site: SiteProfile = SITE_A) -> ArterialLine | None:
    """The arterial line of a simulated case, from its own random stream (``None``: the case has none).

    Args:
        caseid: Case number.
        seed: Simulator seed.
        n: Case length (s).
        t_ind: Induction time (s); the line is placed around it.
        lat_map: float [n] the case's latent MAP, one value per second.
        lat_pp: float [n] its latent pulse pressure.
        site: Simulated site (its random streams).

    Returns:
        Samples every ~2 s at their own times (0.01 s resolution), integer mmHg, with artefacts.
    """
    rng = _rng(seed, caseid, _STREAM_ART, site)
    if rng.random() >= P_ART_LINE or n < 1200:
        return None
    start = float(np.clip(t_ind + rng.uniform(-240, 600), 0, n - 900))
    stop = n - rng.uniform(0, 900)
    time = start + ART_INTERVAL_S * np.arange(int((stop - start) / ART_INTERVAL_S))
    time = np.round(time + rng.uniform(-0.02, 0.02, len(time)), 2)
    t = np.arange(n, dtype=np.float64)
    bias = rng.normal(0, 2)
    mbp = np.interp(time, t, lat_map) + bias + rng.normal(0, ART_NOISE_MMHG, len(time))
    pp = np.maximum(ART_PP_GAIN * np.interp(time, t, lat_pp) + rng.normal(0, ART_NOISE_MMHG, len(time)), 12)
    for on, ln in zip(*_events(rng, start, stop, ART_DAMP_PER_H, ART_DAMP_S)):  # damping: narrower pulse
        pp[(time >= on) & (time < on + ln)] *= rng.uniform(0.35, 0.6)
    sbp, dbp = mbp + SYSTOLIC_SHARE * pp, mbp - (1 - SYSTOLIC_SHARE) * pp

    def square(on: float, ln: float, level: float) -> None:
        hit = (time >= on) & (time < on + ln)
        k = int(hit.sum())
        mbp[hit] = level + rng.normal(0, 1, k)
        sbp[hit], dbp[hit] = mbp[hit] + rng.uniform(0, 2, k), mbp[hit] - rng.uniform(0, 2, k)

    square(time[0] if len(time) else start, rng.uniform(*ART_ZERO_S), 0.0)  # zeroing right after placement
    for on, ln in zip(*_events(rng, start, stop, ART_ZERO_PER_H, ART_ZERO_S)):
        square(on, ln, 0.0)
    for on, ln in zip(*_events(rng, start, stop, ART_FLUSH_PER_H, ART_FLUSH_S)):
        square(on, ln, FLUSH_MMHG)
    spikes = rng.integers(0, len(time), rng.poisson(ART_SPIKE_PER_H * (stop - start) / 3600))
    jump = rng.choice([-1.0, 1.0], len(spikes)) * rng.uniform(40, 80, len(spikes))
    for i, d in zip(spikes, jump):
        mbp[i:i + 2] += d
        sbp[i:i + 2] += d
        dbp[i:i + 2] += d
    keep = np.ones(len(time), dtype=bool)
    for on, ln in zip(*_events(rng, start, stop, ART_DROPOUT_PER_H, ART_DROPOUT_S)):
        keep &= (time < on) | (time >= on + ln)
    vals = [np.round(np.clip(v[keep], 0, None)) for v in (sbp, mbp, dbp)]
    return ArterialLine(time[keep], *vals)


@dataclasses.dataclass
class _Effects:
    """What a case's episodes add to each latent signal, one value per second."""

    low: np.ndarray  # MAP drops (hypotension): the deepest wins
    high: np.ndarray  # MAP rises (hypertension, overshoot): the highest wins
    pp: np.ndarray  # pulse pressure
    hr: np.ndarray  # heart rate
    mac: np.ndarray  # anaesthetic gas
    bis: np.ndarray  # BIS
    pamp: np.ndarray  # pleth amplitude (relative)

    @classmethod
    def zeros(cls, n: int) -> _Effects:
        return cls(*(np.zeros(n) for _ in range(7)))


def _depth(rng: np.random.Generator, t: np.ndarray, n: int) -> tuple[np.ndarray, float, float, float]:
    """Anaesthetic depth a(t): awake 0, maintenance 1; induction after a few minutes, emergence at the end.

    Returns:
        ``(depth, t_ind, t_maint, t_emerge)``.
    """
    t_ind = rng.uniform(60, 300)
    t_maint = t_ind + rng.uniform(120, 300)
    t_emerge = n - min(rng.uniform(600, 1200), 0.3 * n)  # short cases keep most of their time in maintenance
    return np.interp(t, [0, t_ind, t_maint, t_emerge, n], [0, 0, 1, 1, 0.15]), t_ind, t_maint, t_emerge


def _episode_effects(rng: np.random.Generator, t: np.ndarray, phases: tuple[float, float, float],
                     pat: dict[str, float], prof: SiteProfile) -> _Effects:
    """The case's episodes as contributions per signal (overlapping ones do not stack)."""
    d = _Effects.zeros(len(t))
    for kind, on, dur, warned in _episodes(rng, *phases, prof):
        ramp, rec = rng.uniform(60, 180), rng.uniform(60, 240)
        end = on + ramp + dur
        hypo = kind == "hypo" or (kind == "false" and rng.random() < 0.5)
        if warned:
            start = on - rng.uniform(*LEAD_S)
            knots = [start, start + rng.uniform(60, 180), end, end + 300]
            if hypo:  # deepening: more gas, lower BIS, smaller pulse, slower heart
                pairs = ((d.mac, rng.uniform(0.2, 0.5)), (d.bis, -rng.uniform(8, 18)),
                         (d.pamp, -rng.uniform(0.15, 0.35)), (d.hr, -rng.uniform(3, 8)))
            else:  # lightening / stimulation: less gas, higher BIS, vasoconstriction, faster heart
                pairs = ((d.mac, -rng.uniform(0.2, 0.4)), (d.bis, rng.uniform(10, 25)),
                         (d.pamp, -rng.uniform(0.3, 0.5)), (d.hr, rng.uniform(10, 25)))
            for arr, amp in pairs:
                _add(arr, t, knots, [0, amp, amp, 0])
        if kind == "hypo":  # drop, vasopressor, recovery (sometimes overshooting)
            drop = rng.uniform(48, 63) - pat["map"]
            over = rng.uniform(10, 30) if rng.random() < P_OVERSHOOT else 0.0
            _add(d.low, t, [on, on + ramp, end, end + rec], [0, drop, drop, 0], np.minimum)
            if over:
                _add(d.high, t, [end, end + rec, end + rec + rng.uniform(120, 400)], [0, over, 0], np.maximum)
            _add(d.pp, t, [on, on + ramp, end, end + rec], [0, -5, -5, 0], np.minimum)
        elif kind == "hyper":
            dpp = rng.uniform(10, 25)
            rise = rng.uniform(165, 200) - pat["map"] - SYSTOLIC_SHARE * (pat["pp"] + dpp)
            _add(d.high, t, [on, on + ramp, end, end + rec], [0, rise, rise, 0], np.maximum)
            _add(d.pp, t, [on, on + ramp, end, end + rec], [0, dpp, dpp, 0], np.maximum)
    return d


def _cuff_readings(rng: np.random.Generator, sig: np.ndarray, lat_map: np.ndarray, lat_pp: np.ndarray,
                   prof: SiteProfile) -> np.ndarray:
    """Cuff readings at a handful of seconds, integer mmHg like the monitor, with their artefacts; their times."""
    rt = _cuff_times(rng, len(sig), prof)
    mbp = np.maximum(lat_map[rt] + rng.normal(0, 3, len(rt)), 30)
    pp = np.maximum(lat_pp[rt] + rng.normal(0, 4, len(rt)), 15)
    sbp, dbp = np.round(mbp + SYSTOLIC_SHARE * pp), np.round(mbp - (1 - SYSTOLIC_SHARE) * pp)
    mbp = np.round(mbp)
    art = rng.random(len(rt))
    zero, spike = art < P_CUFF_ZERO, (art >= P_CUFF_ZERO) & (art < P_CUFF_ZERO + P_MAP_SPIKE)
    swap = (art >= P_CUFF_ZERO + P_MAP_SPIKE) & (art < P_CUFF_ZERO + P_MAP_SPIKE + P_SWAP)
    mbp[spike] = rng.uniform(210, 300, int(spike.sum()))
    sbp[spike], dbp[spike] = mbp[spike] + 40, mbp[spike] - 25
    sbp[swap], dbp[swap] = dbp[swap], sbp[swap]
    sbp[zero] = mbp[zero] = dbp[zero] = 0
    sig[rt, SBP], sig[rt, MBP], sig[rt, DBP] = sbp, mbp, dbp
    return rt


def _numerics(rng: np.random.Generator, sig: np.ndarray, t: np.ndarray, depth: np.ndarray,
              d: _Effects) -> tuple[np.ndarray, np.ndarray]:
    """MAC (age-adjusted units) and BIS at their own sampling times; returns those times ``(mac, bis)``."""
    n = len(sig)
    mt = _sample_times(rng, n, *MAC_INTERVAL_S)
    mac = rng.uniform(0.7, 1.1) * depth[mt] + d.mac[mt] + _slow(rng, t, 0.05, 600)[mt] + rng.normal(0, 0.02, len(mt))
    sig[mt, MAC] = np.round(np.clip(mac, 0, None), 2)
    bt = _sample_times(rng, n, *BIS_INTERVAL_S, start=int(rng.integers(30, 240)))  # sensor attached after a while
    bis_awake, bis_maint = rng.uniform(88, 97), rng.uniform(35, 55)
    bis = bis_awake + (bis_maint - bis_awake) * depth[bt] + d.bis[bt] + _slow(rng, t, 4.0, 600)[bt]
    sig[bt, BIS] = np.round(np.clip(bis + rng.normal(0, 3, len(bt)), 0, 100), 1)
    return mt, bt


def _waveforms(rng: np.random.Generator, sig: np.ndarray, t: np.ndarray, hr: np.ndarray, pat: dict[str, float],
               d: _Effects) -> None:
    """ECG and pleth: one sample per second at the phase the cardiac cycle has reached (aliased, jittered)."""
    n = len(sig)
    ph, ecg_beat, pleth_beat = _beat_templates()
    phase = np.cumsum(np.clip(hr, 35, 180) / 60.0) + rng.uniform() + rng.normal(0, 0.03, n)
    ecg = pat["r_amp"] * (1 + 0.005 * d.hr) * np.interp(phase, ph, ecg_beat, period=1.0)
    sig[:, ECG] = ecg + 0.05 * np.sin(2 * np.pi * t / rng.uniform(8, 20)) + rng.normal(0, 0.03, n)
    pamp = pat["pleth_amp"] * np.clip(1 + d.pamp + _slow(rng, t, 0.08, 600), 0.2, None)
    pleth = pat["pleth_base"] + pamp * np.interp(phase - 0.12, ph, pleth_beat, period=1.0)
    sig[:, PLETH] = np.clip(pleth + rng.normal(0, 1.0, n), 0, 100)


def simulate_case(caseid: int, seed: int = 0, arterial: bool = True, site: str = "a") -> Case:
    """Simulate one surgical case; the result depends only on ``(seed, caseid, site)``.

    The stages draw from the case's random stream in turn: anaesthetic depth, episodes, latent pressures and heart
    rate, cuff readings, numerics, waveforms, artefacts (then the site's monitor and the arterial line, each from
    its own stream).

    Args:
        caseid: Case number (1-based).
        seed: Simulator seed.
        arterial: Also simulate its arterial line (``Case.art``); the seven signals are the same either way.
        site: Simulated site: ``"a"`` (the default cohort) or ``"b"`` (:mod:`hypo.data.sources.demo_sites`).

    Returns:
        A :class:`~hypo.data.sources.base.Case` with float32 signals [seconds, 7], NaN where nothing was recorded.
    """
    prof = site_profile(site)
    n = case_duration_s(caseid, seed, site)
    root = _subject_root(caseid, seed, prof)
    pat = _patient(root, seed, prof)
    rng = _rng(seed, caseid, _STREAM_CASE, prof)
    t = np.arange(n, dtype=np.float64)
    depth, *phases = _depth(rng, t, n)
    d = _episode_effects(rng, t, tuple(phases), pat, prof)

    awake = 1.0 - depth  # awake: higher pressure and heart rate, lighter BIS
    lat_map = pat["map"] + 10 * awake + d.low + d.high + _slow(rng, t, 3.0, 600)
    lat_pp = pat["pp"] + 5 * awake + d.pp + _slow(rng, t, 3.0, 900)
    hr = pat["hr"] + 10 * awake + d.hr + _slow(rng, t, 4.0, 600)

    sig = np.full((n, N_SIGNALS), np.nan, dtype=np.float32)
    rt = _cuff_readings(rng, sig, lat_map, lat_pp, prof)
    mt, bt = _numerics(rng, sig, t, depth, d)
    _waveforms(rng, sig, t, hr, pat, d)
    _add_artefacts(rng, sig, bt, mt)
    if prof.nibp_stagger_p or prof.p_tiva:
        _site_monitor(_rng(seed, caseid, _STREAM_SITE, prof), sig, rt, prof)
    art = simulate_art(caseid, seed, n, phases[0], lat_map, lat_pp, prof) if arterial else None
    return Case(str(caseid), str(prof.subject_id_base + root), sig, art=art)


def is_tiva(caseid: int, seed: int = 0, site: str = "a") -> bool:
    """Whether a simulated case is under total intravenous anaesthesia (no MAC recorded); cheap."""
    prof = site_profile(site)
    return bool(prof.p_tiva) and _rng(seed, caseid, _STREAM_SITE, prof).random() < prof.p_tiva


def _site_monitor(rng: np.random.Generator, sig: np.ndarray, rt: np.ndarray, site: SiteProfile) -> None:
    """What a site's monitor and practice change, in place: TIVA (no MAC), cuff values stamped apart.

    The first draw decides TIVA (so :func:`is_tiva` repeats it cheaply). A staggered reading keeps its systolic
    value at the reading's second and stamps the mean 1 to ``nibp_stagger_s`` s later and the diastolic at or
    after the mean, at most ``nibp_stagger_s`` s after the systolic.
    """
    if rng.random() < site.p_tiva:
        sig[:, MAC] = np.nan
    n = len(sig)
    stagger = rng.random(len(rt)) < site.nibp_stagger_p
    t = rt[stagger]
    d_map = rng.integers(1, site.nibp_stagger_s, size=len(t), endpoint=True) if len(t) else np.zeros(0, int)
    d_dbp = rng.integers(d_map, site.nibp_stagger_s, endpoint=True) if len(t) else np.zeros(0, int)
    values = sig[np.ix_(t, NIBP)].copy()
    sig[np.ix_(t, NIBP)] = np.nan
    for col, dt, v in ((SBP, 0, values[:, 0]), (MBP, d_map, values[:, 1]), (DBP, d_dbp, values[:, 2])):
        at = t + dt
        ok = at < n  # a value the recording ended before is never written
        sig[at[ok], col] = v[ok]


def _add_artefacts(rng: np.random.Generator, sig: np.ndarray, bis_t: np.ndarray, mac_t: np.ndarray) -> None:
    """Out-of-range numerics, short waveform dropouts and dropped segments, in place."""
    n = len(sig)
    hours = n / 3600
    if len(bis_t):
        bad = rng.choice(bis_t, size=rng.poisson(BIS_BAD_PER_H * hours))
        sig[bad, BIS] = np.where(rng.random(len(bad)) < 0.7, 255.0, -rng.uniform(1, 20, len(bad)))
    if len(mac_t):
        bad = rng.choice(mac_t, size=rng.poisson(MAC_NEG_PER_H * hours))
        sig[bad, MAC] = -rng.uniform(0.05, 0.3, len(bad))
    for cols, rate, length in (((ECG, PLETH), SHORT_DROPOUT_PER_H, (1, 9)),
                               ((ECG, PLETH, MAC, BIS), SEGMENT_DROP_PER_H, (20, 300))):
        for col in cols:
            k = rng.poisson(rate * hours)
            starts = rng.integers(0, n, k)
            for s, ln in zip(starts, rng.integers(*length, k)):
                sig[s:s + ln, col] = np.nan


class DemoSource:
    """The embedded demo cohort: cases ``1..n_cases`` of the simulator under ``seed`` (simulated, not clinical).

    Args:
        n_cases: Number of cases.
        seed: Simulator seed; case ``i`` is the same for every ``n_cases >= i``.
        arterial: Simulate each case's arterial line too (needed for ART labels; the seven signals, and so the
            source's fingerprint, do not depend on it).
        site: Simulated hospital: ``"a"`` (the default cohort; fingerprint and report as before sites existed) or
            ``"b"`` (another monitor and patient mix, for external validation; :mod:`hypo.data.sources.demo_sites`).

    Raises:
        ConfigError: When ``n_cases`` is not a positive integer or the site is unknown.
    """

    name = "demo"

    def __init__(self, n_cases: int, seed: int = 0, arterial: bool = False, site: str = "a") -> None:
        if isinstance(n_cases, bool) or not isinstance(n_cases, (int, np.integer)) or n_cases <= 0:
            raise ConfigError(f"demo source: n_cases must be a positive integer, got {n_cases!r}")
        self.n_cases = int(n_cases)
        self.seed = int(seed)
        self.arterial = bool(arterial)
        self.site = site_profile(site).name

    def case_refs(self) -> list[dict[str, Any]]:
        """Return ``[{"caseid": "1"}, ..., {"caseid": str(n_cases)}]``."""
        return [{"caseid": str(i)} for i in range(1, self.n_cases + 1)]

    def load_case(self, ref: dict[str, Any]) -> Case:
        """Simulate the case named by ``ref["caseid"]``.

        Raises:
            CaseRejected: ``unknown case`` when the id is not one of ``1..n_cases``.
        """
        cid = str(ref.get("caseid", ""))
        if not cid.isdigit() or not 1 <= int(cid) <= self.n_cases:
            raise CaseRejected("unknown case", f"demo case {cid!r} is not in 1..{self.n_cases}")
        return simulate_case(int(cid), self.seed, arterial=self.arterial, site=self.site)

    def fingerprint(self) -> str:
        """Hash of the simulator version, seed and number of cases (and the site, other than site A)."""
        prof = site_profile(self.site)
        extra = {} if prof is SITE_A else {"site": prof.name}
        return hash_obj({"simulator": prof.simulator_version, "seed": self.seed, "n_cases": self.n_cases, **extra})

    def describe(self) -> SourceSpec:
        """The options that build this source again (:func:`hypo.data.sources.factory.build_source`)."""
        return SourceSpec(name=self.name, n_cases=self.n_cases, seed=self.seed, site=self.site, arterial=self.arterial)

    def report(self) -> dict[str, Any]:
        """Describe the cohort for the manifest, saying plainly that it is simulated."""
        prof = site_profile(self.site)
        subjects = {_subject_root(i, self.seed, prof) for i in range(1, self.n_cases + 1)}
        site = {} if prof is SITE_A else {
            "site": prof.name, "site_profile": prof.report(),
            "n_tiva": sum(is_tiva(i, self.seed, prof.name) for i in range(1, self.n_cases + 1))}
        return {
            "simulated": True,
            "note": NOT_CLINICAL,
            "simulator_version": prof.simulator_version,
            "seed": self.seed,
            "n_cases": self.n_cases,
            "n_subjects": len(subjects),
            **site,
            **({"arterial_line": {"simulator_version": ART_SIMULATOR_VERSION, "share_of_cases": P_ART_LINE}}
               if self.arterial else {}),
        }

    def __repr__(self) -> str:
        site = f", site={self.site!r}" if self.site != "a" else ""
        return (f"DemoSource(n_cases={self.n_cases}, seed={self.seed}{', arterial=True' if self.arterial else ''}"
                f"{site})")
