"""Loudness normalisation: the measuring and normalising arguments, the parsers (on output captured from the
bundled FFmpeg n9.0.2), the linear-or-dynamic rule, the note, and the plan with a fake runner."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from tests.unit.test_command import DESTINATION, FFMPEG, SOURCE, media_info
from videoconverter.chunking.encode import audio_piece_command
from videoconverter.errors import TranscodeError
from videoconverter.renditions import Limits, default_rendition
from videoconverter.transcode.command import audio_args, build_command, input_args
from videoconverter.transcode.geometry import output_size
from videoconverter.transcode.loudness import (
    LoudnessPlan,
    Measurement,
    ebur128_args,
    is_linear,
    loudness_note,
    measure_args,
    measure_output,
    normalise_filter,
    parse_ebur128,
    parse_loudnorm,
    plan_loudness,
)
from videoconverter.transcode.products import Conversion
from videoconverter.transcode.runner import RunResult

#: loudnorm's stats file after measuring a 440 Hz sine at volume 0.02 (mono), for a target of -16.
QUIET_JSON = """{
\t"input_i" : "-55.75",
\t"input_tp" : "-51.51",
\t"input_lra" : "0.00",
\t"input_thresh" : "-65.75",
\t"output_i" : "-16.00",
\t"output_tp" : "-11.73",
\t"output_lra" : "0.00",
\t"output_thresh" : "-26.00",
\t"normalization_type" : "dynamic",
\t"target_offset" : "0.00"
}
"""
#: The same for digital silence (anullsrc).
SILENT_JSON = """{
\t"input_i" : "-inf",
\t"input_tp" : "-inf",
\t"input_lra" : "0.00",
\t"input_thresh" : "-70.00",
\t"output_i" : "-inf",
\t"output_tp" : "-inf",
\t"output_lra" : "0.00",
\t"output_thresh" : "-70.00",
\t"normalization_type" : "dynamic",
\t"target_offset" : "inf"
}
"""
#: The end of ebur128_args' log (a run's stderr tail) on an output normalised to -16.
EBUR128_TAIL = """Output #0, null, to 'pipe:':
  Stream #0:0(und): Audio: pcm_s16le, 48000 Hz, stereo, s16, 1536 kb/s (default)
    Metadata:
      encoder         : Lavc63.1.102 pcm_s16le
      handler_name    : SoundHandler
[Parsed_ebur128_0 @ 0x7fc698001c00] Summary:
  Integrated loudness:
    I:         -16.0 LUFS
    Threshold: -26.0 LUFS
  Loudness range:
    LRA:         0.0 LU
    Threshold: -36.0 LUFS
    LRA low:   -16.0 LUFS
    LRA high:  -16.0 LUFS
  True peak:
    Peak:      -14.8 dBFS
[out#0/null @ 0x563f66e102c0] video:0KiB audio:750KiB subtitle:0KiB other streams:0KiB global headers:0KiB muxing \
overhead: unknown
size=N/A time=00:00:04.00 bitrate=N/A speed= 196x elapsed=0:00:00.02    """
EBUR128_SILENT_SUMMARY = """[Parsed_ebur128_0 @ 0x7f357c001c00] Summary:
  Integrated loudness:
    I:         -70.0 LUFS
    Threshold:   0.0 LUFS
  Loudness range:
    LRA:         0.0 LU
    Threshold:   0.0 LUFS
    LRA low:     0.0 LUFS
    LRA high:    0.0 LUFS
  True peak:
    Peak:       -inf dBFS
"""
QUIET = Measurement(input_i=-55.75, input_tp=-51.51, input_lra=0.0, input_thresh=-65.75, target_offset=0.0)
SILENT = Measurement(-math.inf, -math.inf, 0.0, -70.0, math.inf)
#: Quiet with loud clicks: a linear +3.6 dB to -16 LUFS would peak at +0.3 dBTP.
SPIKY = Measurement(input_i=-19.6, input_tp=-3.3, input_lra=2.0, input_thresh=-29.6, target_offset=0.1)
NORMALISED = dataclasses.replace(default_rendition(720), loudness_lufs=-16.0)


def loudnorm_options(chain: str) -> dict[str, str]:
    """The options of the one loudnorm in an audio filter chain."""
    [loudnorm] = [part for part in chain.split(",") if part.startswith("loudnorm=")]
    return dict(option.split("=", 1) for option in loudnorm.removeprefix("loudnorm=").split(":"))


# --- the measuring pass -----------------------------------------------------------------------------------------


def test_the_measuring_pass_reads_the_upload_through_the_hardened_input() -> None:
    info, limits = media_info(), Limits(max_pixels=1234567)
    args = measure_args(FFMPEG, SOURCE, info, limits, 0, -16.0)
    hardened = input_args(FFMPEG, SOURCE, info, limits)
    assert args[: len(hardened)] == hardened
    assert args.count("-i") == 1 and "-loglevel" in hardened and "error" in hardened


@pytest.mark.parametrize("track", [0, 2])
def test_the_measuring_pass_decodes_only_the_one_audio_track_to_nowhere(track: int) -> None:
    args = measure_args(FFMPEG, SOURCE, media_info(), Limits(), track, -16.0)
    assert [args[i + 1] for i, a in enumerate(args) if a == "-map"] == [f"0:a:{track}"]
    assert "-vn" in args
    assert args[-3:] == ["-f", "null", "-"]


def test_the_measuring_pass_writes_loudnorms_json_to_the_stats_file() -> None:
    args = measure_args(FFMPEG, SOURCE, media_info(), Limits(), 0, -23.0, "loudnorm-1.json")
    chain = args[args.index("-af") + 1]
    options = loudnorm_options(chain)
    assert options["I"] == "-23"
    assert float(options["TP"]) <= -1.0
    assert options["print_format"] == "json" and options["stats_file"] == "loudnorm-1.json"
    # It measures the stereo mix the encoder gets (-ac 2), gaps filled, as the encode's chain does.
    assert chain.startswith("aresample=async=1,aformat=channel_layouts=stereo,loudnorm=")


@pytest.mark.parametrize("name", ["../x.json", "a:b.json", "a,b", "x'y", "/tmp/x.json", ""])
def test_a_stats_name_the_filter_graph_would_parse_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        measure_args(FFMPEG, SOURCE, media_info(), Limits(), 0, -16.0, name)


# --- the parsers ------------------------------------------------------------------------------------------------


def test_loudnorms_measurement_is_read() -> None:
    assert parse_loudnorm(QUIET_JSON) == QUIET


def test_the_last_json_object_of_a_log_counts() -> None:
    log = "[Parsed_loudnorm_0 @ 0x1] \n" + SILENT_JSON.replace("-inf", "-40.00", 1) + "\n" + QUIET_JSON + "size=N/A"
    assert parse_loudnorm(log) == QUIET


def test_silence_measures_minus_infinity() -> None:
    measured = parse_loudnorm(SILENT_JSON)
    assert measured.input_i == -math.inf and measured.silent
    assert not QUIET.silent


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no json here",
        "{ not json }",
        QUIET_JSON.replace('\t"input_tp" : "-51.51",\n', ""),
        QUIET_JSON.replace('"-55.75"', '"loud"'),
        QUIET_JSON.replace('"-55.75"', '"nan"'),
        QUIET_JSON.replace('"0.00",\n\t"input_thresh"', '"inf",\n\t"input_thresh"'),
        '["input_i"]',
    ],
)
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(TranscodeError, match="loudnorm"):
        parse_loudnorm(text)


def test_ebur128s_summary_gives_the_integrated_loudness_and_true_peak() -> None:
    assert parse_ebur128(EBUR128_TAIL) == (-16.0, -14.8)
    assert parse_ebur128(EBUR128_SILENT_SUMMARY) == (-70.0, -math.inf)


@pytest.mark.parametrize("text", ["", "size=N/A", EBUR128_TAIL.replace("Summary:", "Sum:"), "Summary:\n  I: x LUFS"])
def test_a_log_without_ebur128s_summary_is_refused(text: str) -> None:
    with pytest.raises(TranscodeError, match="ebur128"):
        parse_ebur128(text)


def test_ebur128_reads_our_output_and_logs_its_summary() -> None:
    output = Path("/tmp/vc-job-3f2a/output.mp4")
    args = ebur128_args(FFMPEG, output, 1)
    at_input = args.index("-i")
    assert args[0] == FFMPEG and "-nostdin" in args[:at_input]
    assert args[args.index("-protocol_whitelist") + 1] == "file" and args.index("-protocol_whitelist") < at_input
    assert args[at_input + 1] == f"file:{output}" and args[at_input - 2 : at_input] == ["-f", "mov"]
    # The summary is logged at the info level: the last -loglevel wins over the preamble's "error".
    levels = [args[i + 1] for i, a in enumerate(args) if a == "-loglevel"]
    assert levels[-1] == "info"
    assert args[args.index("-map") + 1] == "0:a:1"
    assert args[args.index("-af") + 1] == "ebur128=peak=true:framelog=verbose"


# --- the second pass ---------------------------------------------------------------------------------------------


def test_the_second_pass_gives_loudnorm_the_measurement_and_asks_for_linear() -> None:
    chain = normalise_filter(-16.0, QUIET, 44100)
    options = loudnorm_options(chain)
    assert options["I"] == "-16" and float(options["TP"]) <= -1.0
    assert options["measured_I"] == "-55.75" and options["measured_TP"] == "-51.51"
    assert options["measured_thresh"] == "-65.75" and options["offset"] == "0.00"
    assert options["linear"] == "true"
    assert chain.startswith("aresample=async=1,aformat=channel_layouts=stereo,loudnorm=")
    assert chain.endswith(",aresample=44100"), "loudnorm outputs 192 kHz"


def test_a_constant_loudness_range_is_not_read_as_unmeasured() -> None:
    """loudnorm takes measured_LRA=0 for "not given" and then refuses linear mode; a steady tone measures 0."""
    assert float(loudnorm_options(normalise_filter(-16.0, QUIET, 48000))["measured_LRA"]) > 0


def test_a_wide_loudness_range_is_the_target_range_so_it_can_stay_linear() -> None:
    wide = Measurement(-30.0, -12.0, 18.3, -40.0, 0.0)
    assert float(loudnorm_options(normalise_filter(-23.0, wide, 48000))["LRA"]) >= 18.3
    assert is_linear(-23.0, wide)
    assert not is_linear(-23.0, Measurement(-30.0, -12.0, 60.0, -40.0, 0.0)), "over loudnorm's 50 LU"


def test_values_outside_loudnorms_ranges_are_clamped() -> None:
    odd = Measurement(input_i=2.0, input_tp=120.0, input_lra=0.0, input_thresh=-120.0, target_offset=math.inf)
    options = loudnorm_options(normalise_filter(-16.0, odd, 48000))
    assert -99 <= float(options["measured_I"]) < 0 and float(options["measured_TP"]) <= 99
    assert float(options["measured_thresh"]) >= -99 and float(options["offset"]) <= 99


def test_a_silent_track_gets_no_filter() -> None:
    assert normalise_filter(-16.0, SILENT, 48000) == ""
    assert not is_linear(-16.0, SILENT)


def test_linear_unless_the_gain_would_push_the_true_peak_over_the_ceiling() -> None:
    assert is_linear(-16.0, QUIET) and is_linear(-23.0, QUIET)
    assert not is_linear(-16.0, SPIKY), "+3.6 dB puts -3.3 dBTP at +0.3"
    assert is_linear(-23.0, SPIKY), "-3.4 dB keeps it at -6.7"


# --- the note ----------------------------------------------------------------------------------------------------


def test_the_note_says_before_after_and_linear() -> None:
    plan = LoudnessPlan(-16.0, Measurement(-31.23, -20.12, 3.0, -41.2, 0.0), 48000)
    note = loudness_note(plan, (-16.04, -3.43))
    assert note == "loudness -31.2 LUFS (true peak -20.1 dBTP) -> -16.0 LUFS (-3.4 dBTP), linear"


def test_the_note_says_why_the_gain_was_dynamic() -> None:
    note = loudness_note(LoudnessPlan(-16.0, SPIKY, 48000), (-17.8, -1.5))
    assert note.endswith("-> -17.8 LUFS (-1.5 dBTP), dynamic (a linear +3.6 dB would peak at +0.3 dBTP, over -1.5)")
    wide = LoudnessPlan(-23.0, Measurement(-30.0, -12.0, 60.0, -40.0, 0.0), 48000)
    assert loudness_note(wide, None).endswith("-> -23.0 LUFS, dynamic (its range of 60.0 LU is over 50)")


def test_the_note_says_a_silent_track_was_left_as_it_was() -> None:
    assert loudness_note(LoudnessPlan(-16.0, SILENT, 48000), None) == (
        "loudness: silent track (below -70 LUFS), left as it is"
    )


# --- the encode's audio arguments -----------------------------------------------------------------------------


def test_the_normalisation_goes_first_in_the_audio_chain_and_nothing_else_changes() -> None:
    info, rendition = media_info(), default_rendition(720)
    plain, normalised = audio_args(info, rendition), audio_args(info, rendition, audio_filter="volume=2")
    assert plain[:2] == ["-af", "aresample=async=1"]
    assert normalised == ["-af", "volume=2,aresample=async=1", *plain[2:]]
    assert audio_args(info, rendition, audio_filter="") == plain


def test_an_mp4_without_loudness_has_the_arguments_it_always_had() -> None:
    info, rendition = media_info(), default_rendition(720)
    size = output_size(*info.display_size, rendition)
    plain = build_command(FFMPEG, SOURCE, DESTINATION, info, size, rendition, Limits())
    assert plain == build_command(FFMPEG, SOURCE, DESTINATION, info, size, rendition, Limits(), audio_filter="")
    assert [plain[i + 1] for i, a in enumerate(plain) if a == "-af"] == ["aresample=async=1"]
    normalised = build_command(FFMPEG, SOURCE, DESTINATION, info, size, rendition, Limits(), audio_filter="volume=2")
    assert normalised[normalised.index("-af") + 1] == "volume=2,aresample=async=1"


def test_a_split_jobs_audio_takes_the_same_filter() -> None:
    info, rendition = media_info(), default_rendition(720)
    plain = audio_piece_command(FFMPEG, SOURCE, DESTINATION, info, rendition, Limits())
    normalised = audio_piece_command(FFMPEG, SOURCE, DESTINATION, info, rendition, Limits(), filters=["volume=2"])
    assert plain[plain.index("-af") + 1] == "aresample=async=1"
    at = normalised.index("-af")
    assert normalised[at + 1] == "volume=2,aresample=async=1"
    assert normalised[:at] + normalised[at + 2 :] == plain[:at] + plain[at + 2 :]


# --- the plan, with a runner that plays FFmpeg -----------------------------------------------------------------


class FakeFFmpeg:
    """Records the argument lists; writes ``stats`` where the measuring pass names its stats file, and answers
    ebur128's run with ``tail``."""

    def __init__(self, workdir: Path, stats: str | None = QUIET_JSON, tail: str = EBUR128_TAIL) -> None:
        self.workdir, self.stats, self.tail = workdir, stats, tail
        self.runs: list[list[str]] = []

    def __call__(self, args: list[str], duration_seconds: float | None) -> RunResult:
        self.runs.append(args)
        chain = args[args.index("-af") + 1]
        if "loudnorm=" in chain and self.stats is not None:
            (self.workdir / loudnorm_options(chain)["stats_file"]).write_text(self.stats)
        return RunResult(0.1, self.tail)


def conversion(tmp_path: Path, run: FakeFFmpeg, **info_changes: object) -> Conversion:
    info = media_info(**info_changes)
    return Conversion(FFMPEG, SOURCE, info, tmp_path, Limits(), run, "v1")


def test_the_plan_measures_the_track_and_reads_loudnorms_file(tmp_path: Path) -> None:
    run = FakeFFmpeg(tmp_path)
    plan = plan_loudness(conversion(tmp_path, run, audio_sample_rate=44100), NORMALISED)
    assert plan == LoudnessPlan(-16.0, QUIET, 44100, 0)
    assert len(run.runs) == 1 and run.runs[0][run.runs[0].index("-map") + 1] == "0:a:0"
    assert plan.linear and plan.filter == normalise_filter(-16.0, QUIET, 44100)


def test_no_plan_without_a_target_or_without_the_track(tmp_path: Path) -> None:
    run = FakeFFmpeg(tmp_path)
    assert plan_loudness(conversion(tmp_path, run), default_rendition(720)) is None
    assert plan_loudness(conversion(tmp_path, run, has_audio=False, audio_sample_rate=None), NORMALISED) is None
    assert plan_loudness(conversion(tmp_path, run), NORMALISED, track=1) is None, "one track: 0 only"
    assert run.runs == []


def test_a_previous_attempts_stats_file_is_never_read(tmp_path: Path) -> None:
    (tmp_path / "loudnorm-0.json").write_text(QUIET_JSON)
    run = FakeFFmpeg(tmp_path, stats=None)  # FFmpeg that wrote nothing
    with pytest.raises(TranscodeError, match="no measurement"):
        plan_loudness(conversion(tmp_path, run), NORMALISED)


def test_the_output_is_measured_by_ebur128(tmp_path: Path) -> None:
    run = FakeFFmpeg(tmp_path)
    output = tmp_path / "output.mp4"
    assert measure_output(conversion(tmp_path, run), output, 1) == (-16.0, -14.8)
    assert run.runs == [ebur128_args(FFMPEG, output, 1)]
