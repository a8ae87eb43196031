"""The resume store: durable appends, a torn last line after a kill, refusing another run's settings."""

from __future__ import annotations

import json

import pytest

from polyact.errors import ConfigError, DatasetError
from polyact.eval.store import EPISODES_FILE, EpisodeResult, EpisodeStore

IDENTITY = {"policy": "expert", "env": {"tasks": "MT10"}, "protocol": "seeds", "execution": ""}


def result(index: int, success: bool = True) -> EpisodeResult:
    return EpisodeResult("reach-v3", index, 1_000_000 + index, success, 40 + index, "reach the goal", (0.1, 0.2))


def test_results_survive_reopening(tmp_path):
    store = EpisodeStore(tmp_path, IDENTITY)
    store.add(result(0))
    store.add(result(1, success=False))
    store.close()
    again = EpisodeStore(tmp_path, IDENTITY)
    assert again.results == {("reach-v3", 0): result(0), ("reach-v3", 1): result(1, success=False)}
    assert again.messages == []
    with pytest.raises(ValueError, match="already recorded"):
        again.add(result(0))
    again.close()


@pytest.mark.parametrize("torn", [b'{"task": "reach-v3", "ind', b'{"task": "reach-v3", "ind\n', b"\x00\x00\x00\n"])
def test_a_torn_last_line_is_ignored_and_cut_off(tmp_path, torn):
    store = EpisodeStore(tmp_path, IDENTITY)
    store.add(result(0))
    store.close()
    path = tmp_path / EPISODES_FILE
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(torn)
    store = EpisodeStore(tmp_path, IDENTITY)
    assert list(store.results) == [("reach-v3", 0)]
    assert len(store.messages) == 1 and "torn last line" in store.messages[0]
    assert path.read_bytes() == good  # appends go after the last good line, not after the fragment
    store.add(result(1))
    store.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1]


def test_damage_before_the_last_line_is_an_error(tmp_path):
    store = EpisodeStore(tmp_path, IDENTITY)
    store.add(result(0))
    store.close()
    path = tmp_path / EPISODES_FILE
    path.write_bytes(b"garbage\n" + path.read_bytes())
    with pytest.raises(DatasetError, match="line 1"):
        EpisodeStore(tmp_path, IDENTITY)


def test_a_repeated_episode_is_an_error(tmp_path):
    store = EpisodeStore(tmp_path, IDENTITY)
    store.add(result(0))
    store.close()
    path = tmp_path / EPISODES_FILE
    path.write_bytes(path.read_bytes() * 2)
    with pytest.raises(DatasetError, match="repeats episode 0"):
        EpisodeStore(tmp_path, IDENTITY)


def test_another_runs_settings_are_refused(tmp_path):
    EpisodeStore(tmp_path, IDENTITY).close()
    with pytest.raises(ConfigError, match="choose another out"):
        EpisodeStore(tmp_path, {**IDENTITY, "protocol": "metaworld_goals"})
