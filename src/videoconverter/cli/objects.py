"""The CLI's commands on buckets: `cp` (a local file to or from ``s3://BUCKET/KEY``, like `aws s3 cp`) and `ls`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from videoconverter.config import Config
from videoconverter.errors import ConfigError, VideoConverterError
from videoconverter.pipeline import services
from videoconverter.progress import ProgressBar, human_bytes
from videoconverter.storage.keys import split_s3_url

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
    with services(config) as svc:
        bar = ProgressBar("copying")

        def progress(done: int, total: int | None) -> None:
            bar.update(done, total, human_bytes(done))

        if not src_remote and dst_remote:
            source = Path(args.source)
            if not source.is_file():
                raise VideoConverterError(f"{source} is not a file")
            bucket, key = split_s3_url(args.destination)
            key = key + source.name if not key or key.endswith("/") else key
            info = svc.store.put_file(bucket, key, source, progress=progress)
        elif src_remote and not dst_remote:
            bucket, key = split_s3_url(args.source)
            destination = Path(args.destination)
            if destination.is_dir() or args.destination.endswith("/"):
                destination = destination / Path(key).name
            partial = destination.with_name(destination.name + ".part")
            info = svc.store.get_file(bucket, key, partial, progress=progress)
            partial.replace(destination)  # never leave half a file under the final name
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
