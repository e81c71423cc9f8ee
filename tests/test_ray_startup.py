"""Starting Ray (``hypo.runtime.init_ray``): a dead cluster never hangs a command.

A Ray head killed with SIGKILL leaves Ray's address file behind; a command with no address must then start a local
Ray and say why, and an address the user gave where nothing answers must fail in one line within seconds.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
import ray

from hypo.errors import ConfigError, HypoError
from hypo.runtime import PROBE_TIMEOUT_S, init_ray

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOWS = os.path.join(ROOT, "preprocessing", "build_windows.py")
SEARCH = os.path.join(ROOT, "tune", "search.py")
STALE = "a stale Ray address file"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listening():
    """``127.0.0.1:PORT`` where something accepts connections (a cluster's GCS, as far as a probe can tell)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def ray_dir(tmp_path, monkeypatch):
    """A private Ray temporary folder; returns a function writing its address file."""
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def record(address):
        os.makedirs(tmp_path / "ray", exist_ok=True)
        (tmp_path / "ray" / "ray_current_cluster").write_text(address)
        return str(tmp_path / "ray" / "ray_current_cluster")

    return record


@pytest.fixture
def calls(monkeypatch):
    """The ``ray.init`` calls ``init_ray`` makes (no Ray is started)."""
    made = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: made.append(kw))
    return made


def test_no_address_and_no_address_file_starts_a_local_ray(ray_dir, calls):
    said = []
    init_ray(num_cpus=3, log=said.append)
    assert [(c["address"], c["num_cpus"]) for c in calls] == [("local", 3)]
    assert said == []


def test_a_stale_address_file_starts_a_local_ray_and_says_why(ray_dir, calls):
    addr = f"127.0.0.1:{_closed_port()}"
    path = ray_dir(addr)
    said = []
    t0 = time.monotonic()
    init_ray(num_cpus=3, log=said.append)
    assert time.monotonic() - t0 < PROBE_TIMEOUT_S + 1
    assert [(c["address"], c["num_cpus"]) for c in calls] == [("local", 3)]
    assert said == [f"{STALE} ({path}) points at {addr}, where nothing answers; starting a local Ray instead "
                    f"(`ray stop` clears it)"]


def test_a_live_recorded_cluster_is_joined_and_said(ray_dir, calls, listening):
    ray_dir(listening)
    said = []
    init_ray(num_cpus=3, log=said.append, runtime_env={"env_vars": {"A": "1"}})
    # As ray.init() on a head node: Ray reads the file itself; num_cpus belongs to the cluster, not to us.
    (call,) = calls
    assert "address" not in call and "num_cpus" not in call
    assert call["runtime_env"] == {"env_vars": {"A": "1"}}
    assert len(said) == 1 and said[0].startswith(f"joining the Ray cluster at {listening} ")


def test_address_local_ignores_a_live_recorded_cluster(ray_dir, calls, listening):
    ray_dir(listening)
    init_ray("local", num_cpus=1, log=lambda s: None)
    assert [(c["address"], c["num_cpus"]) for c in calls] == [("local", 1)]


@pytest.mark.parametrize("via_env", [False, True])
def test_a_given_address_where_nothing_answers_is_one_quick_error(ray_dir, calls, monkeypatch, via_env):
    addr = f"127.0.0.1:{_closed_port()}"
    if via_env:
        monkeypatch.setenv("RAY_ADDRESS", addr)
    t0 = time.monotonic()
    with pytest.raises(HypoError) as err:
        init_ray(None if via_env else addr, log=lambda s: None)
    assert time.monotonic() - t0 < PROBE_TIMEOUT_S + 1
    assert calls == []
    msg = str(err.value)
    assert f"no Ray cluster answers at {addr}" in msg and "\n" not in msg
    assert ("RAY_ADDRESS" if via_env else "--address") + f" {addr}" in msg


def test_a_given_live_address_is_joined(ray_dir, calls, listening):
    said = []
    init_ray(f"ray://{listening}", num_cpus=3, log=said.append)
    assert [c["address"] for c in calls] == [f"ray://{listening}"] and "num_cpus" not in calls[0]
    assert said == [f"joining the Ray cluster at {listening}"]


def test_a_cluster_that_wants_a_token_is_one_error_saying_how(ray_dir, monkeypatch, listening):
    from ray.exceptions import AuthenticationError

    def refused(**kw):  # what ray.init raises when the cluster has token authentication on and we sent none
        raise ConnectionError(f"Failed to connect to Ray cluster at {kw['address']}") from AuthenticationError(
            "RPC error: InvalidAuthToken: Authentication token is missing or incorrect.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    with pytest.raises(HypoError) as err:
        init_ray(listening, log=lambda s: None)
    assert "wants Ray's token authentication: set RAY_AUTH_MODE=token" in str(err.value)
    assert "\n" not in str(err.value)


def test_address_auto_with_a_stale_file_or_no_cluster_is_one_error(ray_dir, calls, monkeypatch):
    import ray._private.services as services

    monkeypatch.setattr(services, "find_gcs_addresses", lambda: frozenset())  # whatever else runs on this machine
    with pytest.raises(HypoError, match="auto: no Ray cluster runs on this machine"):
        init_ray("auto", log=lambda s: None)
    port = _closed_port()
    ray_dir(f"127.0.0.1:{port}")
    # Ray's own lookup turns 127.0.0.1 into this node's IP.
    with pytest.raises(HypoError, match=rf"no Ray cluster answers at \S+:{port} \(--address auto\)"):
        init_ray("auto", log=lambda s: None)
    assert calls == []


@pytest.mark.parametrize("bad", ["nowhere", "host:port", "127.0.0.1:99999"])
def test_a_malformed_address_is_a_config_error(ray_dir, calls, bad):
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        init_ray(bad, log=lambda s: None)
    assert calls == []


def test_the_tests_ray_and_its_address_file_live_in_the_session_folder(ray_local):
    from ray._common.utils import get_ray_address_file
    from ray._private import worker

    private = os.environ["RAY_TMPDIR"]  # set by conftest for the whole session, commands run by tests included
    assert os.path.basename(private).startswith("hypo-ray-")
    assert worker._global_node.get_session_dir_path().startswith(os.path.join(private, "ray") + os.sep)
    assert get_ray_address_file(None) == os.path.join(private, "ray", "ray_current_cluster")


def _run(script, args, env, cwd=None, timeout=60):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, script, *args], env=env, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    return p, time.monotonic() - t0


@pytest.mark.parametrize("script,args", [(WINDOWS, ["--source", "demo", "--cases", "5", "--out", "unused"]),
                                         (SEARCH, ["--smoke-test"])])
def test_commands_fail_in_one_line_within_15_s_when_the_given_cluster_is_down(tmp_path, script, args):
    addr = f"127.0.0.1:{_closed_port()}"
    env = dict(os.environ, PYTHONPATH=ROOT, RAY_TMPDIR=str(tmp_path))
    for extra, env_addr in (["--address", addr], None), ([], addr):
        e = dict(env, RAY_ADDRESS=env_addr) if env_addr else env
        p, took = _run(script, [*args, *extra], e, cwd=str(tmp_path))
        assert p.returncode == 2, p.stderr[-2000:]
        assert took < 15, took
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and f"no Ray cluster answers at {addr}" in lines[0], p.stderr[-2000:]
    assert not os.path.exists(tmp_path / "unused") and not os.path.exists(tmp_path / "data")


HEAD = textwrap.dedent("""
    import sys, time
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    print(cluster.address, flush=True)
    time.sleep(600)
""")


@pytest.fixture
def stale_ray_dir():
    """A private Ray folder whose address file a ``Cluster`` head killed with SIGKILL left behind.

    Short (Ray's socket paths inside must stay under 108 bytes), inside the test session's own Ray folder.
    """
    d = tempfile.mkdtemp(prefix="s", dir=os.environ.get("RAY_TMPDIR"))
    env = dict(os.environ, RAY_TMPDIR=d)
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen([sys.executable, "-c", HEAD], env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        addr = head.stdout.readline().strip()
        assert addr, "the Cluster head did not start"
        with open(os.path.join(d, "ray", "ray_current_cluster")) as f:
            assert f.read().strip() == addr
        # The driver and every Ray process it started (GCS, raylet, agents) die at once, as under a CI timeout.
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        host, port = addr.rsplit(":", 1)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
            except OSError:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the killed head's GCS still answers at {addr}")
        yield d, addr
    finally:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


@pytest.mark.slow
def test_both_commands_run_locally_after_a_killed_cluster_head(stale_ray_dir, tmp_path):
    d, addr = stale_ray_dir
    env = dict(os.environ, PYTHONPATH=ROOT, RAY_TMPDIR=d)
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "w"
    p, _ = _run(WINDOWS, ["--source", "demo", "--cases", "5", "--out", str(out)], env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"{STALE} " in p.stderr and f"points at {addr}, where nothing answers" in p.stderr
    assert json.load(open(out / "manifest.json"))["cases"]["ok"] == 5

    p, _ = _run(SEARCH, ["--smoke-test"], env, cwd=str(tmp_path), timeout=480)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"points at {addr}, where nothing answers" in p.stderr
    assert len(os.listdir(tmp_path / "runs")) == 1
    # The stale file is Ray's to clear (`ray stop`); the commands only read it.
    with open(os.path.join(d, "ray", "ray_current_cluster")) as f:
        assert f.read().strip() == addr
