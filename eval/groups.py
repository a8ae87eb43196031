"""Difficulty groups of tasks, for per-group success rates in results.

Meta-World: the easy / medium / hard / very hard split of Seo et al., "Masked World Models for Visual
Control" (CoRL 2022, appendix), which DP3 (Ze et al., RSS 2024) and LeRobot's Meta-World integration
report by; the tasks are the same in v2 and v3, named here with v3 suffixes. 28 + 11 + 6 + 5 = 50.
"""

from __future__ import annotations

TASK_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "metaworld": {
        "easy": tuple(
            f"{t}-v3"
            for t in (
                "button-press",
                "button-press-topdown",
                "button-press-topdown-wall",
                "button-press-wall",
                "coffee-button",
                "dial-turn",
                "door-close",
                "door-lock",
                "door-open",
                "door-unlock",
                "drawer-close",
                "drawer-open",
                "faucet-close",
                "faucet-open",
                "handle-press",
                "handle-press-side",
                "handle-pull",
                "handle-pull-side",
                "lever-pull",
                "plate-slide",
                "plate-slide-back",
                "plate-slide-back-side",
                "plate-slide-side",
                "reach",
                "reach-wall",
                "window-close",
                "window-open",
                "peg-unplug-side",
            )
        ),
        "medium": tuple(
            f"{t}-v3"
            for t in (
                "basketball",
                "bin-picking",
                "box-close",
                "coffee-pull",
                "coffee-push",
                "hammer",
                "peg-insert-side",
                "push-wall",
                "soccer",
                "sweep",
                "sweep-into",
            )
        ),
        "hard": tuple(
            f"{t}-v3" for t in ("assembly", "hand-insert", "pick-out-of-hole", "pick-place", "push", "push-back")
        ),
        "very hard": tuple(
            f"{t}-v3" for t in ("shelf-place", "disassemble", "stick-pull", "stick-push", "pick-place-wall")
        ),
    },
}


def task_groups(suite: str) -> dict[str, tuple[str, ...]]:
    """The suite's difficulty groups; empty for a suite without a published split."""
    return TASK_GROUPS.get(suite, {})
