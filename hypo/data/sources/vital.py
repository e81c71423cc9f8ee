"""Single ``.vital`` files (Vital Recorder / VitalDB format): read one as a case, write one, list a folder of them.

Reading goes through ``vitaldb.VitalFile`` resampled to 1-second rows (``to_numpy(tracks, 1)``). Numeric tracks
(cuff pressures, MAC, BIS) put each record in the second it falls in; wave tracks (ECG, pleth) keep **one point
per second** (vitaldb takes a sample, it does not average). Asked for (``arterial=True``), the arterial line
(``Solar8000/ART_SBP``, ``ART_MBP``, ``ART_DBP``) is read in a second pass at its records' own times, into
``Case.art``: a separate read, so its records cannot move the 1-s grid of the seven signals. Every way a file
can be unusable becomes a :class:`~hypo.errors.CaseRejected` with one of these reasons: ``missing file``,
``corrupt file`` (not gzip, truncated, bad signature, no tracks), ``missing track``, ``wrong units`` and
``all-NaN signal``.

Example::

    case = read_vital_case("/data/vital/0042.vital", caseid="42", subjectid="17")
    source = VitalDirSource("/data/vital", track_map=load_track_map("map.json"), subjects="subjects.csv")
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hypo.config import fingerprint as hash_obj
from hypo.data.art import ART_SIGNALS, ART_UNIT, ART_VITALDB_TRACKS, ArterialLine
from hypo.data.seconds import numbers_on_seconds, physical_samples, wave_on_seconds
from hypo.data.signals import SIGNALS, UNITS, VITALDB_TRACKS, WAVEFORMS, group_channels
from hypo.data.sources.base import Case
from hypo.data.sources.spec import SourceSpec
from hypo.errors import CaseRejected, ConfigError
from hypo.storage import sha256_file

# Files written by write_vital_case start here: 2100-01-01 UTC, the date vitaldb's anonymize() moves files to.
# (A start of 0 would be overwritten by vitaldb's reader with the first record's time.)
DEFAULT_DTSTART = 4102444800.0

_CHUNK = 1 << 23
# Written by the demo writer (hypo.data.sources.demo_files) into a folder of simulated recordings; a folder source
# that finds it reports the folder as simulated, so nothing built from it reads as clinical data.
SIMULATED_MARKER = "hypo_simulated.json"


def default_track_map() -> dict[str, tuple[str, ...]]:
    """The VitalDB open-dataset track name of each signal, one candidate each."""
    return {sig: (trk,) for sig, trk in zip(SIGNALS, VITALDB_TRACKS)}


def normalise_track_map(track_map: Mapping[str, Any] | None) -> dict[str, tuple[str, ...]]:
    """Complete and check a track map: signal name -> candidate track names (first present wins).

    Signals left out keep their VitalDB name; a string value is one candidate. The arterial line's
    :data:`hypo.data.art.ART_SIGNALS` (``art_sbp``, ``art_mbp``, ``art_dbp``) may be named too; they appear in the
    result only when named (:func:`art_track_map` completes them), so maps without them stay as they were.

    Raises:
        ConfigError: On an unknown signal name or a value that is not a track name or a list of them.
    """
    out = default_track_map()
    if track_map is None:
        return out
    if not isinstance(track_map, Mapping):
        raise ConfigError(f"track map: expected an object signal -> track names, got {type(track_map).__name__}")
    known = SIGNALS + ART_SIGNALS
    unknown = sorted(set(track_map) - set(known))
    if unknown:
        raise ConfigError(f"track map: unknown signal(s) {', '.join(map(str, unknown))}; known: {', '.join(known)}")
    for sig, names in track_map.items():
        if isinstance(names, str):
            names = [names]
        if (
            not isinstance(names, (list, tuple))
            or not names
            or not all(isinstance(n, str) and n.strip() for n in names)
        ):
            raise ConfigError(f"track map: {sig} must be a track name or a non-empty list of them, got {names!r}")
        out[sig] = tuple(n.strip() for n in names)
    return out


def art_track_map(track_map: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Candidate track names of the arterial line: those a normalised track map names, else VitalDB's."""
    return {sig: tuple(track_map.get(sig, (trk,))) for sig, trk in zip(ART_SIGNALS, ART_VITALDB_TRACKS)}


def load_track_map(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """Read a JSON track map such as ``{"nibp_sbp": ["Solar8000/NIBP_SBP", "Intellivue/NIBP_SYS"]}``.

    Args:
        path: JSON file; keys are signal names (:data:`hypo.data.signals.SIGNALS`), values a track name or a list of
            candidates tried in order. Signals left out keep their VitalDB track name.

    Returns:
        The complete map, every signal -> tuple of candidates.

    Raises:
        ConfigError: When the file is missing, is not valid JSON, or names an unknown signal.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"track map {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"track map {path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return normalise_track_map(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# Units a track may declare that cannot be the unit hypo's signal is in (a conservative list: an empty, unknown
# or equivalent unit passes, and the values are judged separately).
_PRESSURE_NOT = frozenset({"kpa", "pa", "cmh2o", "psi", "bar", "mbar"})
INCOMPATIBLE_UNITS: dict[str, frozenset[str]] = {
    "ecg": frozenset({"uv", "µv", "μv", "v", "nv"}),
    "nibp_sbp": _PRESSURE_NOT,
    "nibp_mbp": _PRESSURE_NOT,
    "nibp_dbp": _PRESSURE_NOT,
    "mac": frozenset({"%", "vol%", "kpa", "mmhg"}),
    **dict.fromkeys(ART_SIGNALS, _PRESSURE_NOT),
}


def check_declared_units(declared: Mapping[str, str], chosen: Mapping[str, str], caseid: str) -> None:
    """Refuse a case whose tracks declare a unit incompatible with the signal they were mapped to.

    Args:
        declared: Signal name -> the unit its chosen track declares in the file ('' when none).
        chosen: Signal name -> the chosen track's name (for the message).
        caseid: Case identifier (for the message).

    Raises:
        CaseRejected: ``wrong units``, naming the signal, the track, its unit and the expected one.
    """
    for sig, unit in declared.items():
        if unit.strip().lower().replace(" ", "") in INCOMPATIBLE_UNITS.get(sig, ()):
            raise _reject("wrong units", f"case {caseid}: track {chosen[sig]} (used as {sig}) is in {unit.strip()}; "
                                         f"hypo expects {UNITS.get(sig, ART_UNIT)}")


def _reject(reason: str, detail: str) -> CaseRejected:
    """A rejection whose detail is one line (library messages can carry newlines)."""
    return CaseRejected(reason, " ".join(detail.split()))


def _skip(f, n: int) -> bool:
    """Read past ``n`` bytes of ``f``; False when the stream ends first."""
    while n > 0:
        got = len(f.read(min(n, _CHUNK)))
        if not got:
            return False
        n -= got
    return True


def _check_container(path: str, caseid: str) -> None:
    """Decompress the whole file once and walk its packets.

    vitaldb reads a truncated file silently and returns part of the data: a gzip stream cut short, and also a
    valid gzip stream whose content was cut inside a packet (a recorder that died mid-write, a file re-compressed
    after truncation). Each packet is a type byte, a 4-byte length and that many bytes; the file must end on a
    packet boundary.
    """
    truncated = _reject("corrupt file", f"case {caseid}: {path} is truncated")
    try:
        with gzip.open(path, "rb") as f:
            if f.read(4) != b"VITA":
                raise _reject("corrupt file", f"case {caseid}: {path} does not start with the VITA signature")
            head = f.read(6)  # format version (4), header length (2)
            if len(head) < 6 or not _skip(f, int.from_bytes(head[4:6], "little")):
                raise truncated
            while packet := f.read(5):
                if len(packet) < 5 or not _skip(f, int.from_bytes(packet[1:5], "little")):
                    raise _reject("corrupt file", f"case {caseid}: {path} is truncated inside a packet")
    except CaseRejected:
        raise
    except gzip.BadGzipFile as exc:
        raise _reject("corrupt file", f"case {caseid}: {path} is not a gzip file ({exc})") from None
    except EOFError:
        raise _reject("corrupt file", f"case {caseid}: {path} is truncated") from None
    except (OSError, zlib.error) as exc:
        raise _reject("corrupt file", f"case {caseid}: {path} is damaged ({exc})") from None


def _quiet(fn, *args, **kwargs) -> tuple[Any, str]:
    """Call a vitaldb function, capturing what it prints (its reader reports errors on stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = fn(*args, **kwargs)
    return result, buf.getvalue()


def _file_tracks(path: str) -> list[str]:
    import vitaldb

    try:
        names, _ = _quiet(vitaldb.vital_trks, path)
    except Exception:  # noqa: BLE001 - only used to explain a rejection
        return []
    return list(names or [])


def _abbreviate(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _has_records(trk: Any) -> bool:
    return bool(getattr(trk, "recs", None))


def read_vital_case(
    path: str | os.PathLike,
    caseid: str | int,
    subjectid: str | int,
    track_map: Mapping[str, Any] | None = None,
    arterial: bool = False,
    allow_missing: Sequence[str] = (),
) -> Case:
    """Read one ``.vital`` file as a case on a 1-second grid.

    Args:
        path: The ``.vital`` file.
        caseid: Case identifier to give the case.
        subjectid: Patient identifier to give the case.
        track_map: Signal name -> candidate track names; the first candidate the file has (preferring one with
            records) is used. Default: the VitalDB names (:data:`hypo.data.signals.VITALDB_TRACKS`). Signals left out
            keep their VitalDB name. Names match as in vitaldb: exactly, or as the end of ``device/track``.
        arterial: Also read the arterial line (:func:`read_arterial_line`) into ``Case.art``.
        allow_missing: Signal groups (``mac``, ``bis``) the file may lack: a missing or empty track then gives a
            NaN column instead of a rejection (total intravenous anaesthesia, a BIS sensor never applied).

    Returns:
        The case; ``signals`` has one row per second from the file's start to its end, NaN where nothing was
        recorded. The caller checks the duration. ``art`` is ``None`` unless asked for and the file has all three
        arterial tracks with records.

    Raises:
        CaseRejected: ``missing file``, ``corrupt file``, ``missing track``, ``wrong units`` (a track declares a
            unit its signal cannot be in, see :data:`INCOMPATIBLE_UNITS`) or ``all-NaN signal``.
    """
    caseid = str(caseid)
    tmap = normalise_track_map(track_map)
    path = os.fspath(path)
    vf = _open_vital(path, caseid, tmap)
    chosen = choose_tracks(vf, tmap, allow_missing, path, caseid)
    check_declared_units({s: str(getattr(vf.find_track(n), "unit", "") or "") for s, n in chosen.items()}, chosen,
                         caseid)
    case = Case(caseid, str(subjectid), _signals_on_grid(vf, chosen, path, caseid))
    case.check_signals(tuple(allow_missing))  # before the arterial line: a rejected file is not read again
    if arterial:
        case.art = read_arterial_line(path, caseid, art_track_map(tmap), vf.dtstart)
    return case


def _open_vital(path: str, caseid: str, tmap: Mapping[str, tuple[str, ...]]):
    """The file read with vitaldb (only the tracks ``tmap`` names), after its container was checked whole.

    Raises:
        CaseRejected: ``missing file`` or ``corrupt file``.
    """
    import vitaldb

    if not os.path.isfile(path):
        raise _reject("missing file", f"case {caseid}: no file {path}")
    _check_container(path, caseid)
    wanted = list(dict.fromkeys(n for names in tmap.values() for n in names))
    try:
        vf, printed = _quiet(vitaldb.VitalFile, path, wanted)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unusable
        raise _reject("corrupt file", f"case {caseid}: {path}: {type(exc).__name__}: {exc}") from None
    if "Error in reading file" in printed:
        msg = printed.strip().splitlines()[-1]
        raise _reject("corrupt file", f"case {caseid}: {path}: {msg}")
    return vf


def choose_tracks(vf, tmap: Mapping[str, tuple[str, ...]], allow_missing: Sequence[str], path: str,
                  caseid: str) -> dict[str, str]:
    """Signal name -> the track of ``vf`` that holds it: the first candidate present, preferring one with records.

    Raises:
        CaseRejected: ``missing track`` for a signal none of whose candidates the file has (unless its group may be
            missing), naming the tracks the file does have; ``corrupt file`` when it has none at all.
    """
    chosen: dict[str, str] = {}
    missing: list[str] = []
    optional = {SIGNALS[i] for i in group_channels(allow_missing)}
    for sig in SIGNALS:
        present = [n for n in tmap[sig] if vf.find_track(n) is not None]
        with_recs = [n for n in present if _has_records(vf.find_track(n))]
        if with_recs or present:
            chosen[sig] = (with_recs or present)[0]
        elif sig not in optional:
            missing.append(sig)
    if missing:
        has = _file_tracks(path)
        if not has:
            raise _reject("corrupt file", f"case {caseid}: {path} has no tracks")
        want = ", ".join(f"{s} ({'|'.join(tmap[s])})" for s in missing)
        raise _reject("missing track", f"case {caseid}: no {want}; file has {len(has)}: {_abbreviate(has)}")
    return chosen


def _signals_on_grid(vf, chosen: Mapping[str, str], path: str, caseid: str) -> np.ndarray:
    """float32 [seconds, 7]: the chosen tracks on a 1-second grid, NaN columns for signals without a track.

    The rule is :mod:`hypo.data.seconds` (``vitaldb``'s ``to_numpy(tracks, 1)`` for numbers and 1-Hz waves; each
    second's first sample for faster waves), the one the live server's grid applies to a stream.

    Raises:
        CaseRejected: ``corrupt file`` when a track cannot be put on the grid.
    """
    n = int(np.ceil(vf.dtend - vf.dtstart)) if vf.dtend > vf.dtstart else 0
    signals = np.full((n, len(SIGNALS)), np.nan, dtype=np.float32)
    done: dict[str, np.ndarray] = {}
    try:
        for i, sig in enumerate(SIGNALS):
            name = chosen.get(sig)
            if name is None:
                continue
            if name not in done:
                trk = vf.find_track(name)
                if int(getattr(trk, "type", 2)) == 1:
                    done[name] = wave_on_seconds(_wave_records(trk), float(trk.srate), float(vf.dtstart), n)
                else:
                    recs = sorted(((float(r["dt"]), _number(r["val"])) for r in trk.recs), key=lambda r: r[0])
                    done[name] = numbers_on_seconds(recs, float(vf.dtstart), n)
            signals[:, i] = done[name]
    except Exception as exc:  # noqa: BLE001 - a damaged track
        raise _reject("corrupt file", f"case {caseid}: {path}: {type(exc).__name__}: {exc}") from None
    return signals


def _number(val) -> float:
    """A number record's value as a float (NaN for none or text)."""
    try:
        return float(val)
    except (TypeError, ValueError):
        return float("nan")


def _wave_records(trk) -> list[tuple[float, np.ndarray]]:
    """A wave track's records as ``(dt, physical samples)`` in time order (``vitaldb``'s gain and offset)."""
    fmt = int(getattr(trk, "fmt", 1) or 1)
    gain, offset = float(getattr(trk, "gain", 1.0)), float(getattr(trk, "offset", 0.0))
    recs = sorted(((float(r["dt"]), r["val"]) for r in trk.recs), key=lambda r: r[0])
    return [(dt, physical_samples(val, fmt, gain, offset)) for dt, val in recs]


def read_arterial_line(path: str, caseid: str, candidates: Mapping[str, Sequence[str]],
                       dtstart: float) -> ArterialLine | None:
    """Read the arterial line of a ``.vital`` file at its records' own times.

    Args:
        path: The file (already checked to be readable).
        caseid: For messages.
        candidates: ``art_sbp`` / ``art_mbp`` / ``art_dbp`` -> candidate track names (first with records wins).
        dtstart: Unix time of the case's second 0 (the seven signals' grid).

    Returns:
        The line (times in seconds from ``dtstart``, to the millisecond), or ``None`` when one of the three
        tracks is missing or has no record.

    Raises:
        CaseRejected: ``wrong units`` when a chosen track declares a unit that is not a pressure in mmHg;
            ``corrupt file`` when the second read fails.
    """
    import vitaldb

    wanted = list(dict.fromkeys(n for names in candidates.values() for n in names))
    try:
        vf, printed = _quiet(vitaldb.VitalFile, path, wanted)
    except Exception as exc:  # noqa: BLE001 - the first read succeeded, so this is damage further in
        raise _reject("corrupt file", f"case {caseid}: {path}: {type(exc).__name__}: {exc}") from None
    if "Error in reading file" in printed:
        raise _reject("corrupt file", f"case {caseid}: {path}: {printed.strip().splitlines()[-1]}")
    tracks, chosen, units = {}, {}, {}
    for sig, names in candidates.items():
        found = [(n, vf.find_track(n)) for n in names]
        found = [(n, t) for n, t in found if t is not None and getattr(t, "type", 2) == 2 and _has_records(t)]
        if not found:
            return None
        chosen[sig], trk = found[0]
        units[sig] = str(getattr(trk, "unit", "") or "")
        dt = np.fromiter((r["dt"] for r in trk.recs), np.float64, len(trk.recs))
        val = np.fromiter((r["val"] for r in trk.recs), np.float64, len(trk.recs))
        tracks[sig] = (np.round(dt - dtstart, 3), val)
    check_declared_units(units, chosen, caseid)
    return ArterialLine.from_tracks(tracks)


def write_vital_case(
    case: Case,
    path: str | os.PathLike,
    tracks: Sequence[str | None] = VITALDB_TRACKS,
    wave_srate: int = 1,
    dtstart: float = DEFAULT_DTSTART,
    art_tracks: Sequence[str] | None = ART_VITALDB_TRACKS,
) -> Path:
    """Write a case as a genuine ``.vital`` file (``vitaldb.VitalFile`` + ``add_track`` + ``to_vital``).

    Numeric signals (NIBP, MAC, BIS) become numeric tracks with one record per non-NaN second (a signal with no
    value at all gets a single NaN record, so the track exists but is empty). Waveforms (ECG, pleth) become wave
    tracks at ``wave_srate`` Hz, each second's value held for the whole second. Reading the file back with
    :func:`read_vital_case` (and the same track names) gives the case back exactly, for any integer
    ``wave_srate``: vitaldb's 1-second resampling picks one sample inside each second.

    Args:
        case: The case to write.
        path: Output file (parents are created; written atomically).
        tracks: Track name of each signal in :data:`hypo.data.signals.SIGNALS` order; ``None`` leaves a signal out.
            At most one ``/`` (``device/track``).
        wave_srate: Sampling rate of the wave tracks, a positive integer (1 keeps files small).
        dtstart: Unix time of the first second.
        art_tracks: Track names of the arterial line's SBP, MAP and DBP, written as numeric tracks at the samples'
            own times when the case has a line (``None``: leave it out).

    Returns:
        The path written.

    Raises:
        ValueError: On a bad track list or sampling rate.
        OSError: When the file cannot be written.
    """
    import vitaldb

    if len(tracks) != len(SIGNALS):
        raise ValueError(f"tracks: expected {len(SIGNALS)} names in SIGNALS order, got {len(tracks)}")
    if any(t is not None and t.count("/") > 1 for t in tracks):
        raise ValueError(f"tracks: names are 'device/track' with at most one '/', got {list(tracks)}")
    if int(wave_srate) != wave_srate or wave_srate < 1:
        raise ValueError(f"wave_srate must be a positive integer, got {wave_srate}")
    wave_srate = int(wave_srate)
    n = case.signals.shape[0]
    vf = vitaldb.VitalFile()
    vf.dtstart, vf.dtend, vf.dgmt = float(dtstart), float(dtstart) + n, 0
    for i, (sig, name) in enumerate(zip(SIGNALS, tracks)):
        if name is None:
            continue
        col = case.signals[:, i].astype(np.float32)
        if i in WAVEFORMS:
            recs = [{"dt": vf.dtstart, "val": np.repeat(col, wave_srate)}]
            vf.add_track(name, recs, srate=wave_srate, unit=UNITS[sig])
            continue
        idx = np.flatnonzero(np.isfinite(col))
        recs = [{"dt": vf.dtstart + float(t), "val": float(col[t])} for t in idx]
        vf.add_track(name, recs or [{"dt": vf.dtstart, "val": float("nan")}], unit=UNITS[sig])
    if case.art is not None and art_tracks is not None:
        if len(art_tracks) != len(ART_SIGNALS):
            raise ValueError(f"art_tracks: expected {len(ART_SIGNALS)} names (SBP, MAP, DBP), got {list(art_tracks)}")
        line = case.art
        for name, col in zip(art_tracks, (line.sbp, line.mbp, line.dbp)):
            idx = np.flatnonzero(np.isfinite(col))
            vf.add_track(name, [{"dt": vf.dtstart + float(line.time[i]), "val": float(col[i])} for i in idx]
                         or [{"dt": vf.dtstart, "val": float("nan")}], unit=ART_UNIT)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if not vf.to_vital(str(tmp)):
        tmp.unlink(missing_ok=True)
        raise OSError(f"vitaldb could not write {path}")
    os.replace(tmp, path)
    return path




def load_subjects(path: str | os.PathLike) -> dict[str, str]:
    """Read a CSV with columns ``caseid,subjectid`` into a dict.

    Raises:
        ConfigError: When the file is missing, lacks a column or maps a case twice.
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = {c.strip() for c in reader.fieldnames or []}
            if not {"caseid", "subjectid"} <= cols:
                raise ConfigError(f"subjects file {path}: needs columns caseid,subjectid, has {sorted(cols)}")
            out: dict[str, str] = {}
            for row in reader:
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                cid, sid = row["caseid"], row["subjectid"]
                if not cid or not sid:
                    continue
                if cid in out and out[cid] != sid:
                    raise ConfigError(f"subjects file {path}: case {cid} has two subjects ({out[cid]}, {sid})")
                out[cid] = sid
            return out
    except OSError as exc:
        raise ConfigError(f"subjects file {path}: cannot read it ({exc.strerror or exc})") from None


class VitalDirSource:
    """A folder of ``.vital`` files, one case per file (searched recursively), caseid = file name stem, sorted.

    Every file is its own subject (subjectid = caseid) unless a ``subjects`` CSV (columns ``caseid,subjectid``)
    is given; files it does not list stay their own subject, are counted in :meth:`report` and said on the console
    (:meth:`notes`). Give the mapping whenever patients can have several files, or the subject-level split cannot
    keep them together. Case ids and subject ids share one namespace, so a file the CSV does not list may not be
    named as a subject the CSV gives to other files (they would silently become one patient): refused.

    Args:
        path: The folder.
        track_map: Signal name -> candidate track names (see :func:`load_track_map`); default VitalDB names.
        subjects: Optional CSV file mapping caseid to subjectid.
        arterial: Also read each file's arterial line (for ART labels); the seven signals, and so the
            fingerprint, do not depend on it.
        allow_missing: Signal groups (``mac``, ``bis``) a file may lack (``--allow-missing``); see
            :func:`read_vital_case`.

    Raises:
        ConfigError: When the folder is missing, holds no ``.vital`` file, two files share a stem, or a file the
            subjects file does not list is named as a subject it gives to other files.
    """

    name = "vital-dir"

    def __init__(
        self,
        path: str | os.PathLike,
        track_map: Mapping[str, Any] | None = None,
        subjects: str | os.PathLike | None = None,
        arterial: bool = False,
        allow_missing: Sequence[str] = (),
    ) -> None:
        self.path = str(Path(path).expanduser().resolve())
        self.arterial = bool(arterial)
        self.allow_missing = tuple(allow_missing)
        self.track_map = normalise_track_map(track_map)
        self.subjects_path = str(subjects) if subjects else None
        self.subjects = load_subjects(subjects) if subjects else {}
        self._digests: dict[tuple, str] = {}
        self._check_subjects(self._files())  # fail early, in one line

    def _files(self) -> list[Path]:
        root = Path(self.path)
        if not root.is_dir():
            raise ConfigError(f"vital-dir: folder {self.path} does not exist")
        files = sorted(
            (p for p in root.rglob("*.vital") if p.is_file() and not p.name.startswith(".")),
            key=lambda p: (p.stem, p.as_posix()),
        )
        if not files:
            raise ConfigError(f"vital-dir: no .vital files in {self.path}")
        seen: dict[str, Path] = {}
        for p in files:
            if p.stem in seen:
                raise ConfigError(f"vital-dir: two files for case {p.stem}: {seen[p.stem]} and {p}")
            seen[p.stem] = p
        return files

    def _check_subjects(self, files: list[Path]) -> None:
        """Refuse a file the subjects file does not list whose own subject id is one the file gives to other cases."""
        stems = {p.stem for p in files}
        given: dict[str, list[str]] = {}
        for cid, sid in self.subjects.items():
            if cid in stems:
                given.setdefault(sid, []).append(cid)
        clash = sorted(stems.difference(self.subjects).intersection(given), key=lambda c: (len(c), c))
        if clash:
            c = clash[0]
            also = f" (and {len(clash) - 1} more such files)" if len(clash) > 1 else ""
            raise ConfigError(f"subjects file {self.subjects_path}: {c}.vital is not listed, so it would be its own "
                              f"subject {c!r}, a subject the file gives to case {', '.join(sorted(given[c]))}: they "
                              f"would become one patient{also}; list {c} in it with its subject")

    def notes(self) -> list[str]:
        """Console lines about the subjects: how many files a subjects file does not list (each its own subject)."""
        if not self.subjects_path:
            return []
        files = self._files()
        own = sum(p.stem not in self.subjects for p in files)
        if not own:
            return []
        return [f"{own} of {len(files)} .vital files are not in the subjects file {self.subjects_path}: each is its "
                "own subject (subject id = case id); list them there if a patient has several files"]

    def case_refs(self) -> list[dict[str, Any]]:
        """One ref per file: ``caseid`` (stem), ``subjectid`` and ``path`` relative to the folder."""
        root = Path(self.path)
        return [
            {"caseid": p.stem, "subjectid": self.subjects.get(p.stem, p.stem), "path": p.relative_to(root).as_posix()}
            for p in self._files()
        ]

    def load_case(self, ref: dict[str, Any]) -> Case:
        """Read the file of ``ref`` (see :func:`read_vital_case`)."""
        path = Path(self.path) / ref.get("path", f"{ref['caseid']}.vital")
        return read_vital_case(path, ref["caseid"], ref.get("subjectid", ref["caseid"]), self.track_map,
                               arterial=self.arterial, allow_missing=self.allow_missing)

    def _digest(self, p: Path) -> str:
        st = p.stat()  # ctime changes on any write, even when mtime is set back
        key = (str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        if key not in self._digests:
            self._digests[key] = sha256_file(p)
        return self._digests[key]

    def fingerprint(self) -> str:
        """Hash of every file's relative name, size and SHA-256, the track map and the subject mapping."""
        root = Path(self.path)
        files = [(p.relative_to(root).as_posix(), p.stat().st_size, self._digest(p)) for p in self._files()]
        tmap = {k: list(v) for k, v in self.track_map.items()}
        return hash_obj({"files": files, "track_map": tmap, "subjects": sorted(self.subjects.items())})

    def describe(self) -> SourceSpec:
        """The options that build this source again (:func:`hypo.data.sources.factory.build_source`)."""
        return SourceSpec(name=self.name, folder=self.path, track_map=self.track_map,
                          subjects=os.path.abspath(self.subjects_path) if self.subjects_path else None,
                          arterial=self.arterial, allow_missing=self.allow_missing)

    def report(self) -> dict[str, Any]:
        """Folder, number of files, track map and how subjects were assigned (and ``simulated`` for demo files)."""
        refs = self.case_refs()
        mapped = sum(r["caseid"] in self.subjects for r in refs)
        marker = Path(self.path) / SIMULATED_MARKER
        simulated = {}
        if marker.is_file():
            try:
                simulated = {"simulated": True, "simulator": json.loads(marker.read_text(encoding="utf-8"))}
            except (OSError, json.JSONDecodeError):
                simulated = {"simulated": True}
        return {
            **simulated,
            "folder": self.path,
            "n_files": len(refs),
            "track_map": {k: list(v) for k, v in self.track_map.items()},
            "subjects_file": self.subjects_path,
            "n_mapped_to_subject": mapped,
            "n_own_subject": len(refs) - mapped,
            "n_subjects": len({r["subjectid"] for r in refs}),
            **({"arterial_track_map": {k: list(v) for k, v in art_track_map(self.track_map).items()}}
               if self.arterial else {}),
            **({"allow_missing": list(self.allow_missing)} if self.allow_missing else {}),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_digests"] = {}
        return state
