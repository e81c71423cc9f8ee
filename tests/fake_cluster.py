"""An autoscaling Ray cluster on one machine, on Ray's own fake multi-node provider, for tests and benchmarks.

Ray's autoscaler has a test provider (``provider: type: fake_multinode``, with ``RAY_FAKE_CLUSTER=1``): the
autoscaler (Ray's ``monitor.py`` on the head) starts and stops real raylets on this machine as the "nodes" of the
declared node types, for the demand it sees, exactly as it starts and stops cloud instances. Ray 2.60's
``ray.cluster_utils.AutoscalingCluster`` cannot be used as it is: its default ``example.yaml`` is not in the wheel
and its start and shutdown run ``ray stop --force``, which kills every Ray process on the machine. So:

- :func:`cluster_config` writes the ``fake_multinode`` config with the node types of ``cluster.yaml`` (a head
  with no GPU; ``gpu_worker`` nodes from 0 up to ``max_workers``, scaled down to ``{"CPU": 1, "GPU": 1}``), and
  a short idle timeout;
- :class:`FakeCluster` starts it with ``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=FILE`` in a
  Ray temporary folder of its own, on free ports (no fixed port another Ray on the machine may hold), and stops
  only the processes it started: every process that carries its marker in its environment (Ray hands its
  environment down to the raylets the autoscaler starts and to their workers), and their descendants.

These GPUs have no CUDA: a trial that reserves one trains on the CPU only with ``HYPO_ALLOW_CPU_FALLBACK=1``.
:meth:`FakeCluster.lose_node` takes a node away as a lost machine goes. Drivers run in processes of their own
(:meth:`FakeCluster.driver`, or the commands with :meth:`FakeCluster.env`).

As a script it is the README's "try the cluster on one machine": ``python tests/fake_cluster.py [SEARCH ARGS]``
starts one, runs ``tune/search.py`` on it (by default the smoke test with a GPU per trial) printing the
autoscaler's events between the search's lines, waits for the idle nodes to go and stops it;
``python tests/fake_cluster.py --hold`` starts one and keeps it until Ctrl-C.

    with FakeCluster(tmp_path) as cluster:
        subprocess.run([... "tune/search.py", "--address", cluster.address,
                        "--cluster-config", cluster.config_path, "--gpus-per-trial", "1"], env=cluster.env())
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
HEAD_TYPE = "ray.head.default"  # the fake provider tags its head node with this type, whatever the config says
WORKER_TYPE = "gpu_worker"  # cluster.yaml's GPU worker type
MARKER = "HYPO_FAKE_CLUSTER_ID"  # in the environment of every process of one FakeCluster


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def cluster_config(gcs_address: str, max_workers: int = 2, idle_timeout_s: float = 15.0, head_cpus: int = 1,
                   worker_resources: dict[str, float] | None = None,
                   object_store_bytes: int = 200 * 2**20) -> dict[str, Any]:
    """The ``fake_multinode`` autoscaling config mirroring ``cluster.yaml``'s node types.

    Args:
        gcs_address: ``IP:PORT`` of the head's GCS, where the nodes the autoscaler starts join.
        max_workers: Most ``gpu_worker`` nodes at once (``cluster.yaml``: 8 on AWS).
        idle_timeout_s: How long a worker node stays idle before the autoscaler removes it.
        head_cpus: The head's CPUs (it has no GPU, as on AWS).
        worker_resources: A ``gpu_worker`` node's resources (default ``{"CPU": 1, "GPU": 1}``).
        object_store_bytes: Each worker node's object store.
    """
    real = yaml.safe_load(CLUSTER_YAML.read_text())
    gpu = real["available_node_types"][WORKER_TYPE]
    resources = dict(worker_resources or {"CPU": 1, "GPU": 1})
    assert resources.get("GPU", 0) > 0 and gpu["resources"].get("GPU", 0) > 0, "the worker type mirrors a GPU node"
    return {
        "cluster_name": f"{real['cluster_name']}-fake",
        "max_workers": max_workers,
        "upscaling_speed": real.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": idle_timeout_s / 60,
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": {
            HEAD_TYPE: {"resources": {"CPU": head_cpus, "GPU": 0}, "node_config": {}, "max_workers": 0},
            WORKER_TYPE: {"resources": {**resources, "object_store_memory": object_store_bytes},
                          "node_config": {}, "min_workers": gpu.get("min_workers", 0), "max_workers": max_workers},
        },
        "head_node_type": HEAD_TYPE,
        "auth": {},
        "docker": {},
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    return str(beside) if beside.exists() else (shutil.which("ray") or "ray")


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process on the machine (from /proc)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            out[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


class FakeCluster:
    """An autoscaling fake cluster: a head with no GPU, ``gpu_worker`` nodes started and removed on demand.

    Args:
        workdir: Where the config and logs go.
        head_cpus, max_workers, idle_timeout_s, worker_resources: See :func:`cluster_config`.
    """

    def __init__(self, workdir: str | os.PathLike, head_cpus: int = 1, max_workers: int = 2,
                 idle_timeout_s: float = 15.0, worker_resources: dict[str, float] | None = None) -> None:
        import ray._private.services

        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.id = uuid.uuid4().hex
        # Short: Ray's socket paths under it must stay within 108 bytes.
        self.ray_tmpdir = tempfile.mkdtemp(prefix="hfc-", dir="/tmp")
        self.ip = ray._private.services.get_node_ip_address()
        self.port = free_port()
        self.address = f"{self.ip}:{self.port}"
        self.head_cpus = head_cpus
        self.config = cluster_config(self.address, max_workers, idle_timeout_s, head_cpus, worker_resources)
        self.config_path = str(self.workdir / "fake-cluster.yaml")
        Path(self.config_path).write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.started = False

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for commands against this cluster: its Ray folder and address, this checkout first."""
        env = dict(os.environ)
        path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        # Ray's token authentication is off on both ends: a driver given an address sends a token only when told to
        # (RAY_AUTH_MODE=token) and then refuses callers without one. The cluster is the test's own, for its length.
        env.update({"RAY_TMPDIR": self.ray_tmpdir, "RAY_ADDRESS": self.address, "PYTHONPATH": path,
                    "RAY_AUTH_MODE": "disabled", **extra})
        return env

    def start(self) -> FakeCluster:
        """``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=...``; returns when the head is up."""
        env = self.env(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1", RAY_USAGE_STATS_ENABLED="0")
        env[MARKER] = self.id
        env.pop("RAY_ADDRESS")
        cmd = [_ray_cli(), "start", "--head", f"--port={self.port}", f"--autoscaling-config={self.config_path}",
               f"--num-cpus={self.head_cpus}", "--num-gpus=0", "--include-dashboard=false",
               f"--dashboard-agent-listen-port={free_port()}",
               f"--object-store-memory={200 * 2**20}", "--disable-usage-stats"]
        self.started = True  # even a failed start may have left processes behind: stop() looks for them
        try:
            with open(self.workdir / "ray-start.log", "w") as log:
                subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=120)
        except BaseException:
            self.stop()  # `with` calls no __exit__ when __enter__ fails
            raise
        return self

    def processes(self) -> list[int]:
        """This cluster's processes: those with its marker in their environment, and their descendants."""
        parents = _parents()
        marker = f"{MARKER}={self.id}".encode()
        ours = {pid for pid in parents if marker in _environ(pid).split(b"\0")}
        grew = True
        while grew:
            more = {pid for pid, ppid in parents.items() if ppid in ours and pid not in ours}
            ours |= more
            grew = bool(more)
        ours.discard(os.getpid())
        return sorted(ours)

    def stop(self, timeout_s: float = 5.0) -> None:
        """End this cluster's processes (SIGTERM, then SIGKILL) and remove its Ray folder; no other Ray is touched."""
        if not self.started:
            return
        pids = self.processes()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and (pids := [p for p in pids if _alive(p)]):
                time.sleep(0.2)
            if not pids:
                break
        shutil.rmtree(self.ray_tmpdir, ignore_errors=True)
        self.started = False

    def node_processes(self, node_id: str) -> list[int]:
        """The processes of one worker node: its raylet and everything under it (workers, agents)."""
        parents = _parents()
        raylet = next((pid for pid in self.processes() if _is_raylet_of(pid, node_id)), None)
        if raylet is None:
            return []
        ours, grew = {raylet}, True
        while grew:
            more = {pid for pid, ppid in parents.items() if ppid in ours and pid not in ours}
            ours |= more
            grew = bool(more)
        return sorted(ours)

    def lose_node(self, node_id: str) -> list[int]:
        """Take a worker node away at once, as a lost machine goes: SIGKILL its raylet and all under it; their pids.

        Killing the raylet alone is not that: its workers go on (their check that the raylet lives sees the
        unreaped raylet the autoscaler started, a zombie, as alive), training and reporting to the driver.
        """
        pids = self.node_processes(node_id)
        assert pids, f"no raylet runs for node {node_id}"
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids

    def driver_process(self, code: str) -> subprocess.Popen:
        """Start Python ``code`` as a driver of the cluster, as :meth:`driver` runs it; a Popen with text pipes."""
        return subprocess.Popen([sys.executable, "-c", self._prelude() + code], env=self.env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def _prelude(self) -> str:
        return f"import json, ray\nray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"

    def driver(self, code: str, timeout_s: float = 120) -> str:
        """Run Python ``code`` as a driver of the cluster in a process of its own; its stdout.

        ``ray`` is initialised and ``json`` imported before ``code`` runs.

        Drivers run in processes of their own, never in the test's: Ray's token authentication must be the same
        on both ends (off here), and a test process may have started a local Ray of its own before.
        """
        done = subprocess.run([sys.executable, "-c", self._prelude() + code], env=self.env(), capture_output=True,
                              text=True, timeout=timeout_s)
        if done.returncode:
            raise AssertionError(f"driver failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
        return done.stdout

    def nodes(self) -> list[dict[str, Any]]:
        """``ray.nodes()`` of the cluster: ``NodeID``, ``Alive``, ``Resources``..."""
        return json.loads(self.driver("print(json.dumps(ray.nodes()))").strip().splitlines()[-1])

    def workers(self, alive_only: bool = True) -> list[dict[str, Any]]:
        """The nodes the autoscaler started (every node but the head)."""
        return [n for n in self.nodes() if "node:__internal_head__" not in n["Resources"]
                and (n["Alive"] or not alive_only)]

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self, name: str = "monitor.log") -> str:
        """A log of the current Ray session (``monitor.log``: what the autoscaler did)."""
        found = sorted(Path(self.ray_tmpdir).glob(f"ray/session_*/logs/{name}"))
        return found[-1].read_text(errors="replace") if found else ""


def _is_raylet_of(pid: int, node_id: str) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmd) and cmd[0].endswith(b"raylet") and f"--node_id={node_id}".encode() in cmd


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone, only not yet reaped
    except OSError:
        return False


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.5):
    """Poll ``predicate`` until it returns something true; fail after ``timeout_s`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def _follow_events(cluster: FakeCluster, start: float, stop: threading.Event, out=sys.stdout) -> None:
    """Print the autoscaler's events (nodes added, removed) as they come, as Ray's driver shows them."""
    seen = 0
    while not stop.wait(0.5):
        lines = [x for x in cluster.log_text("monitor.log").splitlines() if ":event_summary:" in x]
        for line in lines[seen:]:
            print(f"(autoscaler +{time.monotonic() - start:.0f}s) {line.split(':event_summary:', 1)[1]}", file=out,
                  flush=True)
        seen = len(lines)


def try_it(argv: list[str]) -> int:
    """Start a fake autoscaling cluster, run ``tune/search.py`` on it with ``argv``, wait for the idle nodes to go.

    The search's output and the autoscaler's events (nodes added and removed) are printed as they come.
    """
    start, workdir = time.monotonic(), tempfile.mkdtemp(prefix="hypo-fake-cluster-")
    with FakeCluster(workdir, idle_timeout_s=10.0) as cluster:
        print(f"fake cluster at {cluster.address}: {HEAD_TYPE} (1 CPU, no GPU), {WORKER_TYPE} {{CPU: 1, GPU: 1}} "
              f"x 0..2 (no CUDA: HYPO_ALLOW_CPU_FALLBACK=1), idle nodes removed after 10 s", flush=True)
        stop = threading.Event()
        events = threading.Thread(target=_follow_events, args=(cluster, start, stop), daemon=True)
        events.start()
        cmd = [sys.executable, str(ROOT / "tune" / "search.py"), "--address", cluster.address, "--cluster-config",
               cluster.config_path, *argv]
        rc = subprocess.call(cmd, env=cluster.env(HYPO_ALLOW_CPU_FALLBACK="1"))
        if rc == 0:
            wait_for(lambda: not cluster.workers(), 120, "the idle nodes to go", 2.0)
            time.sleep(1.0)  # the last event's line
        stop.set()
        events.join()
    shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    # python tests/fake_cluster.py [SEARCH ARGS]: a search on a fake autoscaling cluster (default: the smoke test
    # with a GPU per trial); python tests/fake_cluster.py --hold: start one and wait until Ctrl-C.
    if sys.argv[1:] == ["--hold"]:
        held = FakeCluster(tempfile.mkdtemp(prefix="hypo-fake-cluster-")).start()
        print(json.dumps({"address": held.address, "cluster_config": held.config_path,
                          "RAY_TMPDIR": held.ray_tmpdir}), flush=True)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            held.stop()
            shutil.rmtree(held.workdir, ignore_errors=True)
    else:
        raise SystemExit(try_it(sys.argv[1:] or ["--smoke-test", "--gpus-per-trial", "1"]))
