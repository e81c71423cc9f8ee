"""Starting or joining Ray, and turning user errors into one line instead of a traceback."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from typing import Any

from hypo.errors import ConfigError, HypoError, Interrupted

PROBE_TIMEOUT_S = 2.0  # a live GCS accepts a connection at once; a dead one must not cost minutes of Ray's retries


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True,
             log: Callable[[str], None] | None = None, **init_kwargs: Any) -> None:
    """Join the Ray cluster the user named, else the one ``ray start`` recorded on this machine, else start Ray here.

    In order:

    1. ``address`` (the commands' ``--address``), else ``$RAY_ADDRESS``: ``HOST:PORT`` or ``ray://HOST:PORT``
       joins that cluster, ``"auto"`` the one running on this machine, ``"local"`` starts a local Ray. When nothing
       answers there, a one-line error comes within seconds instead of minutes of Ray's connection retries.
    2. Neither: Ray's address file (``ray_current_cluster`` in Ray's temporary folder, written by
       ``ray start --head``, e.g. on the head node under ``ray submit cluster.yaml``) names a cluster. It is joined
       if it answers, and a line says so. If nothing answers (its head was killed and left the file behind), a line
       says the file is stale and a local Ray starts instead of hanging on the dead address.
    3. Otherwise a local Ray with ``num_cpus`` CPUs.

    Args:
        address: ``HOST:PORT``, ``ray://HOST:PORT``, ``"auto"`` or ``"local"``; ``None``: ``$RAY_ADDRESS``, else as
            above.
        num_cpus: CPUs of a local Ray (default: all of this machine's); a joined cluster has its own.
        quiet: Ray logs warnings and errors only; the workers' output and Ray's token-authentication note stay off
            the console (the commands' ``--verbose`` brings them).
        log: where the one-line notes (joining, stale address file) go; default standard error.
        **init_kwargs: further ``ray.init`` arguments (``runtime_env``, ``include_dashboard``, ``logging_level``...).

    Raises:
        ConfigError: the address is none of the forms above.
        HypoError: nothing answers at the given address, or ``"auto"`` finds no cluster on this machine.
    """
    import ray

    if ray.is_initialized():
        return
    say = log or _to_stderr
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False} if quiet else {}
    kwargs.update(init_kwargs)
    if quiet:  # Ray's note that token authentication is on (its secure default) is not the user's concern here
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    given, origin = (address, "--address") if address else (os.environ.get("RAY_ADDRESS") or None, "RAY_ADDRESS")
    if given == "local":
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
        return
    if given:
        target = _given_target(given, origin)
        if not _answers(target):
            raise HypoError(f"no Ray cluster answers at {target} ({origin} {given}); start it (`ray start --head`), "
                            f"or leave out --address and RAY_ADDRESS to use a local Ray")
        say(f"joining the Ray cluster at {target}")
        try:
            ray.init(address=given, **kwargs)
        except ConnectionError as exc:
            if _auth_refused(exc):  # Ray sends its token to an address the user gave only when told to
                raise HypoError(f"the Ray cluster at {target} ({origin} {given}) wants Ray's token authentication: "
                                "set RAY_AUTH_MODE=token, with the cluster's token in ~/.ray/auth_token or "
                                "RAY_AUTH_TOKEN") from None
            raise
        return
    recorded, path = _recorded_address()
    if recorded:
        if _answers(recorded):
            say(f"joining the Ray cluster at {recorded} (recorded by `ray start` in {path}; --address local for a "
                f"local Ray)")
            ray.init(**kwargs)  # no address: Ray reads that same file, with its own rules for a local cluster
            return
        say(f"a stale Ray address file ({path}) points at {recorded}, where nothing answers; starting a local Ray "
            f"instead (`ray stop` clears it)")
    ray.init(address="local", num_cpus=num_cpus, **kwargs)


def _auth_refused(exc: BaseException) -> bool:
    """Whether a failed ``ray.init`` was the cluster refusing a driver without Ray's authentication token."""
    from ray.exceptions import AuthenticationError

    while exc is not None:
        if isinstance(exc, AuthenticationError):
            return True
        exc = exc.__cause__
    return False


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _recorded_address() -> tuple[str | None, str]:
    """The cluster address Ray's address file holds (``None`` without one) and the file's path.

    Ray keeps it in ``ray_current_cluster`` under its temporary folder (``$RAY_TMPDIR/ray``, else ``$TMPDIR/ray``,
    else ``/tmp/ray``); ``ray start --head`` and ``ray.cluster_utils.Cluster`` write it, ``ray stop`` removes it.
    """
    from ray._common.utils import get_ray_address_file

    path = get_ray_address_file(None)
    try:
        with open(path) as f:
            return f.read().strip() or None, path
    except OSError:
        return None, path


def _given_target(given: str, origin: str) -> str:
    """``HOST:PORT`` of the cluster a given address means (``auto``: as Ray resolves it on this machine)."""
    if given == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            # Ray's own lookup: the address file, else a GCS process running here (RAY_ADDRESS, if set, wins).
            return canonicalize_bootstrap_address("auto")
        except ValueError as exc:  # RAY_ADDRESS is not HOST:PORT
            raise ConfigError(f"{origin} auto: {exc}") from None
        except ConnectionError:
            raise HypoError(f"{origin} auto: no Ray cluster runs on this machine; start one (`ray start --head`), "
                            f"or leave out --address and RAY_ADDRESS to use a local Ray") from None
    _host_port(given, origin)
    return given.split("://", 1)[-1]


def _host_port(address: str, origin: str = "address") -> tuple[str, int]:
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    host = host.strip("[]")  # [IPv6]:PORT
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"{origin} {address!r} is not HOST:PORT, ray://HOST:PORT, auto or local")
    return host, int(port)


def _answers(address: str) -> bool:
    """Whether something accepts a TCP connection at ``HOST:PORT`` within :data:`PROBE_TIMEOUT_S`."""
    try:
        with socket.create_connection(_host_port(address), timeout=PROBE_TIMEOUT_S):
            return True
    except (OSError, ConfigError):
        return False


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``prog: error: message``, exit 2), without the usage block."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse's own hook
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


@contextlib.contextmanager
def one_line_errors(prog: str, on_interrupt: str = "re-run the same command to resume") -> Iterator[None]:
    """Print a user error as ``prog: error: message`` and exit with status 2.

    User errors are :class:`HypoError` and operating-system errors (a missing file, a folder where a file should
    be, no permission). Ctrl-C prints ``prog: interrupted; on_interrupt`` and exits with status 130; so does an
    :class:`~hypo.errors.Interrupted` a command raised after saving its state (its message says how to resume).

    Args:
        prog: The command's name, first on the line.
        on_interrupt: What to do after Ctrl-C: how this command continues (``hypo train`` needs ``--resume``).
    """
    try:
        yield
    except Interrupted as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        raise SystemExit(130) from None
    except (HypoError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {on_interrupt}", file=sys.stderr)
        raise SystemExit(130) from None
