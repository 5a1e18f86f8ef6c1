"""Chunking's pure parts: the plan of pieces, the argument lists of a piece and of the join, the messages, the
work area's keys and the [chunking] settings."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import pytest

from videoconverter.chunking.encode import (
    audio_piece_command,
    join_command,
    ladder_join_command,
    ladder_piece_command,
    pieces_list,
    readable_command,
    video_piece_command,
)
from videoconverter.chunking.handler import Encoded, piece_keys
from videoconverter.chunking.layout import Layout, RungPlan
from videoconverter.chunking.messages import ChunkMessage, Step, chunk_message
from videoconverter.chunking.plan import Piece, applies, plan_pieces, seconds_text, with_preroll
from videoconverter.chunking.work import work_area
from videoconverter.config import load_config
from videoconverter.errors import ConfigError, InvalidEventError
from videoconverter.events import ObjectCreated, object_created_event
from videoconverter.renditions import Limits, Rendition, default_rendition
from videoconverter.transcode.geometry import OutputSize
from videoconverter.transcode.probe import AudioTrack, MediaInfo


@pytest.mark.parametrize(
    ("seconds", "rate", "expected"),
    [
        (6.0, Fraction(30), [(0, 60), (60, 60), (120, None)]),  # three pieces of 2 s
        (6.9, Fraction(30), [(0, 60), (60, 60), (120, None)]),  # the rest (0.9 s) joins the last piece
        (7.2, Fraction(30), [(0, 60), (60, 60), (120, 60), (180, None)]),  # over half a piece: one of its own
        (1.0, Fraction(30), [(0, None)]),  # shorter than a piece: one piece
        (4.004, Fraction(30000, 1001), [(0, 60), (60, None)]),  # NTSC: pieces of 60 frames, 2.002 s
    ],
)
def test_pieces_are_whole_keyframe_intervals_and_the_last_runs_to_the_end(
    seconds: float, rate: Fraction, expected: list[tuple[int, int | None]]
) -> None:
    plan = plan_pieces(seconds, rate, gop_frames=60, keyframe_interval_seconds=2.0, chunk_seconds=2.0)
    assert [(p.start_frame, p.frames) for p in plan.pieces] == expected
    assert [p.index for p in plan.pieces] == list(range(len(expected)))
    assert all(p.start_frame % 60 == 0 for p in plan.pieces)  # every piece starts on a keyframe


def test_a_piece_of_a_minute_is_thirty_gops_of_two_seconds() -> None:
    plan = plan_pieces(7200.0, Fraction(25), gop_frames=50, keyframe_interval_seconds=2.0, chunk_seconds=60.0)
    assert (plan.count, plan.piece_frames) == (120, 1500)
    assert plan.pieces[-1] == Piece(119, 119 * 1500, None)


def test_which_jobs_are_split() -> None:
    assert applies(True, 300, "mp4", 300.0)
    assert not applies(True, 300, "mp4", 299.9)
    assert not applies(False, 0, "mp4", 600.0)
    assert applies(True, 0, "hls", 600.0)  # a ladder's pieces are runs of segments of every rung
    assert not applies(True, 0, "thumbnails", 600.0)  # a few stills: converted whole
    assert not applies(True, 0, "mp4", None)  # an unknown duration cannot be planned


def test_seek_times_round_down_to_the_microsecond() -> None:
    assert seconds_text(Fraction(60) / Fraction(30000, 1001)) == "2.002000"
    assert seconds_text(Fraction(1, 3)) == "0.333333"  # never just after the frame's own time
    assert seconds_text(0) == "0.000000"


def info() -> MediaInfo:
    return MediaInfo(
        format_name="mov,mp4,m4a,3gp,3g2,mj2", duration_seconds=6.0, width=320, height=180, rotation_degrees=0,
        sample_aspect_ratio=Fraction(1), frame_rate=30.0, video_codec="h264", has_audio=True,
        audio_sample_rate=48000, stream_count=2,
    )  # fmt: skip


def test_a_piece_after_the_first_is_encoded_from_one_keyframe_interval_earlier() -> None:
    assert with_preroll(Piece(0, 0, 60), 60) == Piece(0, 0, 60, 0)  # the first: nothing before it
    piece = with_preroll(Piece(2, 120, None), 60)
    assert (piece.preroll_frames, piece.encode_start_frame) == (60, 60)
    args = video_piece_command(
        "ffmpeg", Path("/w/source"), Path("/w/piece.mp4"), info(), OutputSize(214, 120, ""),
        default_rendition(120, per_title=False), Limits(), with_preroll(Piece(2, 120, 60), 60), Fraction(30),
    )  # fmt: skip
    assert args[args.index("-ss") + 1] == "2.000000" and args[args.index("-frames:v") + 1] == "120"
    assert args[args.index("-t") + 1] == "5.000000"  # 120 frames at 30 fps and the read margin


def test_a_video_piece_seeks_its_range_and_stops_after_its_frames() -> None:
    rendition = default_rendition(120, per_title=False)
    args = video_piece_command(
        "ffmpeg", Path("/w/source"), Path("/w/piece.mp4"), info(), OutputSize(214, 120, ""), rendition, Limits(),
        Piece(1, 60, 60), Fraction(30), threads=1,
    )  # fmt: skip
    seek = args.index("-ss")
    assert args[seek : seek + 4] == ["-ss", "2.000000", "-t", "3.000000"] and seek < args.index("-i")
    assert args[args.index("-frames:v") + 1] == "60" and "-an" in args
    assert args[args.index("-sc_threshold") + 1] == "0" and args[args.index("-g") + 1] == "60"  # fixed GOPs
    assert "-maxrate" in args and args[-1] == "file:/w/piece.mp4"  # the VBV cap of a whole encode
    first = video_piece_command(
        "ffmpeg", Path("/w/source"), Path("/w/p.mp4"), info(), OutputSize(214, 120, ""), rendition, Limits(),
        Piece(0, 0, None), Fraction(30),
    )  # fmt: skip
    assert "-ss" not in first and "-t" not in first and "-frames:v" not in first  # the only piece: everything


def test_the_join_copies_the_pieces_and_the_audio_without_re_encoding() -> None:
    args = join_command("ffmpeg", Path("/w/pieces.txt"), Path("/w/audio.m4a"), Path("/w/out.mp4"), Limits())
    assert args[args.index("-f") + 1] == "concat" and args[args.index("-safe") + 1] == "1"
    assert args[args.index("-c") + 1] == "copy" and "1:a" in args  # every audio track of the audio piece
    assert not [a for a in args if a.startswith("-metadata:s:a")]  # one track: untagged, as a whole encode
    assert pieces_list(["video-00000.mp4", "video-00001.mp4"], [Fraction(0), Fraction(60, Fraction(30000, 1001))]) == (
        "ffconcat version 1.0\nfile 'video-00000.mp4'\nfile 'video-00001.mp4'\ninpoint 2.002000\n"
    )  # the second piece's pre-roll dropped at its keyframe
    assert "inpoint 0.333334" in pieces_list(["a.mp4"], [Fraction(1, 3)])  # never just before the keyframe


def message() -> ChunkMessage:
    return ChunkMessage(Step.VIDEO, "in", "a b.mp4", 10, "etag1", "00A", "720p", 1, 4, 3, 60, 60, "30000/1001", 23)


def test_chunk_messages_round_trip_and_are_told_apart_from_s3_events() -> None:
    assert chunk_message(message().to_json()) == message()
    event = object_created_event(ObjectCreated("in", "a.mp4", 10, "etag1", "00A"))
    assert chunk_message(json.dumps(event)) is None
    assert chunk_message("not json") is None and chunk_message("[1]") is None


@pytest.mark.parametrize(
    "change",
    [{"step": "encode"}, {"index": "1"}, {"frame_rate": "0"}, {"frame_rate": "fast"}, {"videoconverter_chunk": 2},
     {"index": 9}, {"start_frame": -1}, {"extra": 1}, {"size": True}],
)  # fmt: skip
def test_a_malformed_chunk_message_is_refused(change: dict[str, object]) -> None:
    body = {**json.loads(message().to_json()), **change}
    with pytest.raises(InvalidEventError):
        chunk_message(json.dumps(body))


def test_the_work_area_is_one_short_folder_per_job() -> None:
    area = work_area("out", "720p", "a/very/long key.mp4", "etag1")
    assert area.prefix.startswith(".chunks/") and len(area.prefix) == len(".chunks/") + 33
    assert area.video_key(7) == f"{area.prefix}video-00007.mp4" and area.audio_key() == f"{area.prefix}audio.m4a"
    assert work_area("out", "720p", "a/very/long key.mp4", "etag2").prefix != area.prefix  # a new upload


def test_chunking_settings_are_validated(tmp_path: Path) -> None:
    config = load_config(environ={})
    assert (config.chunking.enabled, config.chunking.min_source_seconds, config.chunking.chunk_seconds) == (
        True, 300.0, 60.0
    )  # fmt: skip
    forced = load_config(environ={"VIDEOCONVERTER_CHUNKING_MIN_SOURCE_SECONDS": "0"})
    assert forced.chunking.min_source_seconds == 0.0
    path = tmp_path / "c.toml"
    for table, error in [
        ("chunk_seconds = 3", r"not a multiple of renditions\[0\].keyframe_interval_seconds"),
        ("chunk_seconds = 0", "chunking.chunk_seconds"),
        ("min_source_seconds = -1", "chunking.min_source_seconds"),
        ("enabled = 1", "chunking.enabled"),
        ("pieces = 4", "chunking.pieces: unknown setting"),
    ]:
        path.write_text(f"[chunking]\n{table}\n")
        with pytest.raises(ConfigError, match=error):
            load_config(environ={}, path=path)
    path.write_text("[chunking]\nenabled = false\nchunk_seconds = 3\n")  # off: nothing to check against
    assert load_config(environ={}, path=path).chunking.enabled is False
    with pytest.raises(ConfigError, match="VIDEOCONVERTER_CHUNKING_CHUNK_SECONDS"):
        load_config(environ={"VIDEOCONVERTER_CHUNKING_CHUNK_SECONDS": "fast"})


def test_how_far_a_source_reads_is_measured_by_copying_its_video_to_nowhere() -> None:
    args = readable_command("ffmpeg", Path("/w/source"), info(), Limits())
    assert args[args.index("-map") + 1] == "0:v:0" and args[args.index("-c") + 1] == "copy"
    assert args[-3:] == ["-f", "null", "-"] and "-progress" in args and "-ss" not in args  # from the start


def test_a_piece_carries_its_frames_and_a_truncation_note_to_the_join() -> None:
    assert Encoded((Path("p.mp4"),), 60).metadata() == {"frames": "60"}
    assert Encoded((Path("p.mp4"),), 0, "the upload is truncated").metadata() == {
        "frames": "0", "note": "the upload is truncated"
    }  # fmt: skip
    assert Encoded((Path("a.m4a"),), None).metadata() == {}  # the audio: no frames to count
    assert Encoded((Path("p.mp4"),), 60, "", 60).metadata() == {"frames": "60", "preroll-frames": "60"}


def test_jobs_shows_a_split_job_s_pieces_done_of_planned(capsys: pytest.CaptureFixture[str]) -> None:
    from videoconverter.cli.jobs import _print_jobs
    from videoconverter.jobs.base import JobId, JobRecord, JobState

    split = JobRecord(JobId("long.mp4", "e", "720p"), JobState.RUNNING, 1, 0.0, 0.0, progress_percent=49.5,
                      pieces_planned=4, pieces_done=2)  # fmt: skip
    whole = JobRecord(JobId("long.mp4", "e", "hls"), JobState.QUEUED, 0, 0.0, 0.0)
    _print_jobs([split, whole])
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split()[5] == "PIECES"
    assert first.split()[4:6] == ["50%", "2/4"] and second.split()[4:6] == ["0%", "-"]


def ladder_rendition() -> Rendition:
    return dataclasses.replace(default_rendition(360, per_title=False), name="hls", kind="hls", ladder=(120, 360))


def test_a_ladder_piece_decodes_its_range_once_and_encodes_every_rung_from_it() -> None:
    rendition = ladder_rendition()
    layout = Layout((RungPlan(120, 23, 214, 120), RungPlan(360, 21, 640, 360)), ())
    rungs = layout.ladder_rungs(rendition, Path("/w"))
    assert [(r.rendition.name, r.rendition.crf, r.size.width) for r in rungs] == [("120p", 23, 214), ("360p", 21, 640)]
    outputs = [(rung, Path(f"/w/piece-{rung.rendition.name}.mp4")) for rung in rungs]
    args = ladder_piece_command(
        "ffmpeg", Path("/w/source"), outputs, info(), rendition, Limits(), with_preroll(Piece(2, 120, 60), 60),
        Fraction(30),
    )  # fmt: skip
    assert args.count("-i") == 1 and args[args.index("-ss") + 1] == "2.000000"  # one decode, from the pre-roll
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:v]fps=30,split=2[s0][s1];") and "scale=640:360" in graph
    assert args.count("-frames:v") == 2 and args[args.index("-frames:v") + 1] == "120"  # each rung: same frames
    assert [a for a in args if a.startswith("file:/w/piece-")] == ["file:/w/piece-120p.mp4", "file:/w/piece-360p.mp4"]
    crfs = [args[i + 1] for i, a in enumerate(args) if a == "-crf"]
    assert crfs == ["23", "21"] and args.count("-an") == 2  # each rung's own CRF, no audio


def test_a_ladder_join_copies_each_rung_s_pieces_and_each_audio_track_into_its_own_hls_muxer() -> None:
    rendition = ladder_rendition()
    layout = Layout((RungPlan(120, 23, 214, 120), RungPlan(360, 21, 640, 360)),
                    (AudioTrack(0, "eng", 2), AudioTrack(1, "fra", 2, "Commentaire")))  # fmt: skip
    rungs, audio = layout.ladder_rungs(rendition, Path("/w")), layout.audio_outputs(Path("/w"))
    assert [a.name for a in audio] == ["a0-eng", "a1-fra"] and audio[1].directory == Path("/w/hls/audio/a1-fra")
    lists = [(rung, Path(f"/w/pieces/{rung.rendition.name}/pieces.txt")) for rung in rungs]
    args = ladder_join_command("ffmpeg", lists, Path("/w/audio.m4a"), audio, 4.0)
    assert args.count("concat") == 2 and args.count("-i") == 3  # a concat input per rung, then the audio
    maps = [args[i + 1] for i, a in enumerate(args) if a == "-map"]
    assert maps == ["0:v:0", "1:v:0", "2:a:0", "2:a:1"]
    assert args.count("copy") == 4 and "-crf" not in args  # nothing is encoded again
    playlists = [a for a in args if a.endswith("/index.m3u8")]
    assert playlists == ["file:/w/hls/120p/index.m3u8", "file:/w/hls/360p/index.m3u8",
                         "file:/w/hls/audio/a0-eng/index.m3u8", "file:/w/hls/audio/a1-fra/index.m3u8"]  # fmt: skip
    assert args[args.index("-hls_time") + 1] == "4"
    silent = ladder_join_command("ffmpeg", lists, None, audio, 4.0)
    assert silent.count("-i") == 2 and not [a for a in silent if "audio" in a]


def test_the_audio_piece_keeps_every_track_a_whole_encode_keeps_each_with_its_language_and_gain() -> None:
    tracks = [AudioTrack(0, "eng", 2), AudioTrack(1, "fra", 2)]
    args = audio_piece_command("ffmpeg", Path("/w/source"), Path("/w/audio.m4a"), info(), default_rendition(120),
                               Limits(), tracks=tracks, filters=["volume=2.0dB", ""])  # fmt: skip
    assert [args[i + 1] for i, a in enumerate(args) if a == "-map"] == ["0:a:0", "0:a:1"] and "-vn" in args
    assert args[args.index("-filter:a:0") + 1].startswith("volume=2.0dB,") and "-filter:a:1" in args
    assert args[args.index("-metadata:s:a:1") + 1] == "language=fra"
    joined_args = join_command("ffmpeg", Path("/w/p.txt"), Path("/w/audio.m4a"), Path("/w/o.mp4"), Limits(), tracks)
    assert joined_args[joined_args.index("-metadata:s:a:1") + 1] == "language=fra"  # the join tags them again
    one = audio_piece_command("ffmpeg", Path("/w/source"), Path("/w/a.m4a"), info(), default_rendition(120), Limits())
    assert [one[i + 1] for i, a in enumerate(one) if a == "-map"] == ["0:a:0"] and "-af" in one


def test_a_layout_travels_in_the_message_and_a_malformed_one_is_refused() -> None:
    layout = Layout((RungPlan(120, -1, 214, 120),), (AudioTrack(0, "und", 2, "Director"),))
    sent = dataclasses.replace(message(), layout=layout.to_json(), text_tracks=2)
    read = chunk_message(sent.to_json())
    assert read == sent and read is not None and read.plan() == layout
    assert read.plan().ladder_rungs(ladder_rendition(), Path("/w"))[0].rendition.crf is None  # -1: the default
    assert message().plan() == Layout()  # an MP4's older message: no layout
    bad_layouts = [
        '{"rungs": [[120]], "audio": []}',
        '{"rungs": [], "audio": [[0, "e n", 2, ""]]}',
        "[1]",
        '{"rungs": [[0, 23, 214, 120]], "audio": []}',
        '{"rungs": [], "audio": [[0, "eng", true, ""]]}',
    ]
    for bad in bad_layouts:
        with pytest.raises(InvalidEventError, match="layout"):
            chunk_message(dataclasses.replace(message(), layout=bad).to_json())


def test_a_ladder_s_pieces_have_a_key_for_each_rung_written_last_to_last() -> None:
    area = work_area("out", "hls", "a.mp4", "etag1")
    ladder = dataclasses.replace(
        message(), layout=Layout((RungPlan(120, 23, 214, 120), RungPlan(360, 21, 640, 360))).to_json()
    )
    assert piece_keys(area, ladder) == [area.video_key(1, "120p"), area.video_key(1, "360p")]
    assert area.video_key(1, "360p") == f"{area.prefix}video-00001-360p.mp4"
    assert piece_keys(area, message()) == [area.video_key(1)]
    assert piece_keys(area, dataclasses.replace(message(), step=Step.AUDIO, index=3)) == [area.audio_key()]


def test_a_ladder_s_pieces_are_whole_segments(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    ladder = '[[renditions]]\nname = "hls"\nkind = "hls"\nladder = [120]\n'
    path.write_text(f"[chunking]\nchunk_seconds = 6\n{ladder}")
    with pytest.raises(ConfigError, match=r"not a multiple of renditions\[0\].segment_seconds \(4\)"):
        load_config(environ={}, path=path)
    path.write_text(f"[chunking]\nchunk_seconds = 8\n{ladder}")
    assert load_config(environ={}, path=path).chunking.chunk_seconds == 8.0
