"""Meta-World through the polyact contract: observations, seeding, rendering, experts, bad input."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from polyact.envs.config import EnvConfig
from polyact.envs.metaworld import CAMERAS, TASK_SETS, TASKS
from polyact.envs.metaworld_instructions import INSTRUCTIONS
from polyact.envs.registry import make_env, make_expert, resolve_tasks
from polyact.errors import ContractError, UnknownNameError

SMALL = EnvConfig(tasks="MT10", height=32, width=32)


def frame_digest(obs: dict) -> str:
    return hashlib.sha256(obs["rgb/corner"].tobytes() + obs["depth/corner"].tobytes()).hexdigest()


def test_task_sets_match_metaworld_benchmarks():
    assert len(TASKS) == 50
    assert len(TASK_SETS["MT10"]) == 10 and len(TASK_SETS["MT50"]) == 50
    assert len(TASK_SETS["ML10-train"]) == 10 and len(TASK_SETS["ML10-test"]) == 5
    assert len(TASK_SETS["ML45-train"]) == 45 and len(TASK_SETS["ML45-test"]) == 5
    assert not set(TASK_SETS["ML45-train"]) & set(TASK_SETS["ML45-test"])
    assert resolve_tasks("reach-v3")[1] == ("reach-v3",)


def test_every_task_has_three_distinct_instructions():
    assert set(INSTRUCTIONS) == set(TASKS)
    for task, paraphrases in INSTRUCTIONS.items():
        assert len(set(paraphrases)) >= 3, task


def test_instruction_is_picked_by_seed():
    env = make_env("door-open-v3", SMALL)
    try:
        seen = [env.reset(seed=s)[0]["instruction"] for s in range(6)]
    finally:
        env.close()
    n = len(INSTRUCTIONS["door-open-v3"])
    assert seen == [INSTRUCTIONS["door-open-v3"][s % n] for s in range(6)]


@pytest.mark.slow
def test_all_fifty_tasks_follow_the_contract():
    for task in TASKS:
        env = make_env(task, SMALL)
        try:
            obs, info = env.reset(seed=0)
            env.contract.check_observation(obs)
            obs, _, _, _, info = env.step(env.action_space.sample())
            env.contract.check_observation(obs)
            assert isinstance(info["success"], bool)
            assert obs["rgb/corner"].std() > 0, f"{task} renders a blank frame"
        finally:
            env.close()


def test_observation_layout_and_spec():
    env = make_env(
        "pick-place-v3", EnvConfig(tasks="pick-place-v3", cameras=["corner", "topview"], height=48, width=40)
    )
    try:
        obs, info = env.reset(seed=1)
        spec = env.contract
        assert spec.camera_names == ("corner", "topview")
        assert obs["rgb/topview"].shape == (48, 40, 3) and obs["depth/corner"].shape == (48, 40)
        assert spec.action.dim == 4 and spec.state_names[-1] == "gripper_opening"
        assert np.allclose(obs["goal"], env._mw._target_pos)
        assert np.allclose(obs["state"][:3], info["privileged"][:3])
        assert 0.0 < obs["depth/corner"].min() < 3.0
        assert spec.control_hz == pytest.approx(80.0)
    finally:
        env.close()


def test_same_seed_same_state_and_frame_in_one_process():
    env = make_env("push-v3", SMALL)
    try:
        first, _ = env.reset(seed=7)
        qpos = env.data.qpos.copy()
        for _ in range(20):
            env.step(env.action_space.sample())
        env.reset(seed=8)
        again, _ = env.reset(seed=7)
        assert np.array_equal(env.data.qpos, qpos)
        assert frame_digest(first) == frame_digest(again)
        other, _ = env.reset(seed=8)
        assert not np.allclose(other["goal"], first["goal"])
    finally:
        env.close()


def _digest_in_fresh_process(task: str, seed: int) -> str:
    code = (
        "import hashlib, polyact\n"
        "from polyact.envs.registry import make_env\n"
        "from polyact.envs.config import EnvConfig\n"
        f"env = make_env({task!r}, EnvConfig(tasks={task!r}, height=32, width=32))\n"
        f"obs, _ = env.reset(seed={seed})\n"
        "print(hashlib.sha256(obs['rgb/corner'].tobytes() + obs['depth/corner'].tobytes()).hexdigest())\n"
        "env.close()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_same_seed_same_frame_in_another_process():
    env = make_env("drawer-open-v3", SMALL)
    try:
        here = frame_digest(env.reset(seed=11)[0])
    finally:
        env.close()
    assert _digest_in_fresh_process("drawer-open-v3", 11) == here


def test_goal_vector_option_sets_the_goal():
    env = make_env("reach-v3", SMALL)
    try:
        env.reset(seed=0)
        vector = env._mw._last_rand_vec.copy()
        vector[3:] = [0.05, 0.85, 0.2]
        obs, _ = env.reset(seed=5, options={"goal_vector": vector})
        assert np.allclose(obs["goal"], [0.05, 0.85, 0.2])
        with pytest.raises(UnknownNameError, match="goal_vector"):
            env.reset(seed=0, options={"goal_vectr": vector})
    finally:
        env.close()


def test_camera_geometry_projects_objects_onto_their_pixels():
    """A body's centre, projected with intrinsics and extrinsics, lands on that body in a segmentation
    render, and the depth there is the distance along the optical axis to its surface."""
    size = 96
    env = make_env(
        "pick-place-v3", EnvConfig(tasks="pick-place-v3", cameras=["corner", "corner4"], height=size, width=size)
    )
    segmenter = mujoco.Renderer(env.model, size, size)
    segmenter.enable_segmentation_rendering()
    try:
        obs, _ = env.reset(seed=3)
        body = env.model.body("obj").id
        centre = env.data.xpos[body]
        for cam in ("corner", "corner4"):
            cam_to_world = obs[f"extrinsics/{cam}"].astype(np.float64)
            p_cam = np.linalg.inv(cam_to_world) @ np.append(centre, 1.0)
            u, v, w = obs[f"intrinsics/{cam}"] @ p_cam[:3]
            col, row = int(u / w), int(v / w)
            segmenter.update_scene(env.data, cam)
            seg = segmenter.render()
            geom = seg[row, col, 0]
            assert env.model.geom_bodyid[geom] == body, f"{cam}: pixel ({row}, {col}) shows another body"
            depth = obs[f"depth/{cam}"][row, col]
            assert 0.0 < p_cam[2] - depth < 0.05
    finally:
        segmenter.close()
        env.close()


def test_fast_and_full_quality_render_differently():
    fast = make_env("door-open-v3", EnvConfig(tasks="door-open-v3", height=64, width=64))
    full = make_env("door-open-v3", EnvConfig(tasks="door-open-v3", height=64, width=64, render_quality="full"))
    try:
        assert fast.model.vis.quality.shadowsize == 0 and fast.model.vis.quality.offsamples == 0
        assert full.model.vis.quality.shadowsize > 0 and full.model.vis.quality.offsamples > 0
        a, b = fast.reset(seed=2)[0], full.reset(seed=2)[0]
        assert not np.array_equal(a["rgb/corner"], b["rgb/corner"])
        # the same geometry: multisampled depth reads a sample off the pixel centre, so allow millimetres
        assert np.median(np.abs(a["depth/corner"] - b["depth/corner"])) < 0.05
    finally:
        fast.close()
        full.close()


def test_actions_are_checked_and_clipped():
    env = make_env("reach-v3", SMALL)
    try:
        env.reset(seed=0)
        with pytest.raises(ContractError, match=r"expected \(4,\)"):
            env.step(np.zeros(3))
        with pytest.raises(ContractError, match="non-finite"):
            env.step(np.array([0, np.nan, 0, 0]))
        before = env.data.mocap_pos.copy()
        env.step(np.array([50.0, 0, 0, 0]))
        assert env.data.mocap_pos[0, 0] - before[0, 0] == pytest.approx(0.01, abs=1e-6)
    finally:
        env.close()


@pytest.mark.slow
def test_episode_truncates_at_the_step_limit():
    env = make_env("reach-v3", EnvConfig(tasks="reach-v3", height=16, width=16, max_episode_steps=5))
    try:
        env.reset(seed=0)
        flags = [env.step(np.zeros(4))[3] for _ in range(5)]
        assert flags == [False] * 4 + [True]
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("task", TASK_SETS["MT10"])
def test_scripted_expert_succeeds_through_the_contract(task):
    env = make_env(task, SMALL)
    expert = make_expert(env)
    try:
        obs, info = env.reset(seed=0)
        for _ in range(500):
            obs, _, _, truncated, info = env.step(expert.act(obs, info))
            if info["success"] or truncated:
                break
        assert info["success"], f"the {task} expert failed through polyact's env"
    finally:
        env.close()


def test_unknown_names_list_valid_ones_closest_first():
    with pytest.raises(UnknownNameError) as err:
        resolve_tasks("MT11")
    assert "valid choices, closest first: MT10" in str(err.value)
    with pytest.raises(UnknownNameError) as err:
        resolve_tasks("pick-place-v2")
    assert str(err.value).split("closest first: ")[1].startswith("pick-place-v3")
    with pytest.raises(UnknownNameError) as err:
        EnvConfig(tasks="MT10", cameras=["cornr"])
    assert "closest first: corner" in str(err.value)
    assert set(CAMERAS) <= set(str(err.value).replace(",", " ").split())


def test_no_egl_errors_at_interpreter_exit():
    code = (
        "import polyact\n"
        "from polyact.envs.registry import make_env\n"
        "from polyact.envs.config import EnvConfig\n"
        "closed = make_env('reach-v3', EnvConfig(tasks='reach-v3', height=16, width=16))\n"
        "closed.reset(seed=0); closed.close()\n"
        "leaked = make_env('push-v3', EnvConfig(tasks='push-v3', height=16, width=16))\n"
        "leaked.reset(seed=0)\n"
        "print('done')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("done")
    assert "EGL" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr
