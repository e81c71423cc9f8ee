"""What a trial asks of the cluster, checked against a real local Ray and an autoscaler's node types."""

import json
import os
import time

import pytest
import yaml

from hypo.cli.search import main
from hypo.errors import ConfigError
from hypo.search.resources import AUTO_GPU_SHARE, alive_nodes, autoscaler_node_types, plan_resources

from synthetic_windows import write_synthetic_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def gpu_cluster_yaml(tmp_path):
    """A cluster config like cluster.yaml: a CPU head and an autoscaling GPU worker type."""
    cfg = {"cluster_name": "t", "max_workers": 4, "head_node_type": "head",
           "available_node_types": {"head": {"resources": {"CPU": 4}, "node_config": {}},
                                    "gpu_worker": {"min_workers": 0, "max_workers": 4,
                                                   "resources": {"CPU": 8, "GPU": 1}, "node_config": {}}}}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_the_projects_cluster_yaml_offers_a_gpu_node_type():
    types = autoscaler_node_types(os.path.join(ROOT, "cluster.yaml"))
    assert types == {"gpu_worker": {"CPU": 8.0, "GPU": 1.0}}


def test_requests_against_a_two_cpu_local_ray(ray_local, gpu_cluster_yaml):
    nodes = alive_nodes()
    assert len(nodes) == 1 and nodes[0]["CPU"] == 2 and nodes[0].get("GPU", 0) == 0
    ok = plan_resources(1, "auto", nodes, {})
    assert ok.fits_now and ok.gpus_per_trial == 0  # auto: no GPU here, none can be added
    with pytest.raises(ConfigError, match="asks for 8 CPU.*could ever start"):
        plan_resources(8, 0, nodes, {})
    with pytest.raises(ConfigError, match="asks for 1 CPU and 1 GPU.*--gpus-per-trial 0"):
        plan_resources(1, 1, nodes, {})
    # An autoscaler that can add a GPU node: wait for it, and auto takes a share of a GPU.
    types = autoscaler_node_types(gpu_cluster_yaml)
    plan = plan_resources(1, "auto", nodes, types)
    assert plan.gpus_per_trial == AUTO_GPU_SHARE and not plan.fits_now and plan.node_type == "gpu_worker"
    assert "waiting for the autoscaler to add a gpu_worker node" in plan.message
    with pytest.raises(ConfigError, match="the autoscaler's node types cannot either"):
        plan_resources(16, 0, nodes, types)


def test_unsatisfiable_request_is_refused_at_once_in_one_line(ray_local, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv, needle in ((["--cpus-per-trial", "8"], "asks for 8 CPU"), (["--gpus-per-trial", "1"], "and 1 GPU")):
        start = time.monotonic()
        with pytest.raises(SystemExit) as exc:
            main(argv + ["--storage", str(tmp_path / "runs")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and needle in err and err.count("\n") == 1, err
        assert time.monotonic() - start < 30
        assert not (tmp_path / "data").exists()  # refused before the demo data were built


@pytest.mark.slow
def test_pending_trials_stop_cleanly_after_the_timeout(ray_local, tmp_path, gpu_cluster_yaml, capsys):
    data = str(tmp_path / "w")
    write_synthetic_dataset(data, n_train=200, n_val=100, n_test=0, seed=0)
    start = time.monotonic()
    with pytest.raises(SystemExit) as exc:
        main(["--data", data, "--storage", str(tmp_path / "runs"), "--name", "p", "--samples", "1", "--epochs", "1",
              "--gpus-per-trial", "auto", "--cluster-config", gpu_cluster_yaml, "--pending-timeout", "3"])
    captured = capsys.readouterr()
    assert exc.value.code == 2, captured.err
    assert "waiting for the autoscaler to add a gpu_worker node" in captured.out
    assert "no trial could start within --pending-timeout 3 s" in captured.err
    assert time.monotonic() - start < 90
    meta = json.load(open(tmp_path / "runs" / "p" / "hypo_search.json"))
    assert meta["search"]["gpus_per_trial"] == AUTO_GPU_SHARE  # the resolved share, which --resume reuses


def test_gpus_flag_takes_auto_or_a_number(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--gpus-per-trial", "many"])
    assert exc.value.code == 2 and "expected a number or auto" in capsys.readouterr().err


# ------------------------------------------------------------------------------- the device a trial trains on


def test_a_trial_trains_on_its_reserved_gpu_and_refuses_one_without_cuda_unless_allowed():
    from hypo.search.resources import NoCudaError, cpu_fallback_allowed, trial_device

    assert trial_device([], cuda_available=True, allow_cpu_fallback=False) == "cpu"  # none reserved: never CUDA
    assert trial_device([0], cuda_available=True, allow_cpu_fallback=False) == "cuda"
    with pytest.raises(NoCudaError, match="HYPO_ALLOW_CPU_FALLBACK=1") as err:
        trial_device([0], cuda_available=False, allow_cpu_fallback=False, where="node abc")
    assert "node abc" in str(err.value) and "\n" not in str(err.value)
    assert trial_device([0], cuda_available=False, allow_cpu_fallback=True) == "cpu"
    assert not cpu_fallback_allowed({}) and not cpu_fallback_allowed({"HYPO_ALLOW_CPU_FALLBACK": "0"})
    assert cpu_fallback_allowed({"HYPO_ALLOW_CPU_FALLBACK": "1"}) and cpu_fallback_allowed(
        {"HYPO_ALLOW_CPU_FALLBACK": "true"})


def test_the_leaderboard_and_the_console_say_which_device_each_trial_used():
    from hypo.search.leaderboard import TrialRecord, format_table, leaderboard_frame
    from hypo.search.tuner import device_lines

    def rows(node, devices):
        return [{"epoch": e, "training_iteration": e, "val_mean_auroc": 0.5 + e / 100, "val_sum_auprc": 0.5,
                 "node_id": node, "device": d} for e, d in enumerate(devices, 1)]

    records = [TrialRecord("a", "/x/a", {"model": "cnn"}, rows("n1" * 28, ["cpu", "cpu"])),
               TrialRecord("b", "/x/b", {"model": "cnn"}, rows("n2" * 28, ["cuda", "cuda"])),
               TrialRecord("c", "/x/c", {"model": "cnn"}, rows("n2" * 28, ["cuda", "cpu"]))]
    records[2].history[1]["node_id"] = "n1" * 28  # moved to another node after its first epoch
    df = leaderboard_frame(records)
    assert dict(zip(df["trial"], df["device"])) == {"a": "cpu", "b": "cuda", "c": "cuda+cpu"}
    assert "device" in format_table(df).splitlines()[0]
    lines = device_lines(records, gpus_per_trial=1)
    assert lines[0] == "trials per node: n1n1n1n1 2, n2n2n2n2 2"
    assert lines[1].startswith("warning: 2 trial(s) reserved a GPU but trained on the CPU") and lines[1].endswith(
        ": a, c")
    assert device_lines(records[:1], gpus_per_trial=0) == []  # one node, no GPU asked: nothing to say
    # A search from before devices were recorded keeps its columns.
    old = [TrialRecord("a", "/x/a", {"model": "cnn"}, [{k: v for k, v in r.items() if k != "device"}
                                                       for r in rows("n1" * 28, ["cpu"])])]
    assert "device" not in leaderboard_frame(old).columns
