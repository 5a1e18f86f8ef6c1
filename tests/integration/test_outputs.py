"""Output presets with real FFmpeg: every codec, HDR tone mapping, frame-rate rules and variable-rate sources."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from videoconverter.renditions import Limits, Rendition, default_rendition
from videoconverter.transcode.probe import probe
from videoconverter.transcode.produce import convert_file
from videoconverter.transcode.samples import make_hdr_clip, make_vfr_clip

pytestmark = pytest.mark.ffmpeg
SMALL = dataclasses.replace(default_rendition(90), preset="ultrafast")
FASTEST = {"h264": "ultrafast", "hevc": "ultrafast", "av1": "12", "vp9": "8"}


def convert(source: Path, tmp_path: Path, rendition: Rendition) -> Path:
    produced = convert_file(source, tmp_path, rendition)
    assert [f.name for f in produced.files] == [""]
    return produced.marker.path


def picture_stats(path: Path, frames: int = 5) -> tuple[float, float]:
    """Mean luma (0-255) and mean chroma distance from grey over the first frames: brightness and colourfulness."""
    lumas, chromas = [], []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            planes = frame.to_ndarray(format="yuv444p").astype(np.float64)
            lumas.append(planes[0].mean())
            chromas.append((np.abs(planes[1] - 128) + np.abs(planes[2] - 128)).mean())
            if i + 1 == frames:
                break
    return float(np.mean(lumas)), float(np.mean(chromas))


def packet_times(path: Path, kind: str) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        times = [float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.time_base]
    return sorted(times)


@pytest.mark.parametrize("codec", ["h264", "hevc", "av1", "vp9"])
def test_each_codec_gives_a_playable_mp4(codec: str, sample_clip: Callable[..., Path], tmp_path: Path) -> None:
    source = sample_clip(width=160, height=90, seconds=1, frame_rate=30)
    rendition = dataclasses.replace(SMALL, codec=codec, preset=FASTEST[codec])
    output = convert(source, tmp_path, rendition)
    info = probe(output, Limits())
    assert (info.video_codec, info.display_size, info.has_audio) == (codec, (160, 90), True)
    assert info.color_transfer == "bt709" and info.color_primaries == "bt709"
    with av.open(str(output)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
        tag = container.streams.video[0].codec_context.codec_tag
    assert decoded == 30
    if codec == "hevc":
        assert tag == "hvc1"  # what Apple devices need to play HEVC in MP4


@pytest.mark.parametrize("transfer", ["arib-std-b67", "smpte2084"])
def test_hdr_is_tone_mapped_to_bt709_sdr(transfer: str, sample_clip: Callable[..., Path], tmp_path: Path) -> None:
    hdr = make_hdr_clip(tmp_path / "hdr.mp4", transfer=transfer, width=320, height=180, seconds=0.5)
    assert probe(hdr, Limits()).is_hdr
    output = convert(hdr, tmp_path, dataclasses.replace(SMALL, short_side=180))
    info = probe(output, Limits())
    assert (info.color_transfer, info.color_primaries, info.is_hdr) == ("bt709", "bt709", False)
    sdr = sample_clip(width=320, height=180, seconds=1, frame_rate=30)  # the same pattern, never HDR
    luma, chroma = picture_stats(output)
    sdr_luma, sdr_chroma = picture_stats(sdr)
    _naive_luma, naive_chroma = picture_stats(hdr)  # HDR pixels shown as they are: washed out
    assert 0.65 * sdr_luma <= luma <= 1.2 * sdr_luma, (luma, sdr_luma)
    assert chroma >= 0.75 * sdr_chroma, (chroma, sdr_chroma)
    assert chroma >= 1.5 * naive_chroma, (chroma, naive_chroma)


def test_hdr_can_be_kept_in_10_bit_hevc(tmp_path: Path) -> None:
    hdr = make_hdr_clip(tmp_path / "hlg.mp4", transfer="arib-std-b67", width=160, height=90, seconds=0.5)
    rendition = dataclasses.replace(SMALL, codec="hevc", hdr="keep")
    output = convert(hdr, tmp_path, rendition)
    info = probe(output, Limits())
    assert (info.color_transfer, info.color_primaries) == ("arib-std-b67", "bt2020")
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"


@pytest.mark.parametrize(("source_rate", "expected_rate"), [(120, 60), (100, 50), (50, 50)])
def test_rates_above_60_are_halved(
    source_rate: int, expected_rate: int, sample_clip: Callable[..., Path], tmp_path: Path
) -> None:
    source = sample_clip(width=160, height=90, seconds=1, frame_rate=source_rate, audio=False)
    output = convert(source, tmp_path, SMALL)
    times = packet_times(output, "video")
    assert len(times) == expected_rate
    assert np.allclose(np.diff(times), 1 / expected_rate, atol=1e-3)


def test_a_variable_frame_rate_clip_comes_out_smooth_and_in_sync(tmp_path: Path) -> None:
    source = make_vfr_clip(tmp_path / "phone.mp4", seconds=3)
    info = probe(source, Limits())
    assert info.variable_frame_rate and info.frame_rate is not None and info.frame_rate < 27
    output = convert(source, tmp_path, SMALL)
    video, audio = packet_times(output, "video"), packet_times(output, "audio")
    intervals = np.diff(video)
    assert np.allclose(intervals, 1 / 30, atol=1e-3), "constant 30 fps: no judder"
    assert len(video) == pytest.approx(90, abs=2)
    video_end = video[-1] + 1 / 30
    audio_end = audio[-1] + 1024 / 48000
    assert abs(video[0] - audio[0]) < 0.05 and abs(video_end - audio_end) < 0.1, "audio in step with video"
