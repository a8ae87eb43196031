"""Chunk execution (receding horizon, temporal ensembling) and the observation history."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from polyact.errors import ContractError
from polyact.policies import ChunkRunner, ObservationHistory, RecedingHorizon, TemporalEnsemble


def chunk(start: float, horizon: int = 4, dim: int = 2) -> np.ndarray:
    """A chunk whose step j holds start + j in every dimension."""
    return np.repeat((start + np.arange(horizon, dtype=np.float32))[:, None], dim, axis=1)


def test_receding_horizon_executes_k_then_replans():
    ex = RecedingHorizon(num_envs=2, replan_every=3)
    assert ex.due().tolist() == [True, True]
    ex.add([0, 1], np.stack([chunk(0), chunk(100)]))
    got = []
    for _ in range(3):
        assert ex.due().tolist() == [False, False]
        got.append(ex.pop()[:, 0].tolist())
    assert got == [[0, 100], [1, 101], [2, 102]]  # the first k = 3 of H = 4, then...
    assert ex.due().tolist() == [True, True]  # ...re-plan
    with pytest.raises(ContractError, match="need a new chunk"):
        ex.pop()


def test_receding_horizon_reset_one_env():
    ex = RecedingHorizon(num_envs=2, replan_every=2)
    ex.add([0, 1], np.stack([chunk(0), chunk(10)]))
    ex.pop()
    ex.reset([1])
    assert ex.due().tolist() == [False, True]
    ex.add([1], chunk(50)[None])
    assert ex.pop()[:, 0].tolist() == [1, 50]


def test_temporal_ensemble_weights_by_hand():
    k = 0.5
    ex = TemporalEnsemble(num_envs=1, chunk=3, exp_weight=k)
    # step 0: only chunk A predicts step 0
    ex.add([0], chunk(0, horizon=3)[None])  # A predicts 0, 1, 2 for steps 0, 1, 2
    assert ex.pop()[0, 0] == pytest.approx(0.0)
    # step 1: A says 1 (oldest, weight 1), B says 10 (weight e^-k)
    ex.add([0], chunk(10, horizon=3)[None])
    w = np.array([1.0, math.exp(-k)])
    assert ex.pop()[0, 0] == pytest.approx((w @ [1.0, 10.0]) / w.sum())
    # step 2: A says 2, B says 11, C says 20 with weights 1, e^-k, e^-2k
    ex.add([0], chunk(20, horizon=3)[None])
    w = np.array([1.0, math.exp(-k), math.exp(-2 * k)])
    assert ex.pop()[0, 0] == pytest.approx((w @ [2.0, 11.0, 20.0]) / w.sum())
    # step 3: A has run out; B says 12, C 21, D 30
    ex.add([0], chunk(30, horizon=3)[None])
    assert ex.pop()[0, 0] == pytest.approx((w @ [12.0, 21.0, 30.0]) / w.sum())


def test_temporal_ensemble_uniform_is_octo_average():
    ex = TemporalEnsemble(num_envs=2, chunk=4, exp_weight=0.0)
    ex.add([0, 1], np.stack([chunk(0), chunk(0)]))
    ex.pop()
    ex.add([0, 1], np.stack([chunk(4), chunk(8)]))
    assert ex.pop()[:, 0].tolist() == [pytest.approx(2.5), pytest.approx(4.5)]
    assert ex.weights(3).tolist() == pytest.approx([1 / 3] * 3)
    ex.reset([0])
    assert ex.due().tolist() == [True, True]


def obs(value: float, instruction: str = "go") -> dict:
    return {
        "rgb/cam": np.full((2, 2, 3), value, np.uint8),
        "state": np.full(3, value, np.float32),
        "instruction": instruction,
    }


def test_history_pads_with_oldest_and_marks_padding():
    hist = ObservationHistory(num_envs=2, history=3)
    hist.push([obs(1), obs(5)])
    hist.push([obs(2), obs(6)])
    batch = hist.batch()
    assert batch["obs/state"].shape == (2, 3, 3) and batch["obs/rgb/cam"].shape == (2, 3, 2, 2, 3)
    assert batch["obs/state"][0, :, 0].tolist() == [1, 1, 2]
    assert batch["obs_is_pad"].tolist() == [[True, False, False]] * 2
    hist.push([obs(3), obs(7)])
    hist.push([obs(4), obs(8)])
    assert hist.batch([1])["obs/state"][0, :, 0].tolist() == [6, 7, 8]
    hist.reset([0])
    hist.push([obs(9), obs(10)])
    b = hist.batch()
    assert b["obs/state"][0, :, 0].tolist() == [9, 9, 9] and b["obs_is_pad"][0].tolist() == [True, True, False]
    assert b["instruction"] == ["go", "go"]


class FakePolicy:
    """Returns, for each env, a chunk starting at its newest state value plus its first noise draw;
    records the batch size of every call."""

    device = "cpu"

    def __init__(self, history: int, chunk: int, replan_every: int = 2, noisy: bool = False):
        self.config = SimpleNamespace(
            history=history, chunk=chunk, action_dim=1, execution="receding_horizon", replan_every=replan_every,
            ensemble_weight=0.0, cameras=["cam"], image_height=2, image_width=2, state_dim=3, goal_dim=0,
            vision=SimpleNamespace(depth=False),
        )  # fmt: skip
        self.noisy, self.calls = noisy, []

    def predict_chunk(self, batch, noise):
        newest = batch["obs/state"][:, -1, 0]
        self.calls.append(len(newest))
        out = np.stack([chunk(v, self.config.chunk, 1) for v in newest])
        return out + noise.numpy()[:, :1, :] if self.noisy else out


def test_runner_replans_only_envs_that_need_it():
    policy = FakePolicy(history=2, chunk=4)
    runner = ChunkRunner(policy, num_slots=2)
    assert runner.act([obs(0), obs(10)])[:, 0].tolist() == [0, 10]
    assert runner.act([obs(1), obs(11)])[:, 0].tolist() == [1, 11]
    runner.reset([1])
    assert runner.act([obs(2), obs(20)])[:, 0].tolist() == [2, 20]  # both re-plan: env 0 ran out, env 1 reset
    assert runner.act([obs(3), obs(21)])[:, 0].tolist() == [3, 21]
    assert policy.calls == [2, 2]


def test_runner_noise_follows_the_episode_seed_not_the_batch():
    """A seeded slot gets the same actions whether it plans alone or beside other slots."""
    alone = ChunkRunner(FakePolicy(history=1, chunk=4, noisy=True), num_slots=1)
    alone.reset([0], seeds=[123])
    together = ChunkRunner(FakePolicy(history=1, chunk=4, noisy=True), num_slots=3)
    together.reset([0, 1, 2], seeds=[5, 123, 9])
    for step in range(5):
        mine = alone.act([obs(step)])
        ours = together.act([obs(50), obs(step), obs(60)])
        np.testing.assert_array_equal(ours[1], mine[0])
    assert not np.array_equal(ours[0] - 50, ours[1] - 4)  # other seeds, other noise


def test_runner_acts_for_a_subset_of_slots():
    policy = FakePolicy(history=1, chunk=4)
    runner = ChunkRunner(policy, num_slots=3)
    assert runner.act([obs(7), obs(1)], slots=[2, 0])[:, 0].tolist() == [7, 1]
    assert runner.act([obs(8)], slots=[2])[:, 0].tolist() == [8]  # slot 2's second action; slot 0 untouched
    assert policy.calls == [2]


def test_executors_serve_subsets_of_slots():
    ex = RecedingHorizon(num_envs=3, replan_every=2)
    assert ex.due([2, 0]).tolist() == [True, True]
    ex.add([2], chunk(20)[None])
    assert ex.due([2, 1]).tolist() == [False, True]
    assert ex.pop([2])[:, 0].tolist() == [20]
    with pytest.raises(ContractError, match=r"\[1\]"):
        ex.pop([2, 1])
    te = TemporalEnsemble(num_envs=3, chunk=4, exp_weight=0.0)
    te.add([0, 2], np.stack([chunk(0), chunk(8)]))
    assert te.due().tolist() == [False, True, False]
    assert te.pop([2, 0])[:, 0].tolist() == [8, 0]
    assert te.due([0, 2]).tolist() == [True, True]


def test_make_executor_from_config():
    from polyact.errors import UnknownNameError
    from polyact.policies import PolicyConfig, make_executor

    cfg = PolicyConfig(size="tiny", chunk=8, replan_every=3, execution="temporal_ensemble", ensemble_weight=0.0)
    te = make_executor(cfg.execution, 4, cfg)
    assert isinstance(te, TemporalEnsemble) and te.chunk == 8 and te.exp_weight == 0.0
    rh = make_executor("receding_horizon", 4, cfg)
    assert isinstance(rh, RecedingHorizon) and rh.replan_every == 3
    with pytest.raises(UnknownNameError, match="temporal_ensemble"):
        make_executor("temporal_ensembling", 4, cfg)
    with pytest.raises(UnknownNameError, match="execution mode"):
        PolicyConfig(execution="receding")
