"""`polyact eval compare runs=[DIR,DIR,...]`: finished evaluation runs side by side.

Rows are the tasks of the first run, then tasks only later runs have; a run without a task shows a
dash. Each cell is the success rate and its 95% Wilson interval; the last row is each run's mean.
With `groups=[...]` (one name per run) the runs of a name are one method's training seeds, and the
table is eval/seed_groups.py's: seed means with each seed's rate, and a paired test against the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyact.errors import ConfigError
from polyact.eval.results import MEAN_ROW, Bar, bar_chart, bar_of, interval, load_results, mean_bar, percent
from polyact.eval.seed_groups import grouped, grouped_table, pooled_bar


@dataclass
class CompareConfig:
    """`polyact eval compare`: a Markdown table (compare.md) and a grouped bar chart (compare.png) in `out`."""

    runs: list[str] = field(default_factory=list)  # result directories of `polyact eval`
    out: str = "evals/compare"
    groups: list[str] = field(default_factory=list)  # one name per run: runs sharing one are a method's seeds

    def __post_init__(self) -> None:
        if len(self.runs) < 2:
            raise ConfigError(
                f"runs needs two or more result directories, e.g. runs=[evals/a,evals/b]; got {self.runs}"
            )
        if self.groups:
            grouped(self.runs, self.groups)


def labels(runs: list[str]) -> list[str]:
    """Each run's directory name, or its whole path where names repeat."""
    names = [Path(r).name or str(r) for r in runs]
    return [n if names.count(n) == 1 else str(r) for n, r in zip(names, runs, strict=True)]


def compare_table(runs: list[str], loaded: list[dict[str, Any]]) -> tuple[list[str], str]:
    """The task rows and the Markdown table of the runs."""
    names = labels(runs)
    tasks = list(dict.fromkeys(t for data in loaded for t in data["per_task"]))
    lines = [
        "| task | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for task in tasks:
        cells = []
        for data in loaded:
            r = data["per_task"].get(task)
            cells.append(f"{percent(r['success'])} {interval(r['ci95'])}" if r else "—")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    means = [f"**{percent(d['mean_success'])}** {interval(d['overall']['ci95'])}" for d in loaded]
    lines.append("| **mean** | " + " | ".join(means) + " |")
    lines += ["", "Success rate and 95% Wilson interval (%); the mean's interval pools all episodes of the run.", ""]
    for name, run, data in zip(names, runs, loaded, strict=True):
        lines.append(
            f"- **{name}** ({run}): policy `{data['policy']}`, {data['tasks']}, protocol `{data['protocol']}`, "
            f"{data['episodes_per_task']} episodes per task"
        )
    return tasks, "\n".join(lines) + "\n"


def compare(cfg: CompareConfig) -> str:
    """Write compare.md and compare.png into `cfg.out`; return the table."""
    if cfg.groups:
        return compare_groups(cfg)
    loaded = [load_results(r) for r in cfg.runs]
    tasks, table = compare_table(cfg.runs, loaded)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table)
    series: list[tuple[str, list[Bar]]] = []
    for name, data in zip(labels(cfg.runs), loaded, strict=True):
        bars = [bar_of(data["per_task"][t]) if t in data["per_task"] else None for t in tasks]
        series.append((name, [mean_bar(data), *bars]))
    bar_chart(out / "compare.png", [MEAN_ROW, *tasks], series, f"{len(loaded)} evaluation runs")
    return table


def compare_groups(cfg: CompareConfig) -> str:
    """`compare` for methods with several training seeds each."""
    by_group = grouped(cfg.runs, cfg.groups)
    loaded = {r: load_results(r) for r in cfg.runs}
    tasks, table = grouped_table(by_group, loaded)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(table)
    series = [(g, [pooled_bar(runs, loaded, t) for t in (None, *tasks)]) for g, runs in by_group.items()]
    seeds = len(next(iter(by_group.values())))
    bar_chart(out / "compare.png", [MEAN_ROW, *tasks], series, f"{len(by_group)} methods, {seeds} seeds each (pooled)")
    return table


def run(cfg: CompareConfig) -> str:
    table = compare(cfg)
    print(table)
    print(f"table and chart in {cfg.out}/ (compare.md, compare.png)")
    return table
