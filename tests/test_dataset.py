import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from hypo.data.dataset import load_split, read_manifest
from hypo.data.signals import MBP, N_SIGNALS, SIGNALS
from hypo.errors import DatasetError

from synthetic_windows import write_synthetic_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("windows"))
    write_synthetic_dataset(d, n_train=130, n_val=50, n_test=0, seed=3)
    return d


def _copy(data_dir, tmp_path):
    d = str(tmp_path / "copy")
    shutil.copytree(data_dir, d)
    return d


def _edit_manifest(d, **changes):
    path = os.path.join(d, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    m.update(changes)
    with open(path, "w") as f:
        json.dump(m, f)


def test_load_split_shapes_dtypes_and_counts(data_dir):
    m = read_manifest(data_dir)
    train = load_split(data_dir, "train")
    assert len(train) == m.counts["train"].windows == 130
    assert train.x.shape == (130, 60, N_SIGNALS) and train.x.dtype == np.float32
    assert train.label.dtype == np.int64 and set(np.unique(train.label)) <= {0, 1, 2}
    assert np.bincount(train.label, minlength=3).tolist() == [m.counts["train"].of(c) for c in m.classes]
    assert train.last_map.dtype == np.float32 and train.last_sbp.dtype == np.float32
    assert train.caseid.dtype.kind == "U" and train.subjectid.dtype.kind == "U"
    assert len(np.unique(train.caseid)) == m.counts["train"].cases == 4  # 40 windows per case
    assert train.t_end.dtype == np.int32
    # windows without a reading carry NaN pressures and last_time -1
    none = train.last_time == -1
    assert none.any() and np.isnan(train.last_map[none]).all() and np.isfinite(train.last_map[~none]).all()


def test_x_is_time_major_physical_units(data_dir):
    train = load_split(data_dir, "train")
    first = sorted(os.listdir(os.path.join(data_dir, "windows", "train")))[0]
    table = pq.read_table(os.path.join(data_dir, "windows", "train", first))
    row = np.asarray(table.column("x")[0].as_py(), np.float32)
    np.testing.assert_array_equal(train.x[0], row.reshape(60, N_SIGNALS))
    assert 40 < train.x[:, :, MBP].mean() < 130  # mmHg, not z-scored
    assert train.caseid[0] == table.column("caseid")[0].as_py()


def test_empty_split_and_uri(data_dir):
    test = load_split(data_dir, "test")
    assert len(test) == 0 and test.x.shape == (0, 60, N_SIGNALS)
    local = load_split(data_dir, "val")
    uri = load_split("file://" + os.path.abspath(data_dir), "val")
    np.testing.assert_array_equal(local.x, uri.x)
    np.testing.assert_array_equal(local.caseid, uri.caseid)


def test_hidden_temporary_shards_are_ignored(data_dir, tmp_path):
    d = _copy(data_dir, tmp_path)
    split = os.path.join(d, "windows", "val")
    name = sorted(os.listdir(split))[0]
    shutil.copy(os.path.join(split, name), os.path.join(split, f".{name}.tmp-1234"))
    assert len(load_split(d, "val")) == 50


def test_missing_manifest_is_one_line(tmp_path):
    with pytest.raises(DatasetError) as err:
        read_manifest(str(tmp_path / "nowhere"))
    msg = str(err.value)
    assert "manifest.json missing" in msg and "build_windows.py" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"signals": list(SIGNALS[:6])}, "signals"),
        ({"signals": list(reversed(SIGNALS))}, "signals"),
        ({"format": "hypo-windows/0"}, "format"),
        ({"zscore": {"mean": [0.0] * 6, "std": [1.0] * 6}}, "zscore"),
    ],
)
def test_mismatched_manifest_is_one_line(data_dir, tmp_path, changes, needle):
    d = _copy(data_dir, tmp_path)
    _edit_manifest(d, **changes)
    with pytest.raises(DatasetError, match=needle) as err:
        load_split(d, "train")
    assert "\n" not in str(err.value)


def test_counts_disagreeing_with_manifest(data_dir, tmp_path):
    d = _copy(data_dir, tmp_path)
    split = os.path.join(d, "windows", "train")
    os.remove(os.path.join(split, sorted(os.listdir(split))[0]))
    with pytest.raises(DatasetError, match="incomplete"):
        load_split(d, "train")


def test_wrong_window_width(data_dir, tmp_path):
    d = _copy(data_dir, tmp_path)
    _edit_manifest(d, window_s=30)  # shards hold 60 x 7 values
    with pytest.raises(DatasetError, match=r"fixed_size_list<float>\[210\]"):
        load_split(d, "train")


def test_unknown_split(data_dir):
    with pytest.raises(DatasetError, match="unknown split"):
        load_split(data_dir, "dev")
