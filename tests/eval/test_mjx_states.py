"""A state-only checkpoint evaluated in batch through evaluate_states (eval/mjx_states.py), on CPU physics.

The batch is `EnvBatch` (tests/conftest.py): evaluate_states' reset, step and snapshot over CPU envs, so
nothing compiles MJX; MJX's physics against the CPU's is tests/envs/test_mjx.py's. Its two envs also run
the episodes one at a time (model builds are the test's cost: ~3 s an env on a busy machine).

What each test guards:
- test_a_batch_acts_as_polyact_eval_acts_one_episode_at_a_time: a flow-head checkpoint (its sampling
  noise seeded per episode) with history 2 and chunks of 4 re-planned every 2 steps, run by
  evaluate_states on two seeds together for 5 steps, gives each environment the actions `polyact eval`'s
  path (load_policy -> ChunkRunner on the CPU env's observations) gives that seed's episode alone.
- test_a_policy_that_needs_more_than_the_state_is_refused: a policy with a camera, one for a state of
  another size, and states of the wrong shape are refused with what is wrong.
- test_the_command_line_evaluation_is_evaluate_states_on_its_seeds: `evaluate_checkpoint` (main without
  the MJXBatch) reports the successes and episode lengths evaluate_states gives the checkpoint on
  `polyact eval`'s seeds and the asked split's variations, and writes them per seed to `out`.
- test_a_policy_trained_with_the_props_poses_gets_them: a checkpoint of env.task_state=true states is
  run on states with the props' poses (36-D for reach_target) and said to be privileged; one trained on
  another task's props is refused, naming both.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from polyact.envs.config import EVAL_SEED_BASE, EnvConfig
from polyact.envs.rlbench_like.mjx.evaluate import evaluate_states
from polyact.envs.rlbench_like.task_state import POSE_FIELDS
from polyact.errors import ContractError
from polyact.eval.mjx_states import BatchedStatePolicy, MJXStatesConfig, evaluate_checkpoint
from polyact.eval.trained import load_policy
from polyact.policies import HeadConfig, PolicyConfig, TextConfig, VLAPolicy, build_policy

TASK = "reach_target"
SEEDS = (EVAL_SEED_BASE, EVAL_SEED_BASE + 1)
CFG = EnvConfig(tasks=TASK, cameras=["front"], height=8, width=8)
HORIZON = 5  # beyond the first re-plan (every 2 steps) and a full history of 2


def stats(spec):
    def feat(dim, scale):
        full = np.full(dim, scale)
        return {"mean": np.zeros(dim), "std": full, "q01": -full, "q99": full}

    state = len(spec.state_names)
    return {"action": feat(spec.action.dim, 0.05), "state": feat(state, 1.0), "rgb/front": feat(3, 60.0)}


def tiny(spec, **overrides):
    config = PolicyConfig(
        size="tiny",
        head=HeadConfig(name="flow", sample_steps=2),
        text=TextConfig(encoder="bytes"),
        history=2,
        chunk=4,
        replan_every=2,
        **overrides,
    )
    torch.manual_seed(0)
    return build_policy(config, spec, stats(spec), [])


@pytest.fixture(scope="module")
def batch(env_batch):
    return env_batch(TASK, CFG, len(SEEDS))


@pytest.fixture(scope="module")
def spec(batch):
    return batch.envs[0].contract


@pytest.fixture(scope="module")
def checkpoint(spec, tmp_path_factory):
    return str(tiny(spec, state_only=True).save_pretrained(tmp_path_factory.mktemp("ckpt") / "state-flow"))


def test_a_batch_acts_as_polyact_eval_acts_one_episode_at_a_time(checkpoint, spec, batch):
    policy = BatchedStatePolicy(VLAPolicy.from_pretrained(checkpoint), TASK, SEEDS)
    run = evaluate_states(batch, policy, SEEDS, horizon=HORIZON)
    assert run.length.tolist() == [HORIZON] * len(SEEDS)
    given = np.array(batch.given)  # (HORIZON, N, 7)
    low, high = spec.action.low, spec.action.high
    for i, (seed, env) in enumerate(zip(SEEDS, batch.envs, strict=True)):  # each episode again, alone
        alone = load_policy(checkpoint, num_envs=1)
        obs, _ = env.reset(seed=seed)
        for t in range(HORIZON):
            rows = {k: np.asarray(v)[None] for k, v in obs.items() if k != "instruction"}
            action = alone.act({**rows, "instruction": [obs["instruction"]]}, [{"seed": seed}], [0])[0]
            np.testing.assert_allclose(given[t, i], np.clip(action, low, high), atol=1e-5, err_msg=f"{seed}, {t}")
            obs, *_ = env.step(action)


def test_a_policy_that_needs_more_than_the_state_is_refused(spec, checkpoint):
    with pytest.raises(ContractError, match=r"reads cameras \['front'\]; MJX gives states only"):
        BatchedStatePolicy(tiny(spec), TASK, SEEDS)
    shorter = tiny(dataclasses.replace(spec, state_names=spec.state_names[:5]), state_only=True)
    with pytest.raises(ContractError, match="reads a 5-D state but rlbench_like gives 15-D"):
        BatchedStatePolicy(shorter, TASK, SEEDS)
    policy = BatchedStatePolicy(VLAPolicy.from_pretrained(checkpoint), TASK, SEEDS)
    with pytest.raises(ContractError, match=r"states of shape \(3, 15\) and 3 instructions; .* 2 environments"):
        policy(np.zeros((3, 15), np.float32), ["reach"] * 3)


def test_the_command_line_evaluation_is_evaluate_states_on_its_seeds(checkpoint, batch, tmp_path):
    out = tmp_path / "runs" / "episodes.json"
    cfg = MJXStatesConfig(policy=checkpoint, task=TASK, seeds=len(SEEDS), split="test", horizon=3, out=str(out))
    line = evaluate_checkpoint(cfg, lambda task: batch)
    assert [env.variation.split for env in batch.envs] == ["test", "test"]
    options = [{"variation_split": "test"}] * len(SEEDS)
    policy = BatchedStatePolicy(VLAPolicy.from_pretrained(checkpoint), TASK, SEEDS)
    direct = evaluate_states(batch, policy, SEEDS, options, horizon=3)
    wins = int(direct.success.sum())
    assert line.startswith(f"{TASK}: {wins}/2 = {50.0 * wins:.1f}% [")
    assert f"test variations, seeds {SEEDS[0]}..{SEEDS[1]}, robot state only" in line
    assert line.endswith(f"mean length {direct.length.mean():.0f} of 3 steps")
    episodes = json.loads(out.read_text())
    assert episodes["seed"] == list(SEEDS) and episodes["split"] == "test"
    assert episodes["success"] == direct.success.tolist() and episodes["length"] == direct.length.tolist()
    assert episodes["instruction"] == direct.instructions and not list(out.parent.glob("*.partial"))


def test_a_policy_trained_with_the_props_poses_gets_them(env_batch, tmp_path):
    with_props = env_batch(TASK, dataclasses.replace(CFG, task_state=True), len(SEEDS))
    spec = with_props.envs[0].contract
    checkpoint = str(tiny(spec, state_only=True).save_pretrained(tmp_path / "props"))
    assert BatchedStatePolicy(VLAPolicy.from_pretrained(checkpoint), TASK, SEEDS).task_state
    cfg = MJXStatesConfig(policy=checkpoint, task=TASK, seeds=len(SEEDS), horizon=2)
    assert "privileged task state" in evaluate_checkpoint(cfg, lambda task: with_props)
    assert with_props.observed[0][0].shape == (15 + 21,)
    poses = [f"block{i}_{field}" for i in range(3) for field in POSE_FIELDS]  # pick_and_lift's props
    blocks = dataclasses.replace(spec, state_names=(*spec.state_names[:15], *poses))
    with pytest.raises(ContractError, match=r"poses of \['block0', 'block1', 'block2'\]; .* \['sphere0', 'sphere1'"):
        BatchedStatePolicy(tiny(blocks, state_only=True), TASK, SEEDS)
