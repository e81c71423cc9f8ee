"""The causal pipeline: a recording prepared for a model as a streaming system prepares it, window by window.

    prepared = prepare_case(case, model.sidecar, stride_s=10)           # a whole recording (hypo predict, the replay)
    prepared = prepare_windows(rows, cfg, ends=np.array([len(rows) - 1]), known=known)   # a live bed's last window

Nothing after a window's end decides anything about it (PITFALLS.md 9). The same functions run on a whole recording
(``hypo predict``, the alarm replay of ``hypo evaluate --alarms``, ``hypo report`` and ``leaderboard --alarms``) and
on a live bed's recent seconds (:meth:`hypo.serve.scorer.BedScorer.prepare`):

- **cleaning and filling**, as the training data were (:mod:`hypo.data.artefacts`, :mod:`hypo.data.filling`): cuff
  values stamped apart are grouped into the reading at their latest second, artefacts removed, numerics carried
  forward, waveform gaps interpolated. Each second's cleaned value depends on that second and earlier ones only
  (a reading still waiting for its last value is incomplete until then, as it would be live); an interpolated
  waveform gap must be closed by the window's last second, or the window is incomplete.
- **a group the model may lack** (MAC or BIS in the sidecar's ``tolerates_missing``) counts as absent at a window
  end when no valid value of it has been recorded **so far** in the case: the model gets it as missing (NaN), as a
  live system would before a BIS sensor is applied. From its first value on, gaps in it make windows incomplete,
  as in any group. (Offline, this used to be decided on the whole recording: a case whose BIS began after 40 min
  got no prediction for those 40 min.)
- **plausible units**, judged on the values recorded so far (:data:`UNIT_RULES`, :func:`units_problem`): more than
  half of a pressure's, MAC's or BIS's positive values below the low end of its plausible range (or above its high
  end), or more than 1% of the ECG's values above 20 mV in magnitude, and the window is not scored (``waiting``)
  until that is no longer so. A unit a track declares in the file's header, or in a live message, is checked where
  it is read (:func:`hypo.data.sources.vital.check_declared_units`): that is known live too.

What the pipeline knows of a case's past beyond the seconds it is given is a few counts per signal
(:data:`KNOWN_COLUMNS`; :func:`tally_rows`), added up from the case start: offline from the whole recording's first
row, live by the bed as its seconds become final (:class:`hypo.serve.bed.Bed`), so both decide alike.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from hypo.config import WindowConfig
from hypo.data.signals import BIS, ECG, GROUP_NAMES, MAC, MAY_BE_MISSING, SIGNALS, group_channels
from hypo.errors import ConfigError

# Plausible ranges of the recorded values, per signal (lo, hi, unit): most values outside means another unit.
PLAUSIBLE: dict[str, tuple[float, float, str]] = {
    "nibp_sbp": (40.0, 260.0, "mmHg"),
    "nibp_mbp": (25.0, 200.0, "mmHg"),
    "nibp_dbp": (10.0, 160.0, "mmHg"),
    "mac": (0.0, 5.0, "MAC"),
    "bis": (2.0, 100.0, "BIS index 0-100"),
}
ECG_MAX_MV = 20.0  # mV: an ECG in microvolts has values in the hundreds
ECG_MAX_SHARE = 0.01  # ... for more than 1% of its samples
UNIT_RULES = (f"more than half of a signal's positive values so far below the low end of its plausible range, or "
              f"above its high end ({', '.join(f'{s} {lo:g}-{hi:g} {u}' for s, (lo, hi, u) in PLAUSIBLE.items())}), "
              f"or more than {100 * ECG_MAX_SHARE:g}% of the ECG's values so far above {ECG_MAX_MV:g} mV in magnitude")

# The counts a streaming system keeps per case: valid values of each group that may be missing, and per checked
# signal its positive values and those below / above the plausible range (for the ECG: values, and those above).
_VALID = tuple(f"valid_{g}" for g in MAY_BE_MISSING)
_UNITS = tuple(f"{k}_{s}" for s in PLAUSIBLE for k in ("n", "low", "high")) + ("n_ecg", "high_ecg")
KNOWN_COLUMNS: tuple[str, ...] = _VALID + _UNITS
_VALID_CHANNEL = {"mac": MAC, "bis": BIS}


def tally_rows(rows: np.ndarray) -> np.ndarray:
    """The counts each second adds to what is known of a case (:data:`KNOWN_COLUMNS`), int64 [seconds, K].

    Args:
        rows: float32 [seconds, 7] as recorded (before artefact removal, which would hide a unit problem).
    """
    from hypo.data.artefacts import remove_artefacts

    rows = np.asarray(rows, np.float32)
    out = np.zeros((len(rows), len(KNOWN_COLUMNS)), np.int64)
    cleaned = remove_artefacts(rows)[0]  # MAC and BIS are judged sample by sample
    for j, g in enumerate(MAY_BE_MISSING):
        out[:, j] = np.isfinite(cleaned[:, _VALID_CHANNEL[g]])
    j = len(_VALID)
    with np.errstate(invalid="ignore"):
        for name, (lo, hi, _) in PLAUSIBLE.items():
            col = rows[:, SIGNALS.index(name)]
            pos = col > 0  # zeros: a failed cuff cycle, no agent, an idle BIS sensor; never a sign of another unit
            out[:, j], out[:, j + 1], out[:, j + 2] = pos, pos & (col < lo), pos & (col > hi)
            j += 3
        ecg = rows[:, ECG]
        out[:, j], out[:, j + 1] = np.isfinite(ecg), np.abs(ecg) > ECG_MAX_MV
    return out


def known_at(rows: np.ndarray, ends: np.ndarray, before: np.ndarray | None = None) -> np.ndarray:
    """What is known of a case at each window end: the counts of its seconds up to it, int64 [len(ends), K].

    Args:
        rows: float32 [seconds, 7], row 0 the first second given.
        ends: int [w] window ends (rows).
        before: int64 [K] counts of the case's seconds before ``rows`` (default none: row 0 is the case start).
    """
    cum = np.cumsum(tally_rows(rows), axis=0)
    out = cum[np.asarray(ends, np.int64)] if len(ends) else np.zeros((0, len(KNOWN_COLUMNS)), np.int64)
    return out + (0 if before is None else np.asarray(before, np.int64))


def units_problem(known: np.ndarray) -> str:
    """Why the values recorded so far are implausible for their units (:data:`UNIT_RULES`), or ``""``."""
    k = dict(zip(KNOWN_COLUMNS, np.asarray(known).tolist()))
    for name, (lo, hi, unit) in PLAUSIBLE.items():
        n = k[f"n_{name}"]
        for side, bound, word in (("low", lo, "below"), ("high", hi, "above")):
            if n and 2 * k[f"{side}_{name}"] > n:
                return (f"{name}: {k[f'{side}_{name}']} of its {n} positive values so far are {word} {bound:g}, "
                        f"outside the plausible {lo:g}-{hi:g} ({unit}): wrong units?")
    n, high = k["n_ecg"], k["high_ecg"]
    if n and high > ECG_MAX_SHARE * n:
        return (f"ecg: {high} of its {n} values so far exceed {ECG_MAX_MV:g} mV in magnitude: wrong units "
                "(microvolts?)")
    return ""


def _implausible(known: np.ndarray) -> np.ndarray:
    """Bool [w]: where :func:`units_problem` finds a problem (vectorised over rows of counts)."""
    k = np.asarray(known, np.int64).reshape(-1, len(KNOWN_COLUMNS))
    bad = np.zeros(len(k), bool)
    for j in range(len(_VALID), len(_VALID) + 3 * len(PLAUSIBLE), 3):
        n = k[:, j]
        bad |= (n > 0) & ((2 * k[:, j + 1] > n) | (2 * k[:, j + 2] > n))
    n, high = k[:, -2], k[:, -1]
    return bad | ((n > 0) & (high > ECG_MAX_SHARE * n))


@dataclasses.dataclass
class PreparedCase:
    """A recording cleaned, gap-filled and cut into windows, each judged with what was known at its end.

    Prepared once, it can be scored by any number of models with :func:`hypo.infer.predict.predict_case`
    (``prepared=``) and read by other scorers (the alarm evaluation's baselines) without cleaning or filling again.

    Attributes:
        cfg: The window rules it was prepared with (from the model's sidecar, with this stride).
        cleaned: float32 [seconds, 7] after artefact removal, before filling (NaN where nothing was recorded).
        filled: float32 [seconds, 7] after gap filling (the model input).
        ends: int64 [w] window end seconds (rows).
        windows: float32 [w, 7, window_s] a read-only view of ``filled`` (no copy); transpose to feed a model.
        complete: bool [w] the windows a model reading every signal group may see: no gap left after filling
            outside the groups absent so far, and the units plausible so far.
        absent_at: bool [w, len(MAY_BE_MISSING)] the groups the model may lack, absent so far at each end.
        units: object [w] why the units were implausible so far at each end (``""``: plausible).
        clean_s: Seconds spent cleaning and filling.
    """

    cfg: WindowConfig
    cleaned: np.ndarray
    filled: np.ndarray
    ends: np.ndarray
    windows: np.ndarray
    complete: np.ndarray
    absent_at: np.ndarray
    units: np.ndarray
    clean_s: float = 0.0

    @property
    def absent(self) -> tuple[str, ...]:
        """The groups absent at every window end (the recording lacks them as far as its windows reach)."""
        if not len(self.ends):
            return ()
        return tuple(g for g, a in zip(MAY_BE_MISSING, self.absent_at.all(axis=0)) if a)

    def complete_for(self, rules) -> np.ndarray:
        """The windows a model with these rules may see: gaps in groups it does not read do not count."""
        unread = {g for g in GROUP_NAMES if g not in (rules.signals_read or GROUP_NAMES)}
        if not unread:
            return self.complete
        return _complete(self.cleaned, self.filled, self.ends, self.cfg.window_s, self.absent_at, unread) & (
            self.units == "")

    def model_input(self) -> np.ndarray:
        """The complete windows as a model takes them, float32 [n, window_s, 7] (a copy)."""
        return np.ascontiguousarray(self.windows[self.complete].transpose(0, 2, 1))


def _complete(cleaned, filled, ends, window_s: int, absent_at: np.ndarray, unread=()) -> np.ndarray:
    """:func:`hypo.data.windows.complete_windows` with the groups absent at each end (and ``unread``) left out."""
    from hypo.data.windows import complete_windows

    out = np.zeros(len(ends), bool)
    keys = absent_at.astype(np.uint8) @ (1 << np.arange(absent_at.shape[1])) if len(ends) else np.zeros(0, int)
    for key in np.unique(keys):  # windows sharing the same groups absent (few: a group appears once)
        sel = keys == key
        gone = {g for i, g in enumerate(MAY_BE_MISSING) if key >> i & 1} | set(unread)
        out[sel] = complete_windows(cleaned, filled, ends[sel], window_s, group_channels(gone))
    return out


def prepare_windows(signals: np.ndarray, cfg: WindowConfig, ends: np.ndarray,
                    known: np.ndarray | None = None) -> PreparedCase:
    """Clean, fill and judge the windows ending at ``ends`` (rows of ``signals``), causally (module docstring).

    Args:
        signals: float32 [seconds, 7] as recorded.
        cfg: The training data's window rules (``allow_missing``: the groups the model may lack).
        ends: int [w] window end rows; each needs ``window_s - 1`` rows before it.
        known: int64 [w, K] what is known of the case at each end (:func:`known_at`); default: counted from row 0,
            the case start.
    """
    from hypo.data.artefacts import merge_cuff_values, remove_artefacts
    from hypo.data.filling import fill_gaps

    t0 = time.perf_counter()
    signals = np.asarray(signals, np.float32)
    ends = np.asarray(ends, np.int64)
    w = cfg.window_s
    cleaned = remove_artefacts(merge_cuff_values(signals, cfg.nibp_merge_s)[0])[0]
    filled = fill_gaps(cleaned, cfg.fill)
    known = known_at(signals, ends) if known is None else np.asarray(known, np.int64).reshape(len(ends), -1)
    allowed = np.array([g in cfg.allow_missing for g in MAY_BE_MISSING], bool)
    absent_at = (known[:, :len(_VALID)] == 0) & allowed[None, :]
    units = np.full(len(ends), "", dtype=object)
    for i in np.flatnonzero(_implausible(known)):  # messages only where the counts say so
        units[i] = units_problem(known[i])
    view = np.lib.stride_tricks.sliding_window_view(filled, w, axis=0)[ends - w + 1]  # [n, 7, w], no copy
    complete = _complete(cleaned, filled, ends, w, absent_at) & (units == "")
    return PreparedCase(cfg, cleaned, filled, ends, view, complete, absent_at, units, time.perf_counter() - t0)


def check_stride(stride_s, where: str = "") -> int:
    """A stride in whole seconds >= 1.

    Raises:
        ConfigError: Anything else.
    """
    if isinstance(stride_s, bool) or int(stride_s) != stride_s or stride_s < 1:
        raise ConfigError(f"{where}--stride must be a positive whole number of seconds, got {stride_s}")
    return int(stride_s)


def prepare_case(case, rules, stride_s: int = 60, where: str = "") -> PreparedCase:
    """A whole recording through the causal pipeline: windows ending every ``stride_s`` seconds from its start.

    Args:
        case: A :class:`~hypo.data.sources.base.Case` as read (physical units, NaN where nothing was recorded).
        rules: The training data's window rules: a model's sidecar, or a dataset's
            (:func:`hypo.evaluate.alarms.replay.dataset_rules`).
        stride_s: Seconds between window ends.
        where: Prefix for error messages (the file).

    Raises:
        ConfigError: A stride that is not a positive whole number of seconds.
    """
    from hypo.data.windows import window_ends
    from hypo.infer.sidecar import window_config

    cfg = window_config(rules, check_stride(stride_s, where))
    return prepare_windows(case.signals, cfg, window_ends(len(case.signals), cfg.window_s, cfg.stride_s))
