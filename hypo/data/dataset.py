"""Reading a window dataset (``hypo-windows/1``) written by ``preprocessing/build_windows.py``.

A dataset folder holds ``manifest.json`` and ``windows/{train,val,test}/*.parquet`` (one shard per case).
:func:`load_split` reads one split into numpy arrays with pyarrow: the fixed-size list column ``x`` is flattened
and reshaped to ``[n, window_s, 7]`` without a Python loop over rows. Windows stay in physical units; the
models apply the manifest's train-split z-score themselves. Local paths and URIs (``s3://...``) both work.

    from hypo.data.dataset import load_split, read_manifest
    manifest = read_manifest("data/demo")      # the typed record (hypo.data.manifest.Manifest)
    train = load_split("data/demo", "train")   # train.x: float32 [n, 60, 7]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from hypo import storage
from hypo.config import LabelConfig, to_dict
from hypo.data.integrity import REPAIR, check_zscore_against
from hypo.data.manifest import BUILD_HINT, FORMAT, Manifest, read_manifest
from hypo.data.signals import N_SIGNALS
from hypo.errors import DatasetError

__all__ = ["BUILD_HINT", "FORMAT", "SPLITS", "Manifest", "WindowArrays", "absent_groups", "comparator_rebuild_note",
           "describe_dataset", "empty_split_reason", "label_source_text", "load_split", "read_manifest"]

SPLITS: tuple[str, ...] = ("train", "val", "test")
COLUMNS = ("caseid", "subjectid", "t_end", "x", "label", "last_map", "last_sbp", "last_time")
ART_COLUMNS = ("art_last_map", "art_last_sbp")  # ART-labelled datasets only
# What the current-pressure comparators read (dataset schema 3); a dataset built before lacks them.
COMPARATOR_COLUMNS = ("last_dbp", "earlier_map", "earlier_time")
ART_COMPARATOR_COLUMNS = ("art_last_dbp", "art_earlier_map")  # ART-labelled datasets of schema 3
HORIZON_COLUMNS = ("horizon_labels",)  # multi-horizon datasets (hypo windows --horizons)


@dataclasses.dataclass
class WindowArrays:
    """One split of a window dataset as numpy arrays (row ``i`` of every field is window ``i``).

    Attributes:
        x: float32 [n, window_s, 7], physical units, signals in ``hypo.data.signals.SIGNALS`` order.
        label: int64 [n]: 0 normal, 1 hypotension, 2 hypertension.
        last_map: float32 [n]: MAP of the last cuff reading at or before the window end (NaN when none).
        last_sbp: float32 [n]: SBP of that reading (NaN when none).
        caseid: str [n].
        subjectid: str [n].
        t_end: int32 [n]: second of the window's last sample, from case start.
        last_time: int32 [n]: second of the last reading (-1 when none).
        art_last_map: float32 [n]: ART-labelled datasets: median invasive MAP of the window's last minute (the
            current invasive pressure); NaN when that minute lacks coverage, and for cuff-labelled datasets.
        art_last_sbp: float32 [n]: the same for SBP.
        last_dbp: float32 [n]: DBP of the last cuff reading (NaN when none); None for a dataset built before
            hypo recorded it (dataset schema 1-2: :func:`comparator_rebuild_note`).
        earlier_map: float32 [n, 2]: MAP of the readings before the last one, most recent first (NaN: none);
            None as ``last_dbp``.
        earlier_time: int32 [n, 2]: their times (-1: none); None as ``last_dbp``.
        art_last_dbp: float32 [n]: ART-labelled datasets: median invasive DBP of the window's last minute; None
            otherwise.
        art_earlier_map: float32 [n, 2]: ART-labelled datasets: median invasive MAP of the minutes ending 150 and
            300 s before the window end; None otherwise.
        horizon_labels: int64 [n, H]: multi-horizon datasets: the class at each horizon of
            ``manifest.horizons_s`` (ascending), -1 where that horizon has no label; None for one horizon.
    """

    x: np.ndarray
    label: np.ndarray
    last_map: np.ndarray
    last_sbp: np.ndarray
    caseid: np.ndarray
    subjectid: np.ndarray
    t_end: np.ndarray
    last_time: np.ndarray
    art_last_map: np.ndarray | None = None
    art_last_sbp: np.ndarray | None = None
    last_dbp: np.ndarray | None = None
    earlier_map: np.ndarray | None = None
    earlier_time: np.ndarray | None = None
    art_last_dbp: np.ndarray | None = None
    art_earlier_map: np.ndarray | None = None
    horizon_labels: np.ndarray | None = None

    @property
    def has_comparator_inputs(self) -> bool:
        """Whether the windows carry the last DBP and the earlier readings (a dataset of schema 3 or later)."""
        return self.last_dbp is not None and self.earlier_map is not None and self.earlier_time is not None

    def __post_init__(self) -> None:
        for name in ART_COLUMNS:
            if getattr(self, name) is None:
                setattr(self, name, np.full(len(self.label), np.nan, np.float32))

    def __len__(self) -> int:
        return len(self.label)


def describe_dataset(manifest: Manifest) -> str:
    """One line of a dataset's provenance: source, cases, windows per split, labels, fingerprint."""
    src, cases, label = manifest.source, manifest.cases, manifest.label
    source = (src.name or "?") + (" (simulated)" if src.report.get("simulated") else "")
    windows = " / ".join(f"{sp} {manifest.split_counts(sp).windows:,}" for sp in ("train", "val", "test"))
    labels = f"labels {label.source}"
    if label.source == "cuff":
        labels += f" {label.mode} mode"
    used = f"{cases.ok} of {cases.listed}" if cases else "? of ?"
    return (f"{source} source, {used} cases used, windows {windows}, "
            f"{labels}, horizon {label.horizon_s} s, fingerprint {manifest.fingerprint}")


def empty_split_reason(manifest: Manifest, split: str) -> str:
    """Why ``split`` of a dataset holds no window, in the terms the user typed (``--split``, cases, rejections)."""
    fractions = manifest.config.split if manifest.config else None
    share = getattr(fractions, split, None)
    if share is not None and share <= 0:
        given = " ".join(f"{getattr(fractions, s):g}" for s in ("train", "val", "test"))
        return (f"the {split} split is empty because the dataset was built with --split {given} (a {split} share "
                f"of 0); rebuild it with a {split} share above 0")
    ok, listed = (manifest.cases.ok, manifest.cases.listed) if manifest.cases else (0, 0)
    why = ", ".join(f"{k} {v}" for k, v in manifest.rejected_counts.items())
    return (f"the {split} split is empty: {ok} of {listed} cases were usable"
            + (f" (rejected: {why})" if why else "") + f", and no subject of those landed in {split}; build the "
            "dataset from more cases")


def absent_groups(manifest: Manifest) -> tuple[str, ...]:
    """Signal groups that some windows of a dataset lack (NaN in ``x``: cases kept with ``--allow-missing``)."""
    section = manifest.absent_groups
    if section is None:
        return ()
    return tuple(g for g in section.allowed if any((c or {}).get(g, 0) for c in section.windows.values()))


def label_source_text(label: LabelConfig | Mapping[str, Any] | None) -> str:
    """What a dataset's labels come from, in a few words.

    Args:
        label: A manifest's (or search record's) :class:`~hypo.config.LabelConfig`, or a label as a model's
            sidecar or report writes it (a dict: no ``source`` means cuff).

    Returns:
        e.g. ``"labels from cuff readings (mode reading)"`` or ``"labels from the arterial line (ART, 60 s centred
        300 s after the window end)"``.
    """
    fields = to_dict(label) if isinstance(label, LabelConfig) else dict(label or {})
    if fields.get("source", "cuff") == "art":
        return (f"labels from the arterial line (ART, {fields.get('event_s', 60)} s centred "
                f"{fields.get('horizon_s')} s after the window end)")
    return f"labels from cuff readings (mode {fields.get('mode', 'reading')})"


def comparator_rebuild_note(data_dir: str, what: str = "the last-DBP and MAP-extrapolation rows") -> str:
    """The one line a board prints for a dataset built before its windows carried the comparators' inputs."""
    return (f"{what} need a rebuild of {data_dir}: it was built before the windows carried the last DBP and the "
            "earlier cuff readings (dataset schema 3); rebuild it with hypo windows ... --out NEWDIR")


def load_split(data_dir: str, split: str, manifest: Manifest | None = None, x: bool = True) -> WindowArrays:
    """Read every window of one split.

    Args:
        data_dir: Dataset folder (local path or URI).
        split: ``"train"``, ``"val"`` or ``"test"``.
        manifest: The manifest if already read (read and checked otherwise).
        x: Read the windows' signals; False leaves ``x`` empty (``[n, 0, 7]``) for what reads only the cuff
            columns (the comparators).

    Returns:
        The split's windows, shards in name order, rows in file order.

    Raises:
        DatasetError: On a missing or malformed dataset, when the shards disagree with the manifest's counts, or
            (the train split of a manifest without a z-score checksum) when the manifest's z-score is not the
            train windows' own.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
    manifest = manifest if manifest is not None else read_manifest(data_dir)
    window_s = manifest.window_s
    split_dir = storage.join(str(data_dir), "windows", split)
    names = storage.list_files(split_dir, ".parquet")
    fs, inner = storage.resolve(split_dir)
    if names:
        paths = [f"{inner.rstrip('/')}/{n}" for n in names]
        try:
            ds = pads.dataset(paths, format="parquet", filesystem=fs)
            optional = (*ART_COLUMNS, *COMPARATOR_COLUMNS, *ART_COMPARATOR_COLUMNS, *HORIZON_COLUMNS)
            extra = [c for c in optional if c in ds.schema.names]
            table = ds.to_table(columns=[c for c in COLUMNS if x or c != "x"] + extra)
        except (pa.ArrowInvalid, KeyError) as exc:
            raise DatasetError(f"{split_dir}: unreadable window shards ({exc}".splitlines()[0][:300]
                               + f"); {REPAIR}") from None
    else:
        table = None
    arrays = _to_arrays(table, window_s, split_dir)
    want = manifest.counts[split].windows if split in manifest.counts else None
    if want is not None and want != len(arrays):
        raise DatasetError(f"{split_dir}: {len(arrays)} windows on disk but the manifest lists {want}; the dataset "
                           f"is incomplete or damaged: {REPAIR}")
    if split == "train" and x and manifest.zscore.checksum is None:  # written before the z-score's checksum
        check_zscore_against(manifest.zscore, arrays.x, str(data_dir))
    return arrays


def _fixed_list_array(col: pa.ChunkedArray, dtype) -> np.ndarray:
    """A fixed-size list column as a numpy array [n, k]."""
    k = col.type.list_size
    flat = pa.concat_arrays([c.flatten() for c in col.chunks]) if col.num_chunks else pa.array([], col.type.value_type)
    return flat.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(-1, k)


def _to_arrays(table: pa.Table | None, window_s: int, where: str) -> WindowArrays:
    width = window_s * N_SIGNALS
    if table is None or table.num_rows == 0:
        return WindowArrays(
            x=np.zeros((0, window_s, N_SIGNALS), np.float32),
            label=np.zeros(0, np.int64),
            last_map=np.zeros(0, np.float32),
            last_sbp=np.zeros(0, np.float32),
            caseid=np.zeros(0, str),
            subjectid=np.zeros(0, str),
            t_end=np.zeros(0, np.int32),
            last_time=np.zeros(0, np.int32),
            **(_extra_columns(table) if table is not None else {}),
        )
    if "x" not in table.column_names:  # load_split(..., x=False)
        return _without_x(table)
    xcol = table.column("x")
    if not pa.types.is_fixed_size_list(xcol.type) or xcol.type.list_size != width:
        raise DatasetError(
            f"{where}: column x is {xcol.type}, expected fixed_size_list<float>[{width}] "
            f"({window_s} steps x {N_SIGNALS} signals)"
        )
    if xcol.null_count:
        raise DatasetError(f"{where}: {xcol.null_count} windows have a null x")
    # flatten() honours chunk offsets; one copy at most (concatenating chunks).
    flat = pa.concat_arrays([c.flatten() for c in xcol.chunks]).cast(pa.float32())
    x = flat.to_numpy(zero_copy_only=False).reshape(table.num_rows, window_s, N_SIGNALS)

    def num(name: str, dtype) -> np.ndarray:
        return table.column(name).to_numpy().astype(dtype, copy=False)

    return WindowArrays(
        x=x,
        label=num("label", np.int64),
        last_map=num("last_map", np.float32),
        last_sbp=num("last_sbp", np.float32),
        caseid=table.column("caseid").to_numpy().astype(str),
        subjectid=table.column("subjectid").to_numpy().astype(str),
        t_end=num("t_end", np.int32),
        last_time=num("last_time", np.int32),
        **_extra_columns(table),
    )


def _without_x(table: pa.Table) -> WindowArrays:
    def num(name: str, dtype) -> np.ndarray:
        return table.column(name).to_numpy().astype(dtype, copy=False)

    return WindowArrays(x=np.zeros((table.num_rows, 0, N_SIGNALS), np.float32), label=num("label", np.int64),
                        last_map=num("last_map", np.float32), last_sbp=num("last_sbp", np.float32),
                        caseid=table.column("caseid").to_numpy().astype(str),
                        subjectid=table.column("subjectid").to_numpy().astype(str), t_end=num("t_end", np.int32),
                        last_time=num("last_time", np.int32), **_extra_columns(table))


def _extra_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The optional columns a table holds (ART, comparator inputs) as numpy arrays."""
    out = {c: table.column(c).to_numpy().astype(np.float32, copy=False)
           for c in (*ART_COLUMNS, "last_dbp", "art_last_dbp") if c in table.column_names}
    for name, dtype in (("earlier_map", np.float32), ("earlier_time", np.int32), ("art_earlier_map", np.float32),
                        ("horizon_labels", np.int64)):
        if name in table.column_names:
            out[name] = _fixed_list_array(table.column(name), dtype)
    return out
