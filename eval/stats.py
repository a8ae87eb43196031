"""Success rates with Wilson score intervals, per task, per difficulty group and over a whole run.

Wilson rather than the normal approximation: with tens of episodes and rates near 0 or 1 (where
policies live) the normal interval collapses to zero width or leaves [0, 1]; Wilson's does neither.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from polyact.eval.store import EpisodeResult

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default); (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # at 0 or n successes the exact bound is 0 or 1; clamp the rounding error away
    return (0.0 if successes == 0 else max(0.0, centre - half), 1.0 if successes == n else min(1.0, centre + half))


@dataclass(frozen=True)
class Rate:
    """Successes out of episodes, with the Wilson 95% interval and the mean episode length."""

    successes: int
    episodes: int
    mean_length: float

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    def to_dict(self) -> dict[str, object]:
        lo, hi = self.ci95
        return {
            "success": self.rate,
            "ci95": [lo, hi],
            "successes": self.successes,
            "episodes": self.episodes,
            "mean_length": self.mean_length,
        }


def rate_of(results: Iterable[EpisodeResult]) -> Rate:
    results = list(results)
    lengths = [r.length for r in results]
    return Rate(
        successes=sum(r.success for r in results),
        episodes=len(results),
        mean_length=sum(lengths) / len(lengths) if lengths else float("nan"),
    )


@dataclass(frozen=True)
class Summary:
    """A run's numbers. `mean_success` averages the per-task rates (each task weighs the same);
    `overall` pools every episode, and its interval is the one reported for the mean (the two rates
    are equal when every task has the same number of episodes)."""

    tasks: dict[str, Rate]
    overall: Rate
    groups: dict[str, tuple[float, Rate]]  # group -> (mean of its tasks' rates, pooled)

    @property
    def mean_success(self) -> float:
        return sum(r.rate for r in self.tasks.values()) / len(self.tasks)


def summarise(
    results: Iterable[EpisodeResult], tasks: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None
) -> Summary:
    """Per-task rates in `tasks` order (every task must have episodes), the pooled rate and the groups'."""
    by_task: dict[str, list[EpisodeResult]] = {t: [] for t in tasks}
    for r in results:
        if r.task in by_task:
            by_task[r.task].append(r)
    empty = [t for t, rs in by_task.items() if not rs]
    if empty:
        raise ValueError(f"no finished episodes for {empty}")
    per_task = {t: rate_of(rs) for t, rs in by_task.items()}
    summary_groups = {}
    for name, members in (groups or {}).items():
        present = [t for t in members if t in per_task]
        if present:
            mean = sum(per_task[t].rate for t in present) / len(present)
            summary_groups[name] = (mean, rate_of(r for t in present for r in by_task[t]))
    return Summary(per_task, rate_of(r for rs in by_task.values() for r in rs), summary_groups)
