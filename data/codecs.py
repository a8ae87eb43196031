"""Opt-in lossy image frames: each frame encoded alone as WebP, so a training window decodes only its frames.

For large real-robot datasets, where lossless frames still cost kilobytes each. In an episode file an
encoded feature is

    obs/rgb/<camera>            (n_bytes,) uint8   the frames' encoded bytes back to back (chunked, fletcher32)
    frame_offsets/rgb/<camera>  (T + 1,) int64     frame t is bytes offsets[t] .. offsets[t+1]-1
    attrs of obs/rgb/<camera>:  codec, quality, frame_shape (H, W, 3)

and readers hand out (T, H, W, 3) uint8 frames exactly as for the lossless settings. Sizes, errors and
read speeds: docs/storage.md.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyact.errors import ConfigError, DatasetError

LOSSY_COMPRESSIONS = ("webp",)
DEFAULT_IMAGE_QUALITY = 75
OFFSETS_GROUP = "frame_offsets"
CODEC_ATTR = "codec"
QUALITY_ATTR = "quality"
SHAPE_ATTR = "frame_shape"
# Encoded frames are a few hundred bytes to a few KiB: a window's frames then span one or two chunks,
# and the checksum covers each chunk as for every other array.
BLOB_CHUNK_BYTES = 16 * 1024
_PILLOW_FORMAT = {"webp": "WEBP"}


def check_quality(quality: Any) -> int:
    """The lossy codecs' quality, 1 (smallest) to 100 (closest): ConfigError otherwise."""
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= quality <= 100:
        raise ConfigError(f"image_quality must be an integer from 1 to 100, got {quality!r}")
    return int(quality)


def offsets_path(name: str) -> str:
    """Where the frame offsets of the encoded array `name` ("obs/rgb/corner") live in the episode file."""
    return f"{OFFSETS_GROUP}/{name.removeprefix('obs/')}"


def encode_frames(frames: np.ndarray, codec: str, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) uint8 frames as their encoded bytes back to back (n_bytes,) and offsets (T + 1,)."""
    from PIL import Image

    encoded = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format=_PILLOW_FORMAT[codec], quality=quality)
        encoded.append(np.frombuffer(buffer.getvalue(), np.uint8))
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.concatenate(encoded), offsets


def decode_frames(data: np.ndarray, offsets: Sequence[int], shape: tuple[int, ...], codec: str) -> np.ndarray:
    """Frames (n, *shape) from `data`, the encoded bytes of n frames whose bounds are `offsets` (n + 1,).

    Naming the one format and skipping a mode conversion of RGB frames halves Pillow's cost per
    64x64 frame (about 260 -> 140 us here)."""
    from PIL import Image

    start = int(offsets[0])
    out = np.empty((len(offsets) - 1, *shape), np.uint8)
    for i in range(len(out)):
        frame = data[int(offsets[i]) - start : int(offsets[i + 1]) - start]
        with Image.open(io.BytesIO(frame.tobytes()), formats=[_PILLOW_FORMAT[codec]]) as image:
            out[i] = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return out


@dataclass
class EncodedFrames:
    """An encoded feature of one open episode file, read and decoded frame range by frame range."""

    data: Any  # the (n_bytes,) uint8 h5py dataset
    offsets: np.ndarray  # (T + 1,) int64
    shape: tuple[int, ...]  # one decoded frame: (H, W, 3)
    codec: str  # one of LOSSY_COMPRESSIONS

    @property
    def length(self) -> int:
        return len(self.offsets) - 1

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Frames lo..hi-1, (hi - lo, H, W, 3) uint8: one read of their bytes, then one decode per frame."""
        bounds = self.offsets[lo : hi + 1]
        return decode_frames(self.data[int(bounds[0]) : int(bounds[-1])], bounds, self.shape, self.codec)


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
