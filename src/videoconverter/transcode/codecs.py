"""Encoder arguments of each output codec: quality-targeted (CRF) with a bitrate cap, fixed keyframes.

Every codec gets the same shape of rate control, so a rendition's ``crf`` and ``max_video_bitrate_kbps`` mean
the same thing whatever it encodes with: constant quality, except that hard content is held under the cap by a
one-second VBV buffer. Keyframes come every ``keyframe_interval_seconds`` exactly and never elsewhere (no
scene-cut keyframes), so segments of an HLS ladder cut at the same instants in every rung.
"""

from __future__ import annotations

from videoconverter.renditions import Rendition

_ENCODERS = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1", "vp9": "libvpx-vp9"}


def encoder_args(rendition: Rendition, gop_frames: int, keyframe_seconds: float, ten_bit: bool = False) -> list[str]:
    """``-c:v ...`` and everything the codec needs, for ``rendition``; ``ten_bit`` keeps 10-bit (HDR) output."""
    codec = rendition.codec
    cap = f"{rendition.max_video_bitrate_kbps}k"
    args = ["-c:v", _ENCODERS[codec], "-pix_fmt", "yuv420p10le" if ten_bit else "yuv420p"]
    if codec == "h264":
        args += ["-preset", rendition.effective_preset, "-profile:v", "high", "-crf", str(rendition.effective_crf)]
        # A one-second VBV buffer starting half full: a file carries at most cap x (duration + 0.5 s) of
        # video (x264's default start, 90 % full, let a 4 s test pattern average 8 % over the cap).
        args += ["-maxrate", cap, "-bufsize", cap, "-x264-params", "vbv-init=0.5"]
    elif codec == "hevc":
        args += ["-preset", rendition.effective_preset, "-crf", str(rendition.effective_crf)]
        args += ["-maxrate", cap, "-bufsize", cap, "-tag:v", "hvc1"]  # Apple plays HEVC only tagged hvc1
        args += ["-x265-params", "log-level=error:vbv-init=0.5:scenecut=0:open-gop=0"]
    elif codec == "av1":
        # SVT-AV1 caps a CRF encode with maxrate ("capped CRF"); it adds no scene-cut keyframes by default.
        args += ["-preset", rendition.effective_preset, "-crf", str(rendition.effective_crf), "-maxrate", cap]
        args += ["-svtav1-params", "scd=0"]
    else:  # vp9: constrained quality: -b:v is the ceiling of the CRF encode
        args += ["-crf", str(rendition.effective_crf), "-b:v", cap, "-maxrate", cap, "-bufsize", cap]
        args += ["-deadline", "good", "-cpu-used", rendition.effective_preset, "-row-mt", "1"]
    args += ["-g", str(gop_frames), "-keyint_min", str(gop_frames)]
    if codec in ("h264", "hevc"):
        args += ["-sc_threshold", "0"]
    args += ["-force_key_frames", f"expr:gte(t,n_forced*{keyframe_seconds:g})"]
    return args
