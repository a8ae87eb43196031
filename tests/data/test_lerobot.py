"""LeRobot v3 datasets in and out: the fixture written by the real LeRobot 0.4.4 (tests/data/fixtures/lerobot_v3,
make_fixture.py says how) imported and checked against its own parquet and videos read directly; a polyact
dataset exported, checked as a LeRobot reader would, and imported back; and what is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from polyact.cli import main
from polyact.data import DatasetWriter, EpisodeDataset
from polyact.data.lerobot_export import LeRobotExportConfig
from polyact.data.lerobot_export import run as export
from polyact.data.lerobot_import import LeRobotImportConfig
from polyact.data.lerobot_import import run as import_
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.errors import DatasetError, UnknownNameError

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot_v3" / "dataset"
FIXTURE_IMAGES = FIXTURE.with_name("dataset_images")  # the same frames as `image` features (PNGs in the parquet)
CAMERAS = ("front", "wrist")  # the fixture's
CAMERAS_EXPORTED = ("corner", "wrist")  # polyact_dataset's
# What AV1 at LeRobot's defaults (crf 30, 4:2:0 chroma) changes in polyact_dataset's render-like 48x64 frames,
# in 0..255 levels: measured 2.5 on average and 4.1 at most in one frame's mean (docs/lerobot.md). Single
# pixels on sharp colour edges differ by much more, because colour is stored at half resolution.
MEAN_ERROR_BOUND = 3.5
FRAME_MEAN_ERROR_BOUND = 6.0


def decode(path: Path) -> np.ndarray:
    """(N, H, W, 3) every frame of a video, as PyAV decodes it to RGB."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def parquet_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_the_fixture_imports_as_its_parquet_and_videos_say(tmp_path: Path) -> None:
    ds = EpisodeDataset(import_(LeRobotImportConfig(src=str(FIXTURE), out=str(tmp_path / "ds"))))
    info = json.loads((FIXTURE / "meta" / "info.json").read_text())
    frames = parquet_rows(FIXTURE / "data" / "chunk-000" / "file-000.parquet")
    tasks = {r["task_index"]: r["__index_level_0__"] for r in parquet_rows(FIXTURE / "meta" / "tasks.parquet")}
    # LeRobot appends each episode's video to the file, so frame k of a file is the frame of row `index` k.
    videos = {c: decode(FIXTURE / f"videos/observation.images.{c}/chunk-000/file-000.mp4") for c in CAMERAS}

    episodes = sorted({r["episode_index"] for r in frames})
    assert len(ds) == len(episodes) == info["total_episodes"]
    assert sorted(ds.tasks) == sorted(set(tasks.values())) and len(ds.tasks) == 2
    assert ds.fps == info["fps"]
    assert ds.env_spec.state_names == tuple(info["features"]["observation.state"]["names"])
    assert ds.env_spec.action.names == tuple(info["features"]["action"]["names"])
    assert sorted(ds.features) == ["rgb/front", "rgb/wrist", "state"]
    for e in episodes:
        rows = [r for r in frames if r["episode_index"] == e]
        episode = ds.load_episode(e)
        assert episode.length == len(rows) and [r["frame_index"] for r in rows] == list(range(len(rows)))
        assert episode.instruction == episode.task == tasks[rows[0]["task_index"]]
        assert episode.success and episode.successes[-1] and not episode.rewards.any()
        np.testing.assert_array_equal(episode.observations["state"], [r["observation.state"] for r in rows])
        np.testing.assert_array_equal(episode.actions, [r["action"] for r in rows])
        span = slice(rows[0]["index"], rows[-1]["index"] + 1)
        for cam in CAMERAS:
            np.testing.assert_array_equal(episode.observations[f"rgb/{cam}"], videos[cam][span])


def drawn(height: int, width: int, episode: int, t: int) -> np.ndarray:
    """The frame make_fixture.py drew for a camera of this size at step t of the episode."""
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([rows * 200 // height + 20, cols * 200 // width + 20, np.full_like(rows, 60 + 40 * episode)], -1)
    left = (2 * t) % (width - 8)
    pixels[8:16, left : left + 8] = (240, 230, 30)
    return pixels.astype(np.uint8)


def test_the_image_fixture_imports_the_frames_exactly(tmp_path: Path) -> None:
    """LeRobot's `image` cameras (use_videos=False) are PNGs in the data files: the import is exact, and
    everything else equals the video fixture's import (the same episodes, recorded the other way)."""
    ds = EpisodeDataset(import_(LeRobotImportConfig(src=str(FIXTURE_IMAGES), out=str(tmp_path / "ds"))))
    info = json.loads((FIXTURE_IMAGES / "meta" / "info.json").read_text())
    assert info["video_path"] is None and not (FIXTURE_IMAGES / "videos").exists()
    assert {info["features"][f"observation.images.{c}"]["dtype"] for c in CAMERAS} == {"image"}
    videos = EpisodeDataset(import_(LeRobotImportConfig(src=str(FIXTURE), out=str(tmp_path / "videos"))))
    assert sorted(ds.features) == sorted(videos.features) == ["rgb/front", "rgb/wrist", "state"]
    assert ds.tasks == videos.tasks and ds.env_spec.state_names == videos.env_spec.state_names
    for e in range(len(ds)):
        episode, recorded = ds.load_episode(e), videos.load_episode(e)
        assert (episode.task, episode.instruction, episode.length) == (
            recorded.task,
            recorded.instruction,
            recorded.length,
        )
        np.testing.assert_array_equal(episode.observations["state"], recorded.observations["state"])
        np.testing.assert_array_equal(episode.actions, recorded.actions)
        for cam in CAMERAS:
            frames = episode.observations[f"rgb/{cam}"]
            want = np.stack([drawn(*frames.shape[1:3], e, t) for t in range(episode.length)])
            np.testing.assert_array_equal(frames, want)  # PNG: every pixel as drawn
            video_error = np.abs(recorded.observations[f"rgb/{cam}"].astype(int) - want).mean()
            assert 0 < video_error <= FRAME_MEAN_ERROR_BOUND  # the same frames, changed by the video fixture's AV1


def test_an_image_without_embedded_bytes_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(FIXTURE_IMAGES, root)
    path = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(path)
    name = "observation.images.wrist"
    column = table.column(name).combine_chunks()
    pngs = column.field("bytes").to_pylist()
    pngs[20] = None  # a frame of episode 1 that names a file instead of embedding it
    emptied = pa.StructArray.from_arrays([pa.array(pngs, pa.binary()), column.field("path")], names=["bytes", "path"])
    pq.write_table(table.set_column(table.column_names.index(name), name, emptied), path)
    with pytest.raises(DatasetError, match="frame 20's 'observation.images.wrist' has no embedded image bytes"):
        import_(LeRobotImportConfig(src=str(root), out=str(tmp_path / "ds")))
    assert not (tmp_path / "ds").exists()


def test_a_mapping_file_renames_cameras_and_tasks(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "cameras:\n  scene: observation.images.front\n"
        "state: observation.state\n"
        'tasks:\n  "open the drawer": drawer-open\n'
    )
    ds = EpisodeDataset(import_(LeRobotImportConfig(src=str(FIXTURE), out=str(tmp_path / "ds"), mapping=str(mapping))))
    assert sorted(ds.features) == ["rgb/scene", "state"]
    assert ds.tasks == {"pick up the red cube": ["pick up the red cube"], "drawer-open": ["open the drawer"]}
    plain = EpisodeDataset(import_(LeRobotImportConfig(src=str(FIXTURE), out=str(tmp_path / "plain"))))
    for e in range(len(ds)):
        np.testing.assert_array_equal(
            ds.load_episode(e).observations["rgb/scene"], plain.load_episode(e).observations["rgb/front"]
        )


def polyact_dataset(path: Path) -> Path:
    """Render-like 48x64 frames from two cameras, depth, goal, rewards, failures and two tasks whose
    instructions differ from their names. A grey patch brightens step by step, so that each frame differs
    from its neighbours by more than the codec changes it."""
    spec = synthetic_env_spec(height=48, width=64, tasks=("reach", "push"))
    with DatasetWriter.for_spec(path, spec) as writer:
        for seed, length in enumerate((9, 14, 6, 11)):
            episode = synthetic_episode(spec, length, seed=seed + 40, rendered=True)
            for cam in spec.camera_names:
                episode.observations[f"rgb/{cam}"][:, :16, :16] = (20 + 15 * np.arange(length))[:, None, None, None]
            writer.add_episode(episode)
    return path


def check_lerobot_layout(root: Path, source: EpisodeDataset) -> None:
    """What LeRobotDataset 0.4.4 reads, checked from the files: info.json, the paths its templates give,
    the episodes' row ranges and video spans, the frame columns, the tasks index and the statistics."""
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == source.fps
    assert (info["total_episodes"], info["total_frames"]) == (len(source), source.num_steps)
    assert info["splits"] == {"train": f"0:{len(source)}"}
    tasks_table = pq.read_table(root / "meta" / "tasks.parquet")
    pandas = json.loads(tasks_table.schema.metadata[b"pandas"])
    tasks = dict(
        zip(
            tasks_table.column("task_index").to_pylist(),
            tasks_table.column(pandas["index_columns"][0]).to_pylist(),
            strict=True,
        )
    )
    assert info["total_tasks"] == len(tasks) == len({e.instruction for e in source.episodes})

    episodes = sorted(parquet_rows(root / "meta/episodes/chunk-000/file-000.parquet"), key=lambda r: r["episode_index"])
    assert [r["episode_index"] for r in episodes] == list(range(len(source)))
    frames = []
    for path in sorted(
        {info["data_path"].format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"]) for r in episodes}
    ):
        frames += parquet_rows(root / path)
    assert [r["index"] for r in frames] == list(range(source.num_steps))
    columns = {k for k, f in info["features"].items() if f["dtype"] != "video"}
    assert set(frames[0]) == columns
    start, video_end = 0, dict.fromkeys(CAMERAS_EXPORTED, 0.0)
    for row, record in zip(episodes, source.episodes, strict=True):
        assert (
            (row["dataset_from_index"], row["dataset_to_index"])
            == (start, start + record.length)
            == (start, start + row["length"])
        )
        own = frames[start : start + record.length]
        assert {r["episode_index"] for r in own} == {row["episode_index"]}
        assert [r["frame_index"] for r in own] == list(range(record.length))
        np.testing.assert_allclose([r["timestamp"] for r in own], np.arange(record.length) / source.fps, atol=1e-6)
        assert row["tasks"] == [tasks[own[0]["task_index"]]] == [record.instruction]
        for key in CAMERAS_EXPORTED:
            prefix = f"videos/observation.images.{key}/"
            video = root / info["video_path"].format(
                video_key=f"observation.images.{key}",
                chunk_index=row[prefix + "chunk_index"],
                file_index=row[prefix + "file_index"],
            )
            assert video.is_file()
            assert row[prefix + "from_timestamp"] == pytest.approx(video_end[key])
            assert row[prefix + "to_timestamp"] - row[prefix + "from_timestamp"] == pytest.approx(
                record.length / source.fps
            )
            video_end[key] = row[prefix + "to_timestamp"]
        start += record.length
    for key in CAMERAS_EXPORTED:
        feature = info["features"][f"observation.images.{key}"]
        frames_in_video = decode(root / f"videos/observation.images.{key}/chunk-000/file-000.mp4")
        assert frames_in_video.shape == (source.num_steps, *feature["shape"])
        assert feature["info"]["video.codec"] == "av1" and feature["info"]["video.fps"] == source.fps
    stats = json.loads((root / "meta" / "stats.json").read_text())
    assert np.array(stats["observation.images.corner"]["mean"]).shape == (3, 1, 1)
    np.testing.assert_allclose(stats["action"]["mean"], source.stats["action"]["mean"])


def test_export_then_import_keeps_every_value(tmp_path: Path) -> None:
    source = EpisodeDataset(polyact_dataset(tmp_path / "polyact"))
    export(LeRobotExportConfig(src=str(source.path), out=str(tmp_path / "lerobot")))
    check_lerobot_layout(tmp_path / "lerobot", source)
    back = EpisodeDataset(import_(LeRobotImportConfig(src=str(tmp_path / "lerobot"), out=str(tmp_path / "back"))))

    assert back.tasks == source.tasks
    assert back.env_spec.state_names == source.env_spec.state_names
    assert back.env_spec.action.names == source.env_spec.action.names
    assert back.env_spec.goal_names == source.env_spec.goal_names
    errors = []
    for e in range(len(source)):
        before, after = source.load_episode(e), back.load_episode(e)
        assert (after.task, after.instruction, after.seed, after.success) == (
            before.task,
            before.instruction,
            before.seed,
            before.success,
        )
        for key in ("state", "goal"):
            np.testing.assert_array_equal(after.observations[key], before.observations[key])
        for name in ("actions", "rewards", "successes"):
            np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
        for cam in CAMERAS_EXPORTED:
            frames, originals = after.observations[f"rgb/{cam}"].astype(int), before.observations[f"rgb/{cam}"]
            distances = np.abs(frames[:, None] - originals[None]).reshape(len(frames), len(originals), -1).mean(-1)
            assert (distances.argmin(axis=1) == np.arange(len(frames))).all(), "a frame is nearer another step's"
            errors.append(np.diagonal(distances))
    errors = np.concatenate(errors)
    assert errors.mean() <= MEAN_ERROR_BOUND and errors.max() <= FRAME_MEAN_ERROR_BOUND, errors
    assert not any(k.startswith(("depth/", "intrinsics/", "extrinsics/")) for k in back.features)


def test_export_with_image_cameras_round_trips_every_value_exactly(tmp_path: Path) -> None:
    """cameras=image writes LeRobot's `image` features, PNG bytes in the data files: lossless, no videos."""
    source = EpisodeDataset(polyact_dataset(tmp_path / "polyact"))
    export(LeRobotExportConfig(src=str(source.path), out=str(tmp_path / "lerobot"), cameras="image"))
    root = tmp_path / "lerobot"
    info = json.loads((root / "meta" / "info.json").read_text())
    assert not (root / "videos").exists() and info["video_path"] is None
    frames = parquet_rows(root / "data" / "chunk-000" / "file-000.parquet")
    for cam in CAMERAS_EXPORTED:
        key = f"observation.images.{cam}"
        assert info["features"][key]["dtype"] == "image" and info["features"][key]["shape"] == [48, 64, 3]
        first = frames[0][key]
        assert first["bytes"].startswith(b"\x89PNG") and first["path"] is None  # as `datasets` embeds an Image
    back = EpisodeDataset(import_(LeRobotImportConfig(src=str(root), out=str(tmp_path / "back"))))
    assert sorted(back.features) == sorted(k for k in source.features if k.startswith("rgb/") or k in ("state", "goal"))
    for e in range(len(source)):
        before, after = source.load_episode(e), back.load_episode(e)
        for key, values in after.observations.items():
            np.testing.assert_array_equal(values, before.observations[key], err_msg=key)
        for name in ("actions", "rewards", "successes"):
            np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
    with pytest.raises(UnknownNameError, match="unknown camera storage 'png'.*image"):
        LeRobotExportConfig(src=str(source.path), out=str(tmp_path / "x"), cameras="png")


def broken_copy(tmp_path: Path, change) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(FIXTURE, root)
    change(root)
    return root


def set_info(key: str, value):
    def change(root: Path) -> None:
        path = root / "meta" / "info.json"
        info = json.loads(path.read_text())
        info[key] = value
        path.write_text(json.dumps(info))

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda root: (root / "meta" / "info.json").unlink(), "info.json is missing"),
        (set_info("codebase_version", "v2.1"), "codebase_version 'v2.1' is not supported"),
        (set_info("total_frames", 36), "info.json says 36 frames"),
        (lambda root: shutil.rmtree(root / "videos" / "observation.images.wrist"), "missing"),
    ],
)
def test_malformed_datasets_are_refused_with_the_reason(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        import_(LeRobotImportConfig(src=str(broken_copy(tmp_path, change)), out=str(tmp_path / "ds")))
    assert not (tmp_path / "ds").exists()


def test_frames_missing_from_a_video_are_refused_not_filled(tmp_path: Path) -> None:
    """The last episode's front span moved half a second past the end of its video file."""

    def shift(root: Path) -> None:
        path = root / "meta/episodes/chunk-000/file-000.parquet"
        table = pq.read_table(path)
        for end in ("from_timestamp", "to_timestamp"):
            name = f"videos/observation.images.front/{end}"
            values = table.column(name).to_pylist()
            values[-1] += 0.5
            table = table.set_column(table.column_names.index(name), name, pa.array(values, pa.float64()))
        pq.write_table(table, path)

    with pytest.raises(DatasetError, match="front/chunk-000/file-000.mp4: no frame within 0.0500 s of t = 3.7"):
        import_(LeRobotImportConfig(src=str(broken_copy(tmp_path, shift)), out=str(tmp_path / "ds")))
    assert not (tmp_path / "ds").exists()  # the episodes before it are not left as a partial dataset


def test_a_mapping_naming_a_missing_feature_is_refused(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"state": "observation.joints"}))
    with pytest.raises(DatasetError, match="'observation.joints', which the dataset does not have.*observation.state"):
        import_(LeRobotImportConfig(src=str(FIXTURE), out=str(tmp_path / "ds"), mapping=str(mapping)))


def test_the_commands_run_and_report_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "import-lerobot", f"src={FIXTURE}", f"out={tmp_path / 'ds'}"]) == 0
    assert main(["data", "export-lerobot", f"src={tmp_path / 'ds'}", f"out={tmp_path / 'lerobot'}", "crf=20"]) == 0
    assert (
        len(EpisodeDataset(tmp_path / "ds"))
        == json.loads((tmp_path / "lerobot/meta/info.json").read_text())["total_episodes"]
    )
    assert main(["data", "import-lerobot", f"src={tmp_path / 'nothing'}", f"out={tmp_path / 'x'}"]) == 2
    assert "nothing/meta/info.json is missing" in capsys.readouterr().err
