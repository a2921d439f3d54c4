"""The stdlib PNG codec: every colour type and filter, resizing by area average, and refusals."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Sequence

import pytest

from shared import png
from shared.png import Image, ImageError, ImageTooLargeError

pytestmark = pytest.mark.unit

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


# -- PNGs built by hand, independently of the encoder under test ---------------------------


def chunk(kind: bytes, body: bytes, *, crc: int | None = None) -> bytes:
    checksum = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", checksum)


def ihdr(width: int, height: int, colour_type: int, *, depth: int = 8, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, interlace))


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_row(kind: int, row: bytes, previous: bytes, bpp: int) -> bytes:
    """The spec's filter definitions (PNG 9.2), written out byte by byte."""
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = previous[i]
        c = previous[i - bpp] if i >= bpp else 0
        predictor = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - predictor) % 256)
    return bytes(out)


def build_png(
    width: int,
    height: int,
    colour_type: int,
    pixels: bytes,
    filters: Sequence[int] = (0,),
    *,
    idat_pieces: int = 1,
    extra_chunks: bytes = b"",
) -> bytes:
    """A PNG whose row y uses ``filters[y % len(filters)]``, its data split over ``idat_pieces`` IDATs."""
    bpp = CHANNELS[colour_type]
    stride = width * bpp
    raw = bytearray()
    previous = bytes(stride)
    for y in range(height):
        row = pixels[y * stride : (y + 1) * stride]
        kind = filters[y % len(filters)]
        raw += bytes([kind]) + filter_row(kind, row, previous, bpp)
        previous = row
    compressed = zlib.compress(bytes(raw))
    size = -(-len(compressed) // idat_pieces)
    idats = b"".join(chunk(b"IDAT", compressed[i : i + size]) for i in range(0, len(compressed), size))
    return png.SIGNATURE + ihdr(width, height, colour_type) + extra_chunks + idats + chunk(b"IEND", b"")


def noise(count: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(count))


def expand(colour_type: int, pixels: bytes) -> tuple[int, bytes]:
    """What the decoder should give for pixels of ``colour_type``: RGB or RGBA."""
    if colour_type in (2, 6):
        return CHANNELS[colour_type], pixels
    if colour_type == 0:
        return 3, bytes(v for g in pixels for v in (g, g, g))
    return 4, bytes(v for g, a in zip(pixels[0::2], pixels[1::2], strict=True) for v in (g, g, g, a))


# -- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("colour_type", [0, 2, 4, 6], ids=["gray", "rgb", "gray-alpha", "rgba"])
def test_every_colour_type_decodes_and_round_trips(colour_type: int) -> None:
    # Given a hand-made 7x5 PNG of random pixels in that colour type
    pixels = noise(7 * 5 * CHANNELS[colour_type], seed=colour_type)
    data = build_png(7, 5, colour_type, pixels)
    # When it is decoded, re-encoded and decoded again
    image = png.decode(data)
    again = png.decode(png.encode(image))
    # Then the pixels are the originals, as RGB or RGBA, both times
    channels, expected = expand(colour_type, pixels)
    assert (image.width, image.height, image.channels) == (7, 5, channels)
    assert image.pixels == expected
    assert again == image


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4], ids=["none", "sub", "up", "average", "paeth"])
@pytest.mark.parametrize("colour_type", [0, 2, 4, 6])
def test_each_filter_type_is_undone(kind: int, colour_type: int) -> None:
    # Given every row filtered with one filter type (built byte by byte from the spec)
    pixels = noise(9 * 6 * CHANNELS[colour_type], seed=kind * 10 + colour_type)
    data = build_png(9, 6, colour_type, pixels, filters=[kind])
    # When decoded Then the original pixels come back
    assert png.decode(data).pixels == expand(colour_type, pixels)[1]


def test_mixed_filters_across_several_idat_chunks_and_ancillary_chunks() -> None:
    # Given rows cycling through all five filters, the data cut into 5 IDATs, and chunks to skip
    pixels = noise(16 * 12 * 4)
    extra = chunk(b"tEXt", b"Comment\x00made by hand") + chunk(b"gAMA", struct.pack(">I", 45455))
    data = build_png(16, 12, 6, pixels, filters=[0, 1, 2, 3, 4], idat_pieces=5, extra_chunks=extra)
    # When decoded Then the image is exact
    assert png.decode(data) == Image(16, 12, 4, pixels)


def test_a_smooth_image_decodes_the_same_through_every_filter() -> None:
    # Given the gradient (where filters predict well) filtered five ways
    image = png.gradient(31, 17, alpha=True)
    # Then each decodes to the same pixels
    for kind in range(5):
        assert png.decode(build_png(31, 17, 6, image.pixels, filters=[kind])) == image


# -- encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb", "rgba"])
@pytest.mark.parametrize("filter_type", [0, 2])
def test_encode_round_trips_rgb_and_rgba(alpha: bool, filter_type: int) -> None:
    image = Image(13, 11, 4 if alpha else 3, noise(13 * 11 * (4 if alpha else 3)))
    data = png.encode(image, filter_type=filter_type)
    # The header says 8-bit RGB (2) or RGBA (6), non-interlaced
    assert data[12:16] == b"IHDR"
    assert struct.unpack(">IIBBBBB", data[16:29]) == (13, 11, 8, 6 if alpha else 2, 0, 0, 0)
    assert png.decode(data) == image


def test_the_up_filter_compresses_a_gradient_better_than_none() -> None:
    image = png.gradient(256, 256)
    assert len(png.encode(image, filter_type=2)) < len(png.encode(image, filter_type=0))


def test_encode_refuses_a_filter_it_does_not_write() -> None:
    with pytest.raises(ImageError, match="filter type"):
        png.encode(png.gradient(2, 2), filter_type=4)


# -- resizing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "box", "expected"),
    [
        ((400, 300), (100, 100), (100, 75)),  # landscape: width bound
        ((300, 400), (100, 100), (75, 100)),  # portrait: height bound
        ((1000, 10), (50, 50), (50, 1)),  # a sliver keeps at least one pixel
        ((640, 480), (320, 1000), (320, 240)),
        ((320, 200), (100, 100), (100, 63)),  # 62.5 rounds half up
        ((320, 200), (64, 64), (64, 40)),
        ((50, 40), (200, 200), (50, 40)),  # never enlarged
        ((2048, 1536), (2048, 2048), (2048, 1536)),
    ],
)
def test_fit_size_keeps_the_aspect_ratio_inside_the_box(size, box, expected) -> None:
    assert png.fit_size(*size, *box) == expected


def test_resize_to_fit_gives_the_fitted_dimensions_and_keeps_the_mode() -> None:
    thumbnail = png.resize_to_fit(png.gradient(120, 80, alpha=True), 30, 30)
    assert (thumbnail.width, thumbnail.height, thumbnail.mode) == (30, 20, "RGBA")


def test_an_exact_halving_averages_each_two_by_two_block() -> None:
    # Given a 4x2 grayscale-as-RGB image with two distinct 2x2 blocks
    values = [[0, 10, 100, 200], [20, 30, 50, 250]]
    image = Image(4, 2, 3, bytes(v for row in values for g in row for v in (g, g, g)))
    # When halved Then each output pixel is its block's mean (rounded half up)
    half = png.resize(image, 2, 1)
    assert half.pixel(0, 0) == (15, 15, 15)
    assert half.pixel(1, 0) == (150, 150, 150)


def test_a_fractional_scale_weights_pixels_by_the_area_they_cover() -> None:
    # Given three pixels 0, 90, 180 shrunk to two: each output covers 1.5 source pixels
    image = Image(3, 1, 3, bytes([0] * 3 + [90] * 3 + [180] * 3))
    # Then the left is (0*1 + 90*0.5) / 1.5 = 30 and the right (90*0.5 + 180*1) / 1.5 = 150
    assert png.resize(image, 2, 1).pixels == bytes([30] * 3 + [150] * 3)


def test_a_uniform_image_stays_uniform_at_any_size() -> None:
    image = Image(37, 23, 3, bytes([12, 34, 56]) * (37 * 23))
    for width, height in [(5, 3), (36, 22), (1, 1), (50, 40)]:
        pixels = png.resize(image, width, height).pixels
        assert pixels == bytes([12, 34, 56]) * (width * height)


def test_transparent_pixels_do_not_bleed_their_colour() -> None:
    # Given an opaque red pixel next to a fully transparent green one
    image = Image(2, 1, 4, bytes([255, 0, 0, 255, 0, 255, 0, 0]))
    # When averaged into one pixel Then it is red at half opacity, not a red-green mix
    assert png.resize(image, 1, 1).pixel(0, 0) == (255, 0, 0, 128)


def test_resize_refuses_an_empty_target() -> None:
    with pytest.raises(ImageError):
        png.resize(png.gradient(4, 4), 0, 3)


# -- refusals ------------------------------------------------------------------------------


def valid_png() -> bytes:
    return build_png(6, 4, 2, noise(6 * 4 * 3))


REFUSED = [
    (b"GIF89a" + bytes(40), "not a PNG"),
    (b"", "not a PNG"),
    (png.SIGNATURE + ihdr(4, 4, 2, depth=16) + chunk(b"IEND", b""), "bit depth 16"),
    (png.SIGNATURE + ihdr(4, 4, 0, depth=1) + chunk(b"IEND", b""), "bit depth 1"),
    (png.SIGNATURE + ihdr(4, 4, 3) + chunk(b"IEND", b""), "colour type palette"),
    (png.SIGNATURE + ihdr(4, 4, 5) + chunk(b"IEND", b""), "colour type unknown"),
    (png.SIGNATURE + ihdr(4, 4, 2, interlace=1) + chunk(b"IEND", b""), "interlaced"),
    (png.SIGNATURE + ihdr(0, 4, 2) + chunk(b"IEND", b""), "invalid dimensions"),
    (png.SIGNATURE + chunk(b"IEND", b""), "first chunk"),
    (png.SIGNATURE + ihdr(4, 4, 2) + chunk(b"IEND", b""), "no IDAT"),
    (png.SIGNATURE + ihdr(4, 4, 2) + chunk(b"IDAT", b"not zlib") + chunk(b"IEND", b""), "does not inflate"),
    (png.SIGNATURE + ihdr(1, 1, 2) + chunk(b"IDAT", zlib.compress(b"\x05abc")) + chunk(b"IEND", b""), "filter type 5"),
    (png.SIGNATURE + ihdr(2, 2, 2) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b""), "more image data"),
    (png.SIGNATURE + ihdr(2, 2, 2) + chunk(b"IDAT", zlib.compress(bytes(5))) + chunk(b"IEND", b""), "truncated"),
    (png.SIGNATURE + ihdr(2, 2, 2) + chunk(b"ZzZz", b"") + chunk(b"IEND", b""), "unknown critical chunk"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "message"), REFUSED, ids=[message for _, message in REFUSED])
def test_unsupported_or_corrupt_input_is_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        png.decode(data)


@pytest.mark.parametrize("cut", [10, 20, 33, 40, -13, -5, -1])
def test_truncated_data_is_refused(cut: int) -> None:
    # Given a valid PNG cut short anywhere (inside a chunk header, IHDR, IDAT, IEND)
    with pytest.raises(ImageError, match="truncated"):
        png.decode(valid_png()[:cut])


def test_a_crc_mismatch_is_refused() -> None:
    data = bytearray(valid_png())
    data[45] ^= 0xFF  # a byte inside the IDAT data (its type ends at offset 40)
    with pytest.raises(ImageError, match="CRC mismatch in the IDAT chunk"):
        png.decode(bytes(data))


def test_an_image_error_is_a_value_error() -> None:
    assert issubclass(ImageError, ValueError)
    assert issubclass(ImageTooLargeError, ImageError)


def test_a_decompression_bomb_is_refused_from_its_header_before_inflating() -> None:
    # Given a header claiming 6000x5000 (30 megapixels) with data that would not even inflate
    data = png.SIGNATURE + ihdr(6000, 5000, 6) + chunk(b"IDAT", b"garbage") + chunk(b"IEND", b"")
    # Then the size alone refuses it: the garbage is never looked at
    with pytest.raises(ImageTooLargeError, match="30000000 pixels, the limit is 25000000"):
        png.decode(data)


def test_the_pixel_limit_is_inclusive_and_configurable() -> None:
    data = valid_png()  # 6x4 = 24 pixels
    assert png.decode(data, max_pixels=24).width == 6
    with pytest.raises(ImageTooLargeError):
        png.decode(data, max_pixels=23)


def test_a_small_stream_claiming_a_large_size_inflates_no_further_than_declared() -> None:
    # Given 5 MB of zeros compressed to a few KiB behind a 2x2 header
    bomb = zlib.compress(bytes(5_000_000), 9)
    data = png.SIGNATURE + ihdr(2, 2, 2) + chunk(b"IDAT", bomb) + chunk(b"IEND", b"")
    assert len(data) < 10_000
    # Then it is refused as corrupt (inflating stopped at 15 bytes, not 5 MB)
    with pytest.raises(ImageError, match="more image data than IHDR declares"):
        png.decode(data)


def test_gradient_is_deterministic_with_known_corners() -> None:
    image = png.gradient(11, 6)
    assert image == png.gradient(11, 6)
    assert image.pixel(0, 0) == (0, 0, 0)
    assert image.pixel(10, 5) == (255, 255, 255)
    assert png.gradient(3, 3, alpha=True).pixel(0, 2)[3] == 127
