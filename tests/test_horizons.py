"""Several horizons in one dataset (``hypo windows --horizons``): labels per horizon, kept rows, manifest, CLI."""

import numpy as np
import pytest

from hypo.cli.windows import config_from_args, parse_args
from hypo.config import LabelConfig, WindowConfig, to_dict
from hypo.data.dataset import load_split, read_manifest
from hypo.data.manifest import write_manifest
from hypo.data.pipeline import process_case, run_case
from hypo.data.preprocess import make_manifest, summary_lines
from hypo.data.sources.demo import simulate_case
from hypo.data.sources.demo_files import write_demo_vital_files
from hypo.data.sources.vital import VitalDirSource
from hypo.data.splits import SPLITS
from hypo.errors import ConfigError

from demo_experiment import build_demo_dataset

HORIZONS = (60, 180, 300, 600, 900)


def _multi(label: LabelConfig, primary: int = 300) -> WindowConfig:
    return WindowConfig(label=LabelConfig(**{**to_dict(label), "horizon_s": primary, "horizons_s": HORIZONS}))


def _single(label: LabelConfig, h: int) -> WindowConfig:
    return WindowConfig(label=_multi(label).label.at(h))


def _windows(case, cfg):
    win, _ = process_case(case, cfg)
    return {int(t): i for i, t in enumerate(win.t_end)}, win


@pytest.mark.parametrize("label", [LabelConfig(), LabelConfig(mode="ffill"), LabelConfig(source="art")],
                         ids=["reading", "ffill", "art"])
def test_labels_per_horizon_equal_single_horizon_builds(label):
    checked = dict.fromkeys(HORIZONS, 0)
    for cid in (1, 2, 3, 5):
        case = simulate_case(cid)
        if label.source == "art" and case.art is None:
            continue
        rows, multi = _windows(case, _multi(label))
        assert multi.horizon_labels.shape == (len(multi), len(HORIZONS))
        k300 = HORIZONS.index(300)
        assert np.array_equal(multi.horizon_labels[:, k300], multi.label)  # the primary's column is the label
        for k, h in enumerate(HORIZONS):
            srows, single = _windows(case, _single(label, h))
            both = sorted(set(rows) & set(srows))
            got = multi.horizon_labels[[rows[t] for t in both], k]
            assert np.array_equal(got, single.label[[srows[t] for t in both]])
            # a window the single build labels is labelled here too, and one it does not label is missing here
            missing = [t for t in rows if t not in srows]
            assert (multi.horizon_labels[[rows[t] for t in missing], k] == -1).all()
            checked[h] += len(both)
    assert all(n > 0 for n in checked.values()), checked


def test_multi_horizon_rows_are_the_single_horizon_build_at_the_primary(tmp_path):
    single = build_demo_dataset(str(tmp_path / "s"), 6)
    multi = build_demo_dataset(str(tmp_path / "m"), 6, cfg=_multi(LabelConfig()))
    assert single.fingerprint == "e3950b3a4973eb93"  # what the single-horizon build gave before --horizons existed
    assert multi.fingerprint != single.fingerprint and single.horizons is None and single.horizons_s == (300,)
    assert multi.counts == single.counts and multi.dropped_windows == single.dropped_windows
    sec = read_manifest(str(tmp_path / "m")).horizons
    assert sec.horizons_s == HORIZONS and sec.primary_s == 300 and sec.missing(300) == 0
    assert sec.missing(900) > 0  # windows near the case end have no label 15 min later
    for sp in SPLITS:
        s, m = load_split(str(tmp_path / "s"), sp), load_split(str(tmp_path / "m"), sp)
        assert s.horizon_labels is None and m.horizon_labels.shape == (len(m), len(HORIZONS))
        for f in ("x", "label", "t_end", "caseid", "last_map", "last_time", "earlier_map"):
            a, b = getattr(s, f), getattr(m, f)
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f
        for h in HORIZONS:  # the manifest's counts are the column's
            c = sec.counts[sp][str(h)]
            col = m.horizon_labels[:, HORIZONS.index(h)]
            assert (c.normal, c.hypotension, c.hypertension, c.missing) == \
                (int((col == 0).sum()), int((col == 1).sum()), int((col == 2).sum()), int((col == -1).sum()))
    lines = "\n".join(summary_lines(multi))
    assert "horizons 60,180,300,600,900 s (primary 300 s" in lines and "missing" in lines


@pytest.fixture(scope="module")
def vital_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("v")
    write_demo_vital_files(str(root / "v"), 5)
    return root / "v"


def _vital_build(folder, cfg, out):
    src = VitalDirSource(folder, subjects=folder / "subjects.csv", arterial=cfg.label.source == "art")
    sums = [run_case(ref, src, cfg, str(out)) for ref in src.case_refs()]
    write_manifest(str(out), make_manifest(sums, cfg, src, wall_s=0.0))
    return {sp: load_split(str(out), sp) for sp in SPLITS}


@pytest.mark.parametrize("label", [LabelConfig(), LabelConfig(source="art")], ids=["cuff", "art"])
def test_vital_folder_labels_per_horizon_equal_single_horizon_builds(vital_folder, label, tmp_path):
    multi = _vital_build(vital_folder, _multi(label), tmp_path / "m")
    compared = dict.fromkeys(HORIZONS, 0)
    for k, h in enumerate(HORIZONS):
        single = _vital_build(vital_folder, _single(label, h), tmp_path / f"s{h}")
        for sp in SPLITS:
            m, s = multi[sp], single[sp]
            labelled = {(c, int(t)): y for c, t, y in zip(s.caseid, s.t_end, s.label)}
            for j, key in enumerate(zip(m.caseid, m.t_end)):
                want = labelled.get((key[0], int(key[1])), -1)  # a window the single build drops: missing here
                assert m.horizon_labels[j, k] == want
                compared[h] += want >= 0
            if h == 300:  # the primary: the same rows
                assert np.array_equal(m.t_end, s.t_end) and np.array_equal(m.label, s.label)
    assert all(n > 0 for n in compared.values()), compared


def _cfg(*argv):
    return config_from_args(parse_args(["--source", "demo", "--out", "x", *argv]))


def test_cli_horizons_and_their_refusals():
    assert _cfg() == WindowConfig() and to_dict(_cfg("--horizon", "600")) == to_dict(
        WindowConfig(label=LabelConfig(horizon_s=600)))
    assert "horizons_s" not in to_dict(_cfg())["label"]  # a single-horizon config keeps its dict
    cfg = _cfg("--horizons", "900,60,300,180,600")
    assert cfg.label.horizons_s == HORIZONS and cfg.label.horizon_s == 300
    assert _cfg("--horizons", "60,600", "--horizon", "600").label.horizon_s == 600
    for flags, msg in ((("--horizons", "60,3.5,300"), "'3.5' is not a whole number"),
                       (("--horizons", "0,300"), "must be > 0"),
                       (("--horizons", "60,300,60"), "60 given twice"),
                       (("--horizons", "60,600"), "lacks the primary horizon 300"),
                       (("--horizons", "60,300", "--horizon", "600"), "--horizon 600 is not among"),
                       (("--horizons", "60,300", "--label-source", "art", "--horizon", "60"), None)):
        if msg is None:  # ART: a 60 s primary is fine (the stretch 30-90 s after the end)
            assert _cfg(*flags).label.horizon_s == 60
            continue
        with pytest.raises(ConfigError, match=msg) as info:
            _cfg(*flags)
        assert "\n" not in str(info.value)


def test_label_config_horizons_validation():
    with pytest.raises(ConfigError, match="must include the primary"):
        LabelConfig(horizons_s=(60, 600))
    with pytest.raises(ConfigError, match="exceed event_s / 2"):
        LabelConfig(source="art", horizon_s=300, horizons_s=(30, 300))
    assert LabelConfig(horizons_s=(60, 300)).at(60).tolerance_s == 59  # the widest a 60 s build allows
    assert LabelConfig(horizons_s=(60, 300)).at(300) == LabelConfig()



def test_cli_builds_several_horizons_and_says_what_is_missing(ray_local, tmp_path, capsys):
    from hypo.cli.windows import main

    man = main(["--source", "demo", "--cases", "4", "--horizons", "60,300,900", "--out", str(tmp_path / "d"),
                "--no-progress"])
    out = capsys.readouterr().out
    assert man.horizons.horizons_s == (60, 300, 900) and read_manifest(str(tmp_path / "d")).horizons_s == (60, 300, 900)
    assert "horizons 60,300,900 s (primary 300 s" in out
    assert f"missing {man.horizons.missing(900):>7}" in out
