"""output_size(): the rendition's number is the short side of the displayed picture, both sides even."""

from __future__ import annotations

import dataclasses

import pytest

from videoconverter.renditions import default_rendition
from videoconverter.transcode.geometry import OutputSize, output_size

R120 = default_rendition(120)
R480 = default_rendition(480)
R720 = default_rendition(720)
R1080 = default_rendition(1080)


@pytest.mark.parametrize(
    ("source", "rendition", "expected"),
    [
        pytest.param((1920, 1080), R720, (1280, 720), id="landscape-720p"),
        pytest.param((1920, 1080), R1080, (1920, 1080), id="landscape-1080p-same-size"),
        pytest.param((3840, 2160), R1080, (1920, 1080), id="landscape-4k-1080p"),
        pytest.param((1080, 1920), R720, (720, 1280), id="portrait-720p"),
        pytest.param((1080, 1920), R1080, (1080, 1920), id="portrait-1080p-same-size"),
        pytest.param((2160, 3840), R720, (720, 1280), id="portrait-4k-720p"),
        pytest.param((1080, 1080), R720, (720, 720), id="square-720p"),
        pytest.param((2000, 2000), R1080, (1080, 1080), id="square-1080p"),
        pytest.param((1280, 720), R720, (1280, 720), id="exactly-the-rendition"),
    ],
)
def test_known_sizes(source: tuple[int, int], rendition, expected: tuple[int, int]) -> None:
    size = output_size(*source, rendition)
    assert (size.width, size.height) == expected
    assert size.note == ""


ODD_SOURCES = [
    (1001, 563),
    (563, 1001),
    (1279, 719),
    (1919, 1079),
    (333, 187),
    (187, 333),
    (4095, 2161),
    (1081, 1081),
    (2561, 1081),  # ultra-wide
    (1081, 2561),
]


@pytest.mark.parametrize(
    ("source", "rendition"),
    [
        pytest.param(source, rendition, id=f"{source[0]}x{source[1]}-{rendition.name}")
        for source in ODD_SOURCES
        for rendition in (R120, R480, R720, R1080)
        if min(source) >= rendition.short_side  # smaller ones: the no-upscale tests
    ],
)
def test_odd_sizes_give_even_sides_and_keep_the_aspect(source: tuple[int, int], rendition) -> None:
    width, height = source
    size = output_size(width, height, rendition)
    assert size.width % 2 == 0
    assert size.height % 2 == 0
    assert min(size.width, size.height) == rendition.short_side
    # The long side follows the source's aspect ratio, within the rounding to an even number.
    if width >= height:
        assert size.height == rendition.short_side
        assert abs(size.width - width * rendition.short_side / height) <= 2
    else:
        assert size.width == rendition.short_side
        assert abs(size.height - height * rendition.short_side / width) <= 2
    assert abs(size.width / size.height - width / height) * size.height <= 2
    assert size.note == ""


@pytest.mark.parametrize(
    ("source", "rendition"),
    [
        ((640, 360), R720),
        ((360, 640), R720),
        ((640, 360), R1080),
        ((1280, 720), R1080),
        ((500, 500), R720),
        ((333, 187), R720),
        ((1001, 563), R1080),
    ],
)
def test_a_smaller_source_is_never_upscaled(source: tuple[int, int], rendition) -> None:
    width, height = source
    size = output_size(width, height, rendition)
    # Its own size, made even (which may add at most one pixel).
    assert size.width % 2 == 0 and size.height % 2 == 0
    assert abs(size.width - width) <= 1
    assert abs(size.height - height) <= 1
    assert min(size.width, size.height) < rendition.short_side
    assert "never upscaled" in size.note
    assert f"{width}x{height}" in size.note
    assert rendition.name in size.note


def test_an_even_smaller_source_keeps_exactly_its_size() -> None:
    size = output_size(640, 360, R720)
    assert (size.width, size.height) == (640, 360)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ((640, 360), (1280, 720)),
        ((360, 640), (720, 1280)),
        ((500, 500), (720, 720)),
        ((333, 187), None),
    ],
)
def test_a_rendition_that_allows_upscaling_upscales(source: tuple[int, int], expected) -> None:
    rendition = dataclasses.replace(R720, upscale=True)
    size = output_size(*source, rendition)
    assert min(size.width, size.height) == 720
    assert size.width % 2 == 0 and size.height % 2 == 0
    assert size.width > source[0] and size.height > source[1]
    if expected is not None:
        assert (size.width, size.height) == expected
    else:
        assert abs(size.width / size.height - source[0] / source[1]) * size.height <= 2
    assert size.note == ""


def test_upscale_flag_does_not_change_downscaling() -> None:
    plain = output_size(1920, 1080, R720)
    upscaling = output_size(1920, 1080, dataclasses.replace(R720, upscale=True))
    assert plain == upscaling


def test_tiny_sources_never_give_a_zero_side() -> None:
    size = output_size(1, 1, R720)
    assert size.width >= 2 and size.height >= 2
    assert size.width % 2 == 0 and size.height % 2 == 0


def test_output_size_is_a_frozen_value() -> None:
    size = output_size(1920, 1080, R720)
    assert isinstance(size, OutputSize)
    with pytest.raises(dataclasses.FrozenInstanceError):
        size.width = 2  # type: ignore[misc]
