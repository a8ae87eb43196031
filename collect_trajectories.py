"""Which recorded state trajectories a collection renders instead of running the experts, and why not others.

`polyact collect trajectories=PATH.npz` (collect.py) takes each task's attempts from a file of the
rlbench_like experts' state trajectories (recorded on MJX for many seeds at once). A dataset written
from them must be the one a direct collection of those seeds writes, so a file that cannot give it (other
tasks, a seed gap, another variation split or action mode, an episode cut short) is refused here, before
anything is written, saying what to change.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from polyact.envs.catalog import resolve_tasks
from polyact.envs.registry import make_env
from polyact.errors import ConfigError

if TYPE_CHECKING:
    from polyact.collect import CollectConfig
    from polyact.envs.rlbench_like.mjx.trajectory import StateTrajectory

Trajectories = dict[str, dict[int, "StateTrajectory"]]  # task -> seed -> its recorded episode


def trajectories_to_collect(cfg: CollectConfig, tasks: tuple[str, ...]) -> Trajectories:
    """`cfg.trajectories` by task and seed (those from `cfg.seed` on), once each is shown to be an episode a
    direct collection with `cfg` records, cut at the env's step limit as it would be; ConfigError otherwise."""
    from polyact.envs.rlbench_like.mjx.trajectory import load_trajectories

    where = f"trajectories={cfg.trajectories}"
    _check_replay_settings(cfg, where)
    by_task: Trajectories = {t: {} for t in tasks}
    for trajectory in load_trajectories(cfg.trajectories):
        if trajectory.task not in by_task:
            raise ConfigError(
                f"{where} holds trajectories of {trajectory.task}, which env.tasks={cfg.env.tasks} does not "
                f"name ({', '.join(tasks)}); collect them with env.tasks={trajectory.task} or a set holding it"
            )
        if trajectory.seed in by_task[trajectory.task]:
            raise ConfigError(f"{where} holds two trajectories of {trajectory.task} seed {trajectory.seed}")
        if trajectory.seed >= cfg.seed:
            by_task[trajectory.task][trajectory.seed] = trajectory
    probe = make_env(tasks[0], cfg.env)
    spec = probe.contract
    probe.close()
    split, max_steps, action_dim = spec.notes["variation_split"], spec.max_episode_steps, spec.action.dim
    for task, by_seed in by_task.items():
        first_missing = min(set(range(cfg.seed, cfg.seed + len(by_seed) + 1)) - set(by_seed))
        if not by_seed or first_missing < cfg.seed + len(by_seed):  # none, or a gap no attempt could pass
            held = f"{len(by_seed)} seeds, {min(by_seed)} to {max(by_seed)}" if by_seed else "none"
            raise ConfigError(
                f"{where} has no trajectory of {task} seed {first_missing} (from seed={cfg.seed} on it has "
                f"{held}); collection takes each task's seeds in order, from `seed`"
            )
        for seed, trajectory in by_seed.items():
            by_seed[seed] = _as_collected(trajectory, split, max_steps, action_dim, where)
    return by_task


def _check_replay_settings(cfg: CollectConfig, where: str) -> None:
    """The settings under which the experts' trajectories are the episodes a direct collection records."""
    suite_name = resolve_tasks(cfg.env.tasks)[0].name
    if suite_name != "rlbench_like":
        raise ConfigError(
            f"{where}: state trajectories are of rlbench_like tasks; env.tasks={cfg.env.tasks} is {suite_name}"
        )
    if cfg.env.action_mode != "default":
        raise ConfigError(
            f"{where}: the experts' trajectories hold `default` (end-effector delta) actions; "
            f"env.action_mode={cfg.env.action_mode} would record others"
        )
    if not cfg.stop_on_success:
        raise ConfigError(
            f"{where}: the experts' trajectories end once the task succeeded and the script finished, as "
            "stop_on_success=true records them; stop_on_success=false would record on to the step limit"
        )


def _as_collected(
    trajectory: StateTrajectory, split: str, max_steps: int, action_dim: int, where: str
) -> StateTrajectory:
    """The trajectory as a direct collection records its seed: reset with the env's variation split, cut at
    the step limit; ConfigError where it cannot be (other options, actions, or it ends too early)."""
    what = f"{where}: {trajectory.task} seed {trajectory.seed}"
    if trajectory.options not in ({}, {"variation_split": split}):
        raise ConfigError(
            f"{what} was reset with options {trajectory.options}; a collection of env.tasks resets with "
            f"{{'variation_split': '{split}'}} (record with --split {split}, or choose the task set of that split)"
        )
    if trajectory.actions.shape[1] != action_dim:
        raise ConfigError(f"{what} has {trajectory.actions.shape[1]}-dim actions; the env's actions have {action_dim}")
    steps = len(trajectory.actions)
    if steps < max_steps and not trajectory.success:
        raise ConfigError(
            f"{what} ends after {steps} steps without success, before the env's step limit {max_steps}: it was "
            f"recorded with a lower --max-steps; set env.max_episode_steps={steps} or record it again"
        )
    return replace(
        trajectory,
        options={"variation_split": split},
        qpos=trajectory.qpos[: max_steps + 1],
        qvel=trajectory.qvel[: max_steps + 1],
        actions=trajectory.actions[:max_steps],
        successes=trajectory.successes[:max_steps],
    )
