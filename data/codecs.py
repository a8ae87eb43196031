"""Opt-in lossy image frames: each frame encoded alone (WebP or JPEG), so a training window decodes only its frames.

For large real-robot datasets, where lossless frames still cost kilobytes each. In an episode file an
encoded feature is

    obs/rgb/<camera>            (n_bytes,) uint8   the frames' encoded bytes back to back (chunked, fletcher32)
    frame_offsets/rgb/<camera>  (T + 1,) int64     frame t is bytes offsets[t] .. offsets[t+1]-1
    attrs of obs/rgb/<camera>:  codec, quality, frame_shape (H, W, 3), header (JPEG only, below)

and readers hand out (T, H, W, 3) uint8 frames exactly as for the lossless settings.

WebP frames are the smaller at a given error; JPEG frames decode several times faster through
libjpeg-turbo (`simplejpeg`), which is what reading frames from disk costs. Every JPEG frame of one
size and quality starts with the same ~620 bytes (quantisation and standard Huffman tables, frame and
scan headers): an episode stores them once, as the `header` attribute, and each frame's bytes after
them, so that a 64x64 frame takes ~0.9 KiB instead of ~1.5. A frame is `header + its bytes`; an empty
header means whole frames. Sizes, errors and read speeds: docs/storage.md.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyact.errors import ConfigError, DatasetError

LOSSY_COMPRESSIONS = ("webp", "jpeg")
DEFAULT_IMAGE_QUALITY = 75
OFFSETS_GROUP = "frame_offsets"
CODEC_ATTR = "codec"
QUALITY_ATTR = "quality"
SHAPE_ATTR = "frame_shape"
HEADER_ATTR = "header"
# Encoded frames are a few hundred bytes to a few KiB: a window's frames then span one or two chunks,
# and the checksum covers each chunk as for every other array.
BLOB_CHUNK_BYTES = 16 * 1024
_PILLOW_FORMAT = {"webp": "WEBP"}
_JPEG_SCAN_START = b"\xff\xda"  # the SOS marker: the scan header, then the frame's entropy-coded data


def check_quality(quality: Any) -> int:
    """The lossy codecs' quality, 1 (smallest) to 100 (closest): ConfigError otherwise."""
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= quality <= 100:
        raise ConfigError(f"image_quality must be an integer from 1 to 100, got {quality!r}")
    return int(quality)


def offsets_path(name: str) -> str:
    """Where the frame offsets of the encoded array `name` ("obs/rgb/corner") live in the episode file."""
    return f"{OFFSETS_GROUP}/{name.removeprefix('obs/')}"


def encode_frames(frames: np.ndarray, codec: str, quality: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """(T, H, W, 3) uint8 frames as their encoded bytes back to back (n_bytes,), offsets (T + 1,) and the
    header every frame starts with, stored once and cut from each frame (empty: whole frames)."""
    encoded = _encode_jpeg(frames, quality) if codec == "jpeg" else _encode_pillow(frames, codec, quality)
    header = _shared_jpeg_header(encoded) if codec == "jpeg" else b""
    bodies = [np.frombuffer(e, np.uint8)[len(header) :] for e in encoded]
    offsets = np.zeros(len(bodies) + 1, np.int64)
    np.cumsum([len(b) for b in bodies], out=offsets[1:])
    return np.concatenate(bodies), offsets, header


def _encode_pillow(frames: np.ndarray, codec: str, quality: int) -> list[bytes]:
    from PIL import Image

    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format=_PILLOW_FORMAT[codec], quality=quality)
        encoded.append(buffer.getvalue())
    return encoded


def _encode_jpeg(frames: np.ndarray, quality: int) -> list[bytes]:
    import simplejpeg

    return [
        simplejpeg.encode_jpeg(np.ascontiguousarray(f), quality=quality, colorspace="RGB", colorsubsampling="420")
        for f in frames
    ]


def _shared_jpeg_header(encoded: list[bytes]) -> bytes:
    """The bytes up to the end of the scan header when every frame has the same ones, else b""."""
    first = encoded[0]
    sos = first.find(_JPEG_SCAN_START)
    if sos < 0:
        return b""
    header = first[: sos + 2 + int.from_bytes(first[sos + 2 : sos + 4], "big")]
    return header if all(e.startswith(header) for e in encoded) else b""


def decode_frames(
    data: np.ndarray, offsets: Sequence[int], shape: tuple[int, ...], codec: str, header: bytes = b""
) -> np.ndarray:
    """Frames (n, *shape) from `data`, the encoded bytes of n frames whose bounds are `offsets` (n + 1,),
    each after the shared `header`."""
    start = int(offsets[0])
    out = np.empty((len(offsets) - 1, *shape), np.uint8)
    frames = [header + data[int(offsets[i]) - start : int(offsets[i + 1]) - start].tobytes() for i in range(len(out))]
    if codec == "jpeg":
        _decode_jpeg(frames, out)
    else:
        _decode_pillow(frames, out, codec)
    return out


def _decode_pillow(frames: list[bytes], out: np.ndarray, codec: str) -> None:
    """Naming the one format and skipping a mode conversion of RGB frames halves Pillow's cost per
    64x64 frame (about 260 -> 140 us here)."""
    from PIL import Image

    for i, frame in enumerate(frames):
        with Image.open(io.BytesIO(frame), formats=[_PILLOW_FORMAT[codec]]) as image:
            out[i] = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _decode_jpeg(frames: list[bytes], out: np.ndarray) -> None:
    """Straight into `out` through libjpeg-turbo: ~35 us a 64x64 frame here, against ~150 us through
    Pillow, whose Python-side parsing of each file costs more than the decoding."""
    import simplejpeg

    for i, frame in enumerate(frames):
        try:
            decoded = simplejpeg.decode_jpeg(frame, colorspace="RGB", buffer=out[i])
        except ValueError as e:  # as Pillow does for WebP: readers report undecodable frames as OSError
            raise OSError(f"frame {i} of the range is not a decodable JPEG: {e}") from e
        if decoded.shape != out.shape[1:]:
            raise OSError(f"frame {i} of the range is {list(decoded.shape)}, expected {list(out.shape[1:])}")


@dataclass
class EncodedFrames:
    """An encoded feature of one open episode file, read and decoded frame range by frame range."""

    data: Any  # the (n_bytes,) uint8 h5py dataset
    offsets: np.ndarray  # (T + 1,) int64
    shape: tuple[int, ...]  # one decoded frame: (H, W, 3)
    codec: str  # one of LOSSY_COMPRESSIONS
    header: bytes = b""  # what every frame starts with, cut from each (JPEG)

    @property
    def length(self) -> int:
        return len(self.offsets) - 1

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Frames lo..hi-1, (hi - lo, H, W, 3) uint8: one read of their bytes, then one decode per frame."""
        bounds = self.offsets[lo : hi + 1]
        data = self.data[int(bounds[0]) : int(bounds[-1])]
        return decode_frames(data, bounds, self.shape, self.codec, self.header)


def stored_header(data: Any) -> bytes:
    """The header an encoded feature's frames share (`data`: its h5py dataset); b"" when none is stored."""
    return np.asarray(data.attrs.get(HEADER_ATTR, np.zeros(0, np.uint8)), np.uint8).tobytes()


def check_encoded(data: Any, offsets: Any, length: int, shape: tuple[int, ...], where: str) -> None:
    """DatasetError when an encoded feature's arrays do not describe `length` frames of `shape`."""
    codec = str(data.attrs.get(CODEC_ATTR))
    if codec not in LOSSY_COMPRESSIONS:
        raise DatasetError(f"{where} is encoded with {codec!r}; this polyact decodes {list(LOSSY_COMPRESSIONS)}")
    stored_shape = tuple(int(n) for n in data.attrs.get(SHAPE_ATTR, ()))
    if data.dtype != np.uint8 or data.ndim != 1 or stored_shape != tuple(shape):
        raise DatasetError(
            f"{where}: encoded frames are {data.dtype}{list(data.shape)} of frames {list(stored_shape)}, "
            f"expected uint8 bytes of frames {list(shape)}"
        )
    if offsets is None or offsets.dtype != np.int64 or offsets.shape != (length + 1,):
        found = "none" if offsets is None else f"{offsets.dtype}{list(offsets.shape)}"
        raise DatasetError(f"{where}: frame offsets are {found}, expected int64[{length + 1}]")
