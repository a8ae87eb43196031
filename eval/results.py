"""A run's results as files: results.json (everything), results.md (a table), results.png (a chart).

`bar_chart` draws one or more runs' success rates with their 95% intervals as horizontal bars; the
single-run chart and `polyact eval compare` share it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polyact.eval.stats import Summary

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RESULTS_PNG = "results.png"
MEAN_ROW = "mean (all tasks)"


def summary_dict(summary: Summary) -> dict[str, Any]:
    return {
        "per_task": {t: r.to_dict() for t, r in summary.tasks.items()},
        "mean_success": summary.mean_success,
        "overall": summary.overall.to_dict(),
        "groups": {name: {"mean_success": mean, **pooled.to_dict()} for name, (mean, pooled) in summary.groups.items()},
    }


def write_results(root: Path, header: dict[str, Any], summary: Summary) -> dict[str, Any]:
    """Write results.json, results.md and results.png into `root`; return what results.json holds."""
    data = {**header, **summary_dict(summary)}
    tmp = root / (RESULTS_JSON + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(root / RESULTS_JSON)
    (root / RESULTS_MD).write_text(markdown(data))
    rows = [MEAN_ROW, *summary.tasks]
    rates = [mean_bar(data), *(bar_of(r.to_dict()) for r in summary.tasks.values())]
    title = f"{data['policy']} on {data['tasks']} ({data['protocol']}, {data['episodes_per_task']} episodes per task)"
    overall = data["overall"]
    notes = [f"{100 * data['mean_success']:.1f}% ({overall['successes']}/{overall['episodes']})"]
    notes += [f"{100 * r['success']:.0f}% ({r['successes']}/{r['episodes']})" for r in data["per_task"].values()]
    bar_chart(root / RESULTS_PNG, rows, [(data["policy"], rates)], title, notes)
    return data


def load_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS_JSON
    if not path.is_file():
        from polyact.errors import ConfigError

        raise ConfigError(f"{path} does not exist: {run_dir} is not a finished `polyact eval` run")
    return json.loads(path.read_text())


def percent(rate: float) -> str:
    return "n/a" if math.isnan(rate) else f"{100 * rate:.1f}%"


def interval(ci: Sequence[float]) -> str:
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def markdown(data: dict[str, Any]) -> str:
    """The run's table: per task success, its 95% Wilson interval, episodes and mean length."""
    served = data.get("served_policy")  # policy=ws://...: what the server there serves
    lines = [
        f"# {data['policy']} on {data['tasks']}",
        "",
        *([f"served by `polyact serve` at {data['policy']}: `{served}`", ""] if served else []),
        (f"tasks: {', '.join(data['only_tasks'])}; " if data["only_tasks"] else "")
        + f"protocol `{data['protocol']}` ({data['seeds']}), {data.get('observation', 'privileged goal')}, "
        f"{data['episodes_per_task']} episodes per task, "
        f"env `{data['env']}`; {data['date']}, {data['machine']}",
        "",
        "| task | success | 95% CI | successes | mean length |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for task, r in data["per_task"].items():
        lines.append(_row(task, r))
    overall = data["overall"]
    lines.append(
        f"| **mean** | **{percent(data['mean_success'])}** | {interval(overall['ci95'])} | "
        f"{overall['successes']}/{overall['episodes']} | {overall['mean_length']:.1f} |"
    )
    if data["groups"]:
        lines += [
            "",
            "| difficulty | success (mean of tasks) | 95% CI (pooled) | successes | mean length |",
            "| --- | ---: | --- | ---: | ---: |",
        ]
        for name, g in data["groups"].items():
            lines.append(_row(name, {**g, "success": g["mean_success"]}))
    lines += [
        "",
        f"wall time {data['wall_time_s']:.0f} s for {data['episodes_run']} episodes run now "
        f"({data['episodes_resumed']} resumed from an earlier session), {data['env_steps']} env steps",
    ]
    return "\n".join(lines) + "\n"


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"| {name} | {percent(r['success'])} | {interval(r['ci95'])} | {r['successes']}/{r['episodes']} | "
        f"{r['mean_length']:.1f} |"
    )


Bar = tuple[float, float, float] | None  # (rate, ci low, ci high); None: the run lacks this row


def bar_of(r: dict[str, Any]) -> Bar:
    return (r["success"], r["ci95"][0], r["ci95"][1])


def mean_bar(data: dict[str, Any]) -> Bar:
    return (data["mean_success"], *data["overall"]["ci95"])


def bar_chart(
    path: Path,
    rows: Sequence[str],
    series: Sequence[tuple[str, Sequence[Bar]]],
    title: str,
    notes: Sequence[str] | None = None,
) -> None:
    """Horizontal bars, one group per row (top to bottom) and one bar per series, with 95% intervals as
    whiskers; `notes` (one per row, e.g. "7/10") are printed right of the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(series)
    bar_h = 0.8 / k
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.18 * len(rows) * max(k, 1.6)), dpi=110)
    colours = plt.get_cmap("tab10").colors
    for s, (label, bars) in enumerate(series):
        ys, rates, err_lo, err_hi = [], [], [], []
        for row, bar in enumerate(bars):
            if bar is None:
                continue
            rate, lo, hi = bar
            ys.append(row + (s - (k - 1) / 2) * bar_h)
            rates.append(100 * rate)
            err_lo.append(100 * (rate - lo))
            err_hi.append(100 * (hi - rate))
        ax.barh(
            ys,
            rates,
            height=bar_h * 0.9,
            color=colours[s % len(colours)],
            label=label,
            alpha=0.85,
            xerr=[err_lo, err_hi],
            error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "0.2"},
        )
    for row, note in enumerate(notes or []):
        ax.text(101.5, row, note, va="center", fontsize=7, clip_on=False)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.get_yticklabels()[0].set_fontweight("bold")
    ax.axhline(0.5, color="0.5", linewidth=0.8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
    ax.set_xlim(0, 100)
    ax.set_xlabel("success rate (%); whiskers: 95% Wilson interval")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    if k > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
