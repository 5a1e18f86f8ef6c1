"""moto's server, started once per test session as a separate process and spoken to over HTTP.

Every AWS test talks to it through boto3 (or the AWS CLI) exactly as it would talk to AWS: no in-process mocks.
The credentials are moto's fakes, set for this test session only.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import free_port, require_service

if TYPE_CHECKING:
    from videoconverter.pipeline import Services

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str

    def url(self, scheme: str, name: str = "") -> str:
        """A backend URL pointing at this server, e.g. ``aws://?endpoint_url=...``."""
        return f"{scheme}://{name}?endpoint_url={self.endpoint_url}&region={REGION}"

    def reset(self) -> None:
        """Forget every bucket, topic, queue and table (for tests that use the default, fixed names)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def environ(self) -> dict[str, str]:
        """The environment a subprocess (worker, AWS CLI) needs to reach this server."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}


def _moto_installed() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


#: moto's server answering one request at a time. moto applies concurrent UpdateItem calls to one item without
#: serialising them (lost updates, reproduced with plain boto3 on a loaded machine), where DynamoDB applies the
#: writes to an item one at a time: the tests that race writers on one item run against this one.
SERIAL_SERVER = """
import sys
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
run_simple(sys.argv[1], int(sys.argv[2]), DomainDispatcherApplication(create_backend_app), threaded=False)
"""


#: moto's server as `python -m moto.server` runs it (threaded: SQS long polls wait side by side), except that it
#: answers DynamoDB requests one at a time, as DynamoDB applies each request atomically. Threaded, moto lets a
#: read see the item an Update is creating before its attributes are set (CI met it: a job with no state), and a
#: transaction whose condition fails restores a copy of the whole table taken when it began, undoing whatever
#: other requests wrote meanwhile. DynamoDB requests are short, so one at a time costs little.
THREADED_SERVER = """
import sys, threading
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple
app = DomainDispatcherApplication(create_backend_app)
app.debug = True
dynamodb = threading.Lock()
def serve(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with dynamodb:
            return list(app(environ, start_response))
    return app(environ, start_response)
run_simple(sys.argv[1], int(sys.argv[2]), serve, threaded=True, request_handler=MotoRequestHandler)
"""


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's server (see :data:`THREADED_SERVER`) for the session; clients built from the environment alone (the
    AWS CLI, a worker started without a URL) reach it too."""
    with pytest.MonkeyPatch.context() as patch, _moto(tmp_path_factory, ["-c", THREADED_SERVER]) as server:
        for name, value in FAKE_CREDENTIALS.items():
            patch.setenv(name, value)
        patch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        yield server


@pytest.fixture(scope="session")
def serial_moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's server answering one request at a time (see :data:`SERIAL_SERVER`)."""
    with _moto(tmp_path_factory, ["-c", SERIAL_SERVER]) as server:
        yield server


@contextlib.contextmanager
def _moto(tmp_path_factory: pytest.TempPathFactory, command: list[str]) -> Iterator[MotoServer]:
    require_service(_moto_installed(), "moto[server] is not installed (pip install -e '.[dev]')")
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("moto") / "moto.log"
    arguments = ["127.0.0.1", str(port)]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, *command, *arguments],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAKE_CREDENTIALS},
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"moto's server did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
    try:
        yield MotoServer(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def write_aws_config(path: Path, server: MotoServer, data_dir: Path, split: bool | None = None) -> Path:
    """The tiny pipeline on S3, SNS/SQS and DynamoDB at ``server``, with names of its own (buckets are global on
    the shared server, and outlive the test); ``split``: every MP4 job split into pieces (None: as the run says)."""
    from tests.conftest import CHUNKING_FORCED, tiny_renditions_toml

    uid = uuid.uuid4().hex[:8]
    renditions = tiny_renditions_toml(CHUNKING_FORCED if split is None else split)
    for name in ("smaller", "small"):
        renditions = renditions.replace(
            f'name = "{name}"\n', f'name = "{name}"\nqueue = "q{uid}-{name}"\noutput_bucket = "vc-{uid}-{name}"\n'
        )
    path.write_text(
        f'data_dir = "{data_dir}"\nstorage = "{server.url("s3")}"\nbroker = "{server.url("aws")}"\n'
        f'jobs = "{server.url("dynamodb", f"jobs-{uid}")}"\n\n'
        f'[input]\nbucket = "vc-{uid}-input"\ntopic = "t{uid}-topic"\n' + renditions
    )
    return path


def pipeline_on(request: pytest.FixtureRequest, tmp_path: Path, toml: str) -> Services:
    """``toml`` (a data_dir, settings, renditions) opened and provisioned on the backends ``request.param``
    names: "sqlite" (the file store and SQLite) or "aws" (S3, SNS/SQS and DynamoDB at the session's moto
    server, reset first: the default names), with S3's ``s3:TestEvent`` on subscription taken off every
    rendition's queue. The caller closes it."""
    from videoconverter.config import load_config
    from videoconverter.pipeline import open_services, provision

    if request.param == "aws":
        server = request.getfixturevalue("moto_server")
        server.reset()
        toml = (
            f'storage = "{server.url("s3")}"\nbroker = "{server.url("aws")}"\n'
            f'jobs = "{server.url("dynamodb", "videoconverter-jobs")}"\n' + toml
        )
    path = tmp_path / "videoconverter.toml"
    path.write_text(toml)
    services = open_services(load_config(environ={}, path=path))
    provision(services)
    if request.param == "aws":
        for rendition in services.config.renditions:
            for delivery in services.broker.receive(rendition.queue, max_messages=10, wait_seconds=2):
                assert json.loads(delivery.body).get("Event") == "s3:TestEvent"
                services.broker.ack(delivery)
    return services
