"""Test and demo media generated with FFmpeg's lavfi sources (never downloaded).

Every run starts from the converter's own :func:`.command.preamble`. The inputs are lavfi graphs
(:func:`.command.generated_input`), which read no file, so an upload's input hardening does not apply to them;
the one file read back is a clip just generated here, to tag its rotation.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from videoconverter.errors import TranscodeError
from videoconverter.transcode.command import generated_input, preamble
from videoconverter.transcode.runner import ffmpeg_executable


def make_clip(
    destination: Path,
    *,
    width: int = 1920,
    height: int = 1080,
    seconds: float = 2.0,
    frame_rate: int = 30,
    audio: bool = True,
    rotation_degrees: int = 0,
    sample_aspect_ratio: str = "1:1",
    keyframe_interval_seconds: float | None = None,
    faststart: bool = False,
    ffmpeg: str | None = None,
) -> Path:
    """Write an H.264/AAC MP4 test pattern (moving, with a tone) to ``destination``.

    ``rotation_degrees`` stores a display-rotation tag as a phone does; ``sample_aspect_ratio`` other than 1:1
    makes non-square pixels (anamorphic video). ``keyframe_interval_seconds`` fixes the keyframe interval
    (x264's own choice, at most 250 frames, without it); ``faststart`` puts the index at the front, as our
    outputs have it (a file cut short then still opens).
    """
    exe = ffmpeg or ffmpeg_executable()
    args = clip_args(exe, width, height, seconds, frame_rate, audio, sample_aspect_ratio)
    if keyframe_interval_seconds is not None:
        args += ["-g", str(max(1, round(keyframe_interval_seconds * frame_rate)))]
    if faststart:
        args += ["-movflags", "+faststart"]
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not rotation_degrees:
        _run([*args, f"file:{destination}"])
        return destination
    plain = destination.with_name(destination.name + ".unrotated.mp4")
    _run([*args, f"file:{plain}"])
    # The tag is set while copying the streams: an encode would apply it to the pixels (autorotation).
    _run([*preamble(exe), "-display_rotation", str(rotation_degrees), "-i", f"file:{plain}", "-c", "copy",
          f"file:{destination}"])  # fmt: skip
    plain.unlink()
    return destination


def clip_args(
    ffmpeg: str, width: int, height: int, seconds: float, frame_rate: int, audio: bool, sample_aspect_ratio: str
) -> list[str]:
    """The arguments of :func:`make_clip`'s encode, all but the output: testsrc2 (and a 440 Hz sine) as
    H.264 (and AAC)."""
    # testsrc2 and 4:2:0 H.264 round odd sizes down to even ones; an odd size is made exactly by cropping a
    # 4:4:4 picture and encoding it as H.264 High 4:4:4.
    odd = width % 2 == 1 or height % 2 == 1
    crop = f"format=yuv444p,crop={width}:{height}:0:0," if odd else ""
    picture = f"testsrc2=size={width + width % 2}x{height + height % 2}:rate={frame_rate}:duration={seconds}"
    args = [*preamble(ffmpeg), *generated_input(picture)]
    if audio:
        args += generated_input(f"sine=frequency=440:sample_rate=48000:duration={seconds}")
    args += ["-vf", f"{crop}setsar={sample_aspect_ratio.replace(':', '/')}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p" if odd else "yuv420p"]
    return args + (["-c:a", "aac", "-b:a", "96k", "-shortest"] if audio else [])


def make_truncated_clip(destination: Path, *, kept_share: float = 0.49, ffmpeg: str | None = None) -> Path:
    """Write an upload cut short, as an interrupted transfer leaves it: a 320x180 clip of 10 s (a keyframe each
    second, the index at the front) of which only the first ``kept_share`` of the bytes remain. It still opens
    and probes as 10 s long, since the index promises that; about ``kept_share`` of it can be decoded."""
    whole = destination.with_name(destination.name + ".whole.mp4")
    make_clip(whole, width=320, height=180, seconds=10.0, keyframe_interval_seconds=1.0, faststart=True, ffmpeg=ffmpeg)
    data = whole.read_bytes()
    destination.write_bytes(data[: int(len(data) * kept_share)])
    whole.unlink()
    return destination


def make_hdr_clip(
    destination: Path,
    *,
    transfer: str = "arib-std-b67",
    width: int = 320,
    height: int = 180,
    seconds: float = 1.0,
    ffmpeg: str | None = None,
) -> Path:
    """Write a 10-bit HEVC HDR clip, as phones record: the test pattern converted to BT.2020 with ``transfer``
    ``arib-std-b67`` (HLG, iPhone's default) or ``smpte2084`` (PQ, HDR10), SDR white at 203 nits, and tagged so."""
    hdr = f"zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t={transfer}:p=bt2020:m=bt2020nc:r=tv:npl=203"
    _run([
        *preamble(ffmpeg or ffmpeg_executable()),
        *generated_input(f"testsrc2=size={width}x{height}:rate=30:duration={seconds}"),
        "-vf", f"format=yuv420p,{hdr},format=yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1",
        "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc", f"file:{destination}",
    ])  # fmt: skip
    return destination


def make_vfr_clip(destination: Path, *, seconds: float = 3.0, ffmpeg: str | None = None) -> Path:
    """Write a variable-frame-rate clip as a phone does when light is low: nominally 30 fps, but every seventh
    frame dropped and every other frame 4 ms late, with continuous audio."""
    video = "settb=1/90000,select='not(eq(mod(n,7),3))',setpts='PTS+0.004*mod(N,2)/TB'"
    _run([
        *preamble(ffmpeg or ffmpeg_executable()),
        *generated_input(f"testsrc2=size=320x180:rate=30:duration={seconds}"),
        *generated_input(f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
        "-vf", video, "-fps_mode", "vfr", "-enc_time_base:v", "1/90000", "-video_track_timescale", "90000",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", f"file:{destination}",
    ])  # fmt: skip
    return destination


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TranscodeError(
            "could not generate a sample clip", exit_code=result.returncode, stderr_tail=result.stderr[-2000:]
        )


class GeneratedStream:
    """A non-seekable stream of ``size`` pseudo-random bytes, made as they are read (never all in memory), for
    measuring uploads of any size.

    The content repeats with a period that divides no power-of-two part size, so parts swapped or dropped on the
    way change the hash. ``md5`` is the hash of what was read so far.
    """

    PERIOD = 1024 * 1024 + 7

    def __init__(self, size: int) -> None:
        self.size = size
        self.position = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self._pattern = os.urandom(self.PERIOD) * 10  # covers any read up to 9 periods from any offset

    def readable(self) -> bool:
        return True

    def read(self, amount: int = -1) -> bytes:
        amount = self.size - self.position if amount < 0 else min(amount, self.size - self.position)
        pieces = []
        while amount > 0:
            offset = self.position % self.PERIOD
            piece = self._pattern[offset : offset + min(amount, 9 * self.PERIOD)]
            pieces.append(piece)
            self.position += len(piece)
            amount -= len(piece)
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.md5.update(data)
        return data
