"""Sidecar captions (``talk.vtt``, ``talk.en.srt`` next to ``talk.mp4``): they join their video's output.

A sidecar uploaded before its video is found by the video's job (:func:`gather_sidecars`) and goes into the
conversion. One uploaded after it has a job of its own (:func:`add_sidecar`) that adds it to the published
output without encoding again: for ``hls`` only text files and manifests are written (the marker last); for
``mp4`` the MP4 is remuxed with one more text track. The marker's metadata lists the sidecars an output
carries (a digest of the key and the ETag), so a sidecar delivered twice writes nothing the second time.

A sidecar whose video's job is still queued or running is done at once: that job lists the sidecars when it
starts, and once its job is recorded done it lists them again and sends the event of any it did not take
(:func:`hand_back_late_sidecars`) to its rendition's queue. Retrying instead would spend the sidecar's attempts
while a long video converts (the default back-off gives up after some 150 s) and dead-letter a good caption.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from videoconverter.config import Config
from videoconverter.errors import CaptionError, ObjectNotFoundError, SourceMissingError
from videoconverter.events import ObjectCreated, new_sequencer, object_created_event
from videoconverter.jobs.base import JobId, JobState, JobStore
from videoconverter.jobs.log import JobLog
from videoconverter.pipeline import Services
from videoconverter.publish import MANIFEST_NAME, manifest_name, previous_version
from videoconverter.renditions import Rendition
from videoconverter.storage.base import ObjectInfo, ObjectStore
from videoconverter.transcode.captions import (
    embed_captions,
    prepare_sidecar,
    sidecar_language,
    video_stems,
)
from videoconverter.transcode.package import PACKAGE_JSON, Package, read_package
from videoconverter.transcode.packaging import add_captions, media_start_mpegts, write_manifests
from videoconverter.transcode.playlists import timestamped_vtt
from videoconverter.transcode.produce import marker_name, output_key
from videoconverter.transcode.products import OutputFile, Runner
from videoconverter.transcode.subtitles_text import MAX_CAPTION_BYTES, Caption

#: On a marker: the sidecars its output carries, as ``DIGEST:ETAG`` words (DIGEST: of the sidecar's key).
SIDECAR_METADATA = "sidecar-captions"
REFUSED_METADATA = "sidecar-captions-refused"  # the same words, for the sidecars the video's job refused
MAX_LISTED_SIDECARS = 40  # S3 metadata holds 2 KB: 40 words of 45 characters
NO_VIDEO_NOTE = "no video for this caption yet; it joins when the video is converted"


@dataclass(frozen=True)
class Gathered:
    """The sidecars a video's job found next to it: the usable ones, and why others were refused."""

    captions: tuple[Caption, ...] = ()
    note: str = ""
    metadata: Mapping[str, str] | None = None  # for the marker: which sidecars the output carries


@dataclass(frozen=True)
class Added:
    """What a sidecar's own job did."""

    output_url: str
    note: str
    output_size: int | None = None  # bytes of the marker written; None when nothing was written


@dataclass(frozen=True)
class SidecarJob:
    """What a sidecar's job works with: the worker's services for one rendition and one job."""

    store: ObjectStore
    jobs: JobStore
    config: Config
    rendition: Rendition
    ffmpeg: str
    run: Runner  # FFmpeg runs (the MP4 remux), with the job's timeout and lease
    workdir: Path
    job_log: JobLog
    before_write: Callable[[], None]  # raises LeaseLost when the job's lease went elsewhere


def sidecar_word(key: str, etag: str) -> str:
    """How the marker's metadata names one sidecar: a digest of its key (keys may hold spaces) and its ETag."""
    return f"{hashlib.sha256(key.encode()).hexdigest()[:12]}:{etag}"


def with_sidecar(metadata: Mapping[str, str], key: str, etag: str, field: str = SIDECAR_METADATA) -> dict[str, str]:
    """``metadata`` with the sidecar at ``key`` listed at ``etag`` in ``field`` (replacing an older ETag of the
    same key)."""
    digest = sidecar_word(key, "")
    words = [w for w in metadata.get(field, "").split() if not w.startswith(digest)]
    words.append(sidecar_word(key, etag))
    return {**metadata, field: " ".join(words[-MAX_LISTED_SIDECARS:])}


def list_sidecars(store: ObjectStore, config: Config, video_key: str) -> list[ObjectInfo]:
    """The sidecar captions of ``video_key`` in the input bucket now (``talk.vtt``, ``talk.en.srt``, ...)."""
    stem = video_key[: video_key.rfind(".")] if "." in video_key else video_key
    return [
        listed
        for listed in store.list(config.input_bucket, f"{stem}.")
        if config.matches_caption(listed.key) and sidecar_language(listed.key, video_key) is not None
    ]


def hand_back_late_sidecars(svc: Services, rendition: Rendition, video_key: str, job_log: JobLog) -> int:
    """After a video's job is recorded done: send the event of each of its sidecars that its output neither
    carries nor refused (uploaded while it converted) to ``rendition``'s queue; return how many."""
    marker = svc.store.head(rendition.output_bucket, output_key(video_key, marker_name(rendition)))
    if marker is None:
        return 0
    taken = set(marker.metadata.get(SIDECAR_METADATA, "").split())
    taken |= set(marker.metadata.get(REFUSED_METADATA, "").split())
    late = [s for s in list_sidecars(svc.store, svc.config, video_key) if sidecar_word(s.key, s.etag) not in taken]
    for sidecar in late:
        event = ObjectCreated(sidecar.bucket, sidecar.key, sidecar.size, sidecar.etag, new_sequencer())
        svc.broker.send(rendition.queue, json.dumps(object_created_event(event)))
        svc.jobs.enqueue(JobId(sidecar.key, sidecar.etag, rendition.name), event.sequencer)
        job_log.info(f"caption {_name(sidecar.key)} arrived during the conversion: queued to be added")
    return len(late)


def gather_sidecars(store: ObjectStore, config: Config, video_key: str, workdir: Path, job_log: JobLog) -> Gathered:
    """Download and check the sidecars of ``video_key`` in the input bucket. A refused one is logged and noted;
    it never fails the video."""
    captions: list[Caption] = []
    refused: list[str] = []
    metadata: dict[str, str] = {}
    for listed in list_sidecars(store, config, video_key):
        try:
            data, etag = _download(store, listed, workdir)
            directory = workdir / f"sidecar-{len(captions) + len(refused)}"
            directory.mkdir()
            captions.append(prepare_sidecar(data, listed.key, video_key, directory))
        except CaptionError as exc:
            refused.append(f"caption {_name(listed.key)} refused: {exc.message}")
            job_log.warning(refused[-1])
            metadata = with_sidecar(metadata, listed.key, listed.etag, REFUSED_METADATA)
            continue
        except SourceMissingError:
            continue  # deleted since the listing: nothing to add
        metadata = with_sidecar(metadata, listed.key, etag)
        job_log.info(f"caption {_name(listed.key)} found ({captions[-1].language})")
    return Gathered(tuple(captions), "; ".join(refused), metadata or None)


def add_sidecar(job: SidecarJob, record: ObjectCreated) -> Added:
    """Add the sidecar of ``record`` to the output of each video it belongs to (none while that video's job is
    queued or running: see the module's docstring). Raises CaptionError (permanent) for a bad file."""
    videos = _videos(job, record.key)
    if not videos:
        job.job_log.info(NO_VIDEO_NOTE)
        return Added("", NO_VIDEO_NOTE)
    source = job.store.head(job.config.input_bucket, record.key)
    if source is None:
        raise SourceMissingError(f"s3://{record.bucket}/{record.key} no longer exists (deleted after upload)")
    if source.etag != record.etag:
        return Added("", f"superseded: the caption was replaced (now etag {source.etag}); its own event adds it")
    data, _ = _download(job.store, source, job.workdir)
    results = [_add_to_video(job, record, data, video, n) for n, video in enumerate(videos)]
    written = [r for r in results if r.output_size is not None]
    first = written[0] if written else results[0]
    return Added(first.output_url, "; ".join(r.note for r in results if r.note), first.output_size)


def _videos(job: SidecarJob, sidecar_key: str) -> list[ObjectInfo]:
    """The uploads this sidecar belongs to: its stem with each input suffix, as they exist now. The whole name
    before the suffix is tried too: ``talk.en.srt`` may be the sidecar of ``talk.en.mp4`` (language und)."""
    stems = dict.fromkeys((video_stems(sidecar_key), sidecar_key[: sidecar_key.rfind(".")]))
    videos = []
    for video_key in (stem + suffix for stem in stems for suffix in job.config.input_suffixes):
        if sidecar_language(sidecar_key, video_key) is None:
            continue
        info = job.store.head(job.config.input_bucket, video_key)
        if info is not None:
            videos.append(info)
    return videos


def _add_to_video(job: SidecarJob, record: ObjectCreated, data: bytes, video: ObjectInfo, number: int) -> Added:
    workdir = job.workdir / f"video-{number}"
    workdir.mkdir()
    caption = prepare_sidecar(data, record.key, video.key, workdir)  # a bad file fails this job, not the video
    rendition, store = job.rendition, job.store
    video_job = job.jobs.get(JobId(video.key, video.etag, rendition.name))
    if video_job is None or not video_job.state.terminal:
        state = video_job.state.value if video_job else "not recorded yet"
        return Added("", f"the job of {video.key} is {state}: it takes this caption in, or queues it once done")
    marker_key = output_key(video.key, marker_name(rendition))
    url = store.url(rendition.output_bucket, marker_key)
    marker = store.head(rendition.output_bucket, marker_key)
    if video_job.state is JobState.FAILED or marker is None or marker.metadata.get("source-etag") != video.etag:
        return Added("", f"{video.key} has no output of its current upload for this caption to join")
    if sidecar_word(record.key, record.etag) in marker.metadata.get(SIDECAR_METADATA, "").split():
        return Added(url, f"{video.key} already carries this caption (event delivered again)")
    metadata = with_sidecar(marker.metadata, record.key, record.etag)
    if rendition.kind == "hls":
        if store.head(rendition.output_bucket, output_key(video.key, package_name(marker))) is None:
            return Added("", f"the output of {video.key} predates package.json: convert it again to add captions")
        written = _add_to_package(job, video.key, marker, caption, metadata, workdir)
    else:
        written = _add_to_mp4(job, marker, caption, metadata, workdir)
    job.job_log.info(f"caption {_name(record.key)} added to {url} ({caption.language})")
    return Added(url, f"caption added to {video.key}", written.size)


def _add_to_package(
    job: SidecarJob, video_key: str, marker: ObjectInfo, caption: Caption, metadata: Mapping[str, str], workdir: Path
) -> ObjectInfo:
    """Write the caption's files, package.json, the manifests and files.json; the marker last."""
    store, bucket = job.store, job.rendition.output_bucket
    version = previous_version(marker.metadata) or ""
    package = read_package(_read_text(store, bucket, output_key(video_key, package_name(marker)), workdir))
    files = _package_files(package, caption, workdir / "out")
    manifest = _extended_manifest(store, bucket, video_key, version, files[:-1], workdir)
    job.before_write()
    for file in [*files[:-1], OutputFile(manifest_name(version), manifest)]:
        store.put_file(bucket, output_key(video_key, file.name), file.path)
    return store.put_file(bucket, marker.key, files[-1].path, metadata=metadata)


def package_name(marker: ObjectInfo) -> str:
    """Where the package description of the output whose marker is ``marker`` lies, relative to its key."""
    return f"{previous_version(marker.metadata) or ''}/{PACKAGE_JSON}"


def _package_files(package: Package, caption: Caption, out: Path) -> list[OutputFile]:
    """The files that add ``caption`` to ``package``: a sidecar already in it (an older version of the file)
    keeps its name and is rewritten in place; a new one is added after the package's own."""
    existing = next((s for s in package.subtitles if s.origin == caption.origin), None)
    if existing is None:
        return list(add_captions(package, [caption], out).files)
    directory = out / package.version / "subs" / existing.name
    directory.mkdir(parents=True)
    vtt = directory / "captions.vtt"
    vtt.write_text(timestamped_vtt(caption.path.read_text(encoding="utf-8"), media_start_mpegts(package)), "utf-8")
    own = OutputFile(package.path("subs", existing.name, vtt.name), vtt)
    return [own, *write_manifests(package, out / package.version, out)]


def _extended_manifest(
    store: ObjectStore, bucket: str, video_key: str, version: str, files: list[OutputFile], workdir: Path
) -> Path:
    """The version's files.json with ``files`` added: the next version's clean-up deletes exactly its names."""
    text = _read_text(store, bucket, output_key(video_key, manifest_name(version)), workdir)
    try:
        names = [str(n) for n in json.loads(text)["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CaptionError(f"the output's {MANIFEST_NAME} cannot be read: {exc!r}") from exc
    names += [f.name for f in files if f.name not in names]
    path = workdir / "extended-manifest.json"
    path.write_text(json.dumps({"version": version, "files": names}))
    return path


def _add_to_mp4(
    job: SidecarJob, marker: ObjectInfo, caption: Caption, metadata: Mapping[str, str], workdir: Path
) -> ObjectInfo:
    """Remux the MP4 with the caption as one more text track (audio and video copied), written back in place."""
    mp4 = workdir / "output.mp4"
    job.store.get_file(job.rendition.output_bucket, marker.key, mp4)
    remuxed = embed_captions(job.run, workdir, job.ffmpeg, mp4, (caption,))
    if remuxed.stat().st_size > job.config.limits.max_output_bytes:
        raise CaptionError(f"the MP4 with this caption would exceed {job.config.limits.max_output_bytes} bytes")
    job.before_write()
    return job.store.put_file(job.rendition.output_bucket, marker.key, remuxed, metadata=metadata)


def _download(store: ObjectStore, info: ObjectInfo, workdir: Path) -> tuple[bytes, str]:
    """A sidecar's bytes and ETag, refused unread when larger than any caption may be."""
    if info.size > MAX_CAPTION_BYTES:
        raise CaptionError(f"{info.size} bytes; a caption file may have {MAX_CAPTION_BYTES}")
    target = workdir / "sidecar-download"
    try:
        fetched = store.get_file(info.bucket, info.key, target)
    except ObjectNotFoundError as exc:
        raise SourceMissingError(f"s3://{info.bucket}/{info.key} no longer exists") from exc
    data = target.read_bytes()
    if len(data) > MAX_CAPTION_BYTES:  # replaced by a larger file since it was listed
        raise CaptionError(f"{len(data)} bytes; a caption file may have {MAX_CAPTION_BYTES}")
    return data, fetched.etag


def _read_text(store: ObjectStore, bucket: str, key: str, workdir: Path) -> str:
    target = workdir / "read.txt"
    store.get_file(bucket, key, target)
    return target.read_text(encoding="utf-8")


def _name(key: str) -> str:
    return key.rsplit("/", 1)[-1]
