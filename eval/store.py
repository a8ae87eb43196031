"""A run directory's durable record of finished episodes, which makes evaluation resumable.

`episodes.jsonl` gets one JSON line per finished episode, flushed and fsynced before the episode
counts as done, so a kill loses at most the episodes in flight. A last line torn by a kill (no
newline, or not JSON) is cut off with a message; damage anywhere else is an error. `run.json` holds
the run's identity (policy, environment settings, protocol): a rerun under another identity is
refused instead of mixing results.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from polyact.errors import DatasetError
from polyact.faults import fault_point
from polyact.runs import claim_run_dir

EPISODES_FILE = "episodes.jsonl"


@dataclass(frozen=True)
class EpisodeResult:
    """The outcome of one evaluation episode. `length` counts control steps (it ends at success)."""

    task: str
    index: int
    seed: int
    success: bool
    length: int
    instruction: str
    goal_vector: tuple[float, ...] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeResult:
        goal = d.get("goal_vector")
        return cls(
            task=str(d["task"]),
            index=int(d["index"]),
            seed=int(d["seed"]),
            success=bool(d["success"]),
            length=int(d["length"]),
            instruction=str(d["instruction"]),
            goal_vector=tuple(float(x) for x in goal) if goal is not None else None,
        )


class EpisodeStore:
    """The finished episodes of one run directory; `add` makes one durable before returning."""

    def __init__(self, root: Path, identity: dict[str, Any]):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        claim_run_dir(self.root, identity)
        self.path = self.root / EPISODES_FILE
        self.results: dict[tuple[str, int], EpisodeResult] = {}
        self.messages: list[str] = []
        self._load()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open for the run)

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        body, newline, tail = data.rpartition(b"\n")
        lines = body.split(b"\n") if newline else []
        keep = len(body) + len(newline)  # bytes of complete lines
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                result = EpisodeResult.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as err:
                if number == len(lines) and not tail.strip():  # a damaged last line: torn as well
                    keep -= len(line) + 1
                    tail = line
                    break
                raise DatasetError(f"{self.path} line {number} is damaged ({err}); remove it to resume") from None
            key = (result.task, result.index)
            if key in self.results:
                raise DatasetError(f"{self.path} line {number} repeats episode {result.index} of {result.task}")
            self.results[key] = result
        if tail.strip():
            self.messages.append(
                f"{self.path}: ignored a torn last line ({len(tail)} bytes, left by a kill); its episode runs again"
            )
        if keep < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                os.fsync(f.fileno())

    def add(self, result: EpisodeResult) -> None:
        key = (result.task, result.index)
        if key in self.results:
            raise ValueError(f"episode {result.index} of {result.task} is already recorded")
        self._file.write(json.dumps(asdict(result), sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.results[key] = result
        fault_point("eval.episode_recorded")

    def close(self) -> None:
        self._file.close()
