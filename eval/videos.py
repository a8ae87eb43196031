"""mp4 videos of chosen episodes: by default the first success and the first failure of each task.

"First" means the lowest episode index, so the chosen set does not depend on which worker finished
first, nor on where a run was killed and resumed. Workers keep frames only for episodes that can still
be chosen (`should_record`); an episode's video is written before its result is recorded, and videos
that a lower-index episode has since displaced are deleted by `prune` at the end of the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from polyact.eval.store import EpisodeResult

VIDEO_DIR = "videos"


def outcome(success: bool) -> str:
    return "success" if success else "failure"


def video_name(task: str, index: int, success: bool, instruction: str) -> str:
    """`<task>_ep<index>_<success|failure>_<instruction as a file-name slug>.mp4`."""
    slug = re.sub(r"[^a-z0-9]+", "-", instruction.lower()).strip("-")[:80].rstrip("-") or "no-instruction"
    return f"{task}_ep{index:04d}_{outcome(success)}_{slug}.mp4"


class VideoChooser:
    """Tracks, per task and outcome, the lowest finished episode index."""

    def __init__(self, root: Path, finished: Iterable[EpisodeResult]):
        self.dir = Path(root) / VIDEO_DIR
        self._first: dict[tuple[str, bool], int] = {}
        for r in finished:
            self._note(r)

    def _note(self, r: EpisodeResult) -> bool:
        key = (r.task, r.success)
        if r.index < self._first.get(key, r.index + 1):
            self._first[key] = r.index
            return True
        return False

    def should_record(self, task: str, index: int) -> bool:
        """Whether episode `index` can still become its task's first success or first failure."""
        return any(index < self._first.get((task, s), index + 1) for s in (True, False))

    def finished(self, r: EpisodeResult, frames: np.ndarray | None, fps: float) -> Path | None:
        """Write the episode's video if it is (so far) its task's first of its outcome."""
        if not self._note(r) or frames is None:
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / video_name(r.task, r.index, r.success, r.instruction)
        write_mp4(path, frames, fps)
        return path

    def prune(self, results: Iterable[EpisodeResult]) -> tuple[list[Path], list[str]]:
        """Delete videos that are not of a chosen episode; return the kept ones and the chosen episodes
        without a video (finished in a session that ran with videos=false)."""
        wanted = {
            video_name(r.task, r.index, r.success, r.instruction)
            for r in results
            if self._first.get((r.task, r.success)) == r.index
        }
        kept = []
        for path in sorted(self.dir.glob("*.mp4")) if self.dir.exists() else []:
            if path.name in wanted:
                kept.append(path)
            else:
                path.unlink()
        missing = sorted(wanted - {p.name for p in kept})
        return kept, missing


def write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    """H.264 mp4 of (T, H, W, 3) uint8 frames, written to a temporary name and renamed into place."""
    import imageio.v3 as iio

    tmp = path.with_name(path.stem + ".partial.mp4")
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # H.264 yuv420p: even sizes
    iio.imwrite(tmp, frames, fps=fps, codec="libx264", macro_block_size=1, plugin="FFMPEG")
    tmp.replace(path)
