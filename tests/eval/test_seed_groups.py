"""Methods with several training seeds in one comparison: seed means, spreads and a paired test."""

from __future__ import annotations

import math

import pytest

from polyact.errors import ConfigError
from polyact.eval.compare import CompareConfig, compare
from polyact.eval.results import write_results
from polyact.eval.seed_groups import discordant, mcnemar_p
from polyact.eval.stats import summarise
from polyact.eval.store import EpisodeResult, EpisodeStore

TASKS = ("reach-v3", "push-v3")


def make_run(path, outcomes: dict[str, list[bool]]) -> str:
    """A finished evaluation run on disk whose episode i of each task succeeded as `outcomes` says."""
    store = EpisodeStore(path, {"policy": str(path)})
    results = [
        EpisodeResult(task, i, 1000 + i, ok, 50 if ok else 100, f"do {task}")
        for task, oks in outcomes.items()
        for i, ok in enumerate(oks)
    ]
    for r in results:
        store.add(r)
    store.close()
    header = {
        **{"policy": str(path), "tasks": "MT2", "only_tasks": [], "protocol": "lerobot", "episodes_per_task": 4},
        **{"seeds": "episode i starts from seed 1000 + i", "env": {}, "date": "today", "machine": "this one"},
        **{"wall_time_s": 1.0, "episodes_run": len(results), "episodes_resumed": 0, "env_steps": 0},
    }
    write_results(path, header, summarise(results, list(outcomes)))
    return str(path)


def test_mcnemar_matches_the_binomial_tail():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)  # six discordant pairs all one way: 2 * 0.5**6
    assert mcnemar_p(25, 37) == pytest.approx(mcnemar_p(37, 25))
    tail = sum(math.comb(10, k) for k in range(3)) / 1024
    assert mcnemar_p(2, 8) == pytest.approx(2 * tail)


def test_seeds_are_averaged_and_paired_episode_by_episode(tmp_path):
    T, F = True, False
    base = [
        make_run(tmp_path / "base_s1", {"reach-v3": [T, T, F, F], "push-v3": [F, F, F, F]}),
        make_run(tmp_path / "base_s2", {"reach-v3": [T, T, T, T], "push-v3": [T, F, F, F]}),
    ]
    new = [
        make_run(tmp_path / "new_s1", {"reach-v3": [T, T, T, F], "push-v3": [T, T, F, F]}),
        make_run(tmp_path / "new_s2", {"reach-v3": [T, T, T, F], "push-v3": [F, T, T, F]}),
    ]
    # seed 1: new alone solves reach 2, push 0 and 1; seed 2: base alone reach 3 and push 0, new alone push 1 and 2
    assert discordant(base, new) == (2, 5)
    cfg = CompareConfig(
        runs=[base[0], new[0], base[1], new[1]], groups=["base", "new", "base", "new"], out=str(tmp_path / "cmp")
    )
    table = compare(cfg)
    assert "| task | base (2 seeds) | new (2 seeds) |" in table
    assert "| reach-v3 | 75.0% (50, 100) | 75.0% (75, 75) |" in table
    assert "| push-v3 | 12.5% (0, 25) | 50.0% (50, 50) |" in table
    assert "| **mean** | **43.8%** (25, 62) | **62.5%** (62, 62) |" in table
    assert f"2 only base, 5 only new: p = {mcnemar_p(2, 5):.2g}" in table
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_groups_must_name_every_run_and_match_in_size(tmp_path):
    runs = [make_run(tmp_path / f"r{i}", {"reach-v3": [True, False]}) for i in range(3)]
    with pytest.raises(ConfigError, match="one name per run: 3 runs, 2 groups"):
        CompareConfig(runs=runs, groups=["a", "b"])
    with pytest.raises(ConfigError, match="same number of runs"):
        CompareConfig(runs=runs, groups=["a", "a", "b"])


def test_runs_on_different_episodes_cannot_be_paired(tmp_path):
    a = make_run(tmp_path / "a", {"reach-v3": [True, False]})
    b = make_run(tmp_path / "b", {"reach-v3": [True, False, True]})
    with pytest.raises(ConfigError, match="ran different episodes"):
        discordant([a], [b])
