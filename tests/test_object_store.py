"""A user's run on an object store, end to end, with the commands a user types, against a real S3 API server (moto).

Every path is ``s3://`` and nothing is mirrored by hand: the windows are built straight to the store (Ray Data's tasks
write the shards there), a search reads them and keeps its experiment and checkpoints there, and the leaderboard,
report, export, evaluation and prediction read from and write to the store. A preprocessing job killed mid-way and
run again on the store loses and duplicates no window; two searches started at the same moment with one name never
merge, on a disk or on the store. The commands find the server through ``AWS_ENDPOINT_URL``, as a user's would.
"""

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pyarrow.dataset as pads
import pytest

from hypo import storage
from hypo.data.sources.base import Case
from hypo.data.sources.vital import write_vital_case
from hypo.search.claim import BARRIER_ENV, CLAIM
from hypo.search.experiments import local_experiment
from hypo.search.leaderboard import load_trials

from fake_sources import synthetic_case
from s3_server import CREDENTIALS, new_bucket
from synthetic_windows import write_synthetic_dataset

pytestmark = pytest.mark.slow  # Ray jobs and searches, killed and run again

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_FILES = 16


@pytest.fixture(scope="module")
def user(s3_endpoint, tmp_path_factory):
    """A user's shell: a fresh HOME and working folder; the store's address and credentials in the environment.

    The test process takes that HOME too: its reads of the store leave their cache there.
    """
    home, cwd = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("cwd")
    mp = pytest.MonkeyPatch()
    mp.setenv("HOME", str(home))
    env = dict(os.environ, PYTHONPATH=ROOT, RAY_DEDUP_LOGS="0")
    env.pop("RAY_ADDRESS", None)
    yield {"env": env, "home": home, "cwd": cwd, "endpoint": s3_endpoint}
    mp.undo()


def hypo(user, *args, timeout=600, check=True):
    done = subprocess.run([sys.executable, "-m", "hypo", *args], cwd=user["cwd"], env=user["env"],
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"hypo {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _keys(uri):
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"][len(prefix):].lstrip("/") for page in pages for o in page.get("Contents", ()))


def _windows(out):
    """(caseid, t_end) of every window under a dataset on the store."""
    fs, inner = storage.resolve(storage.join(out, "windows"))
    table = pads.dataset(inner, format="parquet", filesystem=fs).to_table(columns=["caseid", "t_end"])
    return list(zip(table["caseid"].to_pylist(), table["t_end"].to_pylist()))


def test_a_users_run_on_the_store(user, tmp_path):
    bucket = new_bucket()
    transcript = []

    def run(*args, **kw):
        done = hypo(user, *args, **kw)
        transcript.append((args, done.stdout, done.stderr))
        return done

    built = run("windows", "--source", "demo", "--cases", "30", "--out", f"{bucket}/windows", "--num-cpus", "2",
                "--no-progress")
    assert "cases: 30 listed, 30 used" in built.stdout
    assert {"manifest.json", "config.json"} <= set(_keys(f"{bucket}/windows"))
    search = run("search", "--data", f"{bucket}/windows", "--storage", f"{bucket}/runs", "--name", "demo",
                 "--samples", "2", "--epochs", "2", "--batch-size", "512", "--address", "local")
    exp = f"{bucket}/runs/demo"
    assert "search finished" in search.stdout and f"wrote {exp}/leaderboard.csv" in search.stdout
    stored = _keys(exp)
    assert {CLAIM, "hypo_search.json", "leaderboard.csv"} <= set(stored)
    assert sum(k.endswith("/checkpoint.pt") for k in stored) >= 2  # Tune's checkpoints, on the store
    assert any(k.startswith("searcher-state-") for k in stored)  # the Optuna study, in Tune's searcher state
    board = run("leaderboard", f"{bucket}/runs")
    assert "latest experiment under" in board.stdout and "PARTIAL" not in board.stdout
    assert board.stdout.count(" finished ") == 2
    run("report", exp, "--bootstrap", "20", "--no-alarms")
    assert {"report/report.json", "report/report.html"} <= set(_keys(exp))
    export = run("export", exp, "--out", f"{bucket}/models/model.pt")
    assert f"wrote {bucket}/models/model.pt and {bucket}/models/model.json" in export.stdout
    run("windows", "--source", "demo", "--site", "b", "--cases", "24", "--out", f"{bucket}/site-b", "--num-cpus",
        "2", "--no-progress")
    evaluated = run("evaluate", f"{bucket}/models/model.pt", "--data", f"{bucket}/site-b", "--out",
                    f"{bucket}/evaluation/site-b", "--bootstrap", "10", "--recalibrate", "temperature",
                    "--write-export", f"{bucket}/models/site-b.pt")
    assert f"wrote {bucket}/evaluation/site-b/evaluation.json" in evaluated.stdout
    run("demo-files", "--out", str(tmp_path / "vital"), "--cases", "1")
    predicted = run("predict", str(tmp_path / "vital" / "1.vital"), "--model", f"{bucket}/models/site-b.pt",
                    "--out", f"{bucket}/predictions", "--no-plot")
    assert f"wrote {bucket}/predictions/1_predictions.csv" in predicted.stdout
    assert _keys(f"{bucket}/models") == ["model.json", "model.pt", "site-b.json", "site-b.pt"]
    assert os.listdir(user["cwd"]) == []  # no "s3:" folder, no "runs", no local mirror the user must manage
    _no_secret(bucket, [user["home"], user["cwd"], tmp_path], transcript)
    print("\n" + "\n".join(f"$ hypo {' '.join(a)}\n{out}" for a, out, _ in transcript))  # the docs' walkthrough


def _no_secret(bucket, folders, transcript):
    """Neither credential in any object, in any file under ``folders``, nor on any console line."""
    secrets = [CREDENTIALS["AWS_SECRET_ACCESS_KEY"], CREDENTIALS["AWS_ACCESS_KEY_ID"]]
    s3 = boto3.client("s3")
    for key in _keys(bucket):
        body = s3.get_object(Bucket=bucket[len("s3://"):], Key=key)["Body"].read()
        assert not any(s.encode() in body for s in secrets), key
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as f:
                    assert not any(s.encode() in f.read() for s in secrets), os.path.join(dirpath, name)
    for _, out, err in transcript:
        assert not any(s in out or s in err for s in secrets)


@pytest.fixture(scope="module")
def vital_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("vital")
    for i in range(1, N_FILES + 1):
        write_vital_case(Case(f"or{i:02d}", f"s{i}", synthetic_case(i, seconds=2400)), d / f"or{i:02d}.vital")
    return d


def test_a_killed_build_on_the_store_run_again_loses_and_duplicates_no_window(user, vital_dir):
    bucket = new_bucket()
    base = ["windows", "--source", "vital-dir", "--path", str(vital_dir), "--num-cpus", "2", "--no-progress"]
    hypo(user, *base, "--out", f"{bucket}/clean")
    expected = sorted(_windows(f"{bucket}/clean"))
    assert expected
    out = f"{bucket}/killed"
    proc = subprocess.Popen([sys.executable, "-m", "hypo", *base, "--num-cpus-per-task", "1", "--cases-per-task", "1",
                             "--out", out], cwd=user["cwd"], env=user["env"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while len(storage.list_files(f"{out}/cases", ".json")) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(storage.list_files(f"{out}/cases", ".json"))
    assert 0 < done_before < N_FILES, "the job was not killed mid-way"
    assert not storage.exists(f"{out}/manifest.json")  # no completion marker: no reader takes it as a dataset
    again = hypo(user, *base, "--out", out)
    assert "resuming:" in again.stdout
    windows = _windows(out)
    assert len(windows) == len(set(windows)), "duplicate windows"
    assert sorted(windows) == expected, "missing or extra windows"
    manifest, clean = (json.loads(storage.read_bytes(f"{bucket}/{d}/manifest.json")) for d in ("killed", "clean"))
    assert manifest["fingerprint"] == clean["fingerprint"] and manifest["counts"] == clean["counts"]
    print(f"\nkilled after {done_before} of {N_FILES} cases; {len(windows)} windows after the re-run, as undisturbed")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_searches_started_at_the_same_moment_with_one_name_do_not_merge(user, tmp_path, where):
    root = new_bucket() if where == "s3" else str(tmp_path / "store")
    data = storage.join(root, "windows")
    write_synthetic_dataset(data, n_train=400, n_val=200, n_test=80, seed=5)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    cmd = [sys.executable, os.path.join(ROOT, "tune", "search.py"), "--data", data, "--storage",
           storage.join(root, "runs"), "--name", "same", "--samples", "1", "--epochs", "1", "--batch-size", "256",
           "--address", "local"]
    env = dict(user["env"], **{BARRIER_ENV: str(barrier)})
    procs = [subprocess.Popen(cmd, cwd=user["cwd"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    deadline = time.time() + 120
    while len(list(barrier.glob("arrived-*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    (barrier / "go").touch()  # both are held just before the claim: they claim at the same moment
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    out, err = next(o for o, p in zip(outs, procs) if p.returncode == 2)
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("tune/search.py: error: ")
    assert "was claimed by another search" in errors[0] and "choose another --name" in errors[0]
    assert "Traceback" not in err and "search finished" not in out
    exp = storage.join(root, "runs", "same")
    trials = load_trials(local_experiment(exp, log=lambda s: None) if where == "s3" else exp)
    assert len(trials) == 1 and trials[0].finished  # one search, one trial: nothing merged
    states = [n for n in (_keys(exp) if where == "s3" else os.listdir(exp)) if n.startswith("experiment_state-")]
    assert len(states) == 1
