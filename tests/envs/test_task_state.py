"""`env.task_state=true` (envs/rlbench_like/task_state.py): every prop's pose after the robot's state.

What each test guards:
- test_every_task_lists_its_own_props_and_no_scene_body: each task's bodies are the ones its `build`
  adds (not the robot, the table or the world), seven named values each; the MJX model (welded props
  made mocap bodies) lists the same.
- test_the_state_carries_the_props_poses_as_they_move: in pick_and_lift the state's tail equals the
  blocks' positions and orientations (Sim.pos / Sim.quat) after the reset and while the expert lifts
  block0, whose z in the state rises; the robot's part is the plain env's, bit for bit.
- test_the_keyframe_mode_counts_after_the_props: the keyframe env's names end with the props' then
  `keyframes_done`, the order `keyframe_spec` gives a dense dataset's spec and `keyframe_transitions`
  writes its states.
- test_tasks_with_other_props_do_not_share_a_multitask_env: pick_and_lift and reach_target both have
  three props (21 values) but not the same ones, so switching between them is refused; without the
  task state they share one.
- test_task_state_is_opt_in_recorded_and_named_in_tables: off by default and absent from the identity
  (earlier datasets still resume); on, recorded; refused for Meta-World, naming the suite that has it;
  evaluation tables call it privileged.
"""

from __future__ import annotations

import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.multitask import MultiTaskEnv
from polyact.envs.rlbench_like import TASKS
from polyact.envs.rlbench_like.arm import STATE_NAMES
from polyact.envs.rlbench_like.env import RLBenchLikeEnv
from polyact.envs.rlbench_like.experts import ScriptedExpert
from polyact.envs.rlbench_like.keyframe_actions import keyframe_spec, keyframe_transitions
from polyact.envs.rlbench_like.mjx.model import SUPPORTED_TASKS, mjx_model
from polyact.envs.rlbench_like.scene import build_model
from polyact.envs.rlbench_like.task_state import TaskState
from polyact.errors import ConfigError, ContractError
from polyact.eval.config import EvalConfig

ROBOT = len(STATE_NAMES)


def _config(task, **kw):
    return EnvConfig(tasks=task, cameras=["front"], height=8, width=8, task_state=True, **kw)


def test_every_task_lists_its_own_props_and_no_scene_body():
    scene = build_model(lambda spec: None)
    for name, task in TASKS.items():
        model = build_model(task().build)
        state = TaskState(model)
        assert len(state.bodies) == model.nbody - scene.nbody > 0, name  # exactly the bodies the task added
        assert all(int(b) >= scene.nbody for b in state.bodies), name
        assert len(state.names) == 7 * len(state.bodies) and len(set(state.names)) == len(state.names)
        first = model.body(int(state.bodies[0])).name
        assert state.names[:7] == tuple(f"{first}_{f}" for f in ("x", "y", "z", "qw", "qx", "qy", "qz"))
        if name in SUPPORTED_TASKS:
            assert TaskState(mjx_model(task())).names == state.names, name


def test_the_state_carries_the_props_poses_as_they_move():
    task = "pick_and_lift"
    with_props = RLBenchLikeEnv(TASKS[task](), _config(task))
    plain = RLBenchLikeEnv(TASKS[task](), EnvConfig(tasks=task, cameras=["front"], height=8, width=8))
    try:
        names = with_props.contract.state_names
        assert names[:ROBOT] == STATE_NAMES and names[ROBOT:] == TaskState(with_props.model).names
        blocks = [f"block{i}" for i in range(3)]
        obs, info = with_props.reset(seed=4)
        plain_obs, _ = plain.reset(seed=4)
        expert = ScriptedExpert(with_props)
        heights = []
        while not info["success"]:
            state = obs["state"]
            assert state.dtype == np.float32 and state.shape == (len(names),)
            expected = np.concatenate([np.r_[with_props.sim.pos(b), with_props.sim.quat(b)] for b in blocks])
            np.testing.assert_allclose(state[ROBOT:], expected, atol=1e-6)
            np.testing.assert_array_equal(state[:ROBOT], plain_obs["state"])
            heights.append(state[names.index("block0_z")])
            action = expert.act(obs, info)
            obs, _, _, _, info = with_props.step(action)
            plain_obs, *_ = plain.step(action)
        assert heights[-1] > heights[0] + 0.05  # the state saw block0 lifted
    finally:
        with_props.close()
        plain.close()


def test_the_keyframe_mode_counts_after_the_props():
    task = "reach_target"
    dense = RLBenchLikeEnv(TASKS[task](), _config(task))
    keyframe = RLBenchLikeEnv(TASKS[task](), _config(task, action_mode="keyframe"))
    try:
        props = TaskState(dense.model).names
        assert keyframe.contract.state_names == (*STATE_NAMES, *props, "keyframes_done")
        assert keyframe_spec(dense.contract).state_names == keyframe.contract.state_names
        obs, _ = keyframe.reset(seed=2)
        assert obs["state"][-1] == 0 and obs["state"].shape == (len(keyframe.contract.state_names),)

        obs, info = dense.reset(seed=2)
        expert, states, actions = ScriptedExpert(dense), [obs["state"]], []
        while not info["success"]:
            actions.append(expert.act(obs, info))
            obs, _, _, _, info = dense.step(actions[-1])
            states.append(obs["state"])
        transitions = keyframe_transitions(np.array(states[:-1]), np.array(actions))
        assert transitions.states.shape[1] == len(keyframe.contract.state_names)
        np.testing.assert_array_equal(transitions.states[:, :-1], np.array(states)[transitions.steps])
    finally:
        dense.close()
        keyframe.close()


def test_tasks_with_other_props_do_not_share_a_multitask_env():
    both = MultiTaskEnv(_config("RLB-test"))
    plain = MultiTaskEnv(EnvConfig(tasks="RLB-test", cameras=["front"], height=8, width=8))
    try:
        assert both.current.task == "pick_and_lift"
        with pytest.raises(ContractError, match="reach_target observes .* from pick_and_lift .its state names other"):
            both.reset(seed=0, options={"task": "reach_target"})
        plain.reset(seed=0, options={"task": "reach_target"})
        assert plain.current.task == "reach_target"
    finally:
        both.close()
        plain.close()


def test_task_state_is_opt_in_recorded_and_named_in_tables():
    off = EnvConfig(tasks="reach_target")
    assert not off.task_state and "task_state" not in off.identity()
    assert _config("reach_target").identity()["task_state"] is True
    with pytest.raises(ConfigError, match=r"suite metaworld has no task state \(suites with one: \['rlbench_like'\]\)"):
        EnvConfig(tasks="reach-v3", task_state=True)
    assert EvalConfig(policy="p", env=_config("reach_target")).observation.startswith("privileged task state")
    assert EvalConfig(policy="p", env=off).observation.startswith("no goal vector")
