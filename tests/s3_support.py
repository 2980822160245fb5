"""A real S3 API for the tests: moto's standalone server on 127.0.0.1 (one per test session, in a
process of its own), reached through the standard AWS variables, and a fresh bucket per test.
It skips when moto is not installed, except with ``CI=true``, where it fails."""
import os
import secrets
import socket
import subprocess
import sys
import time

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto S3 server running for this session."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("moto[server] is not installed (pip install botreports[dev])")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("moto's S3 server did not start")
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(10)


#: What every process of a test (and a deployment) is told about S3: the standard AWS variables.
def aws_environment(endpoint: str) -> dict:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "botreports-test",
            "AWS_SECRET_ACCESS_KEY": "botreports-test-secret"}


@pytest.fixture
def s3_bucket(s3_server, monkeypatch):
    """A new, empty bucket on the test server, with the AWS variables set for this test; its name."""
    import boto3

    for name, value in aws_environment(s3_server).items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    bucket = "botreports-" + secrets.token_hex(6)
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket
