"""The template's worker roles against what the worker really does on S3, for every kind of rendition.

The real worker converts an upload and then a replacement of it (a second version, whose clean-up deletes the
first's files) on S3 at moto's server; every S3 request it makes is recorded, mapped to the IAM actions AWS
checks for it, and compared with the S3 statements of each worker role in deploy/aws/template.yaml (the
transcode function's and the ECS task's): every action a kind needs must be granted, on the right bucket, and
nothing more. moto enforces no IAM, so this is how a missing permission shows before AWS refuses it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.aws import MotoServer
from tests.cloudformation import as_list, evaluate, load_template, names_of, statements, worker_roles
from tests.conftest import require_service
from videoconverter.aws import clients
from videoconverter.config import Config, load_config
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import open_services, provision
from videoconverter.renditions import DEFAULT_RENDITIONS, KINDS
from videoconverter.storage import s3
from videoconverter.worker import Worker

pytestmark = pytest.mark.ffmpeg
require_service(importlib.util.find_spec("cfnlint") is not None, "cfn-lint is not installed (dev extra)")

#: The IAM actions AWS checks for each S3 operation, and on what: the bucket, or its objects (the Service
#: Authorization Reference for Amazon S3; HeadObject and GetObject in the S3 API Reference). An operation the
#: worker starts using must be added here, which is the point.
S3_PERMISSIONS = {
    # Without s3:ListBucket, a missing key answers 403 instead of 404: the worker heads outputs and sources
    # that may not exist (a first conversion, a deleted upload) and must tell "absent" from "forbidden".
    "HeadObject": [("s3:GetObject", "object"), ("s3:ListBucket", "bucket")],
    "GetObject": [("s3:GetObject", "object"), ("s3:ListBucket", "bucket")],
    "PutObject": [("s3:PutObject", "object")],
    "CreateMultipartUpload": [("s3:PutObject", "object")],
    "UploadPart": [("s3:PutObject", "object")],
    "CompleteMultipartUpload": [("s3:PutObject", "object")],
    "AbortMultipartUpload": [("s3:AbortMultipartUpload", "object")],
    "ListObjectsV2": [("s3:ListBucket", "bucket")],
    "HeadBucket": [("s3:ListBucket", "bucket")],  # S3Store.head: after a 404, is it the key or the bucket?
    "DeleteObject": [("s3:DeleteObject", "object")],
}
#: Granted for requests a successful run does not make: boto3's transfer manager aborts a multipart upload
#: whose part failed (s3transfer's upload), so that no parts are left behind (and billed).
ON_FAILURE_ONLY = {("s3:AbortMultipartUpload", "output/*")}
KEY = "trip/day 1.mp4"
RENDITIONS_TOML = """
[queues]
receive_wait_seconds = 1

[[renditions]]
name = "mp4"
short_side = 90
x264_preset = "ultrafast"

[[renditions]]
name = "hls"
kind = "hls"
ladder = [90, 120]
preset = "ultrafast"
segment_seconds = 2
keyframe_interval_seconds = 1

[[renditions]]
name = "thumbnails"
kind = "thumbnails"
thumbnail_interval_seconds = 1
thumbnail_width = 64
"""


class S3Requests:
    """Every S3 request of the clients made while :attr:`on` is true: (operation, bucket)."""

    def __init__(self) -> None:
        self.on = False
        self.made: list[tuple[str, str]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.on:
            self.made.append((model.name, str(params.get("Bucket", ""))))


@pytest.fixture(scope="module")
def needed(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[tuple[str, str]]]:
    """rendition kind -> the (IAM action, resource) pairs its worker needed (resources as :func:`actions_of`).

    Every rendition converts the same two clips, one after the other under the same key: the second replaces
    the first's output (an HLS or thumbnails clean-up), and the last rendition's worker finishes each upload
    (and heads every output for the upload.done event)."""
    from videoconverter.transcode.samples import make_clip

    moto_server.reset()  # the default bucket, topic and queue names
    directory = tmp_path_factory.mktemp("permissions")
    path = directory / "videoconverter.toml"
    path.write_text(
        f'data_dir = "{directory / "data"}"\nstorage = "{moto_server.url("s3")}"\n'
        f'broker = "{moto_server.url("aws")}"\njobs = "{moto_server.url("dynamodb", "videoconverter-jobs")}"\n'
        + RENDITIONS_TOML
    )
    config = load_config(environ={}, path=path)
    clips = [make_clip(directory / f"version-{n}.mp4", width=320, height=180, seconds=2 + n) for n in (0, 1)]
    requests = S3Requests()
    client = clients.AwsLocation.client

    def recording(location: clients.AwsLocation, service: str) -> Any:
        made = client(location, service)
        made.meta.events.register("provide-client-params.s3", requests)
        return made

    found = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clients.AwsLocation, "client", recording)
        for rendition in config.renditions:
            requests.made = []
            for version, clip in enumerate(clips):
                convert(config, rendition.name, clip, multipart=version == 1, requests=requests)
            assert "UploadPart" in {operation for operation, _bucket in requests.made}
            others = [r.output_bucket for r in config.renditions if r is not rendition]
            found[rendition.kind] = actions_of(requests.made, config.input_bucket, rendition.output_bucket, others)
    assert set(found) == set(KINDS)
    return found


def convert(config: Config, rendition: str, clip: Path, multipart: bool, requests: S3Requests) -> None:
    """Upload ``clip`` under KEY (not recorded) and let the worker of ``rendition`` convert it (recorded); with
    ``multipart``, every file goes up in parts (a threshold of 1 byte), so that both ways of writing are seen."""
    with pytest.MonkeyPatch.context() as patch:
        if multipart:
            patch.setattr(s3, "MULTIPART_THRESHOLD_BYTES", 1)
        svc = open_services(config)
        try:
            provision(svc)
            queue = config.rendition(rendition).queue
            while deliveries := svc.broker.receive(queue, max_messages=10, wait_seconds=0):
                for delivery in deliveries:  # S3's s3:TestEvent, the events of the other renditions' uploads
                    svc.broker.ack(delivery)
            uploaded = svc.store.put_file(config.input_bucket, KEY, clip)
            requests.on = True
            Worker(svc, config.rendition(rendition)).run(exit_when_idle=True)
            requests.on = False
            job = svc.jobs.get(JobId(KEY, uploaded.etag, rendition))
            assert job is not None and job.state is JobState.DONE, (rendition, job)
        finally:
            requests.on = False
            svc.close()


def actions_of(
    made: list[tuple[str, str]], input_bucket: str, output_bucket: str, other_outputs: list[str]
) -> set[tuple[str, str]]:
    """The IAM actions the requests ``made`` need, on "input", "output" (its own) or "other-output" (another
    rendition's: the worker finishing an upload's last rendition heads every output for the upload.done event)."""
    buckets = {input_bucket: "input", output_bucket: "output"} | {b: "other-output" for b in other_outputs}
    found = set()
    for operation, bucket in made:
        assert operation in S3_PERMISSIONS, f"the worker calls S3 {operation}: add its IAM actions to S3_PERMISSIONS"
        assert bucket in buckets, f"the worker calls S3 {operation} on bucket {bucket}, not one of the pipeline's"
        for action, scope in S3_PERMISSIONS[operation]:
            found.add((action, buckets[bucket] + ("/*" if scope == "object" else "")))
    return found


def granted_on_s3(role: dict[str, Any], names: dict[str, str], output_bucket: str) -> set[tuple[str, str]]:
    """The role's S3 grants, each resource written as :func:`actions_of` does ("input", "output/*", ...; another
    bucket stays an ARN, and fails the comparison)."""
    labels = {f"arn:aws:s3:::{names['InputBucketName']}": "input", f"arn:aws:s3:::{output_bucket}": "output"}
    labels |= {f"arn:aws:s3:::{r.output_bucket}": "other-output" for r in DEFAULT_RENDITIONS}
    labels[f"arn:aws:s3:::{output_bucket}"] = "output"
    labels |= {f"{arn}/*": f"{label}/*" for arn, label in labels.items()}
    return {
        (action, labels.get(resource, resource))
        for statement in statements(role)
        for action in as_list(statement["Action"])
        if action.startswith("s3:")
        for resource in evaluate(as_list(statement["Resource"]), names)
    }


@pytest.mark.parametrize("kind", KINDS)
def test_every_worker_role_grants_what_a_worker_of_each_kind_does_on_s3(kind: str, needed: dict[str, Any]) -> None:
    template = load_template()
    names = names_of(template)
    for rendition in DEFAULT_RENDITIONS:
        for role in worker_roles(template)[rendition.name]:
            granted = granted_on_s3(template["Resources"][role], names, rendition.output_bucket)
            assert needed[kind] <= granted, f"{role} lacks, for a {kind} rendition: {needed[kind] - granted}"


def test_the_worker_roles_grant_nothing_on_s3_that_no_kind_needs(needed: dict[str, Any]) -> None:
    template = load_template()
    names = names_of(template)
    wanted = set().union(*needed.values()) | ON_FAILURE_ONLY
    for rendition in DEFAULT_RENDITIONS:
        for role in worker_roles(template)[rendition.name]:
            granted = granted_on_s3(template["Resources"][role], names, rendition.output_bucket)
            assert granted == wanted, f"{role} grants more than any kind needs: {granted - wanted}"


def test_only_multi_file_outputs_delete_and_a_worker_changes_only_its_own_outputs(needed: dict[str, Any]) -> None:
    # The reason for s3:DeleteObject: replacing an HLS ladder or a thumbnails set removes the earlier version's
    # files (KEY/VERSION/files.json names them); an MP4 is overwritten in place.
    assert ("s3:DeleteObject", "output/*") in needed["hls"] and ("s3:DeleteObject", "output/*") in needed["thumbnails"]
    assert not [action for action, _resource in needed["mp4"] if action == "s3:DeleteObject"]
    # upload.done gives every rendition's output size from the job records (each worker records what it wrote):
    # no worker reads another rendition's outputs.
    assert not [resource for _action, resource in set().union(*needed.values()) if resource.startswith("other")]
    changing = {"s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    changed = {resource for action, resource in set().union(*needed.values()) if action in changing}
    assert changed == {"output/*"}  # a worker changes nothing but its own rendition's outputs
