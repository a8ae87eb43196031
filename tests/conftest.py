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
