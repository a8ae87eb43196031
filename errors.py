"""Exceptions that polyact raises for bad input, and the "did you mean" helper they share.

Every error says what was wrong and what is valid, so users never have to read a traceback to
fix a typo (the habit openpi and LeRobot users asked for).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PolyactError(Exception):
    """Base class: an input or state that polyact refuses, with the reason in the message."""


class ConfigError(PolyactError, ValueError):
    """A configuration key or value that is not valid."""


class UnknownNameError(ConfigError, KeyError):
    """A name (task, suite, camera, head, ...) that is not one of the valid choices."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class ContractError(PolyactError, ValueError):
    """An observation or action that breaks the observation/action contract (contract.py)."""


class DatasetError(PolyactError):
    """A dataset that cannot be opened, read or written; the message names the file or episode."""


def closest_first(name: str, valid: Iterable[str]) -> list[str]:
    """All valid names, the most similar to `name` first (case-insensitive)."""
    valid = list(dict.fromkeys(valid))
    lowered = name.lower()

    def similarity(candidate: str) -> float:
        return difflib.SequenceMatcher(None, lowered, candidate.lower()).ratio()

    return sorted(valid, key=lambda c: (-similarity(c), c))


def unknown_name(kind: str, name: str, valid: Iterable[str], limit: int = 60) -> UnknownNameError:
    """An error for `name` that lists the valid names of that kind, closest first."""
    ranked = closest_first(name, valid)
    shown = ", ".join(ranked[:limit]) + (f", ... ({len(ranked)} in all)" if len(ranked) > limit else "")
    return UnknownNameError(f"unknown {kind} {name!r}; valid choices, closest first: {shown}")
