"""A real search on a two-node Ray cluster (ray.cluster_utils.Cluster): trials must run on both nodes."""

import os

import pytest
import ray
from ray.cluster_utils import Cluster

from hypo.search.leaderboard import load_trials
from hypo.search.tuner import SearchConfig, run_search

from synthetic_windows import write_synthetic_dataset

pytestmark = pytest.mark.slow  # multi-node Ray clusters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def two_nodes():
    path = os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_trials_run_on_both_nodes(two_nodes, tmp_path):
    data = str(tmp_path / "w")
    write_synthetic_dataset(data, n_train=400, n_val=200, n_test=100, seed=1)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    cfg = SearchConfig(data=data, storage=str(tmp_path / "runs"), name="two", samples=4, max_concurrent=2,
                       cpus_per_trial=1, epochs=2, batch_size=256, grace_period=2)
    exp = run_search(cfg, log=lambda s: None)
    trials = load_trials(exp)
    assert len(trials) == 4
    nodes = {t.history[-1]["node_id"] for t in trials}
    assert len(nodes) == 2, nodes


def test_preprocessing_job_runs_on_the_cluster(two_nodes, tmp_path):
    from hypo.config import WindowConfig
    from hypo.data.preprocess import build_windows

    from fake_sources import FakeSource

    m = build_windows(FakeSource(6, bad={"2": "short"}), WindowConfig(), str(tmp_path / "w"), progress=False,
                      log=lambda s: None)
    assert m.cases.ok == 5 and m.rejected_counts == {"too short": 1}


def test_losing_a_worker_node_reschedules_its_trials(tmp_path):
    import glob
    import json
    import threading
    import time

    ray.shutdown()  # this test owns its cluster: one node is taken away mid-search
    path = os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        data = str(tmp_path / "w")
        # Enough windows that a trial is still running when its node goes away.
        write_synthetic_dataset(data, n_train=20000, n_val=400, n_test=100, seed=2)
        cfg = SearchConfig(data=data, storage=str(tmp_path / "runs"), name="lose", samples=2, max_concurrent=2,
                           cpus_per_trial=1, epochs=8, batch_size=256, grace_period=8, max_failures=3)
        exp = cfg.experiment_path
        removed = {}

        def kill_worker_node_after_first_report():
            deadline = time.time() + 180
            while time.time() < deadline:
                for f in glob.glob(os.path.join(exp, "*", "result.json")):
                    rows = [json.loads(x) for x in open(f) if x.strip()]
                    if any(r.get("node_id") == worker.node_id for r in rows):
                        removed["trial"] = os.path.basename(os.path.dirname(f))
                        cluster.remove_node(worker, allow_graceful=False)
                        return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_worker_node_after_first_report, daemon=True)
        killer.start()
        run_search(cfg, log=lambda s: None)
        killer.join(timeout=5)
        assert removed, "no trial ever ran on the worker node"
        trials = load_trials(exp)
        assert len(trials) == 2
        for t in trials:
            assert t.history[-1]["epoch"] == 8  # every trial finished, the moved one on the head node
        moved = next(t for t in trials if os.path.basename(t.path) == removed["trial"])
        assert moved.history[-1]["node_id"] != worker.node_id
    finally:
        ray.shutdown()
        cluster.shutdown()
