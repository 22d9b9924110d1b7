"""A PNG writer that takes an image band by band, so an output larger than memory can be written.

PNG (ISO/IEC 15948) stores an image as a zlib stream of rows, each row prefixed by a filter-type
byte; the stream may be split over any number of IDAT chunks. :class:`PngStream` compresses the
rows as they arrive with the "Up" filter (type 2: each byte minus the byte above it, modulo 256,
which makes smooth photographs compress well and is one vectorised subtraction) and writes one
IDAT chunk per band. Memory stays at one band plus zlib's window. 8- and 16-bit gray, gray+alpha,
RGB and RGBA are supported; an ICC profile (iCCP) and EXIF data (eXIf) can be carried.

The file is written under a temporary name and renamed into place by :meth:`PngStream.close`, so an
interrupted run leaves no half-written image under the final name.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from types import TracebackType

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type by number of channels.
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
FILTER_UP = 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


class PngStream:
    """Write a ``height x width`` PNG band by band: ``with PngStream(path, w, h) as png: png.write(rows)``.

    ``write`` takes ``(rows, width, channels)`` (or ``(rows, width)`` for gray) arrays of ``uint8``
    or ``uint16``, top to bottom; ``close`` checks that exactly ``height`` rows came and renames the
    file into place. Leaving the ``with`` block on an exception removes the partial file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        channels: int = 3,
        bit_depth: int = 8,
        compress_level: int = 6,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
    ) -> None:
        if channels not in COLOUR_TYPES:
            raise ValueError(f"channels must be one of {sorted(COLOUR_TYPES)}, got {channels}")
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
        if not (0 < width < 2**31 and 0 < height < 2**31):
            raise ValueError(f"PNG dimensions must be 1 .. 2^31 - 1, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height, self.channels, self.bit_depth = width, height, channels, bit_depth
        self.dtype = np.dtype(">u2") if bit_depth == 16 else np.dtype(np.uint8)
        self.rows_written = 0
        self._previous = np.zeros(width * channels * self.dtype.itemsize, dtype=np.uint8)
        self._compressor = zlib.compressobj(compress_level)
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._file = open(self._tmp, "wb")
        header = struct.pack(">IIBBBBB", width, height, bit_depth, COLOUR_TYPES[channels], 0, 0, 0)
        self._file.write(SIGNATURE + _chunk(b"IHDR", header))
        if icc_profile:
            self._file.write(_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
        if exif:  # the chunk holds the TIFF data itself, without JPEG's APP1 "Exif\0\0" prefix
            self._file.write(_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` (``(n, width, channels)``, or ``(n, width)`` for gray) below those written."""
        if rows.ndim == 2 and self.channels == 1:
            rows = rows[:, :, None]
        if rows.ndim != 3 or rows.shape[1:] != (self.width, self.channels):
            raise ValueError(f"expected rows of shape (n, {self.width}, {self.channels}), got {rows.shape}")
        if rows.dtype != np.dtype(np.uint16 if self.bit_depth == 16 else np.uint8):
            raise ValueError(f"expected {self.bit_depth}-bit rows, got {rows.dtype}")
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError(f"{self.rows_written + rows.shape[0]} rows for an image of height {self.height}")
        raw = np.ascontiguousarray(rows, dtype=self.dtype).view(np.uint8).reshape(rows.shape[0], -1)
        above = np.concatenate([self._previous[None], raw[:-1]])
        filtered = np.empty((raw.shape[0], raw.shape[1] + 1), dtype=np.uint8)
        filtered[:, 0] = FILTER_UP
        np.subtract(raw, above, out=filtered[:, 1:])
        data = self._compressor.compress(filtered.tobytes())
        if data:
            self._file.write(_chunk(b"IDAT", data))
        self._previous = raw[-1].copy()
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        """Finish the stream and rename the file into place; raises if rows are missing."""
        if self.rows_written != self.height:
            raise ValueError(f"only {self.rows_written} of {self.height} rows were written")
        self._file.write(_chunk(b"IDAT", self._compressor.flush()) + _chunk(b"IEND", b""))
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file (nothing appears under the final name)."""
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PngStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
