"""Ctrl-C on a real search: exit 130, the resume command, a leaderboard marked partial; the console stays short."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from synthetic_windows import write_synthetic_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("data") / "windows")
    write_synthetic_dataset(d, n_train=600, n_val=300, n_test=100, seed=0)
    return d


def _search(data_dir, storage, name, *extra):
    cmd = [sys.executable, os.path.join(ROOT, "tune", "search.py"), "--data", data_dir, "--storage", str(storage),
           "--name", name, "--max-concurrent", "1", "--batch-size", "256", *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_first_result(proc, exp, timeout_s: float = 180):
    """Wait until a trial of the search has reported; the search must still be running then."""
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None and not list(exp.glob("train_trial*/result.json")):
        time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()


def test_sigint_exits_130_says_how_to_resume_and_marks_the_leaderboard_partial(data_dir, tmp_path):
    # Long trials, so that Ctrl-C lands mid-search however fast the machine is.
    proc = _search(data_dir, tmp_path, "ctrlc", "--samples", "4", "--epochs", "40", "--grace-period", "40")
    exp = tmp_path / "ctrlc"
    _wait_for_first_result(proc, exp)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, (out[-2000:], err[-2000:])
    said = re.search(r"interrupted after (\d+) of 4 trials; resume with: python tune/search\.py --resume "
                     r"--name ctrlc --storage (\S+)", err)
    assert said and said.group(2) == str(tmp_path), err[-2000:]
    finished = int(said.group(1))
    assert finished < 4
    assert "search finished" not in out
    assert f"PARTIAL: {finished} of 4 planned trials finished" in out  # the console and the board agree
    board = pd.read_csv(exp / "leaderboard.csv")
    assert board["partial"].all() and "unfinished" in set(board["status"])
    assert "PARTIAL" in (exp / "leaderboard.md").read_text()
    # The console: Tune's progress table, no per-trial boxes, no pointer into Ray's temporary folder.
    assert "Token authentication" not in out + err
    assert "tensorboard --logdir /tmp/ray" not in out and f"tensorboard --logdir {exp}" in out
    assert "Trial train_trial" not in out  # Tune's "Trial ... started with configuration" boxes
    assert "Tuner.restore" not in out + err


def test_a_search_killed_outright_reads_as_partial_with_no_handler_run(data_dir, tmp_path):
    """SIGKILL runs no handler: the leaderboard reads the trials' own results and still says partial."""
    from hypo.search.board import show_leaderboard

    proc = _search(data_dir, tmp_path, "killed", "--samples", "3", "--epochs", "8", "--grace-period", "8")
    exp = tmp_path / "killed"
    _wait_for_first_result(proc, exp)
    proc.kill()
    proc.communicate(timeout=60)
    res = show_leaderboard(str(exp), log=lambda s: None)
    assert res["status"]["partial"] and res["status"]["finished"] < 3
    meta = json.loads((exp / "hypo_search.json").read_text())
    assert meta["search"]["gpus_per_trial"] == 0  # --gpus-per-trial auto resolved on a machine without GPUs
