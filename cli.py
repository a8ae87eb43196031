"""The `polyact` command: `polyact COMMAND [key=value ...]`, each command configured by a dataclass.

Commands are imported only when run, so `polyact --help` is instant. A bad key or value, an unknown
task or a malformed dataset ends the command with one line saying what was wrong (exit code 2);
a kill or Ctrl-C leaves datasets consistent and the same command resumes.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

from polyact.errors import PolyactError, unknown_name


@dataclass(frozen=True)
class Command:
    summary: str
    config: str  # "module:Class" of the dataclass schema
    run: str  # "module:function" taking the config


COMMANDS: dict[str, Command] = {
    "quickstart": Command(
        "the main job on embedded defaults: MT10 demonstrations, a small policy trained on the CPU, its evaluation",
        "polyact.quickstart:QuickstartConfig",
        "polyact.quickstart:run",
    ),
    "train": Command(
        "train a policy on a dataset (resumable; data-parallel under torchrun)",
        "polyact.train.config:TrainConfig",
        "polyact.train.loop:run",
    ),
    "merge": Command(
        "one multi-task policy from a base and its fine-tunes: task arithmetic, TIES (optionally LiNeS) or AdaMerging",
        "polyact.train.merge:MergeConfig",
        "polyact.train.merge:run",
    ),
    "collect": Command(
        "record scripted demonstrations of a task set into a dataset, or render the MJX experts' states (resumable)",
        "polyact.collect:CollectConfig",
        "polyact.collect:run",
    ),
    "eval": Command(
        "success rates (95% intervals), chart and videos of a policy (expert or a checkpoint) on a task set",
        "polyact.eval.config:EvalConfig",
        "polyact.eval.run:run",
    ),
    "eval compare": Command(
        "`polyact eval` runs side by side: runs=[DIR,DIR,...] -> Markdown table and bar chart",
        "polyact.eval.compare:CompareConfig",
        "polyact.eval.compare:run",
    ),
    "data convert": Command(
        "rewrite a dataset with other storage settings (image codec, depth in millimetres); resumable",
        "polyact.data.recode:ConvertConfig",
        "polyact.data.recode:run",
    ),
    "data keyframes": Command(
        "a keyframe-action dataset (next keyframe pose per observation, PerAct) from dense demonstrations",
        "polyact.keyframe_data:KeyframeDataConfig",
        "polyact.keyframe_data:run",
    ),
    "data import-rosbag": Command(
        "ROS 1/2 bags -> a dataset: camera, state and action topics aligned to a fixed rate, episodes by bag or marker",
        "polyact.data.rosbag_import:RosbagImportConfig",
        "polyact.data.rosbag_import:run",
    ),
    "data import-lerobot": Command(
        "a LeRobot v3 dataset (parquet frames, mp4 videos) -> a dataset, features mapped by name or a mapping file",
        "polyact.data.lerobot_import:LeRobotImportConfig",
        "polyact.data.lerobot_import:run",
    ),
    "data export-lerobot": Command(
        "a dataset -> a LeRobot v3 dataset: cameras as AV1 videos, state, action, tasks from the instructions",
        "polyact.data.lerobot_export:LeRobotExportConfig",
        "polyact.data.lerobot_export:run",
    ),
    "data view": Command(
        "one episode as an mp4 (or a PNG of one step): every camera, the actions and the state plotted under them",
        "polyact.dataview:DataViewConfig",
        "polyact.dataview:run",
    ),
    "serve": Command(
        "serve a checkpoint over a websocket (msgpack arrays) to robots, batching concurrent clients",
        "polyact.deploy.config:ServeConfig",
        "polyact.deploy.server:run",
    ),
    "ros": Command(
        "the ROS bridge: a policy drives a robot at a fixed rate through the safety layer",
        "polyact.deploy.config:BridgeConfig",
        "polyact.deploy.ros.node:run",
    ),
    "ros record": Command(
        "record teleoperated demonstrations from live ROS 1 topics into a dataset (episodes by topic or keyboard)",
        "polyact.deploy.ros.record:RecordConfig",
        "polyact.deploy.ros.record:run",
    ),
    "ros sim": Command(
        "a simulated robot on ROS: a Meta-World task publishing cameras and state, executing twist commands",
        "polyact.deploy.config:SimRobotConfig",
        "polyact.deploy.ros.sim_robot:run",
    ),
}
PLAIN_COMMANDS = {
    "data info": "polyact data info PATH      episodes per task, lengths, success, features, size on disk",
    "data verify": "polyact data verify PATH    read every episode file and chunk, checking checksums",
    "tasks": "polyact tasks [NAME]        task sets and tasks of every suite (or of one task set)",
    "policy set-spec": "polyact policy set-spec DIR SOURCE   give a policy directory saved before 2026-11-30 its "
    "environment spec (SOURCE: its training dataset, an EnvSpec JSON file or a task name)",
    "policy attach-subgoal-predictor": "polyact policy attach-subgoal-predictor DIR PREDICTOR   save a sub-goal "
    "predictor (trained with target=subgoal) inside the sub-goal conditioned policy in DIR",
}


def _load(ref: str) -> Callable:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _usage() -> str:
    lines = ["usage: polyact COMMAND [key=value ...]   (polyact COMMAND --help shows its config)", "", "commands:"]
    lines += [f"  polyact {name:<20} {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += [f"  {line}" for line in PLAIN_COMMANDS.values()]
    return "\n".join(lines)


def _run_configured(name: str, args: list[str]) -> None:
    from polyact.config import load_config, to_yaml

    command = COMMANDS[name]
    schema = _load(command.config)
    if "--help" in args or "-h" in args:
        print(f"polyact {name}: {command.summary}\n\n{(schema.__doc__ or '').strip()}\n\ndefaults:\n{to_yaml(schema)}")
        return
    cfg = load_config(schema, args)
    _load(command.run)(cfg)


def _run_plain(name: str, args: list[str]) -> None:
    if name == "tasks":
        from polyact.envs.catalog import SUITES, resolve_tasks

        if args:
            suite, tasks = resolve_tasks(args[0])
            print(f"{args[0]} ({suite.name}): {' '.join(tasks)}")
            return
        for suite in SUITES.values():
            print(f"{suite.name}:")
            for set_name, tasks in suite.task_sets.items():
                print(f"  {set_name:<12} {len(tasks):>3} tasks")
            print(f"  tasks: {' '.join(suite.tasks)}")
        return
    if name == "policy set-spec":
        if len(args) != 2:
            raise PolyactError(f"usage: {PLAIN_COMMANDS[name]}")
        from polyact.deploy.policy import set_policy_spec

        print(f"wrote {set_policy_spec(*args)}")
        return
    if name == "policy attach-subgoal-predictor":
        if len(args) != 2:
            raise PolyactError(f"usage: {PLAIN_COMMANDS[name]}")
        from polyact.policies.policy_dir import attach_subgoal_predictor

        print(f"{attach_subgoal_predictor(*args)}: its sub-goals now come from {args[1]}")
        return
    if len(args) != 1:
        raise PolyactError(f"usage: {PLAIN_COMMANDS[name]}")
    from polyact.data import format_info, verify_dataset

    if name == "data info":
        print(format_info(args[0]))
        return
    problems = verify_dataset(args[0])
    for problem in problems:
        print(problem)
    if problems:
        raise PolyactError(f"{args[0]}: {len(problems)} problem(s) found")
    print(f"{args[0]}: every episode file and chunk is sound")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    two_words = " ".join(args[:2])
    name = two_words if two_words in COMMANDS or two_words in PLAIN_COMMANDS else args[0]
    rest = args[len(name.split()) :]
    try:
        if name in COMMANDS:
            _run_configured(name, rest)
        elif name in PLAIN_COMMANDS:
            _run_plain(name, rest)
        else:
            raise unknown_name("command", name, [*COMMANDS, *PLAIN_COMMANDS])
    except PolyactError as err:
        print(f"polyact {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"polyact {name}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
