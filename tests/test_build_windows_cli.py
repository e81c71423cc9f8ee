"""The preprocessing command end to end on genuine .vital files: a killed job re-run finishes with no duplicate
and no missing window, bad arguments are one line, and rejections are counted."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from hypo.data.sources.base import Case
from hypo.data.sources.vital import write_vital_case

from fake_sources import synthetic_case

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "preprocessing", "build_windows.py")
N_FILES = 16


@pytest.fixture(scope="module")
def vital_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("vital")
    for i in range(1, N_FILES + 1):
        write_vital_case(Case(f"or{i:02d}", f"s{i}", synthetic_case(i, seconds=2400)), d / f"or{i:02d}.vital")
    (d / "broken.vital").write_bytes(b"\x1f\x8b not really gzip")
    return d


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, SCRIPT, *args], env=env, capture_output=True, text=True, **kw)


def _rows(out):
    rows = []
    for f in glob.glob(f"{out}/windows/*/*.parquet"):
        t = pq.read_table(f, columns=["caseid", "t_end"])
        rows += list(zip(t["caseid"].to_pylist(), t["t_end"].to_pylist()))
    return rows


@pytest.mark.slow
def test_killed_job_rerun_has_no_duplicate_and_no_missing_window(vital_dir, tmp_path):
    base = ["--source", "vital-dir", "--path", str(vital_dir), "--num-cpus", "2", "--no-progress"]
    clean = _run([*base, "--out", str(tmp_path / "clean")], timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    expected = sorted(_rows(tmp_path / "clean"))
    assert len(expected) > 0

    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, SCRIPT, *base, "--num-cpus-per-task", "1", "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while len(glob.glob(f"{out}/cases/*.json")) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(glob.glob(f"{out}/cases/*.json"))
    assert 0 < done_before < N_FILES, "the job was not killed mid-way"
    assert not os.path.exists(out / "manifest.json")

    rerun = _run([*base, "--out", str(out)], timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming: {done_before}" in rerun.stdout or "resuming:" in rerun.stdout
    rows = _rows(out)
    assert len(rows) == len(set(rows)), "duplicate windows"
    assert sorted(rows) == expected, "missing or extra windows"
    manifest = json.load(open(out / "manifest.json"))
    clean_manifest = json.load(open(tmp_path / "clean" / "manifest.json"))
    assert manifest["counts"] == clean_manifest["counts"]
    assert manifest["fingerprint"] == clean_manifest["fingerprint"]
    assert manifest["rejected_counts"] == {"corrupt file": 1}
    assert "rejected      1  corrupt file" in clean.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "nope", "--out", "x"], "invalid choice"),
        (["--source", "vital-dir", "--out", "x"], "needs --path"),
        (["--source", "vital-dir", "--path", "/no/such/folder", "--out", "x"], "/no/such/folder"),
        (["--source", "demo", "--out", "x", "--split", "0.5", "0.2", "0.2"], "sum to 1"),
        (["--source", "demo", "--out", "x", "--label-mode", "ffill", "--tolerance", "400"], "--tolerance must be"),
        (["--source", "demo", "--out", "x", "--cases", "0"], "--cases"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message):
    res = _run(args, timeout=60)
    assert res.returncode == 2
    lines = [x for x in res.stderr.strip().splitlines() if x.strip()]
    assert message in lines[-1]
    assert "Traceback" not in res.stderr
