import glob
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from hypo.config import LabelConfig, WindowConfig
from hypo.data.preprocess import build_windows, make_manifest, num_tasks
from hypo.data.signals import SIGNALS
from hypo.errors import ConfigError, DatasetError

from fake_sources import FakeSource
from synthetic_windows import manifest_record


def _rows(out):
    tables = [pq.read_table(f) for f in sorted(glob.glob(f"{out}/windows/*/*.parquet"))]
    return [(c, int(t)) for tab in tables for c, t in zip(tab["caseid"].to_pylist(), tab["t_end"].to_pylist())]


@pytest.fixture(scope="module")
def built(ray_local, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("w") / "ds")
    src = FakeSource(12, bad={"3": "short", "5": "nan", "7": "missing", "9": "boom"})
    lines = []
    manifest = build_windows(src, WindowConfig(), out, progress=False, log=lines.append)
    return out, src, manifest, lines


def test_bad_cases_are_counted_rejections_with_reasons(built):
    _, _, m, lines = built
    assert m.cases.to_dict() == {"listed": 12, "ok": 8, "rejected": 4, "case_hours": pytest.approx(8.0)}
    assert m.rejected_counts == {"too short": 1, "all-NaN signal": 1, "missing track": 1, "error": 1}
    boom = next(r for r in m.rejected if r.caseid == "9")
    assert "RuntimeError: simulated bug" in boom.detail and "\n" not in boom.detail
    assert any("rejected" in line and "too short" in line for line in lines)


def test_manifest_has_counts_zscore_artefacts_and_config(built):
    out, src, m, _ = built
    assert list(m.signals) == list(SIGNALS)
    assert m.window_s == 60 and m.horizon_s == 300 and m.label.mode == "reading"
    assert m.artefacts["nibp_zero"] == 8  # one planted cuff zero per good case
    assert sum(c.windows for c in m.counts.values()) == len(_rows(out))
    assert m.source.fingerprint == src.fingerprint()
    assert len(m.zscore.mean) == 7 and all(s > 0 for s in m.zscore.std)
    assert json.load(open(f"{out}/manifest.json"))["fingerprint"] == m.fingerprint


def test_zscore_is_fitted_on_train_windows_only(built):
    out, _, m, _ = built
    x = np.concatenate([pq.read_table(f)["x"].combine_chunks().flatten().to_numpy().reshape(-1, 7)
                        for f in glob.glob(f"{out}/windows/train/*.parquet")])
    np.testing.assert_allclose(m.zscore.mean, x.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m.zscore.std, x.std(0), rtol=1e-3)


def test_rows_hold_the_promised_columns_and_honest_labels(built):
    out, *_ = built
    tab = pq.read_table(glob.glob(f"{out}/windows/*/*.parquet")[0])
    for col in ("caseid", "subjectid", "split", "t_end", "x", "label", "label_time", "last_map", "last_sbp",
                "last_time"):
        assert col in tab.column_names
    assert tab.schema.field("x").type.list_size == 420
    assert (np.array(tab["label_time"]) > np.array(tab["t_end"])).all()
    assert not np.isnan(tab["x"].combine_chunks().flatten().to_numpy()).any()


def test_subjects_never_cross_splits(built):
    out, *_ = built
    seen = {}
    for f in glob.glob(f"{out}/windows/*/*.parquet"):
        tab = pq.read_table(f, columns=["subjectid", "split"])
        for s, sp in zip(tab["subjectid"].to_pylist(), tab["split"].to_pylist()):
            assert seen.setdefault(s, sp) == sp


def test_rerun_skips_done_cases_and_is_identical(built):
    out, src, m, _ = built
    before = sorted(_rows(out))
    lines = []
    m2 = build_windows(src, WindowConfig(), out, progress=False, log=lines.append)
    assert any("resuming: 11 of 12" in line for line in lines)  # the 'error' case is retried
    assert sorted(_rows(out)) == before
    assert m2.fingerprint == m.fingerprint


def test_another_config_in_the_same_folder_is_refused(built):
    out, src, *_ = built
    with pytest.raises(ConfigError, match="another config"):
        build_windows(src, WindowConfig(label=LabelConfig(mode="ffill")), out, progress=False, log=print)


def test_ffill_mode_leaks_labels_from_inside_the_window(ray_local, tmp_path):
    src = FakeSource(4, max_gap=600)  # cuff gaps over 5 min, as in real records
    m = build_windows(src, WindowConfig(label=LabelConfig(mode="ffill")), str(tmp_path / "f"), progress=False,
                      log=lambda s: None)
    assert m.labels_at_or_before_window_end.share > 0.1
    honest = build_windows(src, WindowConfig(), str(tmp_path / "r"), progress=False, log=lambda s: None)
    assert honest.labels_at_or_before_window_end.count == 0


@pytest.mark.parametrize("n_cases, per_task, slots, expected", [
    (5064, 16, 2, 317),   # batches of 16 when there are plenty of cases
    (100, 16, 8, 16),     # raised to two tasks per slot, so no slot idles on a long batch
    (3, 16, 8, 3),        # never more tasks than cases
    (0, 16, 2, 1),        # an empty job is still one (empty) block
    (40, 1, 2, 40),       # one case per task when asked
    (10, 16, 0, 2),       # a fractional or zero slot count counts as one slot
])
def test_cases_are_split_into_enough_tasks_to_keep_every_slot_busy(n_cases, per_task, slots, expected):
    assert num_tasks(n_cases, per_task, slots) == expected


def test_a_subject_in_two_splits_stops_the_manifest(built):
    out, src, manifest, _ = built
    summaries = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/cases/*.json"))]
    first = {}
    for s in summaries:
        first.setdefault(s["split"], s)
    assert len(first) >= 2, "the fixture should fill at least two splits"
    a, b = list(first.values())[:2]
    b["subjectid"] = a["subjectid"]  # as if the split assignment had put one subject on both sides
    with pytest.raises(DatasetError, match=f"subjects in both the .* splits: {a['subjectid']}"):
        make_manifest(summaries, WindowConfig(), src, wall_s=0.0)


def test_case_ids_that_share_a_file_name_are_refused_before_any_work(ray_local, tmp_path):
    class Clash(FakeSource):
        def case_refs(self):
            return [{"caseid": "a b", "subject": "1"}, {"caseid": "a_b", "subject": "2"}]

    with pytest.raises(ConfigError, match="'a b' and 'a_b' both map to the file name case_a_b"):
        build_windows(Clash(2), WindowConfig(), str(tmp_path / "x"), progress=False, log=print)
    with pytest.raises(ConfigError, match="--num-cpus-per-task must be > 0"):
        build_windows(FakeSource(2), WindowConfig(), str(tmp_path / "y"), num_cpus_per_task=0, progress=False)


def test_no_window_in_train_says_why_with_the_rejection_counts():
    from hypo.data.preprocess import make_manifest
    from hypo.errors import DatasetError

    rejected = [{"caseid": str(i), "status": "rejected", "reason": r, "detail": ""}
                for i, r in enumerate(["missing track", "missing track", "too short"])]
    with pytest.raises(DatasetError) as exc:
        make_manifest(rejected, WindowConfig(), FakeSource(3), wall_s=0.0)
    msg = str(exc.value)
    assert "all 3 cases were rejected (missing track 2, too short 1)" in msg and "\n" not in msg


def test_empty_splits_are_explained_in_the_users_terms():
    from hypo.data.dataset import empty_split_reason

    manifest = manifest_record(config={"split": {"train": 1.0, "val": 0.0, "test": 0.0, "seed": 0}},
                               cases={"listed": 5, "ok": 5}, rejected_counts={})
    assert "because the dataset was built with --split 1 0 0" in empty_split_reason(manifest, "val")
    manifest = manifest_record(config={"split": {"train": 0.7, "val": 0.15, "test": 0.15}},
                               cases={"listed": 3, "ok": 1}, rejected_counts={"too short": 2})
    why = empty_split_reason(manifest, "test")
    assert "1 of 3 cases were usable (rejected: too short 2)" in why and "build the dataset from more cases" in why


def test_training_on_a_split_1_0_0_dataset_names_the_split_flag(tmp_path):
    from hypo.config import SplitConfig
    from hypo.errors import DatasetError
    from hypo.learn.train import TrainConfig, fit_arrays, load_data

    from demo_experiment import build_demo_dataset

    out = str(tmp_path / "d")
    os.makedirs(out)
    build_demo_dataset(out, n_cases=4, cfg=WindowConfig(split=SplitConfig(1.0, 0.0, 0.0)))
    with pytest.raises(DatasetError, match=r"the val split is empty because the dataset was built with --split 1 0 0"):
        fit_arrays(TrainConfig(epochs=1), load_data(out))
