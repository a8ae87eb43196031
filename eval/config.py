"""`polyact eval` settings: which policy, which tasks and episodes, how many workers, where results go."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from polyact.envs.config import EnvConfig
from polyact.envs.registry import resolve_tasks
from polyact.errors import ConfigError, unknown_name
from polyact.policies.config import EXECUTIONS
from polyact.runners import check_runner

PROTOCOLS = ("seeds", "metaworld_goals", "lerobot")
OFFICIAL_GOALS_PER_TASK = 50  # metaworld's benchmarks give each task 50 goal configurations
LEROBOT_CAMERAS = ["corner2_lerobot"]  # LeRobot's one camera: corner2 moved (envs/metaworld.py)
LEROBOT_EPISODE_STEPS = 500  # lerobot src/lerobot/envs/metaworld.py:104 (max_path_length)
SERVED_SCHEMES = ("ws", "wss")  # policy=ws://HOST:PORT: a running `polyact serve`


def is_served(policy: str) -> bool:
    """Whether `policy` names a policy server (a URL) rather than the experts or a checkpoint directory."""
    return "://" in policy


def check_served_url(policy: str) -> None:
    """ConfigError unless `policy` is ws://HOST:PORT or wss://HOST:PORT, what `polyact serve` prints."""
    url = urlsplit(policy)
    try:
        port = url.port
    except ValueError as err:  # a port that is not a number, or out of range
        port, problem = None, str(err)
    else:
        problem = ""
    if url.scheme not in SERVED_SCHEMES:
        problem = f"the scheme is {url.scheme!r}, not ws or wss"
    elif not problem and not (url.hostname and port):
        problem = "it names no host and port"
    elif not problem and (url.query or url.fragment or url.path not in ("", "/")):
        problem = "it has a path, query or fragment"
    if problem:
        raise ConfigError(
            f"policy={policy!r} is not a policy server URL ({problem}): give ws://HOST:PORT as printed by "
            "`polyact serve`, 'expert' or a checkpoint directory"
        )


@dataclass
class EvalConfig:
    """`polyact eval`: roll a policy out on a task set and write success rates with 95% intervals.

    `policy` is `expert` (the suite's scripted experts), a checkpoint directory, or ws://HOST:PORT: a
    running `polyact serve` that every worker asks for action chunks (docs/eval.md). `env.tasks` names the
    task set and split (MT10, MT50, ML10-train, ML45-test, a single task, ...; `polyact tasks` lists them).
    Episode i of every task starts from seed EVAL_SEED_BASE + i (`protocol=seeds`), or, with
    `protocol=metaworld_goals`, from goal configuration i of `metaworld.MT1(task, seed=goal_seed)`
    (metaworld's own 50 per task). `protocol=lerobot` is LeRobot's MetaWorld evaluation, the one behind
    the published SmolVLA, pi0 and Evo-1 numbers: it needs env.goal=false env.cameras=[corner2_lerobot],
    runs 500 steps and starts episode i from seed 1000 + i (docs/eval.md says where each point comes
    from). `out` ('' = evals/<policy>-<tasks>-<protocol>) collects results.json/.md/.png, videos/ and
    episodes.jsonl; rerunning the same command resumes there. `runner=ray` runs the episodes on Ray
    actors, on the cluster at `ray_address` or a local one, with the same files and resume semantics.
    """

    policy: str = "expert"
    env: EnvConfig = field(default_factory=EnvConfig)
    only_tasks: list[str] = field(default_factory=list)  # evaluate just these tasks of env.tasks ([] = all)
    episodes_per_task: int = 50
    protocol: str = "seeds"
    goal_seed: int = 0  # protocol=metaworld_goals: the seed of metaworld.MT1's goal draw
    workers: int = 0  # worker processes (environments stepped in parallel); 0 = one per CPU core (of the cluster)
    execution: str = ""  # chunk execution: receding_horizon or temporal_ensemble; '' = the checkpoint's
    device: str = "cpu"  # torch device of a checkpoint (cpu, cuda, cuda:1, ...); a served policy's is the server's
    out: str = ""
    videos: bool = True  # mp4 of the first success and the first failure of each task
    train_dataset: str = ""  # a dataset the policy was trained on: refuse evaluation seeds it contains
    progress: bool = True
    runner: str = "local"  # local: worker processes on this machine; ray: Ray actors on a cluster (docs/eval.md)
    ray_address: str = ""  # runner=ray: HOST:PORT of `ray start --head`, or auto; '' = a new local cluster
    ray_retries: int = 3  # runner=ray: times one episode is run again after its worker was lost

    def __post_init__(self) -> None:
        if self.episodes_per_task < 1:
            raise ConfigError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        if self.protocol not in PROTOCOLS:
            raise unknown_name("protocol", self.protocol, PROTOCOLS)
        if self.protocol == "metaworld_goals" and self.episodes_per_task > OFFICIAL_GOALS_PER_TASK:
            raise ConfigError(
                f"protocol=metaworld_goals has {OFFICIAL_GOALS_PER_TASK} goal configurations per task; "
                f"episodes_per_task={self.episodes_per_task} asks for more"
            )
        suite, tasks = resolve_tasks(self.env.tasks)
        for task in self.only_tasks:
            if task not in tasks:
                raise unknown_name(f"task of {self.env.tasks} (only_tasks)", task, tasks)
        if self.protocol in ("metaworld_goals", "lerobot") and suite.name != "metaworld":
            raise ConfigError(f"protocol={self.protocol} needs Meta-World tasks; env.tasks={self.env.tasks!r} is not")
        if self.protocol == "lerobot":
            self._check_lerobot_env()
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = one per CPU core), got {self.workers}")
        self._check_runner()
        if self.execution and self.execution not in EXECUTIONS:
            raise unknown_name("execution mode (execution)", self.execution, EXECUTIONS)
        if self.policy == "expert" and self.execution:
            raise ConfigError(
                "execution applies to chunk-predicting checkpoints; the scripted experts act step by step"
            )
        if self.served:
            check_served_url(self.policy)
            if self.execution not in ("", "receding_horizon"):
                raise ConfigError(
                    f"execution={self.execution} needs the policy in this process: a served policy's chunks are "
                    "executed receding-horizon, every replan_every steps of the server's checkpoint"
                )

    def _check_runner(self) -> None:
        check_runner(self.runner, self.ray_address, self.ray_retries)

    def _check_lerobot_env(self) -> None:
        """LeRobot's observation is one corner2_lerobot image and the 4-D hand state, without the goal."""
        wrong = []
        if self.env.goal:
            wrong.append("env.goal=false (LeRobot withholds the goal)")
        if list(self.env.cameras) != LEROBOT_CAMERAS:
            wrong.append(f"env.cameras=[corner2_lerobot] (got {list(self.env.cameras) or 'the default'})")
        if self.env.max_episode_steps not in (0, LEROBOT_EPISODE_STEPS):
            wrong.append(f"env.max_episode_steps=0 or {LEROBOT_EPISODE_STEPS} (got {self.env.max_episode_steps})")
        if wrong:
            raise ConfigError("protocol=lerobot (LeRobot's MetaWorld evaluation) needs " + ", ".join(wrong))

    @property
    def observation(self) -> str:
        """What the policy is given, for every results table."""
        if self.env.task_state:
            return "privileged task state (every prop's pose in the state vector, as RLBench's task_low_dim_state)"
        if not resolve_tasks(self.env.tasks)[0].goal_vector:
            return "no goal vector (the suite has none: targets are seen in the cameras or named in the instruction)"
        if self.env.goal:
            return "privileged goal (the goal vector is in the observation)"
        return "goal-free (cameras and proprioception only)"

    @property
    def served(self) -> bool:
        """Whether the actions come from a running `polyact serve` (policy=ws://HOST:PORT)."""
        return is_served(self.policy)

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks to evaluate, in the task set's order."""
        tasks = resolve_tasks(self.env.tasks)[1]
        return tuple(t for t in tasks if t in self.only_tasks) if self.only_tasks else tasks

    @property
    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        if self.served:
            url = urlsplit(self.policy)
            name = f"served-{url.hostname}-{url.port}"
        else:
            name = "expert" if self.policy == "expert" else Path(self.policy).resolve().name
        return Path("evals") / f"{name}-{self.env.tasks}-{self.protocol}"

    def identity(self) -> dict[str, Any]:
        """What decides each episode's outcome: a run directory only resumes under the same identity.

        The tasks and the number of episodes are not part of it: a rerun with more extends the run. A
        served policy is its URL here; `evaluate` adds the name of what the server serves.
        """
        local = self.policy == "expert" or self.served
        policy = self.policy if local else str(Path(self.policy).resolve())
        identity = {
            "policy": policy,
            "env": self.env.identity(),
            "protocol": self.protocol,
            "execution": self.execution,
        }
        if self.protocol == "metaworld_goals":
            identity["goal_seed"] = self.goal_seed
        if not local:  # another device may round differently
            identity["device"] = self.device
        return identity
