"""ART-labelled window datasets end to end: the Ray Data job on the demo cohort, a .vital folder and the VitalDB
stand-in; the command line; cuff folders built before label sources existed still resume; the leaderboard and
report say where the labels come from."""

import json
import os

import numpy as np
import pytest

from hypo.cli.windows import main as windows_main
from hypo.config import LabelConfig, WindowConfig, to_dict
from hypo.data.dataset import load_split, read_manifest
from hypo.data.preprocess import build_windows
from hypo.data.sources.demo import DemoSource, simulate_case
from hypo.data.sources.demo_files import write_demo_vital_files
from hypo.data.sources.vital import VitalDirSource
from hypo.data.splits import SPLITS
from hypo.errors import ConfigError
from hypo.evaluate.testsplit.report import ReportRequest, make_report
from hypo.search.board import show_leaderboard

from demo_experiment import build_demo_dataset, fake_search

ART = WindowConfig(label=LabelConfig(source="art"))
N = 8


def _rows(data_dir):
    man = read_manifest(data_dir)
    out = {}
    for sp in SPLITS:
        a = load_split(data_dir, sp, man)
        for i in range(len(a)):
            out[(a.caseid[i], int(a.t_end[i]))] = (a.x[i], a.label[i], a.art_last_map[i], a.art_last_sbp[i])
    return out


@pytest.fixture(scope="module")
def builds(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("builds")
    art = build_windows(DemoSource(N, arterial=True), ART, str(root / "art"), progress=False, log=print)
    cuff = build_windows(DemoSource(N), WindowConfig(), str(root / "cuff"), progress=False, log=print)
    return root, art, cuff


def test_demo_art_build_manifest_rows_and_inputs(builds):
    root, art, cuff = builds
    no_line = sum(simulate_case(i).art is None for i in range(1, N + 1))
    assert 0 < no_line < N and art.rejected_counts == {"no arterial line": no_line}
    assert art.label_source == "art" and cuff.label_source == "cuff" and cuff.art_label is None
    sec = art.art_label
    assert "every valid ART MAP sample is < 65" in sec.event and "24 of 30" in sec.coverage
    assert sec.samples > 0 and sec.artefacts["art_flush_or_zero"] > 0 and sec.median_interval_s == 2.0
    assert art.dropped_windows.no_label > 0
    for sp in SPLITS:  # per-split class counts
        assert sum(art.counts[sp].of(k) for k in ("normal", "hypotension", "hypertension")) == \
            art.counts[sp].windows
    a, c = _rows(root / "art"), _rows(root / "cuff")
    both = set(a) & set(c)
    assert len(both) > 0.5 * len(a)
    assert all(a[k][0].tobytes() == c[k][0].tobytes() for k in both)  # the same inputs, whatever the label
    art_last = np.array([v[2] for v in a.values()])
    assert np.isfinite(art_last).mean() > 0.9 and (art_last > 20).all(where=np.isfinite(art_last))
    assert all(np.isnan(v[2]) and np.isnan(v[3]) for v in c.values())  # cuff datasets: NaN


def test_a_split_without_a_class_is_a_warning_not_a_refusal(ray_local, tmp_path):
    lines = []
    man = build_windows(DemoSource(3, arterial=True), ART, str(tmp_path / "w"), progress=False, log=lines.append)
    assert man.warnings and any(line.startswith("warning: the ") for line in lines)
    empty = [sp for sp in SPLITS if man.counts[sp].windows == 0]
    assert all(f"the {sp} split has no window" in man.warnings for sp in empty)


def test_vital_folder_gives_the_demo_art_windows(builds, ray_local, tmp_path):
    root, art, _ = builds
    write_demo_vital_files(str(tmp_path / "v"), N)
    src = VitalDirSource(tmp_path / "v", subjects=tmp_path / "v" / "subjects.csv", arterial=True)
    man = build_windows(src, ART, str(tmp_path / "w"), progress=False, log=print)
    assert man.counts == art.counts and man.rejected_counts == art.rejected_counts
    got, want = _rows(tmp_path / "w"), _rows(root / "art")
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k][0].tobytes() == v[0].tobytes() and got[k][1] == v[1]
        assert np.array_equal(got[k][2:], v[2:], equal_nan=True)


def test_art_labels_need_a_source_that_reads_the_line(tmp_path):
    with pytest.raises(ConfigError, match="arterial"):
        build_windows(DemoSource(2), ART, str(tmp_path / "x"), progress=False)


def test_cuff_folder_from_before_resumes_and_refuses_art_labels(builds, ray_local, tmp_path):
    root, _, cuff = builds
    cfg_file = json.loads((root / "cuff" / "config.json").read_text())
    assert cfg_file["config"] == to_dict(WindowConfig())  # what a folder built before this change holds
    lines = []
    again = build_windows(DemoSource(N), WindowConfig(), str(root / "cuff"), progress=False, log=lines.append)
    assert any(f"{N} of {N} cases already done" in line for line in lines)
    assert again.fingerprint == cuff.fingerprint
    with pytest.raises(ConfigError, match="another config"):
        build_windows(DemoSource(N, arterial=True), ART, str(root / "cuff"), progress=False)


def test_cli_refuses_cuff_options_with_art_labels_in_one_line(capsys, tmp_path):
    for extra, named in ((["--tolerance", "60"], "--tolerance describes"),
                         (["--label-mode", "ffill"], "--label-mode describes"),
                         (["--label-mode", "reading", "--tolerance", "90"], "--label-mode and --tolerance describe")):
        with pytest.raises(SystemExit) as info:
            windows_main(["--source", "demo", "--out", str(tmp_path / "x"), "--label-source", "art", *extra])
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.count("\n") == 1
        assert err.startswith(f"hypo windows: error: {named} cuff labels") and "--label-source art" in err
    assert not os.path.exists(tmp_path / "x")


def test_cli_builds_art_labels_from_demo(ray_local, tmp_path, capsys):
    man = windows_main(["--source", "demo", "--cases", "4", "--label-source", "art", "--out", str(tmp_path / "d"),
                        "--no-progress"])
    out = capsys.readouterr().out
    assert man.config.label.source == "art" and "label source art:" in out and "arterial line:" in out


@pytest.mark.slow  # end to end; CI runs it (pytest -m slow)
def test_leaderboard_and_report_state_the_label_source(tmp_path):
    data = str(tmp_path / "data")
    build_demo_dataset(data, n_cases=40, cfg=ART)
    exp = fake_search(data, str(tmp_path / "exp"), trials=({"model": "cnn", "k": 4, "loss": "ce"},), epochs=1)
    lines = []
    res = show_leaderboard(exp, log=lines.append)
    assert "labels from the arterial line" in lines[0]
    with open(res["paths"]["md"]) as f:
        assert "labels from the arterial line" in f.readline()
    rep = make_report(ReportRequest(exp, out=str(tmp_path / "r"), n_boot=10), log=lambda s: None)
    with open(rep["paths"]["html"]) as f:
        html = f.read()
    assert "<p class='note'>Window labels from the arterial line (ART, 60 s centred 300 s after the window end)" in html
