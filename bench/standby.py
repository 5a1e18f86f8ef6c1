"""What `up`'s standby worker buys and costs, measured apart from a whole recovery (bench/peer.py recovery).

1. **clients**: a fresh interpreter making the four AWS clients a worker makes (SQS, SNS, DynamoDB, S3) from
   four boto3 sessions, as before, and from one, as ``aws/clients.py`` does now; median of ``--runs``.
2. **takeover**: a ``worker --standby`` is started and left to get ready (until its CPU time stops growing),
   a 2 s 1920x1080 clip is uploaded, and the standby is given the 1080p rendition: from that line to the job's
   ``received``, ``downloaded`` and ``ffmpeg_started`` (its timeline), ``--runs`` standbys one after another.
   On the embedded backends, and with ``--sqs`` on S3 + SNS/SQS + DynamoDB at a moto server it starts.
3. **memory**: each ready standby's RSS, private memory and PSS (``/proc/PID/smaps_rollup``).

Usage: ``.venv/bin/python bench/standby.py [--runs 3] [--sqs]``. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from peer_systems import AWS_REGION, FAKE_AWS, bench_toml, child_env, moto_server
from videoconverter.config import Config, load_config
from videoconverter.jobs.timeline import Timeline
from videoconverter.pipeline import Services, open_services, provision
from videoconverter.transcode.samples import make_clip

MIB = 1024 * 1024
READY_TIMEOUT_SECONDS = 60.0
JOB_TIMEOUT_SECONDS = 60.0
SERVICES = ("sqs", "sns", "dynamodb", "s3")
CLIENTS = """
import sys, time
start = time.perf_counter()
import boto3
session = boto3.session.Session()
for service in {services!r}:
    if sys.argv[1] == "separate":
        session = boto3.session.Session()
    session.client(service, endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
print(time.perf_counter() - start)
"""


def clients(runs: int) -> dict[str, float]:
    """Median seconds from ``import boto3`` to the four clients made, in a fresh interpreter, per way."""
    script = CLIENTS.format(services=SERVICES)
    times: dict[str, list[float]] = {"separate": [], "shared": []}
    for _ in range(runs):
        for way, seen in times.items():
            done = subprocess.run([sys.executable, "-c", script, way], capture_output=True, text=True, check=True)
            seen.append(float(done.stdout))
    return {way: statistics.median(seen) for way, seen in times.items()}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def _await_ready(pid: int) -> None:
    """Until the process's CPU time has stopped growing for half a second: it waits on its stdin."""
    deadline, last = time.monotonic() + READY_TIMEOUT_SECONDS, -1.0
    while time.monotonic() < deadline:
        now = _cpu_seconds(pid)
        if now == last:
            return
        last = now
        time.sleep(0.5)
    raise RuntimeError("the standby did not get ready")


def _memory_mib(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                values[name] = int(rest.split()[0]) * 1024 / MIB
    return {"rss": values["Rss"], "private": values["Private_Clean"] + values["Private_Dirty"], "pss": values["Pss"]}


def _upload(svc: Services, config: Config, key: str, clip: Path, endpoint: str) -> None:
    if not endpoint:
        svc.store.put_file(config.input_bucket, key, clip)
        return
    import boto3  # one PutObject, as bench/peer_systems.py explains

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=AWS_REGION)
    s3.put_object(Bucket=config.input_bucket, Key=key, Body=clip.read_bytes())


def takeover(work: Path, clip: Path, runs: int, endpoint: str) -> list[dict[str, float]]:
    config_path = work / "videoconverter.toml"
    config_path.write_text(bench_toml(work / "data", aws_endpoint=endpoint), encoding="utf-8")
    env = child_env(VIDEOCONVERTER_CONFIG=str(config_path)) | (FAKE_AWS if endpoint else {})
    config = load_config(environ=env)
    svc = open_services(config)
    provision(svc)
    found = []
    try:
        for run in range(runs):
            command = [sys.executable, "-m", "videoconverter", "worker", "--standby", "--no-provision"]
            with open(work / f"standby-{run}.log", "wb") as log:
                standby = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=log, stderr=log)
            try:
                _await_ready(standby.pid)
                memory = _memory_mib(standby.pid)
                key = f"takeover-{run}.mp4"
                _upload(svc, config, key, clip, endpoint)
                assert standby.stdin is not None
                assigned = time.time()
                standby.stdin.write(b'["1080p"]\n')
                standby.stdin.close()
                timeline = _started(svc, key)
                stages = ("received", "downloaded", "ffmpeg_started")
                found.append({s: getattr(timeline, s) - assigned for s in stages} | memory)
            finally:
                standby.terminate()
                standby.wait(timeout=60)
    finally:
        svc.close()
    return found


def _started(svc: Services, key: str) -> Timeline:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        records = [r for r in svc.jobs.find(key) if r.id.rendition == "1080p"]
        if records and records[0].timeline.ffmpeg_started:
            return records[0].timeline
        time.sleep(0.02)
    raise RuntimeError(f"{key}: the standby's FFmpeg did not start")


@contextlib.contextmanager
def _backends(work: Path, sqs: bool) -> Iterator[str]:
    if not sqs:
        yield ""
        return
    with moto_server(work) as endpoint:
        yield endpoint


def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--sqs", action="store_true", help="the takeover on S3 + SNS/SQS + DynamoDB too (moto)")
    args = p.parse_args()
    times = clients(args.runs)
    print(f"clients: 4 from 4 sessions {times['separate']:.3f} s, from one {times['shared']:.3f} s (median)")
    with tempfile.TemporaryDirectory(prefix="vc-standby-", dir="/tmp") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", seconds=2)
        for name in ["embedded"] + (["sqs"] if args.sqs else []):
            work = Path(tmp) / name
            work.mkdir()
            with _backends(work, name == "sqs") as endpoint:
                for i, run in enumerate(takeover(work, clip, args.runs, endpoint)):
                    print(
                        f"takeover {name} run {i + 1}: assigned -> received {run['received'] * 1000:.0f} ms, "
                        f"downloaded {run['downloaded'] * 1000:.0f} ms, FFmpeg {run['ffmpeg_started'] * 1000:.0f} ms; "
                        f"ready standby RSS {run['rss']:.1f} MiB, private {run['private']:.1f}, PSS {run['pss']:.1f}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
