"""Chunking: does time to done shrink with the number of workers, what does splitting cost, and do seams show?

One generated ``--seconds`` (120) 1920x1080 source becomes one 720p MP4 (a fixed CRF, so no VMAF search adds
noise), through the embedded pipeline with real ``videoconverter worker`` processes, each pinned with
``taskset`` to a core of its own and running FFmpeg with one thread. Three setups, in alternating order for
``--repeats`` rounds, each on a fresh data directory, timed from the upload until the job is done:

- ``whole x1``: chunking off, one worker (today's pipeline);
- ``split x1``: chunking on (pieces of ``--chunk-seconds``), one worker: the cost of splitting (target <= 1.05);
- ``split xN``: chunking on, ``--workers`` workers (target: <= 0.6 of ``whole x1`` with 2).

Then quality: VMAF (the package's model and helpers) of the whole and of the split output against the source,
over the whole video and next to each seam as the worker plans them (two frames either side, and a keyframe
interval either side), with frame counts, durations, A/V offsets, sizes, and an alignment check (the frames
before the first seam come from the same encoder state in both outputs: their VMAF must match).

With ``--ladder`` the rendition is an HLS ladder (360p + 720p: each piece encodes both rungs from one decode;
the join segments them): the times, and whether every rung has the whole encode's segments.

Usage: ``.venv/bin/python bench/split.py [--seconds 120] [--chunk-seconds 60] [--workers 2] [--repeats 2]
[--preset medium] [--ladder] [--json]``; ``--seconds 20 --repeats 1`` is a smoke run. Figures on a shared,
loaded machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from videoconverter.chunking.plan import plan_pieces
from videoconverter.config import Config, load_config
from videoconverter.jobs.base import JobId, JobState
from videoconverter.pipeline import open_services, provision
from videoconverter.renditions import Limits
from videoconverter.transcode.command import frame_rate
from videoconverter.transcode.framerate import frames_per_interval
from videoconverter.transcode.probe import probe
from videoconverter.transcode.quality import VMAF_LOG, build_quality_command
from videoconverter.transcode.runner import ffmpeg_executable, run_ffmpeg
from videoconverter.transcode.samples import make_clip

IN = "videoconverter-input"
KEY = "talk.mp4"


def config_text(data_dir: Path, preset: str, chunking: bool, chunk_seconds: float, ladder: bool = False) -> str:
    rendition = (
        f'[[renditions]]\nname = "720p"\nkind = "hls"\nladder = [360, 720]\npreset = "{preset}"\ntarget_vmaf = 0\n'
        if ladder
        else f'[[renditions]]\nname = "720p"\nshort_side = 720\npreset = "{preset}"\ntarget_vmaf = 0\n'
    )
    return (
        f'data_dir = "{data_dir}"\n\n[queues]\nreceive_wait_seconds = 1\nvisibility_timeout_seconds = 30\n\n'
        f"[chunking]\nenabled = {'true' if chunking else 'false'}\nmin_source_seconds = 0\n"
        f"chunk_seconds = {chunk_seconds}\n\n" + rendition
    )


def run_setup(source: Path, workdir: Path, workers: int, chunking: bool, args: argparse.Namespace) -> dict[str, Any]:
    """One upload through ``workers`` pinned worker processes; the time to done and the output."""
    data = workdir / "data"
    path = workdir / "videoconverter.toml"
    path.write_text(config_text(data, args.preset, chunking, args.chunk_seconds, args.ladder))
    svc = open_services(load_config(environ={}, path=path))
    provision(svc)
    env = {**os.environ, "VIDEOCONVERTER_CONFIG": str(path), "VIDEOCONVERTER_FFMPEG_THREADS": "1"}
    cores = sorted(os.sched_getaffinity(0))
    processes = [
        subprocess.Popen(
            ["taskset", "-c", str(cores[i % len(cores)]), sys.executable, "-m", "videoconverter", "worker", "720p"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    try:
        time.sleep(2.0)  # a benchmark, not a test: let the workers import and start listening
        started = time.monotonic()
        uploaded = svc.store.put_file(IN, KEY, source)
        job = JobId(KEY, uploaded.etag, "720p")
        while (record := svc.jobs.get(job)) is None or not record.state.terminal:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        if record.state is not JobState.DONE:
            raise SystemExit(f"the job failed: {record.error}")
        output = workdir / f"output-{workers}-{chunking}.mp4"
        if args.ladder:  # the package's playlists: the segments each rung was cut into
            output = workdir / "package"
            for listed in svc.store.list("videoconverter-output-720p", f"{KEY}/"):
                if listed.key.endswith(".m3u8"):
                    (output / listed.key).parent.mkdir(parents=True, exist_ok=True)
                    svc.store.get_file("videoconverter-output-720p", listed.key, output / listed.key)
        else:
            svc.store.get_file("videoconverter-output-720p", KEY, output)
        return {"seconds": elapsed, "output": output, "pieces": record.pieces_planned}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        svc.close()


def segments(package: Path) -> dict[str, list[float]]:
    """Each rung's segment durations, from its media playlist (``#EXTINF``)."""
    found = {}
    for playlist in sorted(package.glob(f"{KEY}/*/*/index.m3u8")):
        if playlist.parent.parent.name != "audio":
            lines = playlist.read_text().splitlines()
            found[playlist.parent.name] = [float(x[8:].split(",")[0]) for x in lines if x.startswith("#EXTINF:")]
    return found


def vmaf_frames(source: Path, output: Path, workdir: Path) -> list[float]:
    """Per-frame VMAF of ``output`` against ``source``, with the package's own comparison."""
    limits = Limits()
    workdir.mkdir(parents=True, exist_ok=True)
    args = build_quality_command(
        ffmpeg_executable(), source, output, probe(source, limits), probe(output, limits), limits,
        threads=len(os.sched_getaffinity(0)),
    )  # fmt: skip
    run_ffmpeg(args, workdir=workdir, timeout_seconds=3600)
    return [frame["metrics"]["vmaf"] for frame in json.loads((workdir / VMAF_LOG).read_text())["frames"]]


def seam_frames(source: Path, config: Config) -> tuple[list[int], int]:
    """The first frame of every piece but the first, as the worker plans them with ``config`` (the last piece
    takes what is left, so seams are not simply every ``chunk_seconds``), and the keyframe interval in frames."""
    rendition = config.rendition("720p")
    info = probe(source, config.limits)
    rate = frame_rate(info, rendition)
    gop = frames_per_interval(rate, rendition.keyframe_interval_seconds)
    interval = rendition.keyframe_interval_seconds
    plan = plan_pieces(info.duration_seconds or 0.0, rate, gop, interval, config.chunking.chunk_seconds)
    return [piece.start_frame for piece in plan.pieces[1:]], gop


def av_offset_seconds(path: Path) -> float:
    """When the audio starts after the video (negative: before), read by PyAV."""
    import av

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        return round(float(audio.start_time * audio.time_base - video.start_time * video.time_base), 4)


def quality(source: Path, whole: Path, split: Path, config: Config, workdir: Path) -> dict[str, Any]:
    """VMAF of both outputs against the source, over everything and next to the seams: the two frames either
    side of each (the last two of a piece, the first two of the next) and the keyframe interval either side
    (where a piece's rate control could still differ from the whole encode's). Frames before the first seam
    come from the same encoder state in both, so their difference shows whether the comparison is aligned."""
    whole_scores = vmaf_frames(source, whole, workdir / "vmaf-whole")
    split_scores = vmaf_frames(source, split, workdir / "vmaf-split")
    seams, gop = seam_frames(source, config)
    count = min(len(whole_scores), len(split_scores))

    def around(before: int, after: int) -> list[int]:
        return sorted({f for s in seams for f in range(s - before, s + after) if 0 <= f < count})

    def mean(scores: list[float], frames: list[int]) -> float:
        return statistics.fmean(scores[f] for f in frames) if frames else float("nan")

    first = range(min(seams[0] - gop, count) if seams else count)  # the first piece, but its last interval
    limits = Limits()
    return {
        "vmaf_whole": statistics.fmean(whole_scores),
        "vmaf_split": statistics.fmean(split_scores),
        "vmaf_seams_whole": mean(whole_scores, around(2, 2)),
        "vmaf_seams_split": mean(split_scores, around(2, 2)),
        "vmaf_seam_intervals_whole": mean(whole_scores, around(gop, gop)),
        "vmaf_seam_intervals_split": mean(split_scores, around(gop, gop)),
        "alignment_max_difference": max((abs(whole_scores[f] - split_scores[f]) for f in first), default=0.0),
        "seams": len(seams),
        "frames": (len(whole_scores), len(split_scores)),
        "duration": (probe(whole, limits).duration_seconds, probe(split, limits).duration_seconds),
        "av_offset": (av_offset_seconds(whole), av_offset_seconds(split)),
        "bytes": (whole.stat().st_size, split.stat().st_size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    # The configuration's default: every piece but the first also encodes a keyframe interval of pre-roll
    # (chunking/plan.py with_preroll), 2 s in 60; more workers need shorter pieces (``--chunk-seconds 20``).
    parser.add_argument("--chunk-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--ladder", action="store_true", help="an HLS ladder (360p + 720p) instead of one MP4")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    setups = [("whole x1", 1, False), ("split x1", 1, True), (f"split x{args.workers}", args.workers, True)]
    times: dict[str, list[float]] = {name: [] for name, _, _ in setups}
    with tempfile.TemporaryDirectory(prefix="bench-split-") as tmp:
        root = Path(tmp)
        source = make_clip(root / "source.mp4", width=1920, height=1080, seconds=args.seconds)
        outputs: dict[str, Path] = {}
        for round_number in range(args.repeats):
            order = setups if round_number % 2 == 0 else list(reversed(setups))
            for name, workers, chunking in order:
                workdir = root / f"r{round_number}-{name.replace(' ', '')}"
                workdir.mkdir()
                result = run_setup(source, workdir, workers, chunking, args)
                times[name].append(result["seconds"])
                outputs[name] = result["output"]
        split_config = load_config(environ={}, path=root / "r0-splitx1" / "videoconverter.toml")
        figures = {name: statistics.median(values) for name, values in times.items()}
        split_n = f"split x{args.workers}"
        report = {
            "seconds_to_done": figures,
            "ratio_split_workers_to_whole": figures[split_n] / figures["whole x1"],
            "overhead_split_x1_to_whole": figures["split x1"] / figures["whole x1"],
            "cores": len(os.sched_getaffinity(0)),
        }
        if args.ladder:
            report["segments"] = {name: segments(outputs[name]) for name in (split_n, "whole x1")}
        else:
            report["quality"] = quality(source, outputs["whole x1"], outputs[split_n], split_config, root)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    what = "a 360p + 720p HLS ladder" if args.ladder else "720p MP4"
    print(f"{args.seconds:.0f} s 1080p -> {what}, pieces of {args.chunk_seconds:g} s, FFmpeg threads 1, "
          f"median of {args.repeats}, {report['cores']} cores")  # fmt: skip
    for name, value in figures.items():
        print(f"  {name:10} {value:7.1f} s to done")
    print(f"  ratio {split_n} / whole x1: {report['ratio_split_workers_to_whole']:.2f} (target <= 0.6 with 2)")
    print(f"  overhead split x1 / whole x1: {report['overhead_split_x1_to_whole']:.2f} (target <= 1.05)")
    if args.ladder:
        split, whole = report["segments"].values()
        same = "the same" if split == whole else "DIFFERENT"
        print(f"  segments per rung, split / whole: {same} ({', '.join(f'{r}: {len(d)}' for r, d in whole.items())})")
        return
    q = report["quality"]
    print(f"  VMAF whole {q['vmaf_whole']:.2f}, split {q['vmaf_split']:.2f}; next to the {q['seams']} seams (2 "
          f"frames either side): whole {q['vmaf_seams_whole']:.2f}, split {q['vmaf_seams_split']:.2f}; a keyframe "
          f"interval either side: whole {q['vmaf_seam_intervals_whole']:.2f}, split "
          f"{q['vmaf_seam_intervals_split']:.2f} (target: within 0.5)")  # fmt: skip
    print(f"  alignment: the first piece's frames differ by at most {q['alignment_max_difference']:.2f} VMAF")
    print(f"  frames {q['frames'][0]} / {q['frames'][1]}, duration {q['duration'][0]} / {q['duration'][1]} s, "
          f"A/V offset {q['av_offset'][0]} / {q['av_offset'][1]} s, "
          f"bytes {q['bytes'][0]} / {q['bytes'][1]}")  # fmt: skip


if __name__ == "__main__":
    main()
