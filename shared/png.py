"""PNG decode, encode and resize with the standard library only.

Why not Pillow: the Lambda functions ship with the stdlib, boto3, Powertools and pydantic, and a
compiled imaging library would tie the layer to one runtime and architecture. Thumbnails need
only a small, well-defined part of PNG, implemented here strictly:

* decode: 8-bit grayscale, RGB, RGBA and grayscale+alpha, non-interlaced, all five filters,
  several IDAT chunks, every chunk CRC checked; images come out as RGB or RGBA;
* encode: RGB or RGBA with the Up filter (or None), one IDAT chunk;
* resize: area-average (box) filter on premultiplied alpha, so transparent pixels do not
  bleed their colour into the edges.

Untrusted input is bounded before any work: the pixel count is checked from IHDR before
inflating (a few KiB of zlib can claim gigabytes), and inflating stops at the declared size.
Everything is pure Python, so cost grows with pixels: a few megapixels take seconds.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

__all__ = [
    "MAX_PIXELS",
    "SIGNATURE",
    "Image",
    "ImageError",
    "ImageTooLargeError",
    "decode",
    "encode",
    "fit_size",
    "gradient",
    "resize",
    "resize_to_fit",
]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 25_000_000
"""Decompression-bomb limit (width x height), checked from IHDR before any pixel data is inflated."""

FILTER_NONE, FILTER_SUB, FILTER_UP, FILTER_AVERAGE, FILTER_PAETH = range(5)

# colour type -> channels; palette (3) and bit depths other than 8 are not supported.
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_COLOUR_NAMES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}
_MAX_DIMENSION = 2**31 - 1  # the PNG spec's limit for width and height
_MAX_CHUNK_LENGTH = 2**31 - 1


class ImageError(ValueError):
    """The bytes are not an image this module can decode (or the request to it makes no sense)."""


class ImageTooLargeError(ImageError):
    """The image declares more pixels than the limit: refused before decompressing anything."""


@dataclass(frozen=True)
class Image:
    """8-bit pixels, row-major, ``channels`` bytes per pixel: 3 (RGB) or 4 (RGBA)."""

    width: int
    height: int
    channels: int
    pixels: bytes

    def __post_init__(self) -> None:
        if self.channels not in (3, 4):
            raise ImageError(f"an Image has 3 (RGB) or 4 (RGBA) channels, not {self.channels}")
        if self.width < 1 or self.height < 1:
            raise ImageError(f"image dimensions must be positive, got {self.width}x{self.height}")
        expected = self.width * self.height * self.channels
        if len(self.pixels) != expected:
            raise ImageError(
                f"{self.width}x{self.height}x{self.channels} needs {expected} bytes of pixels, got {len(self.pixels)}"
            )

    @property
    def mode(self) -> str:
        return "RGBA" if self.channels == 4 else "RGB"

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        """The channel values at (x, y); for tests and debugging, not for loops over an image."""
        start = (y * self.width + x) * self.channels
        return tuple(self.pixels[start : start + self.channels])


# -- decoding -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    colour_type: int

    @property
    def channels(self) -> int:
        return _CHANNELS[self.colour_type]

    @property
    def stride(self) -> int:
        return self.width * self.channels


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image:
    """Decode a PNG into RGB (from grayscale or RGB) or RGBA (from grayscale+alpha or RGBA)."""
    view = memoryview(data)
    if bytes(view[:8]) != SIGNATURE:
        raise ImageError("not a PNG: the file does not start with the PNG signature")
    header: _Header | None = None
    compressed: list[bytes] = []
    for chunk_type, body in _chunks(view):
        if header is None:
            if chunk_type != b"IHDR":
                raise ImageError(f"corrupt PNG: the first chunk is {chunk_type!r}, not IHDR")
            header = _read_header(body, max_pixels)
        elif chunk_type == b"IDAT":
            compressed.append(bytes(body))
        elif chunk_type == b"IEND":
            break
        elif chunk_type == b"IHDR":
            raise ImageError("corrupt PNG: a second IHDR chunk")
        elif chunk_type == b"PLTE":  # a suggested palette for RGB(A): decoding does not need it
            continue
        elif chunk_type[0:1].isupper():  # critical chunk we do not know: the spec says refuse
            raise ImageError(f"unsupported PNG: unknown critical chunk {chunk_type!r}")
    else:
        raise ImageError("truncated PNG: no IEND chunk")
    assert header is not None  # the loop breaks only after IHDR was read
    if not compressed:
        raise ImageError("corrupt PNG: no IDAT chunk")
    raw = _inflate(compressed, header.height * (header.stride + 1))
    return _to_image(header, _unfilter(header, raw))


def _chunks(view: memoryview) -> Iterator[tuple[bytes, memoryview]]:
    """Every chunk after the signature, CRC checked, one at a time (so IHDR is judged before the rest
    is read); stops after IEND."""
    offset = len(SIGNATURE)
    while offset < len(view):
        if offset + 8 > len(view):
            raise ImageError("truncated PNG: a chunk header is cut off")
        length, chunk_type = struct.unpack(">I4s", view[offset : offset + 8])
        if length > _MAX_CHUNK_LENGTH:
            raise ImageError(f"corrupt PNG: chunk length {length} is over the PNG limit")
        if not chunk_type.isalpha():
            raise ImageError(f"corrupt PNG: invalid chunk type {chunk_type!r}")
        end = offset + 8 + length
        if end + 4 > len(view):
            raise ImageError(f"truncated PNG: the {chunk_type.decode()} chunk is cut off")
        body = view[offset + 8 : end]
        (crc,) = struct.unpack(">I", view[end : end + 4])
        if zlib.crc32(body, zlib.crc32(chunk_type)) != crc:
            raise ImageError(f"corrupt PNG: CRC mismatch in the {chunk_type.decode()} chunk")
        yield chunk_type, body
        offset = end + 4
        if chunk_type == b"IEND":
            return


def _read_header(body: memoryview, max_pixels: int) -> _Header:
    if len(body) != 13:
        raise ImageError(f"corrupt PNG: IHDR has {len(body)} bytes, not 13")
    width, height, depth, colour_type, compression, filter_method, interlace = struct.unpack(">IIBBBBB", body)
    if not (0 < width <= _MAX_DIMENSION and 0 < height <= _MAX_DIMENSION):
        raise ImageError(f"corrupt PNG: invalid dimensions {width}x{height}")
    if colour_type not in _CHANNELS:
        name = _COLOUR_NAMES.get(colour_type, f"unknown ({colour_type})")
        raise ImageError(f"unsupported PNG colour type {name}: only grayscale, RGB and their alpha forms")
    if depth != 8:
        raise ImageError(f"unsupported PNG bit depth {depth}: only 8 bits per channel")
    if compression != 0 or filter_method != 0:
        raise ImageError("unsupported PNG: unknown compression or filter method")
    if interlace != 0:
        raise ImageError("unsupported PNG: interlaced (Adam7) images are not supported")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image too large: {width}x{height} is {width * height} pixels, the limit is {max_pixels}"
        )
    return _Header(width=width, height=height, colour_type=colour_type)


def _inflate(compressed: Sequence[bytes], expected: int) -> bytes:
    """Inflate the IDAT stream, never producing more than ``expected`` + 1 bytes."""
    inflater = zlib.decompressobj()
    out = bytearray()
    try:
        for piece in compressed:
            data = piece
            while data and len(out) <= expected:
                out += inflater.decompress(data, expected + 1 - len(out))
                data = inflater.unconsumed_tail
            if len(out) > expected:
                break
    except zlib.error as error:
        raise ImageError(f"corrupt PNG: the image data does not inflate ({error})") from error
    if len(out) > expected:
        raise ImageError("corrupt PNG: more image data than IHDR declares")
    if len(out) < expected or not inflater.eof:
        raise ImageError(f"truncated PNG: {len(out)} of {expected} bytes of image data")
    return bytes(out)


def _unfilter(header: _Header, raw: bytes) -> bytearray:
    """Undo the per-row filters (PNG spec section 9) into plain rows of ``stride`` bytes."""
    bpp, stride = header.channels, header.stride
    pixels = bytearray(header.height * stride)
    previous = bytes(stride)
    for y in range(header.height):
        start = y * (stride + 1)
        kind = raw[start]
        line = raw[start + 1 : start + 1 + stride]
        if kind == FILTER_NONE:
            row = bytearray(line)
        elif kind == FILTER_SUB:
            row = _unsub(line, bpp)
        elif kind == FILTER_UP:
            row = bytearray(_add_bytes(line, previous))
        elif kind == FILTER_AVERAGE:
            row = _unaverage(line, previous, bpp)
        elif kind == FILTER_PAETH:
            row = _unpaeth(line, previous, bpp)
        else:
            raise ImageError(f"corrupt PNG: unknown filter type {kind} on row {y}")
        pixels[y * stride : (y + 1) * stride] = row
        previous = bytes(row)
    return pixels


def _unsub(line: bytes, bpp: int) -> bytearray:
    row = bytearray(len(line))
    for channel in range(bpp):  # a running sum per channel, reduced mod 256 at the end
        row[channel::bpp] = bytes(value & 0xFF for value in accumulate(line[channel::bpp]))
    return row


def _unaverage(line: bytes, previous: bytes, bpp: int) -> bytearray:
    row = bytearray(line)
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
    return row


def _unpaeth(line: bytes, previous: bytes, bpp: int) -> bytearray:
    row = bytearray(line)
    for i in range(len(row)):
        if i >= bpp:
            a, b, c = row[i - bpp], previous[i], previous[i - bpp]
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
        else:
            predictor = previous[i]  # a and c are 0 at the left edge, so Paeth picks b
        row[i] = (row[i] + predictor) & 0xFF
    return row


def _masks(length: int) -> tuple[int, int]:
    return int.from_bytes(b"\x7f" * length, "little"), int.from_bytes(b"\x80" * length, "little")


def _add_bytes(a: bytes, b: bytes) -> bytes:
    """Bytewise (a + b) mod 256 over a whole row at once, as one big-integer operation (SWAR)."""
    low, high = _masks(len(a))
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    return (((x & low) + (y & low)) ^ ((x ^ y) & high)).to_bytes(len(a), "little")


def _subtract_bytes(a: bytes, b: bytes) -> bytes:
    """Bytewise (a - b) mod 256 over a whole row at once (SWAR; the top bit stops borrows)."""
    low, high = _masks(len(a))
    x, y = int.from_bytes(a, "little"), int.from_bytes(b, "little")
    return (((x | high) - (y & low)) ^ ((x ^ y ^ high) & high)).to_bytes(len(a), "little")


def _to_image(header: _Header, pixels: bytearray) -> Image:
    count = header.width * header.height
    if header.colour_type in (2, 6):
        return Image(header.width, header.height, header.channels, bytes(pixels))
    if header.colour_type == 0:
        rgb = bytearray(count * 3)
        for channel in range(3):
            rgb[channel::3] = pixels
        return Image(header.width, header.height, 3, bytes(rgb))
    gray, alpha = pixels[0::2], pixels[1::2]  # colour type 4: grayscale + alpha
    rgba = bytearray(count * 4)
    for channel in range(3):
        rgba[channel::4] = gray
    rgba[3::4] = alpha
    return Image(header.width, header.height, 4, bytes(rgba))


# -- encoding -------------------------------------------------------------------------------


def encode(image: Image, *, filter_type: int = FILTER_UP, level: int = 6) -> bytes:
    """Encode as an 8-bit RGB or RGBA PNG; the Up filter is fast here and compresses photos well."""
    if filter_type not in (FILTER_NONE, FILTER_UP):
        raise ImageError(f"the encoder writes filter type 0 (None) or 2 (Up), not {filter_type}")
    stride = image.width * image.channels
    colour_type = 6 if image.channels == 4 else 2
    pixels = image.pixels
    filtered = bytearray()
    previous = bytes(stride)
    for y in range(image.height):
        row = pixels[y * stride : (y + 1) * stride]
        filtered.append(filter_type)
        filtered += _subtract_bytes(row, previous) if filter_type == FILTER_UP else row
        previous = row
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, colour_type, 0, 0, 0)
    return b"".join(
        (
            SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(bytes(filtered), level)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(chunk_type: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(chunk_type))
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", crc)


# -- resizing -------------------------------------------------------------------------------


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The largest size within the box with the same aspect ratio; never larger than the original."""
    if min(width, height, max_width, max_height) < 1:
        raise ImageError(f"sizes must be positive: {width}x{height} into {max_width}x{max_height}")
    scale = min(max_width / width, max_height / height, 1.0)
    # Halves round up (62.5 -> 63), as people expect; Python's round() would give the even 62.
    return (
        max(1, min(max_width, math.floor(width * scale + 0.5))),
        max(1, min(max_height, math.floor(height * scale + 0.5))),
    )


def resize_to_fit(image: Image, max_width: int, max_height: int) -> Image:
    """Scale ``image`` down to fit within ``max_width`` x ``max_height``, keeping its aspect ratio."""
    width, height = fit_size(image.width, image.height, max_width, max_height)
    return resize(image, width, height)


def resize(image: Image, width: int, height: int) -> Image:
    """Resample to exactly ``width`` x ``height``: each output pixel is the area-weighted mean of
    the source pixels it covers (box filter), computed separably, one source row at a time.
    """
    if width < 1 or height < 1:
        raise ImageError(f"the target size must be positive, got {width}x{height}")
    if (width, height) == (image.width, image.height):
        return image
    channels, alpha = image.channels, image.channels == 4
    columns = _box_weights(image.width, width)
    rows = _box_weights(image.height, height)
    stride = image.width * channels
    pixels = memoryview(image.pixels)
    cache: dict[int, list[float]] = {}
    out = bytearray(width * height * channels)
    for y, row_weights in enumerate(rows):
        first = row_weights[0][0]
        for stale in [i for i in cache if i < first]:
            del cache[stale]
        total = [0.0] * (width * channels)
        for source_y, weight in row_weights:
            if source_y not in cache:
                cache[source_y] = _resample_row(
                    pixels[source_y * stride : (source_y + 1) * stride], columns, channels, alpha
                )
            for i, value in enumerate(cache[source_y]):
                total[i] += value * weight
        out[y * width * channels : (y + 1) * width * channels] = _to_bytes(total, channels, alpha)
    return Image(width, height, channels, bytes(out))


def _box_weights(source: int, target: int) -> list[list[tuple[int, float]]]:
    """For each target index, the source indices it covers and their weights (summing to 1)."""
    scale = source / target
    weights: list[list[tuple[int, float]]] = []
    for i in range(target):
        start, end = i * scale, (i + 1) * scale
        covered = []
        for j in range(math.floor(start), min(source, math.ceil(end))):
            overlap = min(end, j + 1) - max(start, j)
            if overlap > 1e-12:
                covered.append((j, overlap / scale))
        weights.append(covered)
    return weights


def _resample_row(
    row: memoryview, columns: list[list[tuple[int, float]]], channels: int, alpha: bool
) -> list[float]:
    """One source row resampled horizontally; colour premultiplied by alpha for RGBA."""
    out: list[float] = []
    for covered in columns:
        sums = [0.0] * channels
        for x, weight in covered:
            base = x * channels
            if alpha:
                a = row[base + 3] * weight
                sums[0] += row[base] * a
                sums[1] += row[base + 1] * a
                sums[2] += row[base + 2] * a
                sums[3] += a
            else:
                for c in range(channels):
                    sums[c] += row[base + c] * weight
        out += sums
    return out


def _to_bytes(values: list[float], channels: int, alpha: bool) -> bytes:
    if alpha:  # un-premultiply: colour sums were weighted by alpha
        for i in range(0, len(values), 4):
            a = values[i + 3]
            for c in range(3):
                values[i + c] = values[i + c] / a if a > 0 else 0.0
    return bytes(min(255, max(0, math.floor(value + 0.5))) for value in values)


# -- test images ----------------------------------------------------------------------------


def gradient(width: int, height: int, *, alpha: bool = False) -> Image:
    """A deterministic test picture: red grows left to right, green top to bottom, blue diagonal;
    with ``alpha`` the opacity fades from opaque at the top to half-transparent at the bottom.
    """
    channels = 4 if alpha else 3
    out = bytearray()
    for y in range(height):
        green = y * 255 // max(1, height - 1)
        opacity = 255 - (y * 128 // max(1, height - 1))
        for x in range(width):
            red = x * 255 // max(1, width - 1)
            blue = (x + y) * 255 // max(1, width + height - 2)
            out += bytes((red, green, blue, opacity)[:channels])
    return Image(width, height, channels, bytes(out))
