"""Hostile inputs that used to pass silently or end in a traceback: each now gets one line, or the right state."""

import errno
import json
import os

import pytest
from cli_errors import one_line_error

from hypo.cli.demo_files import main as demo_files_main
from hypo.cli.leaderboard import main as leaderboard_main
from hypo.cli.report import main as report_main
from hypo.cli.search import main as search_main
from hypo.data.sources.demo_files import write_demo_vital_files
from hypo.errors import ConfigError
from hypo.evaluate.alarms.metrics import AlarmConfig

# ------------------------------------------------------------------------------------- contradictory flags


@pytest.mark.parametrize("argv, needle", [
    (["--alarms", "1", "--no-alarms"], "give one of them"),
    (["--no-alarms"], "without --test there is none"),
    (["--test", "1", "--no-alarms", "--alarm-m", "3"], "--alarm-m sets the alarm evaluation, which --no-alarms"),
    (["--alarm-stride", "30"], "runs only with --alarms N or --test N"),
])
def test_leaderboard_refuses_contradictory_alarm_flags(tmp_path, capsys, argv, needle):
    err = one_line_error(capsys, leaderboard_main, [str(tmp_path / "nowhere"), *argv])
    assert needle in err, err


def test_report_refuses_alarm_options_it_would_ignore(tmp_path, capsys):
    err = one_line_error(capsys, report_main, [str(tmp_path), "--no-alarms", "--alarm-cases", "5"])
    assert "--alarm-cases sets the alarm evaluation, which --no-alarms leaves out" in err


def test_evaluate_refuses_alarm_options_without_alarms(tmp_path, capsys):
    from hypo.cli.evaluate import main as evaluate_main

    err = one_line_error(capsys, evaluate_main, ["model.pt", "--data", str(tmp_path), "--alarm-hysteresis", "0.1"])
    assert "runs only with --alarms" in err
    err = one_line_error(capsys, evaluate_main, ["model.pt", "--data", str(tmp_path), "--alarm-thresholds-from",
                                                 "other"])
    assert "add --alarms" in err


@pytest.mark.parametrize("flag", ["--grace-period", "--reduction-factor"])
def test_search_refuses_asha_settings_without_asha(tmp_path, capsys, flag):
    err = one_line_error(capsys, search_main, ["--data", str(tmp_path), "--scheduler", "none", flag, "5"])
    assert f"{flag} tune ASHA's early stopping; --scheduler none has none" in err


# ------------------------------------------------------------------------------------- the alarm hysteresis


@pytest.mark.parametrize("h", [1.0, 2.0])
def test_a_hysteresis_that_leaves_no_usable_threshold_is_refused(h):
    with pytest.raises(ConfigError, match="leaves no usable threshold"):
        AlarmConfig(hysteresis=h)
    assert AlarmConfig(hysteresis=0.5).hysteresis == 0.5


# ------------------------------------------------------------------------------------- demo files


def test_demo_files_refuse_a_folder_of_another_site(tmp_path, capsys):
    folder = tmp_path / "vital"
    write_demo_vital_files(str(folder), 2)
    before = sorted(os.listdir(folder))
    err = one_line_error(capsys, demo_files_main, ["--site", "b", "--out", str(folder), "--cases", "2"])
    assert "already holds 2 .vital files of site a, seed 0" in err and "use a new --out" in err
    for argv in (["--cases", "3"], ["--seed", "4", "--cases", "2"]):  # another case count or seed
        one_line_error(capsys, demo_files_main, ["--out", str(folder), *argv])
    assert sorted(os.listdir(folder)) == before
    assert json.loads((folder / "hypo_simulated.json").read_text())["site"] == "a"
    demo_files_main(["--out", str(folder), "--cases", "2"])  # the same command again: fine
    assert sorted(os.listdir(folder)) == before


def test_demo_files_refuse_a_folder_of_foreign_recordings(tmp_path, capsys):
    (tmp_path / "patient.vital").write_bytes(b"x")
    err = one_line_error(capsys, demo_files_main, ["--out", str(tmp_path), "--cases", "1"])
    assert "1 .vital files not written by hypo demo-files" in err


def test_demo_files_out_an_existing_file_or_a_read_only_disk_is_one_line(tmp_path, capsys, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    assert "is a file, not a folder" in one_line_error(capsys, demo_files_main, ["--out", str(f)])

    def read_only(*a, **kw):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "ro"))

    monkeypatch.setattr(os, "makedirs", read_only)
    err = one_line_error(capsys, demo_files_main, ["--out", str(tmp_path / "ro")])
    assert "Read-only file system" in err


# ------------------------------------------------------------------------------------- a .vital cut inside a packet


@pytest.mark.parametrize("share", [0.3, 0.999])
def test_a_vital_file_cut_inside_a_valid_gzip_stream_is_truncated_not_all_nan(tmp_path, share):
    import gzip

    from hypo.data.sources.vital import default_track_map, read_vital_case
    from hypo.errors import CaseRejected

    path = write_demo_vital_files(str(tmp_path / "v"), 1)[0]
    raw = gzip.decompress(open(path, "rb").read())
    cut = tmp_path / "cut.vital"
    cut.write_bytes(gzip.compress(raw[:int(len(raw) * share)]))  # a whole gzip member holding part of the file
    with pytest.raises(CaseRejected) as exc:
        read_vital_case(str(cut), "1", default_track_map())
    assert exc.value.reason == "corrupt file" and "truncated inside a packet" in str(exc.value)
    assert read_vital_case(path, "1", default_track_map()).signals.shape[1] == 7  # the intact file still reads
