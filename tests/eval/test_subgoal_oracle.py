"""Evaluation hands an environment's sub-goal (env.subgoal_oracle) to a sub-goal conditioned policy, which
draws that one, not its sub-goal predictor's. An untrained `tiny` GravMap policy: the plumbing matters."""

from __future__ import annotations

import dataclasses
from functools import partial

import gymnasium as gym
import numpy as np
import torch

from polyact.envs.config import EnvConfig
from polyact.envs.vector import vector_env
from polyact.eval.episodes import plan_jobs
from polyact.eval.rollout import run_episodes
from polyact.eval.run import probe_spec
from polyact.eval.trained import TrainedPolicy
from polyact.eval.worker import EvalEnv
from polyact.policies import PolicyConfig, VLAPolicy, build_policy

TASK = "close_jar"
CFG = EnvConfig(
    tasks=TASK, cameras=["wrist"], height=32, width=32, action_mode="keyframe", subgoal_oracle=True, max_episode_steps=2
)


def stats_for(spec) -> dict:
    def feat(dim: int, scale: float, offset: float) -> dict:
        full = lambda v: np.full(dim, v, np.float32)  # noqa: E731
        return {"mean": full(offset), "std": full(scale / 2), "min": full(offset - scale),
                "max": full(offset + scale), "q01": full(offset - 0.9 * scale), "q99": full(offset + 0.9 * scale),
                "count": 1000}  # fmt: skip

    return {
        "action": feat(spec.action.dim, 1.0, 0.0),
        "state": feat(len(spec.state_names), 1.0, 0.0),
        "rgb/wrist": feat(3, 60.0, 120.0),
        "depth/wrist": feat(1, 0.5, 1.5),
    }


def tiny_policy(spec, **overrides) -> VLAPolicy:
    config = PolicyConfig(size="tiny", history=2, chunk=1, replan_every=1, vision={"depth": True}, **overrides)
    return build_policy(config, spec, stats_for(spec), ["close the red jar"]).eval()


class SubgoalLog:
    """Wraps a BatchPolicy and keeps the `subgoal` rows of every observation evaluation hands it."""

    def __init__(self, policy):
        self.policy, self.requirements = policy, policy.requirements
        self.given: list[np.ndarray] = []

    def reset(self, env_ids):
        self.policy.reset(env_ids)

    def act(self, obs, infos, env_ids):
        self.given.append(np.asarray(obs["subgoal"][0]))
        return self.policy.act(obs, infos, env_ids)


def test_evaluation_gives_the_policy_the_oracles_subgoal_over_its_predictors(monkeypatch):
    spec = probe_spec(TASK, CFG)
    trained_on = dataclasses.replace(spec, subgoal=False)  # a keyframe dataset's contract: sub-goals are a feature
    torch.manual_seed(0)
    policy = tiny_policy(trained_on, subgoal_conditioning="gravmap")
    policy.attach_subgoal_predictor(tiny_policy(trained_on))
    drawn: list[tuple[dict, torch.Tensor]] = []
    original = VLAPolicy._subgoal
    monkeypatch.setattr(
        VLAPolicy, "_subgoal", lambda self, batch: drawn.append((batch, original(self, batch))) or drawn[-1][1]
    )
    asked = []
    predict = policy.subgoal_predictor.predict_chunk
    monkeypatch.setattr(
        policy.subgoal_predictor, "predict_chunk", lambda batch, **kw: asked.append(1) or predict(batch, **kw)
    )
    log = SubgoalLog(TrainedPolicy(policy, num_envs=1))
    vec = vector_env(
        [partial(EvalEnv, CFG, TASK)], asynchronous=False, autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )
    try:
        run_episodes(vec, log, plan_jobs([TASK], 1, "seeds", 0, set()), lambda result, frames: None)
    finally:
        vec.close()
    assert len(drawn) == len(log.given) == 2 and not asked
    for (batch, subgoal), given in zip(drawn, log.given, strict=True):
        np.testing.assert_array_equal(subgoal[0].numpy(), given)
        without = {k: v for k, v in batch.items() if k != "obs/subgoal"}
        assert not np.allclose(predict(without)[0, 0], given, atol=1e-2)  # the predictor would have said otherwise
