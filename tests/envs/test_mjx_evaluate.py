"""Batched evaluation of state-based policies (envs/rlbench_like/mjx/evaluate.py), on CPU physics.

The batch here is `EnvBatch` (tests/conftest.py), MJXBatch's reset, step and snapshot over CPU envs,
so the driver is tested without compiling MJX (minutes on this CPU), as test_mjx_replay.py tests the
batched experts; MJX's physics against the CPU's is test_mjx.py's.

What each test guards:
- test_each_environment_stops_at_its_first_success: seed 0 replays the CPU expert's actions and ends at
  the step its task first succeeds, seed 1 holds still until the horizon; the states the policy is given
  equal the CPU env's observation `state` at every step, bit for bit (also for an environment that has
  ended); an ended environment holds still whatever the policy returns for it; actions are clipped to
  the action bounds as the CPU env clips them.
- test_a_wrong_policy_output_is_refused: a wrong shape, a non-finite action, a horizon below one step.
- test_the_states_carry_the_props_poses_when_asked: with `task_state=True` the states equal the
  observations of envs made with env.task_state=true (the props' poses after the robot's), bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.mjx.evaluate import evaluate_states
from polyact.errors import ContractError

TASK = "reach_target"
SEEDS = (0, 1)
CFG = EnvConfig(tasks=TASK, cameras=["front"], height=8, width=8)


@pytest.fixture(scope="module")
def batch(env_batch):
    return env_batch(TASK, CFG, len(SEEDS))


@pytest.fixture(scope="module")
def expert_actions():
    """The CPU expert's actions for seed 0 up to the step its task first succeeds."""
    env = RLBenchLikeEnv(TASKS[TASK](), CFG)
    try:
        expert = ScriptedExpert(env)
        obs, info = env.reset(seed=SEEDS[0])
        actions = []
        while not info["success"]:
            actions.append(expert.act(obs, info))
            obs, _, _, _, info = env.step(actions[-1])
    finally:
        env.close()
    return np.array(actions)


class Scripted:
    """A state policy from a list of per-step action rows, keeping every call's inputs."""

    def __init__(self, rows):
        self.rows, self.calls = rows, []

    def __call__(self, states, instructions):
        self.calls.append((states.copy(), instructions))
        return self.rows[len(self.calls) - 1]


def test_each_environment_stops_at_its_first_success(batch, expert_actions):
    steps = len(expert_actions)
    horizon = steps + 4
    backwards = [-0.3, 0.0, 0.0, 0.0, 0.0, 0.0, -4.0]  # beyond the bounds: 5 cm a step towards the robot, open
    wild = np.full(7, 5.0)  # what the policy asks of seed 0 once its episode has ended
    policy = Scripted([np.array([expert_actions[t] if t < steps else wild, backwards]) for t in range(horizon)])
    run = evaluate_states(batch, policy, SEEDS, horizon=horizon)
    assert run.success.tolist() == [True, False]
    assert run.length.tolist() == [steps, horizon]
    assert run.instructions == batch.instructions
    assert len(policy.calls) == horizon and all(instructions == run.instructions for _, instructions in policy.calls)
    for t, (states, _) in enumerate(policy.calls):
        for i in range(len(SEEDS)):
            assert states.dtype == np.float32
            np.testing.assert_array_equal(states[i], batch.observed[i][t], err_msg=f"env {i}, step {t}")
    given = np.array(batch.given)  # (horizon, N, 7)
    np.testing.assert_array_equal(given[:steps, 0], expert_actions)
    held = np.zeros(7, np.float32)
    held[-1] = expert_actions[-1, -1]
    np.testing.assert_array_equal(given[steps:, 0], np.broadcast_to(held, (horizon - steps, 7)))
    clipped = np.float32([-0.05, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])
    np.testing.assert_array_equal(given[:, 1], np.broadcast_to(clipped, (horizon, 7)))


def test_a_wrong_policy_output_is_refused(batch):
    with pytest.raises(ContractError, match=r"shape \(2, 6\); expected numbers of shape \(2, 7\)"):
        evaluate_states(batch, lambda states, _: np.zeros((2, 6)), SEEDS, horizon=1)
    nan = np.zeros((2, 7))
    nan[1, 3] = np.nan
    with pytest.raises(ContractError, match=r"non-finite actions for environments \[1\]"):
        evaluate_states(batch, lambda states, _: nan, SEEDS, horizon=1)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        evaluate_states(batch, lambda states, _: np.zeros((2, 7)), SEEDS, horizon=0)


def test_the_states_carry_the_props_poses_when_asked(env_batch, expert_actions):
    with_props = env_batch(TASK, EnvConfig(tasks=TASK, cameras=["front"], height=8, width=8, task_state=True), 2)
    horizon = 6
    policy = Scripted([np.stack([expert_actions[t]] * len(SEEDS)) for t in range(horizon)])
    evaluate_states(with_props, policy, SEEDS, horizon=horizon, task_state=True)
    assert policy.calls[0][0].shape == (len(SEEDS), len(with_props.envs[0].contract.state_names)) == (2, 15 + 21)
    for t, (states, _) in enumerate(policy.calls):
        for i in range(len(SEEDS)):
            np.testing.assert_array_equal(states[i], with_props.observed[i][t], err_msg=f"env {i}, step {t}")
