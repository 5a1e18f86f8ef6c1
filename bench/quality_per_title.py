"""bench/quality.py ``--per-title``: for each clip and size, Elastic Transcoder's Generic preset, today's fixed
CRF and per-title (the VMAF search, timed with it). See bench/quality.py's docstring for the clips and targets."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from quality import GENERIC_PRESET_VIDEO_KBPS, Encode, collect, encode_ours
from videoconverter.renditions import Rendition, default_rendition

MAX_BYTES_RATIO = 0.80  # of ET's bytes, over all rows
MAX_TIME_RATIO = 1.5  # of the fixed CRF encode's time


@dataclasses.dataclass(frozen=True)
class TitleRow:
    """One clip and size in ``--per-title`` mode: ET, today's fixed CRF, and per-title with its search."""

    clip: str
    size: int
    variant: str  # the per-title rendition's target and cap, e.g. "target=96 cap=100%"
    et: Encode
    fixed: Encode
    ours: Encode

    @property
    def vmaf_delta(self) -> float:
        """Per-title's VMAF over ET's."""
        return self.ours.quality.vmaf_mean - self.et.quality.vmaf_mean

    def against_fixed(self) -> tuple[float, float]:
        """Per-title's wall and CPU time over the fixed CRF encode's."""
        return self.ours.seconds / self.fixed.seconds, self.ours.cpu_seconds / self.fixed.cpu_seconds


def per_title_variants(args: argparse.Namespace, size: int) -> list[tuple[str, Rendition]]:
    base = default_rendition(size)
    generic = GENERIC_PRESET_VIDEO_KBPS[size]
    cap = round(args.per_title_cap * generic) if args.per_title_cap else base.max_video_bitrate_kbps
    return [
        (
            f"target={target:g} cap={cap / generic:.0%}",
            dataclasses.replace(base, target_vmaf=target, max_video_bitrate_kbps=cap),
        )
        for target in args.target.get(size, [base.target_vmaf])
    ]


def run_per_title(args: argparse.Namespace, ffmpeg: str) -> list[TitleRow]:
    def rows_for(clip: str, source: Path, size: int, et: Encode, workdir: Path) -> Iterator[TitleRow]:
        fixed = encode_ours(ffmpeg, source, workdir, default_rendition(size, per_title=False), args.threads)
        for label, rendition in per_title_variants(args, size):
            ours = encode_ours(ffmpeg, source, workdir, rendition, args.threads)
            yield TitleRow(clip, size, label, et, fixed, ours)

    return collect(args, ffmpeg, rows_for, format_title_row)


TITLE_HEADER = (
    f"{'clip':7} {'size':5} {'per-title':18} {'VMAF ET':>7} {'fixed':>6} {'p-t':>6} {'Δ ET':>6} {'CRF':>3} "
    f"{'pred':>5} {'MB ET':>6} {'fixed':>6} {'p-t':>6} {'p-t/ET':>6} {'s ET':>5} {'fixed':>5} {'p-t':>5} "
    f"{'time':>5} {'cpu':>5}"
)


def format_title_row(row: TitleRow) -> str:
    et, fixed, ours = row.et.quality, row.fixed.quality, row.ours.quality
    choice = row.ours.search.choices[0] if row.ours.search else None
    crf, predicted = (f"{choice.crf:3d}", f"{choice.predicted_vmaf:5.1f}") if choice else ("  -", "    -")
    return (
        f"{row.clip:7} {row.size:<5} {row.variant:18} {et.vmaf_mean:7.2f} {fixed.vmaf_mean:6.2f} "
        f"{ours.vmaf_mean:6.2f} {row.vmaf_delta:+6.2f} {crf} {predicted} {et.output_bytes / 1e6:6.2f} "
        f"{fixed.output_bytes / 1e6:6.2f} {ours.output_bytes / 1e6:6.2f} {ours.output_bytes / et.output_bytes:6.2f} "
        f"{row.et.seconds:5.1f} {row.fixed.seconds:5.1f} {row.ours.seconds:5.1f} "
        f"{row.against_fixed()[0]:5.2f} {row.against_fixed()[1]:5.2f}"
    )


def title_summary(rows: Sequence[TitleRow]) -> dict[str, dict[str, Any]]:
    """Per per-title variant, over all its rows: rows with VMAF >= ET's, the byte and time ratios in total."""
    summary: dict[str, dict[str, Any]] = {}
    for variant in dict.fromkeys(r.variant for r in rows):
        mine = [r for r in rows if r.variant == variant]
        et_bytes = sum(r.et.quality.output_bytes for r in mine)
        summary[variant] = {
            "rows_vmaf_at_least_et": sum(r.vmaf_delta >= 0 for r in mine),
            "rows": len(mine),
            "bytes_vs_et": sum(r.ours.quality.output_bytes for r in mine) / et_bytes,
            "fixed_bytes_vs_et": sum(r.fixed.quality.output_bytes for r in mine) / et_bytes,
            "time_vs_fixed": sum(r.ours.seconds for r in mine) / sum(r.fixed.seconds for r in mine),
            "cpu_vs_fixed": sum(r.ours.cpu_seconds for r in mine) / sum(r.fixed.cpu_seconds for r in mine),
        }
    return summary


def title_row_json(row: TitleRow) -> dict[str, Any]:
    def encode(e: Encode) -> dict[str, Any]:
        search = e.search.as_dict() if e.search else None
        return {
            "encode_seconds": e.seconds,
            "encode_cpu_seconds": e.cpu_seconds,
            **e.quality.as_dict(),
            "search": search,
        }

    return {"clip": row.clip, "size": row.size, "variant": row.variant, "et": encode(row.et),
            "fixed": encode(row.fixed), "per_title": encode(row.ours), "vmaf_delta": row.vmaf_delta}  # fmt: skip


def print_title_summary(summary: dict[str, dict[str, Any]]) -> None:
    print(
        f"targets: per-title VMAF >= ET's on every row, bytes <= {MAX_BYTES_RATIO:.0%} of ET's in total, "
        f"time <= {MAX_TIME_RATIO}x fixed"
    )
    for variant, s in summary.items():
        print(
            f"  {variant}: VMAF >= ET on {s['rows_vmaf_at_least_et']}/{s['rows']} rows; bytes / ET "
            f"{s['bytes_vs_et']:.2f} (fixed CRF {s['fixed_bytes_vs_et']:.2f}); time / fixed {s['time_vs_fixed']:.2f} "
            f"(CPU {s['cpu_vs_fixed']:.2f})"
        )


def run_per_title_mode(args: argparse.Namespace, ffmpeg: str, command: str, version: str) -> int:
    if not args.json:
        print(f"$ {command}\n{version}\n{TITLE_HEADER}", flush=True)
    rows = run_per_title(args, ffmpeg)
    summary = title_summary(rows)
    if args.json:
        print(
            json.dumps(
                {"command": command, "ffmpeg": version, "rows": [title_row_json(r) for r in rows], "summary": summary}
            )
        )
    else:
        print_title_summary(summary)
    return 0
