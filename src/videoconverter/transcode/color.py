"""HDR sources (HDR10/PQ and HLG, as iPhones record) and the filters that bring them to BT.709 SDR.

Shown as SDR without conversion, HDR video looks washed out and grey: its BT.2020 colours are read as BT.709
and its brightness curve is not the SDR one. Tone mapping goes through linear light (zscale), compresses
highlights with the Möbius curve (which leaves the SDR range nearly untouched, so skin and mid-tones keep
their brightness) and converts primaries and matrix to BT.709.
"""

from __future__ import annotations

HDR_TRANSFERS = ("smpte2084", "arib-std-b67")  # PQ (HDR10, Dolby Vision base) and HLG
#: FFmpeg's AVColorTransferCharacteristic / AVColorPrimaries numbers, as PyAV reports them.
TRANSFER_NAMES = {1: "bt709", 6: "smpte170m", 8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
                  16: "smpte2084", 18: "arib-std-b67"}  # fmt: skip
PRIMARIES_NAMES = {1: "bt709", 5: "bt470bg", 6: "smpte170m", 9: "bt2020", 12: "smpte432"}
NOMINAL_PEAK_NITS = 100  # SDR reference white: linear 1.0


def is_hdr(transfer: str) -> bool:
    return transfer in HDR_TRANSFERS


def tonemap_filters() -> list[str]:
    """Filters from an HDR picture (any size, 10-bit) to 8-bit BT.709 SDR, limited range."""
    return [
        f"zscale=t=linear:npl={NOMINAL_PEAK_NITS}",
        "format=gbrpf32le",
        "zscale=p=bt709",
        "tonemap=tonemap=mobius:desat=0",
        "zscale=t=bt709:m=bt709:r=tv",
        "format=yuv420p",
    ]


def sdr_tags() -> list[str]:
    """Output flags that say what the pixels are: BT.709, so players don't guess."""
    return ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"]


def hdr_tags(transfer: str) -> list[str]:
    """Flags for an output that keeps HDR: BT.2020 with the source's transfer."""
    return ["-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc", "-color_range", "tv"]
