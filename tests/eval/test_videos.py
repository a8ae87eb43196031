"""Choosing the videos: the lowest-index success and failure per task, whatever order episodes finish in."""

from __future__ import annotations

import numpy as np

from polyact.eval.store import EpisodeResult
from polyact.eval.videos import VideoChooser, video_name

FRAMES = np.zeros((3, 8, 8, 3), np.uint8)


def result(index: int, success: bool, task: str = "push-v3") -> EpisodeResult:
    return EpisodeResult(task, index, 1_000_000 + index, success, 2, "Push the puck, to the goal!")


def test_video_names_carry_a_file_safe_instruction():
    assert video_name("push-v3", 7, False, "Push the puck, to the goal!") == (
        "push-v3_ep0007_failure_push-the-puck-to-the-goal.mp4"
    )


def test_the_lowest_index_wins_whatever_the_finishing_order(tmp_path):
    chooser = VideoChooser(tmp_path, [result(5, True)])  # resumed: episode 5 succeeded earlier
    assert chooser.should_record("push-v3", 3) and chooser.should_record("push-v3", 9)
    assert chooser.finished(result(3, False), FRAMES, 10.0) is not None  # first failure so far
    assert not chooser.should_record("push-v3", 9)  # a success (5) and a failure (3) come before it
    assert chooser.finished(result(4, False), FRAMES, 10.0) is None  # failure 3 comes first
    assert chooser.finished(result(1, True), FRAMES, 10.0) is not None  # displaces success 5
    assert chooser.finished(result(0, True, "reach-v3"), None, 10.0) is None  # not recorded: no video
    results = [result(i, s) for i, s in [(1, True), (3, False), (4, False), (5, True)]] + [result(0, True, "reach-v3")]
    (tmp_path / "videos" / video_name("push-v3", 5, True, "x")).write_bytes(b"stale")
    kept, missing = chooser.prune(results)
    assert [p.name for p in kept] == [
        "push-v3_ep0001_success_push-the-puck-to-the-goal.mp4",
        "push-v3_ep0003_failure_push-the-puck-to-the-goal.mp4",
    ]
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == [p.name for p in kept]
    assert missing == ["reach-v3_ep0000_success_push-the-puck-to-the-goal.mp4"]
