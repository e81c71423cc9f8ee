"""``ray up`` on machines a hospital owns: ``cluster-onprem.yaml`` run for real, head only, on this machine.

A throwaway non-root user with an SSH key, Debian's ``sshd`` on a free port of 127.0.0.1 (reached through Ray's
``ssh_proxy_command``, since Ray's ``auth`` section has no port key), and then what a user runs: ``ray up -y``,
``ray submit`` of the preprocessing job and of a small demo search, ``ray exec`` of ``hypo leaderboard``, and
``ray down -y``. Nothing of the cluster's may be left: no process of that user, no Ray address file.

Where this differs from a user's run, and why (the file is otherwise ``cluster-onprem.yaml`` as it is):

- ``provider``: ``head_ip`` 127.0.0.1 and ``worker_ips: []`` (a second node on the same host would fight the
  head); ``auth``: the throwaway user and key, and the proxy command to the test's ``sshd``.
- ``setup_commands``: the machine already has the pinned torch (this environment), so instead of downloading it
  they install the checkout the file mounts copied, offline (``pip install --user --no-deps --no-index -e``).
- ``head_start_ray_commands``: free ports instead of 6379 and 8076, and for the dashboard and its agent, since
  other Ray clusters may run on this machine.
- The machine's Python is this test's interpreter (root's, under a folder the user cannot enter), bind-mounted
  read-only for the user's ``python``, ``python3`` and ``ray``: on a real machine they are installed.

Skipped with the reason when ``sshd``, ``rsync`` or root (to create the user) is missing, unless
``HYPO_REQUIRE_CLUSTER_TOOLS=1`` (CI sets it, having installed both), which makes that a failure.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # SSH, rsync and a Ray cluster started by `ray up`

ROOT = Path(__file__).resolve().parents[1]
ONPREM = ROOT / "cluster-onprem.yaml"
REQUIRE = "HYPO_REQUIRE_CLUSTER_TOOLS"
SSHD = "/usr/sbin/sshd"

RELAY = '''"""ssh ProxyCommand: join stdin/stdout to HOST PORT."""
import socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
def up():
    while data := sys.stdin.buffer.read1(65536):
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while data := s.recv(65536):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
'''


def _missing_tools() -> list[str]:
    missing = [t for t in ("rsync", "ssh", "ssh-keygen", "useradd", "userdel", "mount", "umount")
               if not shutil.which(t)]
    if not os.access(SSHD, os.X_OK):
        missing.insert(0, "sshd (Debian's openssh-server)")
    if os.geteuid() != 0:
        missing.append("root (to create a throwaway user and start sshd)")
    return missing


@pytest.fixture(scope="module")
def tools():
    missing = _missing_tools()
    if missing:
        why = f"ray up needs {', '.join(missing)}: apt-get install -y openssh-server rsync"
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{why}, and {REQUIRE}=1 requires this test", pytrace=False)
        pytest.skip(why)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def _user_pids(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


class Machine:
    """This machine as a hospital's head node: a throwaway user reached over SSH, and its Python."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.user = f"hypoup{secrets.token_hex(3)}"
        self.port = _free_port()
        self.key = workdir / "id_ed25519"
        self.python_mount = Path(f"/opt/{self.user}-python")
        self.home: Path | None = None
        self.uid: int | None = None
        self.created_run_sshd = False

    def start(self) -> None:
        _run(["useradd", "--create-home", "--shell", "/bin/bash", self.user])
        _run(["usermod", "-p", "*", self.user])  # no password, not locked: key login only
        import pwd

        entry = pwd.getpwnam(self.user)
        self.home, self.uid = Path(entry.pw_dir), entry.pw_uid
        # The user's key, allowed in.
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700)
        (ssh / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        # The machine's Python for the user: this interpreter's installation, read-only.
        self.python_mount.mkdir()
        _run(["mount", "--bind", sys.base_prefix, str(self.python_mount)])
        _run(["mount", "-o", "remount,ro,bind", str(self.python_mount)])
        bin_dir = self.home / "bin"
        bin_dir.mkdir()
        exe = self.python_mount / "bin" / Path(os.path.realpath(sys.executable)).name
        lib = self.python_mount / "lib"
        python = f'#!/bin/sh\nexport LD_LIBRARY_PATH={lib}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\nexec {exe} "$@"\n'
        for name, text in (("python", python), ("python3", python),
                           ("ray", '#!/bin/sh\nexec python3 -m ray.scripts.scripts "$@"\n')):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        # Ray's folder of the user's own (the default /tmp/ray may be another user's), the user's bin first, and
        # the interpreter's library for the scripts pip writes (their first line names the interpreter itself).
        bashrc = self.home / ".bashrc"
        bashrc.write_text(f'export PATH="$HOME/bin:$HOME/.local/bin:$PATH" RAY_TMPDIR="$HOME/rt" '
                          f'LD_LIBRARY_PATH="{lib}"\n' + bashrc.read_text())
        _run(["chown", "-R", f"{self.user}:{self.user}", str(self.home)])
        # sshd of its own: this user only, keys only, on a free port of 127.0.0.1.
        host_key = self.workdir / "host_ed25519"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
        config = self.workdir / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
            f"PidFile {self.workdir / 'sshd.pid'}", "AuthorizedKeysFile .ssh/authorized_keys",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "UsePAM no", f"AllowUsers {self.user}", "PermitRootLogin no", "StrictModes yes",
            "Subsystem sftp internal-sftp", ""]))
        if not os.path.isdir("/run/sshd"):  # sshd's privilege-separation folder
            os.makedirs("/run/sshd", mode=0o755)
            self.created_run_sshd = True
        _run([SSHD, "-f", str(config), "-E", str(self.workdir / "sshd.log")])
        (self.workdir / "relay.py").write_text(RELAY)

    def sshd_pid(self) -> int | None:
        try:
            return int((self.workdir / "sshd.pid").read_text())
        except (OSError, ValueError):
            return None

    def cluster_file(self, name: str) -> Path:
        """``cluster-onprem.yaml`` pointed at this machine; the differences are the module docstring's list."""
        cfg = yaml.safe_load(ONPREM.read_text())
        cfg["cluster_name"] = name
        cfg["provider"].update(head_ip="127.0.0.1", worker_ips=[])
        cfg["auth"] = {"ssh_user": self.user, "ssh_private_key": str(self.key),
                       "ssh_proxy_command": f"{sys.executable} {self.workdir / 'relay.py'} 127.0.0.1 {self.port}"}
        mount = next(iter(cfg["file_mounts"]))  # the checkout's folder on the nodes
        cfg["setup_commands"] = [f"python3 -m pip install -q --user --no-deps --no-build-isolation --no-index "
                                 f"-e {mount}"]
        ports = {"--port=6379": f"--port={_free_port()}", "--object-manager-port=8076":
                 f"--object-manager-port={_free_port()} --dashboard-port={_free_port()} "
                 f"--dashboard-agent-listen-port={_free_port()}"}
        start = []
        for line in cfg["head_start_ray_commands"]:
            for old, new in ports.items():
                line = line.replace(old, new)
            start.append(line)
        cfg["head_start_ray_commands"] = start
        path = self.workdir / "cluster-onprem-test.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def stop(self) -> None:
        """End sshd and every process of the user (by pid), unmount, and remove the user and its home."""
        pid = self.sshd_pid()
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.uid is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for p in _user_pids(self.uid):
                    try:
                        os.kill(p, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 10
                while _user_pids(self.uid) and time.monotonic() < deadline:
                    time.sleep(0.2)
        if self.python_mount.exists():
            subprocess.run(["umount", str(self.python_mount)], capture_output=True)
            try:
                self.python_mount.rmdir()
            except OSError:
                pass
        subprocess.run(["userdel", "--remove", self.user], capture_output=True)
        if self.created_run_sshd:
            shutil.rmtree("/run/sshd", ignore_errors=True)


def _ray(*args, cwd=ROOT, timeout=600):
    """A ``ray`` command run here as a user runs it, in the checkout; its output (a failure shows it)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ray_cli = Path(sys.executable).with_name("ray")
    done = subprocess.run([str(ray_cli) if ray_cli.exists() else "ray", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"ray {' '.join(args)} exited {done.returncode}:\n{out[-6000:]}"
    return out


def _leftovers_here(name: str) -> list[Path]:
    """What the ``ray`` commands leave on this machine for cluster ``name``: ssh's control sockets (Ray's choice
    of path, per local user and cluster) and ``ray down``'s copy of the cluster config."""
    import hashlib

    control = _control_root() / hashlib.sha256(name.encode()).hexdigest()[:10]
    configs = [p for p in Path(tempfile.gettempdir()).glob("ray-config-*")
               if p.is_file() and name in p.read_text(errors="replace")]
    return ([control] if control.exists() else []) + configs


def _end_ssh_masters(name: str) -> None:
    """End the ssh connection masters Ray's commands left (ControlPersist) for this cluster, by pid."""
    for left in _leftovers_here(name):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if cmd.startswith(b"ssh\0") and str(left).encode() in cmd:
                    try:
                        os.kill(int(entry), signal.SIGTERM)
                    except ProcessLookupError:
                        pass


def _control_root() -> Path:
    import getpass
    import hashlib

    return Path(f"/tmp/ray_ssh_{hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]}")


def test_ray_up_submit_exec_and_down_on_a_machine_of_our_own(tools, tmp_path):
    machine = Machine(tmp_path)
    name = f"hypo-up-{machine.user}"
    control_root_was_there = _control_root().exists()
    timings = {}
    try:
        machine.start()
        cfg = str(machine.cluster_file(name))
        t0 = time.monotonic()
        _ray("up", "-y", "--no-config-cache", cfg)
        timings["ray up"] = time.monotonic() - t0
        home = machine.home
        assert (home / "hypo-src" / "hypo" / "search" / "tuner.py").exists()  # the file mount
        assert not (home / "hypo-src" / ".git").exists()  # the rsync excludes

        t0 = time.monotonic()
        out = _ray("submit", "--no-config-cache", cfg, "preprocessing/build_windows.py", "--source", "demo",
                   "--cases", "24", "--out", "~/windows", "--no-progress")
        timings["ray submit (windows)"] = time.monotonic() - t0
        assert "joining the Ray cluster at" in out  # the job ran on the cluster `ray up` started
        assert (home / "windows" / "manifest.json").exists()

        t0 = time.monotonic()
        out = _ray("submit", "--no-config-cache", cfg, "tune/search.py", "--data", "~/windows", "--storage",
                   "~/runs", "--name", "demo", "--samples", "2", "--epochs", "1", "--batch-size", "512")
        timings["ray submit (search)"] = time.monotonic() - t0
        assert "search finished" in out and "2 finished" in out

        out = _ray("exec", "--no-config-cache", cfg, "hypo leaderboard ~/runs/demo")
        rows = [line for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])]
        assert len(rows) == 2 and all("finished" in r for r in rows), out[-3000:]
        assert (home / "runs" / "demo" / "leaderboard.csv").exists()

        t0 = time.monotonic()
        _ray("down", "-y", cfg)
        timings["ray down"] = time.monotonic() - t0
        # Nothing of the cluster is left: no process of its user, no address file in its Ray folder.
        deadline = time.monotonic() + 30
        while _user_pids(machine.uid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for p in _user_pids(machine.uid)]
        assert not left, left
        assert not list((home / "rt").glob("ray/ray_current_cluster"))
        print("\n" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    finally:
        _end_ssh_masters(name)
        machine.stop()
        for path in _leftovers_here(name):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
        if not control_root_was_there:
            try:
                _control_root().rmdir()
            except OSError:  # not there, or another cluster's sockets in it
                pass
    assert not Path(f"/home/{machine.user}").exists() and not machine.python_mount.exists()
    assert not _leftovers_here(name)
