"""A tiny PNG writer (zlib only) so headless rendering needs neither Qt nor Pillow.

``encode_png(pixels) -> bytes`` / ``write_png(path, pixels)``: uint8 H×W (grey), uint16 H×W (16-bit grey),
uint8 H×W×3 (RGB) or H×W×4 (RGBA).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, *, compression: int = 6) -> bytes:
    if pixels.ndim == 2:
        color_type, channels = 0, 1
    elif pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        color_type, channels = (2, 3) if pixels.shape[2] == 3 else (6, 4)
    else:
        raise ValueError(f"cannot write an array of shape {pixels.shape} as PNG")
    if pixels.dtype == np.uint8:
        bit_depth, data = 8, pixels
    elif pixels.dtype == np.uint16:
        bit_depth, data = 16, pixels.astype(">u2")
    else:
        raise ValueError(f"PNG needs uint8 or uint16 pixels, not {pixels.dtype}")
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(data).view(np.uint8).reshape(height, width * channels * (bit_depth // 8))
    raw = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    raw[:, 0] = 0  # filter type None on every row
    raw[:, 1:] = rows
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), compression))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | Path, pixels: np.ndarray) -> Path:
    path = Path(path)
    path.write_bytes(encode_png(pixels))
    return path
