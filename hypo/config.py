"""Frozen dataclass configs and their plain-dict round trip.

Configs travel to Ray workers and into every artifact as plain dicts (``to_dict``) and come back with
``from_dict``, which rejects unknown keys and invalid values with a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, TypeVar

from hypo.errors import ConfigError
from hypo.jsonio import jsonable

T = TypeVar("T")

LABEL_MODES = ("reading", "ffill")
# Label thresholds a physiologist could mean (mmHg): MAP 65 is the consensus, 50-80 are used in studies;
# SBP 160 and 180 are the usual hypertension cut-offs. Values outside these are typos, not definitions.
HYPO_MAP_RANGE = (30.0, 120.0)
HYPER_SBP_RANGE = (90.0, 260.0)
LABEL_SOURCES = ("cuff", "art")
# Signal groups a case may lack for its whole length (``--allow-missing``); hypo.data.signals names the groups.
MAY_BE_MISSING = ("mac", "bis")
CUFF_MODE, CUFF_TOLERANCE_S = "reading", 90  # cuff labels by default: the reading nearest end + horizon, within 90 s
NIBP_MERGE_S = 3  # default: cuff values stamped at most this many seconds apart form one reading
CUFF_ERRORS = ("none", "published")  # a simulated cuff: ideal, or the published oscillometric error (hypo.data.cuff)
INFLATION_S = 40  # a simulated cuff inflation: 30-45 s on intraoperative monitors; it reports at its end


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return a JSON-ready dict of a (possibly nested) dataclass config.

    Fields a config leaves out while at their defaults (its ``omitted_fields()``) are not written, so adding an
    option never changes the dict, nor the fingerprint, of a config that does not use it.
    """
    return jsonable(cfg, strict=False)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict, rejecting unknown keys; nested dataclass fields are built recursively.

    Args:
        cls: A dataclass type.
        data: Keys are field names.

    Returns:
        The validated config.

    Raises:
        ConfigError: On an unknown key or an invalid value.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        ftype = fields[name].type
        tname = ftype if isinstance(ftype, str) else getattr(ftype, "__name__", "")
        sub = _DATACLASSES.get(tname.removesuffix(" | None"))  # an optional nested config: its class
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required field
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def fingerprint(obj: Any, length: int = 16) -> str:
    """Stable short SHA-256 of a JSON-serialisable object (or dataclass)."""
    if dataclasses.is_dataclass(obj):
        obj = to_dict(obj)
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    """How a window is labelled from the blood pressure ``horizon_s`` after its end.

    Attributes:
        mode: Cuff labels: ``"reading"`` (honest: the cuff reading nearest to end + horizon, strictly after the
            window end, within ``tolerance_s``) or ``"ffill"`` (the paper: the carried-forward value at exactly
            end + horizon).
        horizon_s: Seconds from the window's last second to the target time.
        tolerance_s: Cuff reading mode: the largest distance between a reading and the target time.
        hypo_map: Hypotension when MAP is below this (mmHg; consensus 65).
        hyper_sbp: Hypertension when SBP is above this (mmHg; no consensus, 180 as sensitivity analysis).
        source: ``"cuff"`` (the cuff readings, as above) or ``"art"``: the class of the ``event_s`` seconds of
            invasive arterial pressure centred on end + horizon (``hypo.data.art``); ``mode`` and
            ``tolerance_s`` then stay at their defaults, unused.
        event_s: ART labels: length of the labelled stretch (a sustained event lasts this long).
        min_coverage: ART labels: the share of the samples expected at the line's own rate that must be valid.
        horizons_s: Several horizons (``hypo windows --horizons``), ascending, ``horizon_s`` (the primary: which
            windows are kept) among them; each window then also carries one label per horizon by this same rule
            (:meth:`at`). Empty (the default): one horizon, ``horizon_s``.

    ``source``, ``event_s`` and ``min_coverage`` are written only for ART labels, and ``horizons_s`` only when
    given, so single-horizon cuff configs keep the dict and fingerprint they had before those options existed.
    """

    mode: str = CUFF_MODE
    horizon_s: int = 300
    tolerance_s: int = CUFF_TOLERANCE_S
    hypo_map: float = 65.0
    hyper_sbp: float = 160.0
    source: str = "cuff"
    event_s: int = 60
    min_coverage: float = 0.8
    horizons_s: tuple[int, ...] = ()

    def omitted_fields(self) -> tuple[str, ...]:
        """Fields left out of :func:`to_dict`: the ART ones for cuff labels, the horizons when there is one."""
        art = ("source", "event_s", "min_coverage") if self.source == "cuff" else ()
        return art + (("horizons_s",) if not self.horizons_s else ())

    @property
    def horizons(self) -> tuple[int, ...]:
        """Every horizon a window is labelled at (seconds, ascending): ``horizons_s``, else ``(horizon_s,)``."""
        return self.horizons_s or (self.horizon_s,)

    def at(self, horizon_s: int) -> LabelConfig:
        """The single-horizon rule at ``horizon_s``: the labels a ``--horizon horizon_s`` build would give.

        Cuff reading mode: the tolerance is at most ``horizon_s - 1`` (the widest a single-horizon build allows;
        the reading must anyway lie after the window end), so short horizons (60 s) take the default tolerance.
        """
        tol = self.tolerance_s if self.source == "art" else min(self.tolerance_s, horizon_s - 1)
        return dataclasses.replace(self, horizon_s=horizon_s, horizons_s=(), tolerance_s=tol)

    def __post_init__(self) -> None:
        self._check_horizons()
        _require(self.source in LABEL_SOURCES, f"label source must be one of {LABEL_SOURCES}, got {self.source!r}")
        _require(self.mode in LABEL_MODES, f"label mode must be one of {LABEL_MODES}, got {self.mode!r}")
        _require(self.horizon_s > 0, f"horizon_s must be > 0, got {self.horizon_s}")
        if self.source == "art":
            _require((self.mode, self.tolerance_s) == (CUFF_MODE, CUFF_TOLERANCE_S),
                     "label mode and tolerance describe cuff labels; leave them at their defaults with ART labels")
            _require(self.event_s >= 2 and self.event_s % 2 == 0,
                     f"event_s must be an even number of seconds >= 2, got {self.event_s}")
            _require(self.horizon_s > self.event_s // 2,
                     f"with ART labels horizon_s must exceed event_s / 2 ({self.event_s // 2} s), so that the "
                     f"labelled stretch lies after the window end; got {self.horizon_s}")
            _require(0 < self.min_coverage <= 1, f"min_coverage must be in (0, 1], got {self.min_coverage}")
        else:
            _require(
                0 <= self.tolerance_s < self.horizon_s,
                f"tolerance_s must be in [0, horizon_s), got {self.tolerance_s}",
            )
        lo, hi = HYPO_MAP_RANGE
        _require(math.isfinite(self.hypo_map) and lo <= self.hypo_map <= hi,
                 f"hypo_map must be a mean arterial pressure in [{lo:g}, {hi:g}] mmHg, got {self.hypo_map:g}")
        lo, hi = HYPER_SBP_RANGE
        _require(math.isfinite(self.hyper_sbp) and lo <= self.hyper_sbp <= hi,
                 f"hyper_sbp must be a systolic pressure in [{lo:g}, {hi:g}] mmHg, got {self.hyper_sbp:g}")
        _require(self.hypo_map < self.hyper_sbp,
                 f"thresholds must satisfy hypo_map < hyper_sbp, got {self.hypo_map} and {self.hyper_sbp}")

    def _check_horizons(self) -> None:
        """Refuse horizons that are not distinct positive whole seconds including the primary; sort them."""
        hs = tuple(self.horizons_s)
        if not hs:
            object.__setattr__(self, "horizons_s", ())
            return
        bad = [h for h in hs if isinstance(h, bool) or not isinstance(h, int) or h <= 0]
        _require(not bad, f"horizons_s must be whole seconds > 0, got {bad[0]!r}" if bad else "")
        dup = sorted({h for h in hs if hs.count(h) > 1})
        _require(not dup, f"horizons_s: {', '.join(map(str, dup))} given twice")
        _require(self.horizon_s in hs, f"horizons_s {','.join(map(str, hs))} must include the primary horizon_s "
                                       f"{self.horizon_s}")
        object.__setattr__(self, "horizons_s", tuple(sorted(hs)))
        if self.source == "art":
            short = [h for h in hs if h <= self.event_s // 2]
            _require(not short, f"with ART labels every horizons_s must exceed event_s / 2 ({self.event_s // 2} s), so "
                                f"that the labelled stretch lies after the window end; got {short[0] if short else 0}")


@dataclasses.dataclass(frozen=True)
class FillConfig:
    """Gap filling: linear interpolation for waveforms, carry-forward for numerics.

    Leading gaps (before a signal's first value) are never filled. A waveform gap longer than
    ``waveform_max_gap_s`` stays NaN; a numeric value is carried forward at most ``*_max_carry_s`` seconds.
    Windows that still contain NaN after filling are dropped and counted as ``incomplete``.
    """

    waveform_max_gap_s: int = 10
    nibp_max_carry_s: int = 900
    numeric_max_carry_s: int = 300

    def __post_init__(self) -> None:
        for name in ("waveform_max_gap_s", "nibp_max_carry_s", "numeric_max_carry_s"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0")


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """Subject-level split fractions (train, val, test) and the seed that assigns subjects."""

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        fr = (self.train, self.val, self.test)
        _require(all(f >= 0 for f in fr), f"split fractions must be >= 0, got {fr}")
        _require(math.isclose(sum(fr), 1.0, abs_tol=1e-6), f"split fractions must sum to 1, got {sum(fr):.4f}")
        _require(self.train > 0, "the train fraction must be > 0 (z-score statistics are fitted on it)")


@dataclasses.dataclass(frozen=True)
class CuffModel:
    """A simulated oscillometric cuff (:func:`hypo.data.cuff.simulate_readings`).

    Attributes:
        inflation_s: Seconds one inflation takes; the reading reports at its end and reads the arterial pressure
            over it.
        error: ``"published"``: a bias and SD per pressure from a published cuff-vs-arterial comparison
            (:data:`hypo.data.cuff.PUBLISHED_ERROR`); ``"none"``: an ideal cuff (the arterial pressure itself).
    """

    inflation_s: int = INFLATION_S
    error: str = "published"

    def __post_init__(self) -> None:
        whole = isinstance(self.inflation_s, int) and not isinstance(self.inflation_s, bool)
        _require(whole and self.inflation_s >= 1, "the cuff inflation (--cuff-inflation) must be a whole number of "
                                                  f"seconds >= 1, got {self.inflation_s!r}")
        _require(self.error in CUFF_ERRORS, f"cuff error must be one of {', '.join(CUFF_ERRORS)}, got {self.error!r}")


@dataclasses.dataclass(frozen=True)
class CuffSchedule:
    """A cuff simulated from the arterial line every ``interval_s`` seconds, replacing a case's NIBP readings.

    Attributes:
        interval_s: Seconds between inflations (``--cuff-from-art``); longer than one inflation.
        cuff: The simulated cuff (inflation, error model).
        seed: Seeds each case's error draws (with its case id), so a rebuild and the alarm replay read the same
            readings.
    """

    interval_s: int
    cuff: CuffModel = dataclasses.field(default_factory=CuffModel)
    seed: int = 0

    def __post_init__(self) -> None:
        _require(isinstance(self.interval_s, int) and not isinstance(self.interval_s, bool) and self.interval_s > 0,
                 f"the cuff interval (--cuff-from-art) must be a whole number of seconds > 0, got "
                 f"{self.interval_s!r}")
        _require(self.interval_s > self.cuff.inflation_s,
                 f"the cuff interval (--cuff-from-art {self.interval_s}) must be longer than one inflation "
                 f"({self.cuff.inflation_s} s)")


@dataclasses.dataclass(frozen=True)
class WindowConfig:
    """Everything that decides which windows a case yields and how they are labelled.

    Attributes:
        window_s: Window length in seconds (the models take 60).
        stride_s: Seconds between consecutive window starts.
        min_case_s: Cases shorter than this are rejected as ``too short``.
        label: Labelling rule.
        fill: Gap-filling rule.
        split: Subject split.
        allow_missing: Signal groups (``mac``, ``bis``) a case may lack for its whole length: such a case is kept
            with that group NaN in every window instead of being rejected as ``all-NaN signal``.
        nibp_merge_s: Cuff values (SBP, MAP, DBP) recorded at most this many seconds apart form one reading,
            stamped at the latest of them (monitors that write the three values a second or two apart).
        cuff_from_art: ART-labelled datasets (``--cuff-from-art``): the case's cuff readings are replaced by readings
            simulated from its arterial line on this schedule (:func:`hypo.data.cuff.with_simulated_cuff`).

    ``allow_missing``, ``nibp_merge_s`` and ``cuff_from_art`` are written only when they differ from their
    defaults, so configs that do not use them keep the dict and fingerprint they had before the options existed.
    """

    window_s: int = 60
    stride_s: int = 60
    min_case_s: int = 1200
    label: LabelConfig = dataclasses.field(default_factory=LabelConfig)
    fill: FillConfig = dataclasses.field(default_factory=FillConfig)
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    allow_missing: tuple[str, ...] = ()
    nibp_merge_s: int = NIBP_MERGE_S
    cuff_from_art: CuffSchedule | None = None

    def omitted_fields(self) -> tuple[str, ...]:
        """Fields left out of :func:`to_dict` while at their defaults."""
        return tuple(name for name, default in (("allow_missing", ()), ("nibp_merge_s", NIBP_MERGE_S),
                                                ("cuff_from_art", None))
                     if getattr(self, name) == default)

    def __post_init__(self) -> None:
        groups = (self.allow_missing,) if isinstance(self.allow_missing, str) else tuple(self.allow_missing)
        unknown = [g for g in groups if g not in MAY_BE_MISSING]
        _require(not unknown, f"allow_missing: a case may lack only {' or '.join(MAY_BE_MISSING)} as a whole, got "
                              f"{', '.join(map(str, unknown))}")
        object.__setattr__(self, "allow_missing", tuple(g for g in MAY_BE_MISSING if g in groups))
        _require(isinstance(self.nibp_merge_s, int) and not isinstance(self.nibp_merge_s, bool)
                 and 0 <= self.nibp_merge_s <= 60,
                 f"nibp_merge_s must be a whole number of seconds in [0, 60], got {self.nibp_merge_s!r}")
        _require(self.window_s > 0, f"window_s must be > 0, got {self.window_s}")
        _require(self.stride_s > 0, f"stride_s must be > 0, got {self.stride_s}")
        _require(
            self.min_case_s >= self.window_s + self.label.horizon_s,
            f"min_case_s must be >= window_s + horizon_s ({self.window_s + self.label.horizon_s})",
        )
        _require(self.cuff_from_art is None or self.label.source == "art",
                 "a cuff simulated from the arterial line (--cuff-from-art) needs ART labels (--label-source art): "
                 "cuff labels would be read from the simulated cuff itself")


_DATACLASSES: dict[str, type] = {
    "LabelConfig": LabelConfig,
    "FillConfig": FillConfig,
    "SplitConfig": SplitConfig,
    "WindowConfig": WindowConfig,
    "CuffModel": CuffModel,
    "CuffSchedule": CuffSchedule,
}


def register_config(cls: type[T]) -> type[T]:
    """Register a dataclass so that :func:`from_dict` can build it when nested in another config."""
    _DATACLASSES[cls.__name__] = cls
    return cls
