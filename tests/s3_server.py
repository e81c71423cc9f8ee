"""A real S3 API server for the tests: moto in server mode, on a free port of 127.0.0.1, reached as users reach S3.

The server runs in its own thread (``moto.server.ThreadedMotoServer``); hypo, pyarrow, boto3, Ray workers and the
commands a test runs find it through the standard variables (``AWS_ENDPOINT_URL`` and throwaway credentials), as
they would find a MinIO or a real bucket. Without moto's server (a user's clone without the test extra) the tests
that need it skip with the reason; CI sets ``HYPO_REQUIRE_S3=1``, which turns that into a failure.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "hypo-test-key", "AWS_SECRET_ACCESS_KEY": "hypo-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Start moto's S3 server and point the environment at it; yields the endpoint URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        if os.environ.get("HYPO_REQUIRE_S3") == "1":
            pytest.fail(f"moto's S3 server is not installed ({exc}) and HYPO_REQUIRE_S3=1 requires it",
                        pytrace=False)
        pytest.skip(f"moto's S3 server is not installed ({exc}); pip install -e '.[test]' brings it")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*CREDENTIALS, "AWS_ENDPOINT_URL")}
    os.environ.update(CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def new_bucket(prefix: str = "hypo") -> str:
    """Create a bucket with a fresh name on the running server; returns ``s3://NAME``."""
    import boto3

    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"
