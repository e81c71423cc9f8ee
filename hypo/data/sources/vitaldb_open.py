"""The VitalDB open dataset (6,388 surgical cases), downloaded case by case into a cache.

The clinical table (``{api_url}/cases``) picks the cases; each case's ``.vital`` file
(``{api_url}/{DATASET_VERSION}/{caseid}.vital``) is downloaded once into the cache and read with
:func:`hypo.data.sources.vital.read_vital_case` and the VitalDB track names.

Eligibility, applied in this order (each step's removals are counted in :meth:`VitalDBSource.report`):

1. general anaesthesia (``ane_type == "General"``): the signals of the study (MAC, BIS) belong to it;
2. adults (``age >= 18``);
3. case at least 20 minutes long (``caseend - casestart >= 1200`` s), the shortest case that can hold a
   window and its 5-minute horizon under the default window config.

On the real table (6,388 cases) these remove 345, 54 and 0 cases, leaving 5,989 (5,744 subjects).

The report also counts the cases with an arterial line: those whose ``aline1`` column (clinical table) names one
(3,463 of the 6,388; 3,411 of the 5,989 eligible), and, for a source that reads the line (``arterial=True``,
ART labels), those whose ``Solar8000/ART_MBP`` track the API's track table (``{api_url}/trks``, downloaded once
into the cache) lists. Such a source rejects a case the track table shows without the track as
``no arterial line`` before downloading it.

The API address is, in order: the ``api_url`` argument, the ``HYPO_VITALDB_URL`` environment variable, then
``vitaldb.dataset.api_url``. Example::

    python preprocessing/build_windows.py --source vitaldb --cases 500 --cache ~/.cache/hypo/vitaldb --out data/vdb
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hypo.config import fingerprint as hash_obj
from hypo.data.sources.base import Case
from hypo.data.sources.spec import SourceSpec
from hypo.data.sources.vital import read_vital_case
from hypo.errors import CaseRejected, ConfigError, HypoError

DEFAULT_CACHE = "~/.cache/hypo/vitaldb"
ENV_URL = "HYPO_VITALDB_URL"
MIN_AGE = 18
MIN_DURATION_S = 1200
TABLE_NAME = "cases.csv"
TRACK_TABLE_NAME = "trks.csv"
ART_MBP_TRACK = "Solar8000/ART_MBP"
_COLUMNS = ("caseid", "subjectid", "casestart", "caseend", "age", "ane_type")


class _NotFound(Exception):
    """The server answered 404 / 410."""


def _one_line(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc  # URLError wraps the socket error
    return " ".join((str(reason) or type(reason).__name__).split())


def _id_strings(col: Any) -> list[str]:
    """Identifiers as decimal strings (a numeric column read with NaNs would otherwise give "12.0")."""
    import pandas as pd

    num = pd.to_numeric(col, errors="coerce")
    if num.notna().all() and (num == num.round()).all():
        return [str(int(v)) for v in num]
    return ["" if pd.isna(v) else str(v).strip() for v in col]


class _CacheWriteError(Exception):
    """Writing a download to the cache failed (not a network problem; not retried)."""


def _stream(resp: Any, dest: Path) -> None:
    """Copy an HTTP response into ``dest``, checking its length against Content-Length."""
    expected = resp.headers.get("Content-Length")
    got = 0
    try:
        out = open(dest, "wb")
    except OSError as exc:
        raise _CacheWriteError() from exc
    with out:
        while chunk := resp.read(1 << 20):
            try:
                out.write(chunk)
            except OSError as exc:
                raise _CacheWriteError() from exc
            got += len(chunk)
    if expected is not None and got != int(expected):
        raise http.client.IncompleteRead(b"", int(expected) - got)


def _is_remote(root: str) -> bool:
    """Caches named by a URI (``s3://``, ``gs://``, also ``file://``) go through pyarrow's filesystems."""
    return "://" in root


class CaseCache:
    """Files under a cache root: a local folder, or any URI pyarrow opens (``s3://bucket/prefix``).

    A local cache is used in place. A URI cache keeps a local copy of each file it hands out under the system
    temp folder (vitaldb reads only local paths): files are fetched from the URI once and uploaded after a
    download. This class is the one place that knows about remote storage; its errors are one-line HypoErrors.
    """

    def __init__(self, root: str) -> None:
        self.root = root if _is_remote(root) else os.path.abspath(os.path.expanduser(root))

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (OSError, ValueError) as exc:  # pyarrow raises OSError / ArrowInvalid (a ValueError)
            raise HypoError(f"download cache {self.root}: {_one_line(exc)}") from None

    def _staging(self) -> Path:
        if not _is_remote(self.root):
            return Path(self.root)
        tag = hashlib.sha256(self.root.encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"hypo-vitaldb-{os.getuid() if hasattr(os, 'getuid') else 0}" / tag

    def _remote(self, rel: str) -> tuple[Any, str]:
        import pyarrow.fs as pafs

        fs, base = pafs.FileSystem.from_uri(self.root)
        return fs, f"{base.rstrip('/')}/{rel}"

    def get(self, rel: str) -> Path | None:
        """Local path of a cached file, or ``None`` when the cache does not have it."""
        local = self._staging() / rel
        if local.is_file():
            return local
        if not _is_remote(self.root):
            return None
        import pyarrow.fs as pafs

        with self._errors():
            fs, remote = self._remote(rel)
            if fs.get_file_info(remote).type != pafs.FileType.File:
                return None
            tmp = self.temp_path(rel)
            try:
                with fs.open_input_stream(remote) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, local)
        return local

    def temp_path(self, rel: str) -> Path:
        """A fresh temporary file beside where ``rel`` will live locally (so that the final move is atomic)."""
        local = self._staging() / rel
        with self._errors():
            local.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".tmp", dir=local.parent)
            os.close(fd)
        return Path(tmp)

    def put(self, rel: str, tmp: Path) -> Path:
        """Move a finished temporary file into the cache; return its local path."""
        local = self._staging() / rel
        with self._errors():
            if _is_remote(self.root):  # one upload of the whole file: a kill leaves no object, never half of one
                from hypo.storage import write_bytes

                write_bytes(f"{self.root.rstrip('/')}/{rel}", tmp.read_bytes())
            os.replace(tmp, local)
        return local

    def discard(self, rel: str) -> None:
        """Remove a file from the cache (e.g. a corrupt download), so that the next run fetches it again."""
        with contextlib.suppress(OSError, ValueError):
            (self._staging() / rel).unlink(missing_ok=True)
            if _is_remote(self.root):
                fs, remote = self._remote(rel)
                fs.delete_file(remote)


class VitalDBSource:
    """Cases of the VitalDB open dataset, selected from its clinical table (see the module docstring).

    Args:
        n_cases: The first ``n_cases`` eligible cases in caseid order (default: all eligible).
        cache: Download cache, a folder or a URI such as ``s3://bucket/vitaldb`` (default
            ``~/.cache/hypo/vitaldb``). The clinical table and each ``.vital`` file are downloaded once.
        caseids: Use exactly these cases instead of the eligible ones (they must be in the clinical table).
        api_url: API address (default ``$HYPO_VITALDB_URL`` or ``vitaldb.dataset.api_url``).
        retries: Extra attempts after a transient network error (connection, timeout, HTTP 429/5xx).
        timeout: Seconds before one request gives up.
        arterial: Read each case's arterial line too (ART labels), and count the cases with one in the track
            table. The seven signals, and so the fingerprint, do not depend on it.
        allow_missing: Signal groups (``mac``, ``bis``) a case may lack (``--allow-missing``): such a case is read
            with that group NaN instead of being rejected as ``missing track``.
    """

    name = "vitaldb"
    backoff_s = 1.0  # first pause between attempts; doubles each time

    def __init__(
        self,
        n_cases: int | None = None,
        cache: str | os.PathLike | None = None,
        caseids: Sequence[int | str] | None = None,
        api_url: str | None = None,
        retries: int = 3,
        timeout: float = 30,
        arterial: bool = False,
        allow_missing: Sequence[str] = (),
    ) -> None:
        import vitaldb.dataset

        if n_cases is not None and n_cases <= 0:
            raise ConfigError(f"vitaldb: n_cases must be positive, got {n_cases}")
        if retries < 0 or timeout <= 0:
            raise ConfigError(f"vitaldb: need retries >= 0 and timeout > 0, got {retries} and {timeout}")
        self.n_cases = n_cases
        self.cache = str(cache) if cache else DEFAULT_CACHE
        try:
            self.caseids = tuple(str(int(c)) for c in caseids) if caseids is not None else None
        except (TypeError, ValueError):
            raise ConfigError(f"vitaldb: caseids must be integers, got {list(caseids)[:5]}") from None
        self.api_url = (api_url or os.environ.get(ENV_URL) or vitaldb.dataset.api_url).rstrip("/")
        if not self.api_url.startswith(("http://", "https://")):
            raise ConfigError(f"vitaldb: the API address must start with http:// or https://, got {self.api_url!r}")
        self.dataset_version = vitaldb.dataset.DATASET_VERSION
        self.retries = int(retries)
        self.timeout = float(timeout)
        self.arterial = bool(arterial)
        self.allow_missing = tuple(allow_missing)
        self._selection: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_selection"] = None  # Ray tasks need only the ref; keep the pickle small
        return state

    # -- network -------------------------------------------------------------------------------------------

    def _unreachable(self, why: str) -> HypoError:
        return HypoError(
            f"cannot reach the VitalDB API at {self.api_url} ({why}): no network? "
            f"Use --source vital-dir with local files, or point {ENV_URL} at a mirror"
        )

    def _download(self, url: str, dest: Path) -> None:
        """Stream ``url`` into ``dest`` with retries; raise ``_NotFound`` on 404 and HypoError when it gives up."""
        why, status = "", None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
            try:
                req = urllib.request.Request(url, headers={"User-Agent": "hypo"})
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    _stream(resp, dest)
                return
            except urllib.error.HTTPError as exc:
                if exc.code in (404, 410):
                    raise _NotFound(f"HTTP {exc.code}") from None
                if exc.code != 429 and exc.code < 500:
                    raise HypoError(f"the VitalDB API at {self.api_url} refused {url} (HTTP {exc.code})") from None
                why, status = f"HTTP {exc.code} for {url}, {tries}", exc.code
            except _CacheWriteError as exc:
                raise HypoError(f"cannot write the download cache at {dest}: {_one_line(exc.__cause__)}") from None
            except (OSError, http.client.HTTPException) as exc:  # URLError, refused, reset, timeout, short read
                why, status = f"{_one_line(exc)}; {tries}", None
        if status is not None:
            raise HypoError(
                f"the VitalDB API at {self.api_url} keeps failing ({why}): try again later, "
                f"or point {ENV_URL} at a mirror"
            )
        raise self._unreachable(why)

    # -- clinical table and selection ------------------------------------------------------------------------

    def _table_bytes(self, name: str = TABLE_NAME, endpoint: str = "cases") -> bytes:
        store = CaseCache(self.cache)
        local = store.get(name)
        if local is None:
            tmp = store.temp_path(name)
            try:
                self._download(f"{self.api_url}/{endpoint}", tmp)
            except _NotFound:
                tmp.unlink(missing_ok=True)
                raise HypoError(f"no {'clinical' if endpoint == 'cases' else 'track'} table at "
                                f"{self.api_url}/{endpoint} (HTTP 404): is it a VitalDB API?") from None
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            local = store.put(name, tmp)
        return local.read_bytes()

    def _cases_with_art(self) -> tuple[set[str] | None, str]:
        """Case ids whose track table lists ``Solar8000/ART_MBP``, or ``None`` and why it is unknown.

        The track table is an aid (it lets a case without a line be rejected before its download), so failing
        to get it is reported, not fatal.
        """
        import pandas as pd

        try:
            raw = self._table_bytes(TRACK_TABLE_NAME, "trks")
        except HypoError as exc:
            return None, str(exc)
        try:
            trks = pd.read_csv(io.BytesIO(raw), usecols=["caseid", "tname"])
        except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing
            return None, f"the track table from {self.api_url}/trks is not a CSV with caseid,tname ({exc})"
        names = trks["tname"].astype(str).str.strip()
        return set(_id_strings(trks.loc[names == ART_MBP_TRACK, "caseid"])), ""

    def _select(self) -> dict[str, Any]:
        if self._selection is not None:
            return self._selection
        import pandas as pd

        raw = self._table_bytes()
        try:
            df = pd.read_csv(io.BytesIO(raw))
        except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing
            raise HypoError(f"the clinical table from {self.api_url}/cases is not a CSV ({exc})") from None
        lacking = [c for c in _COLUMNS if c not in df.columns]
        if lacking:
            raise HypoError(f"the clinical table from {self.api_url}/cases lacks column(s) {', '.join(lacking)}")
        df = df.sort_values("caseid")
        steps = []
        keep = df
        criteria = (
            ('ane_type == "General"', lambda d: d["ane_type"] == "General"),
            (f"age >= {MIN_AGE}", lambda d: pd.to_numeric(d["age"], errors="coerce") >= MIN_AGE),
            (
                f"caseend - casestart >= {MIN_DURATION_S} s",
                lambda d: (d["caseend"] - d["casestart"]) >= MIN_DURATION_S,
            ),
        )
        for label, rule in criteria:
            kept = keep[rule(keep).fillna(False).astype(bool)]
            steps.append({"criterion": label, "removed": len(keep) - len(kept), "remaining": len(kept)})
            keep = kept
        subject = dict(zip(_id_strings(df["caseid"]), _id_strings(df["subjectid"])))
        eligible = _id_strings(keep["caseid"])
        if self.caseids is not None:
            unknown = [c for c in self.caseids if c not in subject]
            if unknown:
                raise ConfigError(f"vitaldb: case(s) not in the clinical table: {', '.join(unknown[:10])}")
            chosen = list(self.caseids)
        else:
            chosen = eligible
        if self.n_cases is not None:
            chosen = chosen[: self.n_cases]
        eligible_set = set(eligible)
        groups = {"total": list(subject), "eligible": eligible, "selected": chosen}
        arterial: dict[str, Any] = {}
        if "aline1" in df.columns:
            named = df["aline1"].astype("string").str.strip().fillna("") != ""
            with_line = set(_id_strings(df.loc[named, "caseid"]))
            arterial["clinical_table_aline1"] = {k: sum(c in with_line for c in v) for k, v in groups.items()}
        with_art = None
        if self.arterial:
            with_art, why = self._cases_with_art()
            arterial["track_table_" + ART_MBP_TRACK] = (
                {k: sum(c in with_art for c in v) for k, v in groups.items()} if with_art is not None
                else {"unknown": why})
        refs = [{"caseid": c, "subjectid": subject[c] or c} for c in chosen]
        if with_art is not None:
            for r in refs:
                r["art"] = r["caseid"] in with_art
        self._selection = {
            "table_sha256": hashlib.sha256(raw).hexdigest(),
            "eligibility": {"total": len(df), "steps": steps, "eligible": len(eligible), "arterial_line": arterial},
            "n_subjects_eligible": len({subject[c] for c in eligible}),
            "refs": refs,
            "n_selected_ineligible": sum(c not in eligible_set for c in chosen),
        }
        return self._selection

    # -- Source protocol -------------------------------------------------------------------------------------

    def case_refs(self) -> list[dict[str, Any]]:
        """Download (or reuse) the clinical table and return ``{"caseid", "subjectid"}`` per selected case.

        Raises:
            HypoError: One line when the API cannot be reached and the table is not cached.
        """
        return [dict(r) for r in self._select()["refs"]]

    def case_path(self, caseid: str) -> Path:
        """Local path of a case's ``.vital`` file, downloading it into the cache the first time.

        Raises:
            CaseRejected: ``not found`` when the API has no such file.
            HypoError: When the API cannot be reached.
        """
        store = CaseCache(self.cache)
        rel = f"{self.dataset_version}/{caseid}.vital"
        local = store.get(rel)
        if local is not None:
            return local
        tmp = store.temp_path(rel)
        try:
            self._download(f"{self.api_url}/{rel}", tmp)
        except _NotFound as exc:
            tmp.unlink(missing_ok=True)
            raise CaseRejected("not found", f"case {caseid}: {self.api_url}/{rel} ({exc})") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return store.put(rel, tmp)

    def load_case(self, ref: dict[str, Any]) -> Case:
        """Download the case once (see :meth:`case_path`) and read it with the VitalDB track names.

        Raises:
            CaseRejected: ``not found``, ``corrupt file`` (the cached copy is then dropped), ``missing track``,
                ``all-NaN signal``, or (reading the arterial line) ``no arterial line`` when the track table shows
                the case without one.
            HypoError: When the API cannot be reached.
        """
        caseid = str(ref["caseid"])
        if self.arterial and ref.get("art") is False:
            raise CaseRejected("no arterial line", f"case {caseid}: the track table lists no {ART_MBP_TRACK}")
        path = self.case_path(caseid)
        try:
            return read_vital_case(path, caseid, ref.get("subjectid", caseid), arterial=self.arterial,
                                   allow_missing=self.allow_missing)
        except CaseRejected as exc:
            if exc.reason == "corrupt file":
                CaseCache(self.cache).discard(f"{self.dataset_version}/{caseid}.vital")
            raise

    def fingerprint(self) -> str:
        """Hash of the dataset version, the clinical table's SHA-256 and the selected caseids (not the URL)."""
        sel = self._select()
        return hash_obj(
            {
                "dataset_version": self.dataset_version,
                "table_sha256": sel["table_sha256"],
                "caseids": [r["caseid"] for r in sel["refs"]],
            }
        )

    def describe(self) -> SourceSpec:
        """The options that build this source again (:func:`hypo.data.sources.factory.build_source`)."""
        return SourceSpec(name=self.name, n_cases=self.n_cases, caseids=self.caseids, cache=self.cache,
                          api_url=self.api_url, arterial=self.arterial, allow_missing=self.allow_missing)

    def report(self) -> dict[str, Any]:
        """Eligibility counts (sequential), selection, API address, dataset version and cache."""
        sel = self._select()
        return {
            "api_url": self.api_url,
            "dataset_version": self.dataset_version,
            "cache": self.cache,
            "clinical_table_sha256": sel["table_sha256"],
            "eligibility": sel["eligibility"],
            "n_subjects_eligible": sel["n_subjects_eligible"],
            "caseids_given": self.caseids is not None,
            "n_selected": len(sel["refs"]),
            "n_selected_ineligible": sel["n_selected_ineligible"],
        }
