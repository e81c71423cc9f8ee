"""Searches on an autoscaling cluster: Ray's fake multi-node provider starts and removes GPU worker nodes.

Every driver here is a process of its own (the commands a user runs, or :meth:`FakeCluster.driver`), joined to
one fake cluster shared by the module (:mod:`fake_cluster`): a head with no GPU and ``gpu_worker`` nodes
``{"CPU": 1, "GPU": 1}``, from 0 up to 2, removed after 10 idle seconds. The fake GPUs have no CUDA, so the trials
train on the CPU only under ``HYPO_ALLOW_CPU_FALLBACK=1``.

Datasets and experiments live on an S3 API server (moto, :mod:`s3_server`) only: datasets are built straight to
``s3://``, searches keep their experiments and checkpoints there, and no local dataset or experiment folder exists,
so nothing can rely on the disk the fake nodes share with the head. The cluster is started after the server: its
nodes, like a real cluster's, find the endpoint and the credentials in their own environment.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from hypo import storage
from hypo.search.experiments import local_experiment
from hypo.search.leaderboard import load_trials, search_status
from hypo.search.record import read_search_record

from fake_cluster import FakeCluster, wait_for
from s3_server import new_bucket
from synthetic_windows import write_synthetic_dataset

pytestmark = pytest.mark.slow  # an autoscaling Ray cluster on this machine

ROOT = Path(__file__).resolve().parents[1]
IDLE_TIMEOUT_S = 10.0
SEARCH = str(ROOT / "tune" / "search.py")


@pytest.fixture(scope="module")
def cluster(s3_endpoint, tmp_path_factory):
    with FakeCluster(tmp_path_factory.mktemp("fake-cluster"), max_workers=2, idle_timeout_s=IDLE_TIMEOUT_S) as c:
        yield c


@pytest.fixture(scope="module")
def storage_root(cluster, tmp_path_factory):
    """Where datasets and experiments go: a bucket of the S3 server, nothing local.

    ``HOME`` (of this process and of the drivers it starts) is a scratch folder: the leaderboard's mirror of an
    experiment, a cache, goes there.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    yield new_bucket()
    mp.undo()


@pytest.fixture(scope="module")
def data_dir(storage_root):
    d = storage.join(storage_root, "windows")
    write_synthetic_dataset(d, n_train=600, n_val=300, n_test=100, seed=3)
    return d


def _no_workers(cluster):
    """Wait until the autoscaler has removed every worker node (a test starts on the bare head)."""
    wait_for(lambda: not cluster.workers(), 6 * IDLE_TIMEOUT_S + 60, "the idle worker nodes to be removed", 2.0)


def _search(cluster, data_dir, storage, name, *args, fallback=True, timeout=480):
    cmd = [sys.executable, SEARCH, "--data", data_dir, "--storage", storage, "--name", name,
           "--address", cluster.address, "--cluster-config", cluster.config_path, "--epochs", "2",
           "--batch-size", "256", "--grace-period", "2", *args]
    env = cluster.env(HYPO_ALLOW_CPU_FALLBACK="1" if fallback else "0")
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def _leaderboard_rows(exp):
    text = storage.read_bytes(storage.join(exp, "leaderboard.csv")).decode()
    return [r for r in csv.DictReader(text.splitlines()) if r["rank"]]


def _trials(exp):
    """The trials of an experiment on the store (read through its local mirror)."""
    return load_trials(local_experiment(exp, log=lambda s: None))


@pytest.mark.parametrize("gpus, cpus", [("1", "1"), ("0.5", "0.5")])
def test_a_gpu_search_starts_gpu_nodes_runs_its_trials_there_and_they_go_when_idle(cluster, data_dir, storage_root,
                                                                                   gpus, cpus):
    _no_workers(cluster)
    name = f"gpu-{gpus}"
    started = time.monotonic()
    done = _search(cluster, data_dir, storage_root, name, "--gpus-per-trial", gpus, "--cpus-per-trial", cpus,
                   "--samples", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    # The resource check saw no node able to hold a trial now, and a node type the autoscaler can add.
    assert "waiting for the autoscaler to add a gpu_worker node" in done.stdout
    exp = storage.join(storage_root, name)
    trials = _trials(exp)
    assert len(trials) == 2 and all(t.finished for t in trials)
    head = {n["NodeID"] for n in cluster.nodes() if "node:__internal_head__" in n["Resources"]}
    ran_on = {r["node_id"] for t in trials for r in t.history}
    assert ran_on and not ran_on & head, "a GPU trial ran on the head, which has no GPU"
    per_node = {n: sum(any(r["node_id"] == n for r in t.history) for t in trials) for n in ran_on}
    assert len(ran_on) <= 2 and max(per_node.values()) <= 1 / float(gpus)  # what a node's one GPU holds
    # Each trial says what it trained on: the fake GPUs have no CUDA, so the CPU, in the leaderboard too.
    assert all(r["device"] == "cpu" for t in trials for r in t.history)
    assert [r["device"] for r in _leaderboard_rows(exp)] == ["cpu", "cpu"]
    assert "reserved a GPU but trained on the CPU" in done.stdout
    # Idle, the nodes go after the idle timeout.
    _no_workers(cluster)
    print(f"\n--gpus-per-trial {gpus}: {len(ran_on)} node(s) started, trials per node {sorted(per_node.values())}, "
          f"search and removal {time.monotonic() - started:.0f} s")


def test_a_gpu_without_cuda_refuses_the_trial_by_default(cluster, data_dir, storage_root):
    done = _search(cluster, data_dir, storage_root, "no-cuda", "--gpus-per-trial", "1", "--samples", "1",
                   fallback=False)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tune/search.py: error: 1 of 1 trials refused: Ray gave a trial GPU 0 on node ")
    assert "CUDA is not available" in last
    assert "HYPO_ALLOW_CPU_FALLBACK=1" in last
    assert not any(r.get("epoch") for t in _trials(storage.join(storage_root, "no-cuda")) for r in t.history)


def test_a_request_no_node_type_can_hold_is_refused_in_one_line_before_anything_starts(cluster, data_dir,
                                                                                      storage_root):
    started, before = time.monotonic(), {n["NodeID"] for n in cluster.workers()}
    done = _search(cluster, data_dir, storage_root, "too-big", "--gpus-per-trial", "2", timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if "error" in line]  # one line says why
    assert error.startswith("tune/search.py: error: each trial asks for 1 CPU and 2 GPU")
    assert "the autoscaler's node types cannot either" in error
    assert not storage.exists(storage.join(storage_root, "too-big"))  # nothing started, nothing written
    assert {n["NodeID"] for n in cluster.workers()} <= before  # no node was started for it
    print(f"\nrefused in {time.monotonic() - started:.1f} s")


def _rows(exp):
    """Every trial's reported rows as its result file on the store holds them now (Tune copies it there)."""
    out = {}
    for name in storage.list_dirs(exp):
        path = storage.join(exp, name, "result.json")
        if not storage.is_file(path):
            continue
        rows = []
        for line in storage.read_bytes(path).decode().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        out[name] = rows
    return out


def test_a_lost_gpu_node_sends_its_trials_to_another_node_from_their_last_checkpoint(cluster, storage_root):
    _no_workers(cluster)
    data = storage.join(storage_root, "windows-long")
    # Enough windows that a trial is still running when its node goes.
    write_synthetic_dataset(data, n_train=20000, n_val=300, n_test=100, seed=4)
    name = "lose-node"
    exp = storage.join(storage_root, name)
    cmd = [sys.executable, SEARCH, "--data", data, "--storage", storage_root, "--name", name, "--address",
           cluster.address, "--cluster-config", cluster.config_path, "--gpus-per-trial", "1", "--samples", "2",
           "--epochs", "8", "--batch-size", "256", "--grace-period", "8"]
    proc = subprocess.Popen(cmd, env=cluster.env(HYPO_ALLOW_CPU_FALLBACK="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        # The first epoch reported from a worker node: that node goes (SIGKILL), as a spot instance does.
        trial, rows = wait_for(lambda: next(((t, rows) for t, rows in _rows(exp).items() if rows), None), 300,
                               "a trial to report from a worker node", every_s=0.1)
        node, at_kill = rows[-1]["node_id"], len(rows)
        assert at_kill < 8, f"the trial ended before its node could be lost: {rows}"
        cluster.lose_node(node)
        out, _ = proc.communicate(timeout=480)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    trials = _trials(exp)
    assert len(trials) == 2
    for t in trials:  # every trial finished, each epoch on its record once
        assert [r["epoch"] for r in t.history] == list(range(1, 9)) and t.finished
    moved = next(t for t in trials if Path(t.path).name == trial)
    raw = [(r["epoch"], r["node_id"][-5:]) for r in _rows(exp)[trial]]
    assert moved.history[-1]["node_id"] != node, (node[-5:], at_kill, raw)  # it went on elsewhere ...
    # ... from its last checkpoint: Tune had recorded at least the one before the last epoch seen at the kill.
    assert min(r["epoch"] for r in _rows(exp)[trial] if r["node_id"] != node) >= at_kill
    assert "trials per node:" in out


def test_a_killed_driver_is_resumed_from_another_process(cluster, data_dir, storage_root):
    _no_workers(cluster)
    name = "killed-driver"
    exp = storage.join(storage_root, name)
    args = ["--gpus-per-trial", "1", "--samples", "3", "--max-concurrent", "2", "--epochs", "3",
            "--batch-size", "256", "--grace-period", "3"]
    cmd = [sys.executable, SEARCH, "--data", data_dir, "--storage", storage_root, "--name", name, "--address",
           cluster.address, "--cluster-config", cluster.config_path, *args]
    proc = subprocess.Popen(cmd, env=cluster.env(HYPO_ALLOW_CPU_FALLBACK="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Two epochs in the experiment folder: Tune has saved its experiment state there too (every 2 checkpoints).
        wait_for(lambda: any(len(rows) >= 2 for rows in _rows(exp).values()), 300, "a second reported epoch")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies at once; the cluster stays
        proc.wait()
    before = _trials(exp)
    assert not all(t.finished for t in before) or len(before) < 3
    resume = [sys.executable, SEARCH, "--storage", storage_root, "--name", name, "--resume", "--address",
              cluster.address, "--cluster-config", cluster.config_path]
    done = subprocess.run(resume, env=cluster.env(HYPO_ALLOW_CPU_FALLBACK="1"), capture_output=True, text=True,
                          timeout=480)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = _trials(exp)  # a trial the killed run started after its last snapshot ran again, under a new id
    assert len(trials) == 3 and all(t.finished for t in trials)
    for t in trials:
        assert [r["epoch"] for r in t.history] == [1, 2, 3]
    assert len(_leaderboard_rows(exp)) == 3
    assert not search_status(trials, read_search_record(exp))["partial"]  # nothing left that reads as unfinished
    # ... and a later `hypo leaderboard` of the experiment on the store, from another process, reads it whole.
    board = subprocess.run([sys.executable, "-m", "hypo", "leaderboard", exp], env=cluster.env(), capture_output=True,
                           text=True, timeout=300)
    assert board.returncode == 0, board.stderr[-3000:]
    assert "PARTIAL" not in board.stdout and board.stdout.count(" finished ") == 3
    assert f"wrote {exp}/leaderboard.csv" in board.stdout


def _build(cluster, out, trace=None, delay_s=0.0, cases=24):
    """The preprocessing job (Ray Data) as a driver of the cluster, one case per task; a Popen."""
    code = f"""
from fake_sources import TracedSource
from hypo.config import WindowConfig
from hypo.data.preprocess import build_windows
m = build_windows(TracedSource({cases}, delay_s={delay_s}, trace={trace!r}), WindowConfig(), {out!r},
                  cases_per_task=1, progress=False, log=lambda s: None)
print(json.dumps({{"fingerprint": m.fingerprint, "windows": sum(c.windows for c in m.counts.values())}}))
"""
    return cluster.driver_process(code)


def _shard_rows(out):
    fs, inner = storage.resolve(storage.join(out, "windows"))
    return pads.dataset(inner, format="parquet", filesystem=fs).count_rows()


def test_a_node_lost_during_the_preprocessing_job_leaves_the_same_windows(cluster, storage_root, tmp_path):
    _no_workers(cluster)
    trace = tmp_path / "trace"
    trace.mkdir()
    out = storage.join(storage_root, "windows-node-lost")
    head = {n["NodeID"] for n in cluster.nodes() if "node:__internal_head__" in n["Resources"]}
    job = _build(cluster, out, str(trace), delay_s=1.0)
    try:
        # The head holds one task at a time; the autoscaler adds worker nodes for the others. Once a case is
        # being loaded on a worker node, that node goes.
        node = wait_for(lambda: next((p.suffix[1:] for p in trace.iterdir() if p.suffix[1:] not in head), None),
                        300, "a case loading on a worker node")
        assert job.poll() is None, "the job ended before a node could be lost"
        cluster.lose_node(node)
        stdout, stderr = job.communicate(timeout=480)
    finally:
        job.kill()
    assert job.returncode == 0, stderr[-3000:]
    lost = json.loads(stdout.strip().splitlines()[-1])
    assert node in {n["NodeID"] for n in cluster.nodes() if not n["Alive"]}
    clean_out = storage.join(storage_root, "windows-undisturbed")
    clean = _build(cluster, clean_out)
    stdout, stderr = clean.communicate(timeout=480)
    assert clean.returncode == 0, stderr[-3000:]
    undisturbed = json.loads(stdout.strip().splitlines()[-1])
    assert lost == undisturbed  # the same cases with the same windows: the same fingerprint and count
    assert _shard_rows(out) == _shard_rows(clean_out) == undisturbed["windows"]  # nothing written twice or lost
