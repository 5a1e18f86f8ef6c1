"""The CLI's commands on buckets: `cp` (a local file to or from ``s3://BUCKET/KEY``, like `aws s3 cp`) and `ls`."""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videoconverter.config import Config
from videoconverter.errors import BucketNotFoundError, ConfigError, VideoConverterError
from videoconverter.pipeline import missing_bucket, prepare_upload, services
from videoconverter.progress import ProgressBar, human_bytes
from videoconverter.storage.base import ObjectInfo, ProgressCallback
from videoconverter.storage.keys import split_s3_url, upload_key

Command = Callable[[str, Any, str], argparse.ArgumentParser]


def add_commands(command: Command) -> None:
    p = command("cp", cmd_cp, "copy a file to or from a bucket (like `aws s3 cp`)")
    p.add_argument("source", help="local path or s3://BUCKET/KEY")
    p.add_argument("destination", help="local path or s3://BUCKET/[KEY] (a trailing / keeps the file name)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = command("ls", cmd_ls, "list the objects in a bucket")
    p.add_argument("location", help="s3://BUCKET[/PREFIX]")
    p.add_argument("--json", action="store_true")


def cmd_cp(args: argparse.Namespace, config: Config) -> int:
    src_remote, dst_remote = args.source.startswith("s3://"), args.destination.startswith("s3://")
    bar = ProgressBar("copying")

    def progress(done: int, total: int | None) -> None:
        bar.update(done, total, human_bytes(done))

    if not src_remote and dst_remote:
        info = _upload(config, Path(args.source), args.destination, progress)
    elif src_remote and not dst_remote:
        info = _download(config, args.source, args.destination, progress)
    else:
        raise ConfigError("cp copies between a local file and s3://BUCKET/KEY; one side must be each")
    bar.close()
    result = {"bucket": info.bucket, "key": info.key, "size": info.size, "etag": info.etag}
    if args.json:
        print(json.dumps(result))
    else:
        verb = "upload" if dst_remote else "download"
        print(f"{verb}: {args.source} to {args.destination} ({human_bytes(info.size)})")
    return 0


def _upload(config: Config, source: Path, destination: str, progress: ProgressCallback) -> ObjectInfo:
    """Store ``source`` under the key ``destination`` names, in NFC and checked before any byte is sent (see
    :func:`videoconverter.storage.keys.upload_key`); the key of the result is the key of its event and jobs."""
    if not source.is_file():
        raise VideoConverterError(f"{source} is not a file")
    bucket, key = split_s3_url(destination)
    key = upload_key(key + source.name if not key or key.endswith("/") else key)
    with services(config) as svc:
        prepare_upload(svc, bucket)
        try:
            return svc.store.put_file(bucket, key, source, progress=progress)
        except BucketNotFoundError:
            raise missing_bucket(config, bucket) from None


def _download(config: Config, source: str, destination: str, progress: ProgressCallback) -> ObjectInfo:
    """Fetch into a temporary name beside the destination, renamed when whole: never half a file under the final
    name. The temporary name is short whatever the key: a key's 255-byte segment plus a suffix would not fit."""
    bucket, key = split_s3_url(source)
    target = Path(destination)
    if target.is_dir() or destination.endswith("/"):
        target = target / Path(key).name
    partial = target.parent / f".vc-download-{uuid.uuid4().hex[:12]}.part"
    with services(config) as svc:
        try:
            info = svc.store.get_file(bucket, key, partial, progress=progress)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return info


def cmd_ls(args: argparse.Namespace, config: Config) -> int:
    bucket, prefix = split_s3_url(args.location)
    with services(config) as svc:
        objects = list(svc.store.list(bucket, prefix))
    if args.json:
        print(
            json.dumps(
                [{"key": o.key, "size": o.size, "etag": o.etag, "last_modified": o.last_modified} for o in objects]
            )
        )
    else:
        for o in objects:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(o.last_modified))
            print(f"{stamp} {o.size:>12} {o.key}")
    return 0
