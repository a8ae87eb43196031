"""The served placement of evaluation: slots acting through a running server act as the policy in-process."""

from __future__ import annotations

import numpy as np

from polyact.deploy.config import ServeConfig
from polyact.deploy.served_slots import ServedSlots
from polyact.deploy.server import serve_in_thread
from polyact.eval.policy import select_rows
from polyact.eval.trained import load_policy


def batch(observations: list[dict]) -> dict:
    """Contract observations stacked into an evaluation batch (instruction: a list of str)."""
    return {k: [o[k] for o in observations] if k == "instruction" else np.stack([o[k] for o in observations])
            for k in observations[0]}  # fmt: skip


def test_served_slots_give_the_in_process_policys_actions(checkpoint, served, observation):
    """Two slots over 7 steps of a history-2, chunk-4, replan-every-2 policy, slot 1 starting a new
    episode at step 3: histories, chunk queues and resets must line up with the in-process runner."""
    in_process = load_policy(checkpoint[0], 2)
    with serve_in_thread(served, ServeConfig(port=0)) as server:
        slots = ServedSlots(f"ws://127.0.0.1:{server.port}", 2)
        try:
            for policy in (in_process, slots):
                policy.reset([0, 1])
            infos = [{"seed": 10}, {"seed": 11}]
            for step in range(7):
                ids = [0, 1]
                if step == 3:
                    for policy in (in_process, slots):
                        policy.reset([1])
                    infos = [{}, {"seed": 12}]
                obs = batch([observation(2 * step + i) for i in ids])
                want = in_process.act(select_rows(obs, [0, 1]), infos, ids)
                got = slots.act(select_rows(obs, [0, 1]), infos, ids)
                assert got.shape == (2, 4) and got.dtype == np.float32
                np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"step {step}")
                infos = [{}, {}]
        finally:
            slots.close()
