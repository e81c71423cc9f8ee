"""The demo cohort end to end through the Ray Data job: as arrays, as genuine .vital files, honest vs leaky."""

import glob

import numpy as np
import pyarrow.parquet as pq
import pytest

from hypo.config import LabelConfig, WindowConfig
from hypo.data.dataset import load_split, read_manifest
from hypo.data.preprocess import build_windows
from hypo.data.sources.demo import DemoSource
from hypo.data.sources.demo_files import write_demo_vital_files
from hypo.data.sources.vital import VitalDirSource
from hypo.learn.baseline import baseline_metrics

N = 30


def _quiet(_):
    pass


@pytest.fixture(scope="module")
def demo_dirs(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    honest = build_windows(DemoSource(N), WindowConfig(), str(root / "reading"), progress=False, log=_quiet)
    leaky = build_windows(DemoSource(N), WindowConfig(label=LabelConfig(mode="ffill")), str(root / "ffill"),
                          progress=False, log=_quiet)
    return root, honest, leaky


def test_demo_cohort_builds_a_balanced_subject_split_dataset(demo_dirs):
    root, m, _ = demo_dirs
    assert m.cases.ok == N and list(m.rejected) == []
    assert m.source.report["simulated"] is True
    total = {c: sum(m.counts[s].of(c) for s in m.counts) for c in ("normal", "hypotension", "hypertension")}
    abnormal = (total["hypotension"] + total["hypertension"]) / sum(total.values())
    assert 0.12 < abnormal < 0.32  # about the study's 8 : 2
    assert sum(m.artefacts.values()) > 0
    train = load_split(str(root / "reading"), "train")
    assert len(train) == m.counts["train"].windows
    assert set(train.subjectid).isdisjoint(load_split(str(root / "reading"), "test").subjectid)


def test_ffill_labels_leak_and_the_honest_labels_do_not(demo_dirs):
    root, honest, leaky = demo_dirs
    assert honest.labels_at_or_before_window_end.count == 0
    assert leaky.labels_at_or_before_window_end.share > 0.02
    # The last-reading baseline scores visibly higher against the leaky labels.
    def auroc(mode, m):
        return baseline_metrics(load_split(str(root / mode), "val"), read_manifest(str(root / mode)),
                                warn=False)["mean_auroc"]

    assert auroc("ffill", leaky) > auroc("reading", honest) + 0.02


def test_demo_cases_as_vital_files_give_the_same_windows(ray_local, tmp_path):
    n = 4
    paths = write_demo_vital_files(str(tmp_path / "vital"), n)
    assert len(paths) == n
    src = VitalDirSource(str(tmp_path / "vital"), subjects=str(tmp_path / "vital" / "subjects.csv"))
    via_files = build_windows(src, WindowConfig(), str(tmp_path / "a"), progress=False, log=_quiet)
    direct = build_windows(DemoSource(n), WindowConfig(), str(tmp_path / "b"), progress=False, log=_quiet)
    assert via_files.counts == direct.counts
    np.testing.assert_allclose(via_files.zscore.mean, direct.zscore.mean, rtol=1e-6)
    for f in glob.glob(str(tmp_path / "b" / "windows" / "*" / "*.parquet")):
        a = pq.read_table(f.replace("/b/", "/a/"))
        b = pq.read_table(f)
        assert a.column("x").equals(b.column("x")) and a.column("label").equals(b.column("label"))
