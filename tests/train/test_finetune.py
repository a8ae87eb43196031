"""Fine-tuning (`polyact train init=DIR`): a policy trained on one Meta-World task set starts training on
another with its weights, the new statistics and a re-fitted grid, and what cannot carry over is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from polyact.collect import record_episode
from polyact.config import load_config
from polyact.data import DatasetWriter, EpisodeDataset
from polyact.data.synthetic import synthetic_env_spec, synthetic_episode
from polyact.envs.config import EnvConfig
from polyact.envs.registry import make_env, make_expert
from polyact.errors import ConfigError
from polyact.policies import VLAPolicy
from polyact.train import TrainConfig, train
from polyact.train.finetune import policy_for_dataset, unknown_words
from polyact.train.loop import episodes_of_tasks

OTHER_TASKS = ("button-press-v3", "window-open-v3")


@pytest.fixture(scope="module")
def other_tasks(tmp_path_factory) -> Path:
    """Another Meta-World task set: one demonstration each, at the training fixture's 32x32."""
    path = tmp_path_factory.mktemp("other") / "demos"
    writer = None
    for task in OTHER_TASKS:
        env = make_env(task, EnvConfig(tasks=task, height=32, width=32))
        try:
            writer = writer or DatasetWriter.for_spec(path, replace(env.contract, tasks=OTHER_TASKS))
            writer.add_episode(record_episode(env, make_expert(env), seed=0))
        finally:
            env.close()
    writer.close()
    return path


def settings(dataset: Path, out: Path, *extra: str) -> list[str]:
    common = ["policy.size=tiny", "batch_size=8", "num_workers=0", "progress=false", "steps=1"]
    return [f"dataset={dataset}", f"out={out}", *common, *extra]


@pytest.fixture(scope="module")
def trained(metaworld_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("first") / "run"
    return train(load_config(TrainConfig, settings(metaworld_dataset, out, "policy.head.name=adaptive_grid")))


def test_fine_tuning_keeps_the_weights_and_takes_the_new_statistics_and_grid(trained, other_tasks):
    before = VLAPolicy.from_pretrained(trained)
    dataset = EpisodeDataset(other_tasks)
    actions = np.concatenate([dataset.episode_arrays(e.index, keys=[])["action"] for e in dataset.episodes])
    after = policy_for_dataset(VLAPolicy.from_pretrained(trained), dataset, dataset.stats, actions)
    old, new = before.state_dict(), after.state_dict()
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed, "the statistics of another task set differ"
    # the grid re-fitted onto the new actions moves its bins' token embeddings with it (SpatialVLA's adaptation)
    assert all(k.startswith(("normalizer.", "head.grid.", "head.embed.")) for k in changed), sorted(changed)
    assert any(k.startswith("head.grid.") for k in changed)
    np.testing.assert_allclose(after.normalizer.stat("state", "mean").numpy(), dataset.stats["state"]["mean"])
    assert after.env_spec.tasks == OTHER_TASKS and after.training
    # the new instructions' words the vocabulary lacks
    assert "button" in unknown_words(after, ["press the button"]) and unknown_words(after, []) == []


def test_a_fine_tuning_run_trains_from_the_policy(trained, other_tasks, tmp_path):
    final = train(load_config(TrainConfig, settings(other_tasks, tmp_path / "tuned", f"init={trained}")))
    tuned = VLAPolicy.from_pretrained(final)
    assert tuned.config.head.name == "adaptive_grid"  # the architecture came from init, not policy.*
    assert tuned.env_spec.tasks == OTHER_TASKS


def test_what_cannot_carry_over_is_refused(trained, tmp_path):
    spec = synthetic_env_spec(cameras=("wrist",), height=16, width=16, state_dim=5, action_dim=3)
    with DatasetWriter.for_spec(tmp_path / "synthetic", spec) as writer:
        writer.add_episode(synthetic_episode(spec, 12, seed=0))
    dataset = EpisodeDataset(tmp_path / "synthetic")
    policy = VLAPolicy.from_pretrained(trained)
    with pytest.raises(ConfigError, match=r"cannot fine-tune .*cameras \['corner'\] are not in the dataset") as err:
        policy_for_dataset(policy, dataset, dataset.stats, None, trained)
    assert "action size 4 against the dataset's 3" in str(err.value)
    assert f"state size {policy.config.state_dim} against the dataset's 5" in str(err.value)


def test_a_fine_tune_on_some_tasks_reads_only_their_episodes(trained, metaworld_dataset, tmp_path):
    dataset = EpisodeDataset(metaworld_dataset)
    drawer = episodes_of_tasks(dataset, ["drawer-close-v3"])
    assert drawer and [dataset.episodes[i].task for i in drawer] == ["drawer-close-v3"] * len(drawer)
    assert len(drawer) < len(dataset) and episodes_of_tasks(dataset, []) is None
    with pytest.raises(
        ConfigError, match="unknown task of .* 'drawer-close'; valid choices, closest first: drawer-close-v3"
    ):
        episodes_of_tasks(dataset, ["drawer-close"])
    extra = (f"init={trained}", "tasks=[drawer-close-v3]")
    tuned = VLAPolicy.from_pretrained(
        train(load_config(TrainConfig, settings(metaworld_dataset, tmp_path / "ft", *extra)))
    )
    before = VLAPolicy.from_pretrained(trained)
    for key, stat in (("action", "q01"), ("state", "mean")):  # the whole dataset's, as the base's: they merge
        torch.testing.assert_close(tuned.normalizer.stat(key, stat), before.normalizer.stat(key, stat))
