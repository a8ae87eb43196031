"""LeRobot's camera videos read and written with PyAV: episodes one after another in one mp4 per file.

Reading goes forward through a file once (LeRobot's episodes follow each other in it), keeping the
frames of one episode at a time, so memory holds one episode, never a whole file. A frame is matched to
the time asked for when it is the nearest one and less than half a frame period away; anything else
(a gap, a missing frame) is refused rather than filled with a neighbour.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from polyact.errors import DatasetError

# LeRobot 0.4.4's encoding defaults (video_utils.encode_video_frames): AV1 through SVT-AV1, 4:2:0 chroma,
# a keyframe every 2 frames (random access costs at most one extra frame), constant rate factor 30.
DEFAULT_CODEC = "libsvtav1"
DEFAULT_CRF = 30
DEFAULT_GOP = 2
PIX_FMT = "yuv420p"


class VideoReader:
    """The frames of one mp4 at given times, decoded in one forward pass (restarting if asked to go back)."""

    def __init__(self, path: Path, fps: float):
        if not path.is_file():
            raise DatasetError(f"video {path} is missing")
        self.path, self.tolerance = path, 0.5 / fps
        self._container: Any = None
        self._frames: Iterator[Any] = iter(())
        self._pending: list[tuple[float, np.ndarray]] = []  # decoded, still needed: (time s, (H, W, 3))
        self._last = -np.inf  # time of the last frame decoded

    def _restart(self) -> None:
        self.close()
        self._container = av.open(str(self.path))
        self._frames = self._container.decode(video=0)
        self._pending, self._last = [], -np.inf

    def _next(self) -> tuple[float, np.ndarray] | None:
        frame = next(self._frames, None)
        if frame is None:
            return None
        self._last = float(frame.time)
        return self._last, frame.to_ndarray(format="rgb24")

    def frames_at(self, times: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8: the frame shown at each of `times` (seconds, ascending) in the file."""
        earliest = self._pending[0][0] if self._pending else self._last  # what is still at hand
        if self._container is None or times[0] < earliest - self.tolerance:
            self._restart()
        out = []
        for t in times.tolist():
            while self._pending and self._pending[0][0] < t - self.tolerance:
                self._pending.pop(0)  # frames before the one asked for (another episode, or skipped)
            while not self._pending or self._pending[-1][0] < t + self.tolerance:
                decoded = self._next()
                if decoded is None:
                    break
                self._pending.append(decoded)
            near = [(abs(time - t), i) for i, (time, _) in enumerate(self._pending) if abs(time - t) < self.tolerance]
            if not near:
                have = ", ".join(f"{time:.4f}" for time, _ in self._pending[:4]) or "none (the file ended)"
                raise DatasetError(
                    f"{self.path}: no frame within {self.tolerance:.4f} s of t = {t:.4f} s (frames near it: {have})"
                )
            out.append(self._pending[min(near)[1]][1])
        return np.stack(out)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class VideoWriter:
    """Frames appended to one mp4 at a constant rate; `seconds` is where the next frame will be shown."""

    def __init__(self, path: Path, fps: float, height: int, width: int, codec: str, crf: int, gop: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints its whole configuration otherwise
        options = {"g": str(gop), "crf": str(crf)}
        if codec == "libsvtav1":
            options["preset"] = "12"  # LeRobot's default: its fastest preset
        try:
            self._container = av.open(str(path), "w")
            self._stream = self._container.add_stream(
                codec, rate=Fraction(fps).limit_denominator(1001), options=options
            )
        except (av.error.FFmpegError, ValueError) as e:
            raise DatasetError(f"cannot write {codec} video to {path}: {e}") from e
        self._stream.pix_fmt, self._stream.height, self._stream.width = PIX_FMT, height, width
        self.path, self.fps, self.frames, self.bytes = path, fps, 0, 0

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def add(self, frames: np.ndarray) -> None:
        """Append (T, H, W, 3) uint8 frames."""
        for image in frames:
            self._mux(self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
            self.frames += 1

    def _mux(self, packets: list[Any]) -> None:
        for packet in packets:
            self.bytes += packet.size
            self._container.mux(packet)

    def close(self) -> None:
        self._mux(self._stream.encode())
        self._container.close()


def video_info(path: Path) -> dict[str, Any]:
    """The `info` LeRobot keeps per video feature in info.json, read back from the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate),
            "video.channels": 3,
            "has_audio": False,
        }
