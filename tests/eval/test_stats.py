"""Wilson intervals against published values, and the aggregation of episodes into rates."""

from __future__ import annotations

import math

import pytest

from polyact.eval.groups import TASK_GROUPS
from polyact.eval.stats import summarise, wilson_interval
from polyact.eval.store import EpisodeResult


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),  # the "rule of three"-like bound: 0/10 can still mean 28%
        (10, 10, 0.7225, 1.0),
        (7, 10, 0.3968, 0.8922),
        (1, 50, 0.0035, 0.1050),
        (25, 50, 0.3664, 0.6336),
    ],
)
def test_wilson_matches_hand_computed_values(successes, n, low, high):
    lo, hi = wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_by_the_formula():
    # p = 0.7, n = 10, z = 1.96: centre (0.7 + 0.19208) / 1.38415, half 1.96 / 1.38415 * sqrt(0.021 + 0.009604)
    z = 1.959963984540054
    centre = (0.7 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.7 * 0.3 / 10 + z * z / 400)
    assert wilson_interval(7, 10) == pytest.approx((centre - half, centre + half))


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def result(task: str, index: int, success: bool, length: int) -> EpisodeResult:
    return EpisodeResult(task, index, 1_000_000 + index, success, length, "do it")


def test_summarise_per_task_pooled_and_groups():
    results = [result("reach-v3", i, i < 7, 10 * (i + 1)) for i in range(10)]
    results += [result("disassemble-v3", i, i < 1, 500) for i in range(10)]
    results += [result("not-asked-v3", 0, True, 1)]
    s = summarise(results, ["reach-v3", "disassemble-v3"], TASK_GROUPS["metaworld"])
    assert list(s.tasks) == ["reach-v3", "disassemble-v3"]
    reach = s.tasks["reach-v3"]
    assert (reach.successes, reach.episodes, reach.rate) == (7, 10, 0.7)
    assert reach.mean_length == 55.0
    assert reach.ci95 == wilson_interval(7, 10)
    assert s.mean_success == pytest.approx(0.4)
    assert (s.overall.successes, s.overall.episodes) == (8, 20)
    assert s.overall.ci95 == wilson_interval(8, 20)
    assert set(s.groups) == {"easy", "very hard"}
    mean, pooled = s.groups["very hard"]
    assert mean == pytest.approx(0.1) and pooled.episodes == 10


def test_mean_success_weighs_tasks_equally():
    results = [result("a", i, True, 1) for i in range(2)] + [result("b", i, False, 1) for i in range(8)]
    s = summarise(results, ["a", "b"])
    assert s.mean_success == pytest.approx(0.5)  # not the pooled 2/10
    assert s.overall.rate == pytest.approx(0.2)


def test_summarise_refuses_a_task_without_episodes():
    with pytest.raises(ValueError, match="b"):
        summarise([result("a", 0, True, 1)], ["a", "b"])


def test_metaworld_groups_cover_mt50_once():
    from polyact.envs.metaworld import TASKS

    members = [t for tasks in TASK_GROUPS["metaworld"].values() for t in tasks]
    assert sorted(members) == sorted(TASKS)
