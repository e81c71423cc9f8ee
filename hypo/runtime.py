"""Starting or joining Ray, and turning user errors into one line instead of a traceback."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from hypo.errors import HypoError


def init_ray(address: str | None = None, num_cpus: int | None = None, quiet: bool = True) -> None:
    """Join a running Ray cluster or start a local one.

    ``address`` (or ``RAY_ADDRESS``; ``"auto"`` finds a local cluster) joins a cluster, as when a script runs
    through ``ray submit cluster.yaml``; with neither, Ray starts on this machine with ``num_cpus`` CPUs.
    ``quiet`` keeps Ray's own INFO lines and the workers' output off the console (``--verbose`` brings them).
    """
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"logging_level": logging.WARNING, "log_to_driver": False} if quiet else {}
    if quiet:  # Ray's note that token authentication is on (its secure default) is not the user's concern here
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``prog: error: message``, exit 2), without the usage block."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse's own hook
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


@contextlib.contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """Print a user error as ``prog: error: message`` and exit with status 2.

    User errors are :class:`HypoError` and operating-system errors (a missing file, a folder where a file should
    be, no permission).
    """
    try:
        yield
    except (HypoError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; re-run the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
