"""Variations: what changes between episodes of one task (colour, count, order, which drawer), each
with its paraphrased instructions and its split.

Every task enumerates its variations once, in a fixed order (the variation index, as in RLBench).
`train` variations are for collecting demonstrations; `test` variations are held out for
generalisation tests: unseen colours (TEST_COLOURS never appear as a train target), unseen counts,
unseen combinations. The two splits of a task never share a variation.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from polyact.errors import unknown_name

Split = Literal["train", "test"]
SPLITS = ("train", "test", "all")

COLOURS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.88, 0.12, 0.10, 1.0),
    "green": (0.10, 0.68, 0.22, 1.0),
    "blue": (0.12, 0.30, 0.92, 1.0),
    "yellow": (0.96, 0.86, 0.10, 1.0),
    "magenta": (0.88, 0.16, 0.78, 1.0),
    "cyan": (0.10, 0.82, 0.88, 1.0),
    "orange": (1.00, 0.50, 0.05, 1.0),
    "purple": (0.45, 0.16, 0.72, 1.0),
    "white": (0.96, 0.96, 0.96, 1.0),
}
TRAIN_COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
TEST_COLOURS = ("orange", "purple", "white")


@dataclass(frozen=True)
class Variation:
    """One variation of a task: its parameters and the instructions that say what they mean."""

    index: int
    split: Split
    params: Mapping[str, Any]
    instructions: tuple[str, ...]  # paraphrases; each names everything the variation changes


def colour_split(colour: str) -> Split:
    return "test" if colour in TEST_COLOURS else "train"


def select(variations: tuple[Variation, ...], split: str) -> tuple[Variation, ...]:
    """The variations of one split ("train", "test" or "all")."""
    if split not in SPLITS:
        raise unknown_name("variation split", split, SPLITS)
    return variations if split == "all" else tuple(v for v in variations if v.split == split)


def enumerate_variations(entries: list[tuple[Split, dict[str, Any], list[str]]]) -> tuple[Variation, ...]:
    """Number (split, params, instructions) entries in order."""
    return tuple(Variation(i, split, params, tuple(ins)) for i, (split, params, ins) in enumerate(entries))


def choice_variations(
    key: str, values: Iterable[Any], held_out: Collection[Any], templates: list[str]
) -> tuple[Variation, ...]:
    """One variation per value of one parameter `key` (the `held_out` values in the test split), each
    instruction template filled with it: `"put the wine on the {slot}"` for key "slot"."""
    return enumerate_variations(
        [("test" if v in held_out else "train", {key: v}, [t.format(**{key: v}) for t in templates]) for v in values]
    )


def colour_variations(templates: list[str]) -> tuple[Variation, ...]:
    """One variation per colour (the held-out colours in the test split), each instruction template
    filled with it: `"slide the block to the {colour} target"`."""
    return choice_variations("colour", TRAIN_COLOURS + TEST_COLOURS, TEST_COLOURS, templates)


def distractor_pool(variation: Variation, exclude: Any) -> list[str]:
    """Colours other objects may take: train variations never show a held-out colour at all."""
    palette = TRAIN_COLOURS if variation.split == "train" else tuple(COLOURS)
    return [c for c in palette if c not in exclude]
