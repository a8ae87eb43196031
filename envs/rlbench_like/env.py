"""RLBenchLikeEnv: one rlbench_like task as a polyact environment (contract in polyact.contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from polyact.contract import CameraSpec, EnvSpec
from polyact.envs.base import PolyactEnv
from polyact.envs.config import EnvConfig
from polyact.envs.rlbench_like.arm import CONTROL_HZ, KEYFRAME_STATE_NAMES, STATE_NAMES, Arm, action_spec
from polyact.envs.rlbench_like.motion import KEYFRAME_EPISODE_STEPS, KeyframeOutcome, execute_keyframe
from polyact.envs.rlbench_like.scene import CAMERAS, build_model
from polyact.envs.rlbench_like.sim import Sim
from polyact.envs.rlbench_like.task_state import TaskState
from polyact.envs.rlbench_like.tasks.base import Task
from polyact.envs.rlbench_like.variations import SPLITS, Variation, select
from polyact.errors import ConfigError, unknown_name

if TYPE_CHECKING:
    from polyact.envs.rlbench_like.subgoal_oracle import SubgoalOracle

SUITE_NAME = "rlbench_like"
DEFAULT_MAX_STEPS = 500  # 25 s at 20 Hz, as Meta-World; stacking four blocks takes the expert about 400
SETTLE_STEPS = 50  # physics steps after placing props, so every episode starts at rest


class RLBenchLikeEnv(PolyactEnv):
    """A gymnasium env for one task. `reset(options=...)` accepts `variation` (an index into the task's
    variations) or `variation_split` ("train", "test" or "all"; default: the env's `default_split`).
    With `cfg.subgoal_oracle` (keyframe mode) every observation carries `subgoal` (subgoal_oracle.py)."""

    def __init__(self, task: Task, cfg: EnvConfig, default_split: str = "train"):
        if default_split not in SPLITS:
            raise unknown_name("variation split", default_split, SPLITS)
        cameras = tuple(cfg.cameras) or CAMERAS
        for cam in cameras:
            if cam not in CAMERAS:
                raise unknown_name("camera", cam, CAMERAS)
        keyframe = cfg.action_mode == "keyframe"
        default_steps = KEYFRAME_EPISODE_STEPS if keyframe else DEFAULT_MAX_STEPS
        model = build_model(task.build)
        data = mujoco.MjData(model)
        self.task_state = TaskState(model) if cfg.task_state else None
        state_names = (*STATE_NAMES, *(self.task_state.names if self.task_state else ()))
        contract = EnvSpec(
            suite=SUITE_NAME,
            tasks=(task.name,),
            cameras=tuple(CameraSpec(c, cfg.height, cfg.width) for c in cameras),
            state_names=(*state_names, KEYFRAME_STATE_NAMES[-1]) if keyframe else state_names,
            goal_names=(),
            action=action_spec(cfg.action_mode, model),
            control_hz=CONTROL_HZ,
            max_episode_steps=cfg.max_episode_steps or default_steps,
            subgoal=cfg.subgoal_oracle,
            notes={
                "action_mode": cfg.action_mode,
                "state": (
                    "tool-centre-point position (m, world frame) and orientation (unit quaternion w, x, y, z with "
                    "w >= 0; identity = pointing straight down, fingers along world y); gripper opening in [0, 1] "
                    "(1 = open); the seven arm joint positions (rad)"
                    + ("; every prop's pose, privileged (task_state.py)" if cfg.task_state else "")
                    + ("; keyframe actions executed so far (PerAct's time step)" if keyframe else "")
                ),
                "variation_split": default_split,
                "goal": "empty: every target (colour, drawer, count, order) is visible or named in the instruction",
                **(
                    {"subgoal": "the scripted expert's next sub-goal not yet reached (subgoal_oracle.py)"}
                    if cfg.subgoal_oracle
                    else {}
                ),
            },
        )
        super().__init__(contract, task.name, model, data, cfg.render_quality)
        self.task_impl = task
        self.sim = Sim(model, data)
        self.arm = Arm(model, data, cfg.action_mode)
        self.default_split = default_split
        self.variations = task.variations()
        self.variation: Variation = self.variations[0]
        self.last_keyframe: KeyframeOutcome | None = None
        fingers = [model.body(b).id for b in ("left_finger", "right_finger")]
        self._finger_bodies = np.array(fingers)
        self._robot_geoms = model.body_rootid[model.geom_bodyid] == model.body_rootid[fingers[0]]
        self.contact_history: list[bool] = []  # finger_contact() at every observation of the episode
        self.subgoal_oracle: SubgoalOracle | None = None
        if cfg.subgoal_oracle:
            from polyact.envs.rlbench_like.subgoal_oracle import SubgoalOracle  # it builds an env of this class

            self.subgoal_oracle = SubgoalOracle(task, cfg, default_split)

    def _choose_variation(self, rng: np.random.Generator, options: dict[str, Any]) -> Variation:
        if "variation" in options:
            index = int(options["variation"])
            if not 0 <= index < len(self.variations):
                raise ConfigError(
                    f"{self.task}: variation {index} does not exist; valid: 0..{len(self.variations) - 1}"
                )
            return self.variations[index]
        unknown = set(options) - {"variation", "variation_split"}
        if unknown:
            raise unknown_name("reset option", sorted(unknown)[0], ["variation", "variation_split"])
        candidates = select(self.variations, str(options.get("variation_split", self.default_split)))
        return candidates[int(rng.integers(len(candidates)))]

    def _reset_sim(self, seed: int, options: dict[str, Any]) -> str:
        rng = np.random.default_rng(seed)
        self.variation = self._choose_variation(rng, options)
        mujoco.mj_resetData(self.model, self.data)
        self.sim.restore_appearance()
        self.arm.reset()
        self.task_impl.reset(self.sim, rng, self.variation)
        mujoco.mj_forward(self.model, self.data)
        for _ in range(SETTLE_STEPS):
            mujoco.mj_step(self.model, self.data)
        self.task_impl.after_step(self.sim)
        self.last_keyframe = None
        self.contact_history = [self.finger_contact()]
        instruction = self.variation.instructions[int(rng.integers(len(self.variation.instructions)))]
        if self.subgoal_oracle is not None:
            self.subgoal_oracle.reset(seed, options, *self._tcp_and_gripper())
        return instruction

    def _apply_action(self, action: np.ndarray) -> None:
        if self.arm.mode == "keyframe":
            self.last_keyframe = execute_keyframe(self.arm, action, self._after_control_step)
        else:
            self.arm.step(action)
            self.task_impl.after_step(self.sim)
        self.contact_history.append(self.finger_contact())
        if self.subgoal_oracle is not None:
            self.subgoal_oracle.observe(*self._tcp_and_gripper())

    def _tcp_and_gripper(self) -> tuple[np.ndarray, bool]:
        """The tcp position and whether the gripper is commanded open, as the sub-goal oracle compares them."""
        return self.arm.tcp_pose()[0], bool(self.arm.gripper_command < 0)

    def _subgoal(self) -> np.ndarray:
        return self.subgoal_oracle.subgoal

    def finger_contact(self) -> bool:
        """Whether a finger touches anything that is not the robot (RLBench's touch forces, as a flag)."""
        con = self.data.contact
        b1, b2 = self.model.geom_bodyid[con.geom1], self.model.geom_bodyid[con.geom2]
        first = np.isin(b1, self._finger_bodies) & ~self._robot_geoms[con.geom2]
        second = np.isin(b2, self._finger_bodies) & ~self._robot_geoms[con.geom1]
        return bool(np.any(first | second))

    def _after_control_step(self) -> bool:
        self.task_impl.after_step(self.sim)
        return self._success()

    def _info(self) -> dict[str, Any]:
        """The base info plus, in keyframe mode after a step, `keyframe`: what the last action did
        (motion.KeyframeOutcome as a dict: reached, reachable, errors, control steps)."""
        info = super()._info()
        if self.last_keyframe is not None:
            info["keyframe"] = self.last_keyframe.as_info()
        return info

    def _proprio(self) -> np.ndarray:
        state = self.arm.state()
        if self.task_state is not None:
            state = np.concatenate([state, self.task_state(self.data)])
        if self.arm.mode == "keyframe":
            state = np.append(state, np.float32(self._steps))
        return state

    def _success(self) -> bool:
        return bool(self.task_impl.success(self.sim))

    def close(self) -> None:
        if self.subgoal_oracle is not None:
            self.subgoal_oracle.close()
        super().close()

    def _privileged(self) -> dict[str, Any]:
        tcp_pos, tcp_quat = self.arm.tcp_pose()
        return {
            "tcp_pos": tcp_pos,
            "tcp_quat": tcp_quat,
            "target_pos": self.arm.target_pos.copy(),
            "target_quat": self.arm.target_quat.copy(),
            "q": self.arm.joint_positions(),
            "q_cmd": self.arm.q_cmd.copy(),
            "joint_velocities": self.arm.joint_velocities(),
            "gripper_opening": self.arm.gripper_opening(),
            "variation": self.variation.index,
            "variation_params": dict(self.variation.params),
            "task": self.task_impl.privileged(self.sim),
        }
