"""`polyact eval compare runs=[...] groups=[...]`: methods trained with several seeds, side by side.

One training seed says little about a method: seeds of the same recipe differ by several points on
MT10. A method's cell is therefore the mean of its seeds' success rates with the seeds' own rates
beside it (the spread), and the last row pairs each method's episodes with the first method's (same
seed position, task and episode seed) in an exact McNemar test: two runs evaluated on the same
episodes differ only where their outcomes differ, which independent intervals ignore.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from polyact.errors import ConfigError
from polyact.eval.results import Bar, percent
from polyact.eval.stats import wilson_interval
from polyact.eval.store import EPISODES_FILE, EpisodeResult


def grouped(runs: list[str], groups: list[str]) -> dict[str, list[str]]:
    """Group name -> its runs, in first-appearance order; every group the same number of runs."""
    if len(groups) != len(runs):
        raise ConfigError(f"groups needs one name per run: {len(runs)} runs, {len(groups)} groups ({groups})")
    out: dict[str, list[str]] = {}
    for run, group in zip(runs, groups, strict=True):
        out.setdefault(group, []).append(run)
    sizes = {g: len(r) for g, r in out.items()}
    if len(set(sizes.values())) > 1:
        raise ConfigError(f"every group needs the same number of runs (one per training seed), got {sizes}")
    return out


def episode_outcomes(run_dir: str) -> dict[tuple[str, int], bool]:
    """(task, episode seed) -> success for every finished episode of a run."""
    path = Path(run_dir) / EPISODES_FILE
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: {run_dir} is not a `polyact eval` run")
    results = [EpisodeResult.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    return {(r.task, r.seed): r.success for r in results}


def discordant(reference: list[str], other: list[str]) -> tuple[int, int]:
    """(episodes only `reference` solved, episodes only `other` solved), pairing run i with run i."""
    only_ref = only_other = 0
    for ref_dir, other_dir in zip(reference, other, strict=True):
        a, b = episode_outcomes(ref_dir), episode_outcomes(other_dir)
        if a.keys() != b.keys():
            raise ConfigError(
                f"{ref_dir} and {other_dir} ran different episodes ({len(a.keys() ^ b.keys())} not in both): "
                "paired comparison needs the same tasks, protocol and episodes_per_task"
            )
        only_ref += sum(a[k] and not b[k] for k in a)
        only_other += sum(b[k] and not a[k] for k in a)
    return only_ref, only_other


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: under no difference each discordant pair is a fair coin."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _cell(rates: list[float], bold: bool = False) -> str:
    mean = percent(sum(rates) / len(rates))
    seeds = ", ".join(f"{100 * r:.0f}" for r in rates)
    return f"**{mean}** ({seeds})" if bold else f"{mean} ({seeds})"


def grouped_table(by_group: dict[str, list[str]], loaded: dict[str, dict[str, Any]]) -> tuple[list[str], str]:
    """The task rows and the Markdown table of the groups (`loaded`: run dir -> its results.json)."""
    names = list(by_group)
    tasks = list(dict.fromkeys(t for data in loaded.values() for t in data["per_task"]))
    lines = ["| task | " + " | ".join(f"{g} ({len(by_group[g])} seeds)" for g in names) + " |"]
    lines.append("| --- |" + " ---: |" * len(names))
    for task in tasks:
        cells = []
        for g in names:
            rates = [loaded[r]["per_task"][task]["success"] for r in by_group[g] if task in loaded[r]["per_task"]]
            cells.append(_cell(rates) if len(rates) == len(by_group[g]) else "—")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    means = [[loaded[r]["mean_success"] for r in by_group[g]] for g in names]
    lines.append("| **mean** | " + " | ".join(_cell(m, bold=True) for m in means) + " |")
    reference = names[0]
    paired = ["—"]
    for g in names[1:]:
        only_ref, only_g = discordant(by_group[reference], by_group[g])
        p = mcnemar_p(only_ref, only_g)
        paired.append(f"{only_ref} only {reference}, {only_g} only {g}: p = {p:.2g}")
    lines.append(f"| paired vs {reference} (exact McNemar) | " + " | ".join(paired) + " |")
    lines += [
        "",
        "Success rate: the mean over training seeds, each seed's rate (%) in brackets. The last row pairs "
        f"every episode with {reference}'s on the same seed position, task and episode seed.",
        "",
    ]
    for g in names:
        first = loaded[by_group[g][0]]
        lines.append(
            f"- **{g}**: {', '.join(by_group[g])}; {first['tasks']}, protocol `{first['protocol']}`, "
            f"{first['episodes_per_task']} episodes per task"
        )
    return tasks, "\n".join(lines) + "\n"


def pooled_bar(runs: list[str], loaded: dict[str, dict[str, Any]], task: str | None) -> Bar:
    """The group's success over all its seeds' episodes of `task` (None: of every task), Wilson interval."""
    parts = [loaded[r]["overall"] if task is None else loaded[r]["per_task"].get(task) for r in runs]
    if any(p is None for p in parts):
        return None
    successes, episodes = sum(p["successes"] for p in parts), sum(p["episodes"] for p in parts)
    return (successes / episodes, *wilson_interval(successes, episodes))
