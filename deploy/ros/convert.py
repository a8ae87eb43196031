"""sensor_msgs/Image and CameraInfo contents <-> contract arrays, the same for ROS 1 and ROS 2.

Both ROS versions give an Image the same fields (height, width, encoding, is_bigendian, step, data),
so the adapters pass the fields and the conversion lives here once.

Depth follows REP 118: 32FC1 in metres with NaN for "no return", +inf too far, -inf too close;
16UC1 in millimetres with 0 for "no return". The contract gets metres, float32, with +inf for no
return or too far and 0 for too close.

Intrinsics: ROS's K puts pixel centres at integer coordinates; the contract (contract.py) puts
pixel (r, c)'s centre at (c + 0.5, r + 0.5). So cx, cy differ by half a pixel between the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RGB = ("rgb8", "bgr8")
DEPTH = ("32FC1", "16UC1")


def _rows(height: int, width: int, step: int, data: Any, itemsize: int, channels: int, dtype: str) -> np.ndarray:
    """(height, width, channels) from row-padded image bytes."""
    buf = np.frombuffer(memoryview(data), np.uint8)
    row = width * channels * itemsize
    if step < row or len(buf) < step * height:
        raise ValueError(f"image data of {len(buf)} bytes (step {step}) is too short for {height}x{width}x{channels}")
    rows = buf[: step * height].reshape(height, step)[:, :row]
    return np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)


def decode_image(height: int, width: int, encoding: str, step: int, is_bigendian: int, data: Any) -> np.ndarray:
    """An Image's pixels as the contract wants them: uint8 (H, W, 3) RGB or float32 (H, W) metres."""
    if encoding in RGB:
        rgb = _rows(height, width, step, data, 1, 3, "u1")
        return np.ascontiguousarray(rgb[..., ::-1]) if encoding == "bgr8" else rgb
    order = ">" if is_bigendian else "<"
    if encoding == "32FC1":
        depth = _rows(height, width, step, data, 4, 1, f"{order}f4")[..., 0].astype(np.float32)
        depth[np.isnan(depth) | (depth == np.inf)] = np.inf
        depth[depth == -np.inf] = 0.0
        return depth
    if encoding == "16UC1":
        mm = _rows(height, width, step, data, 2, 1, f"{order}u2")[..., 0]
        depth = mm.astype(np.float32) / 1000.0
        depth[mm == 0] = np.inf
        return depth
    raise ValueError(f"unsupported image encoding {encoding!r}; the bridge reads {', '.join(RGB + DEPTH)}")


def encode_image(array: np.ndarray, encoding: str) -> dict[str, Any]:
    """Image fields (height, width, encoding, is_bigendian, step, data) of a contract array."""
    if encoding in RGB:
        pixels = np.ascontiguousarray(array[..., ::-1] if encoding == "bgr8" else array, np.uint8)
        channels = 3
    elif encoding == "32FC1":
        pixels, channels = np.ascontiguousarray(array, "<f4"), 1
    elif encoding == "16UC1":
        mm = np.where(np.isfinite(array), np.round(array * 1000.0), 0)
        pixels, channels = np.clip(mm, 0, 65535).astype("<u2"), 1
    else:
        raise ValueError(f"unsupported image encoding {encoding!r}; valid: {', '.join(RGB + DEPTH)}")
    height, width = pixels.shape[:2]
    step = width * channels * pixels.dtype.itemsize
    return dict(height=height, width=width, encoding=encoding, is_bigendian=0, step=step, data=pixels.tobytes())


def intrinsics_from_ros(k: Any) -> np.ndarray:
    """The contract's K (3, 3) float32 from a CameraInfo's row-major K (9 values)."""
    matrix = np.asarray(k, np.float64).reshape(3, 3).copy()
    matrix[0, 2] += 0.5
    matrix[1, 2] += 0.5
    return matrix.astype(np.float32)


def intrinsics_to_ros(matrix: np.ndarray) -> list[float]:
    """A CameraInfo's K (9 values, row-major) from the contract's K."""
    k = np.asarray(matrix, np.float64).copy()
    k[0, 2] -= 0.5
    k[1, 2] -= 0.5
    return [float(v) for v in k.reshape(-1)]


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` at the policy's resolution: bilinear for colour, nearest for depth (no invented depths)."""
    if image.shape[:2] == (height, width):
        return image
    from PIL import Image

    if image.ndim == 3:
        return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    return np.asarray(Image.fromarray(image.astype(np.float32)).resize((width, height), Image.NEAREST))


def scale_intrinsics(matrix: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """K of an image resized from src (H, W) to dst (H, W), in the contract's pixel convention."""
    sy, sx = dst[0] / src[0], dst[1] / src[1]
    return (np.diag([sx, sy, 1.0]) @ np.asarray(matrix, np.float64)).astype(np.float32)
