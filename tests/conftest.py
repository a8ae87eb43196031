"""Shared test settings and fixtures: offscreen EGL rendering for every test process and subprocess."""

import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="session")
def state_recording_env():
    """The rlbench_like CPU env class, keeping qpos and qvel after its reset and after every step (its
    `states`), as the MJX experts record them: a CPU episode becomes a `StateTrajectory` to replay."""
    from polyact.envs.rlbench_like.env import RLBenchLikeEnv

    class StateRecordingEnv(RLBenchLikeEnv):
        def _reset_sim(self, seed, options):
            instruction = super()._reset_sim(seed, options)
            self.states = [(self.data.qpos.copy(), self.data.qvel.copy())]
            return instruction

        def _apply_action(self, action):
            super()._apply_action(action)
            self.states.append((self.data.qpos.copy(), self.data.qvel.copy()))

    return StateRecordingEnv


@pytest.fixture(scope="session")
def env_batch():
    """The Batch protocol of the MJX drivers (envs/rlbench_like/mjx/experts.py) over rlbench_like CPU envs,
    `EnvBatch(task, env_config, n)`, keeping what each env observed (`observed`: obs["state"] after the reset
    and after each step) and was given (`given`: each step's (N, A) actions), so evaluate_states is tested
    without compiling MJX. One batch per distinct arguments for the session, closed at its end."""
    import numpy as np

    from polyact.envs.rlbench_like import TASKS
    from polyact.envs.rlbench_like.env import RLBenchLikeEnv

    class EnvBatch:
        def __init__(self, task, cfg, n):
            self.envs = [RLBenchLikeEnv(TASKS[task](), cfg) for _ in range(n)]
            self.task, self.model = self.envs[0].task_impl, self.envs[0].model

        def reset(self, seeds, options=None):
            self.observed = [[] for _ in self.envs]
            self.given = []
            self.instructions = []
            options = options or [{}] * len(seeds)
            for env, seed, opts, observed in zip(self.envs, seeds, options, self.observed, strict=True):
                obs, _ = env.reset(seed=int(seed), options=dict(opts))
                observed.append(obs["state"])
                self.instructions.append(obs["instruction"])
            return list(self.instructions)

        def step(self, actions):
            self.given.append(np.array(actions))
            success = []
            for env, action, observed in zip(self.envs, actions, self.observed, strict=True):
                obs, _, _, _, info = env.step(action)
                observed.append(obs["state"])
                success.append(info["success"])
            return np.array(success)

        def snapshot(self):
            fields = ("qpos", "qvel", "mocap_pos", "mocap_quat", "xpos", "xmat", "site_xpos", "site_xmat")
            snap = {f: np.stack([getattr(env.data, f) for env in self.envs]) for f in fields}
            arm = ("q_cmd", "target_pos", "target_quat")
            return snap | {f: np.stack([getattr(env.arm, f) for env in self.envs]) for f in arm}

        def close(self):
            for env in self.envs:
                env.close()

    built = {}

    def batch_of(task, cfg, n):
        key = (task, repr(cfg), n)
        if key not in built:
            built[key] = EnvBatch(task, cfg, n)
        return built[key]

    yield batch_of
    for batch in built.values():
        batch.close()
