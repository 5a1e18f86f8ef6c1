"""Splitting a job: the worker that received a long source's event plans its pieces and queues them.

A rendition with a VMAF target searches its CRF here, once, on the whole source's samples, and every piece
encodes with that CRF (pieces searched on their own would differ in quality at the seams).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from videoconverter.brokers.base import Delivery
from videoconverter.chunking.layout import Layout, layout_of
from videoconverter.chunking.messages import ChunkMessage, Step
from videoconverter.chunking.plan import ChunkPlan, plan_pieces
from videoconverter.chunking.steps import Steps
from videoconverter.events import ObjectCreated
from videoconverter.jobs.base import JobId
from videoconverter.jobs.log import JobLog
from videoconverter.renditions import Rendition
from videoconverter.transcode.command import frame_rate, kept_audio_tracks
from videoconverter.transcode.framerate import fraction_text, frames_per_interval
from videoconverter.transcode.geometry import output_size
from videoconverter.transcode.ladder import fit_ladder, plan_ladder
from videoconverter.transcode.pertitle import QualitySearch
from videoconverter.transcode.probe import MediaInfo
from videoconverter.transcode.produce import output_version
from videoconverter.transcode.products import Conversion
from videoconverter.transcode.search import SearchTarget, searched
from videoconverter.transcode.truncation import joined


def split_job(
    steps: Steps, record: ObjectCreated, info: MediaInfo, source: Path, workdir: Path, delivery: Delivery, log: JobLog
) -> str:
    """Plan ``record``'s pieces, record the plan, queue a message per piece; return the job's note so far.
    The job stays running: the join finishes it."""
    rendition, config = steps.rendition, steps.svc.config
    with steps.beat(delivery) as heartbeat:
        job = Conversion(
            steps.ffmpeg, source, info, workdir, config.limits, steps.runner(workdir, heartbeat),
            output_version(record.etag), config.ffmpeg_threads,
        )  # fmt: skip
        search, crf, note, layout = _choose(job, rendition)
    rate = frame_rate(info, rendition)
    gop = frames_per_interval(rate, rendition.keyframe_interval_seconds)
    plan = plan_pieces(
        info.duration_seconds or 0.0, rate, gop, rendition.keyframe_interval_seconds, config.chunking.chunk_seconds
    )
    quality = json.dumps(search.as_dict()) if search is not None else ""
    first = ChunkMessage(
        Step.VIDEO, record.bucket, record.key, record.size, record.etag, record.sequencer, rendition.name,
        index=0, pieces=1, video_pieces=plan.count, frame_rate=fraction_text(rate), crf=crf, note=note,
        quality=quality, layout=layout.to_json(), text_tracks=len(info.text_tracks),
    )  # fmt: skip
    messages = piece_messages(first, plan, bool(layout.audio))
    steps.svc.jobs.plan_pieces(JobId(record.key, record.etag, rendition.name), len(messages))
    steps.check_lease(delivery)  # a worker that lost the event's lease leaves the split to the one that has it
    for message in messages:
        steps.svc.broker.send(rendition.queue, message.to_json())
    log.info(
        f"split into {plan.count} video pieces of {plan.piece_frames} frames"
        + (f", {len(layout.rungs)} rungs each" + ("," if layout.audio else "") if layout.rungs else "")
        + (" and the audio" if layout.audio else "")
        + f"; queued on {rendition.queue}"
    )
    return note


def _choose(job: Conversion, rendition: Rendition) -> tuple[QualitySearch | None, int, str, Layout]:
    """What every piece encodes with: the VMAF search's choice (an MP4's CRF; a ladder's rungs, some dropped),
    the note so far, and the layout (a ladder's rungs, the audio tracks kept)."""
    info, tracks = job.info, kept_audio_tracks(job.info, rendition)
    if rendition.kind == "hls":
        rungs, ladder_note = plan_ladder(info, rendition, job.workdir)
        targets = [SearchTarget(r.rendition.name, r.rendition, r.size) for r in rungs]
        search, skipped = searched(job, rendition, targets)
        if search is not None:
            search, rungs = fit_ladder(search, rungs)
        return search, -1, joined(ladder_note, search.note() if search else skipped), layout_of(rungs, tracks)
    size = output_size(*info.display_size, rendition)
    search, skipped = searched(job, rendition, [SearchTarget(rendition.name, rendition, size)])
    crf = search.choices[0].crf if search is not None else -1
    return search, crf, joined(size.note, search.note() if search else skipped), layout_of([], tracks)


def piece_messages(first: ChunkMessage, plan: ChunkPlan, has_audio: bool) -> list[ChunkMessage]:
    """One message per video piece (``first`` with its range), then the audio's (its index follows the video
    pieces')."""
    first = replace(first, pieces=plan.count + (1 if has_audio else 0), video_pieces=plan.count)
    messages = [replace(first, index=p.index, start_frame=p.start_frame, frames=p.frames or 0) for p in plan.pieces]
    if has_audio:
        messages.append(replace(first, step=Step.AUDIO, index=plan.count))
    return messages
