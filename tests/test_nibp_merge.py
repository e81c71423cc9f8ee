"""Cuff readings whose three values a monitor stamps a second or two apart: grouped into readings, or rejected
with a reason that says what happened, and the artefacts of rejected cases counted."""

import numpy as np
import pytest

from hypo.cli.windows import config_from_args, parse_args
from hypo.config import WindowConfig, fingerprint, from_dict, to_dict
from hypo.data.artefacts import merge_cuff_values
from hypo.data.pipeline import clean_case, process_case, run_case
from hypo.data.preprocess import make_manifest, summary_lines
from hypo.data.signals import DBP, MBP, NIBP, SBP
from hypo.data.sources.base import Case
from hypo.data.sources.demo import simulate_case
from hypo.errors import CaseRejected, ConfigError

from fake_sources import synthetic_case

DEFAULT_FINGERPRINT = "79828cee3f8ccb06"  # WindowConfig(), pinned in test_art
nan = np.nan


def stamped_apart(sig: np.ndarray, offsets: dict[int, int]) -> np.ndarray:
    """The case with each cuff reading's values moved ``offsets[channel]`` seconds earlier (0 = where it was)."""
    out = sig.copy()
    rows = np.flatnonzero(np.isfinite(sig[:, NIBP]).any(axis=1))
    out[np.ix_(rows, NIBP)] = nan
    for col in NIBP:
        out[rows - offsets.get(col, 0), col] = sig[rows, col]
    return out


@pytest.mark.parametrize("offsets", [{SBP: 2, MBP: 1}, {DBP: 2, SBP: 1}, {MBP: 1, DBP: 1}, {SBP: 2, DBP: 2},
                                     {SBP: 1}])
def test_values_stamped_one_or_two_seconds_apart_give_the_aligned_readings(offsets):
    case = simulate_case(3)
    apart = Case(case.caseid, case.subjectid, stamped_apart(case.signals, offsets))
    assert not np.array_equal(apart.signals, case.signals, equal_nan=True)
    cfg = WindowConfig()
    want, got = clean_case(case, cfg), clean_case(apart, cfg)
    np.testing.assert_array_equal(got.cleaned, want.cleaned)  # the same readings, at the same seconds
    np.testing.assert_array_equal(got.filled, want.filled)
    n_readings = int(np.isfinite(case.signals[:, NIBP]).any(axis=1).sum())
    assert got.artefacts == want.artefacts and want.merged == 0 and got.merged == n_readings > 10
    w_want, s_want = process_case(case, cfg)
    w_got, s_got = process_case(apart, cfg)
    for field in ("t_end", "x", "label", "label_time", "label_map", "last_map", "last_time"):
        np.testing.assert_array_equal(getattr(w_got, field), getattr(w_want, field))
    assert s_got["nibp_merged"] == got.merged and s_want["nibp_merged"] == 0


def test_aligned_recordings_are_returned_as_they_are():
    sig = simulate_case(1).signals
    merged, n = merge_cuff_values(sig, 3)
    assert merged is sig and n == 0


def test_a_reading_takes_each_value_once_and_spans_at_most_merge_s():
    sig = np.full((40, 7), nan, np.float32)
    sig[0, SBP], sig[1, SBP], sig[2, MBP], sig[3, DBP] = 120, 121, 80, 60  # a second SBP starts a new reading
    sig[20, SBP], sig[24, MBP], sig[24, DBP] = 130, 85, 65  # 4 s apart: more than merge_s 3
    out, n = merge_cuff_values(sig, 3)
    assert n == 1
    np.testing.assert_array_equal(out[3, NIBP], [121, 80, 60])  # stamped at the latest of its values
    assert out[0, SBP] == 120 and np.isnan(out[[1, 2], :][:, NIBP]).all()
    assert out[20, SBP] == 130 and np.isnan(out[20, [MBP, DBP]]).all() and out[24, MBP] == 85
    wide, n4 = merge_cuff_values(sig, 4)
    assert n4 == 2 and np.array_equal(wide[24, NIBP], [130, 85, 65])
    same, n0 = merge_cuff_values(sig, 0)
    assert n0 == 0 and same is sig


def test_a_group_still_lacking_a_value_is_not_counted_as_a_merged_reading():
    sig = np.full((20, 7), nan, np.float32)
    sig[0, SBP], sig[1, MBP] = 120, 80  # no diastolic value within 3 s: a partial reading, removed later
    sig[10, SBP], sig[11, MBP], sig[12, DBP] = 125, 82, 61
    out, n = merge_cuff_values(sig, 3)
    assert n == 1
    np.testing.assert_array_equal(out[12, NIBP], [125, 82, 61])
    assert out[1, SBP] == 120 and np.isnan(out[1, DBP])  # moved to its latest second all the same


def far_apart_case(caseid: str = "1") -> Case:
    """A case whose cuff writes SBP, MAP and DBP 10 s apart: no reading is ever whole within 3 s."""
    sig = synthetic_case(int(caseid), 3600)
    return Case(caseid, caseid, stamped_apart(sig, {SBP: 20, MBP: 10}))


def test_never_whole_readings_are_rejected_saying_so_with_their_artefact_counts():
    with pytest.raises(CaseRejected) as exc:
        clean_case(far_apart_case(), WindowConfig())
    e = exc.value
    assert e.reason == "no complete cuff reading"
    assert str(e).startswith("no complete cuff reading: SBP/MAP/DBP never in the same reading")
    assert "--nibp-merge-s 3" in e.detail
    assert e.artefacts["nibp_incomplete"] > 30 and sum(e.artefacts.values()) == e.artefacts["nibp_incomplete"]
    # A wider merge window groups them again.
    clean = clean_case(far_apart_case(), WindowConfig(nibp_merge_s=20))
    whole = np.isfinite(clean.cleaned[:, NIBP]).all(axis=1).sum()
    assert clean.merged > 10 and whole == clean.merged - clean.artefacts["nibp_zero"]  # the planted cuff zero


def test_a_cuff_made_only_of_artefacts_is_no_valid_reading():
    sig = synthetic_case(2, 3600)
    rows = np.flatnonzero(np.isfinite(sig[:, MBP]))
    sig[rows, MBP] = 250  # every MAP out of range
    with pytest.raises(CaseRejected) as exc:
        clean_case(Case("2", "2", sig), WindowConfig())
    assert exc.value.reason == "no valid cuff reading" and "map_out_of_range" in exc.value.detail
    assert exc.value.artefacts["map_out_of_range"] >= len(rows) - 1


class ApartSource:
    """Cases 1-3 good; case 4 with cuff values far apart."""

    name = "apart"

    def case_refs(self):
        return [{"caseid": str(i)} for i in range(1, 5)]

    def load_case(self, ref):
        if ref["caseid"] == "4":
            return far_apart_case("4")
        return Case(ref["caseid"], ref["caseid"], synthetic_case(int(ref["caseid"]), 3600))

    def fingerprint(self):
        return "apart"

    def report(self):
        return {}


def test_manifest_counts_the_artefacts_of_rejected_cases(tmp_path):
    src, cfg = ApartSource(), WindowConfig(split=from_dict(WindowConfig, {}).split)
    summaries = [run_case(r, src, cfg, str(tmp_path)) for r in src.case_refs()]
    m = make_manifest(summaries, cfg, src, 0.0)
    assert m.rejected_counts == {"no complete cuff reading": 1}
    rejected = next(s for s in summaries if s["status"] == "rejected")
    assert m.artefacts_in_rejected_cases["nibp_incomplete"] == rejected["artefacts"]["nibp_incomplete"] > 30
    assert m.artefacts["nibp_incomplete"] == 0 and m.artefacts["nibp_zero"] == 3
    lines = summary_lines(m)
    assert any(line.startswith("artefacts removed in rejected cases: nibp_incomplete") for line in lines)
    assert "  rejected      1  no complete cuff reading" in lines


def test_new_window_options_keep_the_default_dict_and_fingerprint():
    cfg = WindowConfig()
    assert "nibp_merge_s" not in to_dict(cfg) and "allow_missing" not in to_dict(cfg)
    assert fingerprint(cfg) == DEFAULT_FINGERPRINT
    assert fingerprint(WindowConfig(nibp_merge_s=3, allow_missing=())) == DEFAULT_FINGERPRINT
    other = WindowConfig(nibp_merge_s=0, allow_missing=("bis", "mac"))
    assert to_dict(other)["nibp_merge_s"] == 0 and to_dict(other)["allow_missing"] == ["mac", "bis"]
    assert from_dict(WindowConfig, to_dict(other)) == other and fingerprint(other) != DEFAULT_FINGERPRINT
    default_args = config_from_args(parse_args(["--source", "demo", "--out", "x"]))
    assert default_args == cfg
    for bad, needle in ((["--nibp-merge-s", "-1"], "--nibp-merge-s must be"),
                        (["--allow-missing", "ecg"], "unknown group for --allow-missing ecg")):
        with pytest.raises(ConfigError, match=needle):
            config_from_args(parse_args(["--source", "demo", "--out", "x", *bad]))
