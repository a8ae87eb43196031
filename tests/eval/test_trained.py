"""A trained checkpoint through evaluation: load_policy, the fit check, per-episode noise, a whole run.

The policy is an untrained `tiny` diffusion policy saved with save_pretrained: what matters here is
the plumbing (history, chunk execution, sampling noise, batching), not its success rate.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym
import numpy as np
import pytest

from polyact.contract import PolicyRequirements
from polyact.envs.config import EnvConfig
from polyact.envs.metaworld_instructions import INSTRUCTIONS
from polyact.envs.vector import vector_env
from polyact.errors import ContractError
from polyact.eval import run as run_module
from polyact.eval.episodes import plan_jobs
from polyact.eval.rollout import run_episodes
from polyact.eval.run import probe_spec
from polyact.eval.trained import TrainedPolicy, load_policy
from polyact.eval.worker import EvalEnv

pytestmark = pytest.mark.slow

CFG = EnvConfig(tasks="MT10", height=32, width=32, max_episode_steps=6)


def stats_for(spec) -> dict:
    def feat(dim: int, scale: float = 1.0, offset: float = 0.0) -> dict:
        return {
            "mean": np.full(dim, offset, np.float32),
            "std": np.full(dim, scale / 2, np.float32),
            "min": np.full(dim, offset - scale, np.float32),
            "max": np.full(dim, offset + scale, np.float32),
            "q01": np.full(dim, offset - 0.9 * scale, np.float32),
            "q99": np.full(dim, offset + 0.9 * scale, np.float32),
            "count": 1000,
        }

    stats = {"action": feat(spec.action.dim), "state": feat(len(spec.state_names)), "goal": feat(len(spec.goal_names))}
    for cam in spec.camera_names:
        stats[f"rgb/{cam}"] = feat(3, 60.0, 120.0)
        stats[f"depth/{cam}"] = feat(1, 0.5, 1.5)
    return stats


@pytest.fixture(autouse=True)
def one_thread():
    """A tiny model runs fastest on one thread; on a busy 2-core machine two threads wait on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from polyact.policies import HeadConfig, PolicyConfig, build_policy

    spec = probe_spec("reach-v3", CFG)
    config = PolicyConfig(
        size="tiny", head=HeadConfig(name="diffusion", sample_steps=2), history=2, chunk=4, replan_every=2
    )
    torch.manual_seed(0)
    policy = build_policy(config, spec, stats_for(spec), [s for t in ("reach-v3", "push-v3") for s in INSTRUCTIONS[t]])
    path = tmp_path_factory.mktemp("ckpt") / "tiny-diffusion"
    policy.save_pretrained(path)
    return path


class ActionLog:
    """Wraps a BatchPolicy and keeps every action by (task, episode seed)."""

    def __init__(self, policy):
        self.policy, self.requirements = policy, policy.requirements
        self.actions: dict[tuple[str, int], list[np.ndarray]] = {}
        self._episode: dict[int, tuple[str, int]] = {}

    def reset(self, env_ids):
        self.policy.reset(env_ids)
        self._episode.update({i: None for i in env_ids})

    def act(self, obs, infos, env_ids):
        out = self.policy.act(obs, infos, env_ids)
        for row, i in enumerate(env_ids):
            if self._episode[i] is None:
                self._episode[i] = (infos[row]["task"], infos[row]["seed"])
            self.actions.setdefault(self._episode[i], []).append(out[row])
        return out


def logged_run(path, slots: int, execution: str = "", tasks=("reach-v3", "push-v3")) -> dict:
    policy = ActionLog(load_policy(str(path), num_envs=slots, execution=execution))
    vec = vector_env(
        [partial(EvalEnv, CFG, "reach-v3")] * slots,
        asynchronous=False,
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )
    try:
        run_episodes(vec, policy, plan_jobs(tasks, 2, "seeds", 0, set()), lambda r, f: None)
    finally:
        vec.close()
    return policy.actions


def test_a_checkpoint_declares_what_it_needs(checkpoint):
    policy = load_policy(str(checkpoint), num_envs=2)
    assert isinstance(policy, TrainedPolicy)
    assert policy.requirements == PolicyRequirements(
        ("corner",), 4, 4, 3, (32, 32), action_names=("dx", "dy", "dz", "gripper")
    )


def test_episode_actions_do_not_depend_on_batching(checkpoint):
    two, one = logged_run(checkpoint, 2), logged_run(checkpoint, 1)
    assert sorted(two) == sorted(one) and len(two) == 4
    for episode, actions in two.items():
        assert len(actions) == 6
        np.testing.assert_allclose(np.stack(actions), np.stack(one[episode]), atol=1e-5)
    first = [np.stack(a) for a in two.values()]
    assert not np.allclose(first[0], first[1])  # different episodes draw different noise
    ensembled = logged_run(checkpoint, 2, execution="temporal_ensemble", tasks=("reach-v3",))
    assert not np.allclose(np.stack(ensembled[("reach-v3", 1_000_000)]), np.stack(two[("reach-v3", 1_000_000)]))


def test_polyact_eval_loads_a_checkpoint_and_checks_it_first(checkpoint, tmp_path, make_config):
    cfg = make_config(tmp_path / "run", policy=str(checkpoint), env=CFG, execution="temporal_ensemble")
    assert isinstance(run_module.policy_for_eval(cfg, 2), TrainedPolicy)
    wrong = make_config(
        tmp_path / "wrong",
        policy=str(checkpoint),
        env=EnvConfig(tasks="MT10", cameras=["topview"], height=32, width=32),
    )
    with pytest.raises(ContractError, match=r"missing \['corner'\]"):
        run_module.evaluate(wrong)
    assert not (tmp_path / "wrong").exists()
