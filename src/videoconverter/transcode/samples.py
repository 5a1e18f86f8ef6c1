"""Test and demo media generated with FFmpeg's lavfi sources (never downloaded)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from videoconverter.errors import TranscodeError
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
    ffmpeg: str | None = None,
) -> Path:
    """Write an H.264/AAC MP4 test pattern (moving, with a tone) to ``destination``.

    ``rotation_degrees`` stores a display-rotation tag as a phone does; ``sample_aspect_ratio`` other than 1:1
    makes non-square pixels (anamorphic video).
    """
    exe = ffmpeg or ffmpeg_executable()
    # testsrc2 and 4:2:0 H.264 round odd sizes down to even ones; an odd size is made exactly by cropping a
    # 4:4:4 picture and encoding it as H.264 High 4:4:4.
    odd = width % 2 == 1 or height % 2 == 1
    pixel_format = "yuv444p" if odd else "yuv420p"
    crop = f"format=yuv444p,crop={width}:{height}:0:0," if odd else ""
    args = [
        exe,
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width + width % 2}x{height + height % 2}:rate={frame_rate}:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += [
        "-vf",
        f"{crop}setsar={sample_aspect_ratio.replace(':', '/')}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        pixel_format,
    ]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k", "-shortest"]
    destination.parent.mkdir(parents=True, exist_ok=True)
    if rotation_degrees:
        plain = destination.with_name(destination.name + ".unrotated.mp4")
        _run([*args, str(plain)])
        _run(
            [
                exe,
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-display_rotation",
                str(rotation_degrees),
                "-i",
                str(plain),
                "-c",
                "copy",
                str(destination),
            ]
        )
        plain.unlink()
    else:
        _run([*args, str(destination)])
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
        ffmpeg or ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
        "-vf", f"format=yuv420p,{hdr},format=yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1",
        "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc", str(destination),
    ])  # fmt: skip
    return destination


def make_vfr_clip(destination: Path, *, seconds: float = 3.0, ffmpeg: str | None = None) -> Path:
    """Write a variable-frame-rate clip as a phone does when light is low: nominally 30 fps, but every seventh
    frame dropped and every other frame 4 ms late, with continuous audio."""
    video = "settb=1/90000,select='not(eq(mod(n,7),3))',setpts='PTS+0.004*mod(N,2)/TB'"
    _run([
        ffmpeg or ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-vf", video, "-fps_mode", "vfr", "-enc_time_base:v", "1/90000", "-video_track_timescale", "90000",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(destination),
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
