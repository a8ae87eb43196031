"""Deterministic crash points: a process dies by SIGKILL exactly where a crash-safety test asks it to.

A test that polls a child's progress (sleep until N steps are logged, then kill) is flaky on a busy
machine and hangs when progress stalls; a kill at a named point of the code lands at the same instant
of the protocol on every machine. Run the process with

    POLYACT_FAULT=<point>[:<n>]        e.g. POLYACT_FAULT=train.checkpoint_before_rename:2

and it SIGKILLs itself the n-th time (default: the first) it reaches `fault_point("<point>")`. SIGKILL,
not an exception: nothing gets to tidy up (no finally, no atexit, no buffered flush), as after the OOM
killer or a power cut. The variable is read once, at import; unset, `fault_point` is one comparison.
An unknown point or a bad count raises at import, so a misspelt test cannot silently kill nothing.
"""

from __future__ import annotations

import os
import signal

from polyact.errors import ConfigError, unknown_name

ENV = "POLYACT_FAULT"

# Every point and the state a kill there leaves; the crash tests kill at each one.
POINTS = {
    "train.step_done": "a step is finished: logged, and checkpointed when one was due",
    "train.checkpoint_before_rename": "a checkpoint is fully written to its temporary directory, not renamed yet",
    "train.checkpoint_saved": "a checkpoint is in place and named in `latest`",
    "data.episode_file_committed": "an episode file is renamed into place; the manifest does not list it yet",
    "data.episode_committed": "the manifest lists the new episode",
    "eval.episode_recorded": "an evaluation episode's line is fsynced to episodes.jsonl",
}


def _parse(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name not in POINTS:
        raise unknown_name(f"{ENV} point", name, POINTS)
    if count and not (count.isdecimal() and int(count) >= 1):
        raise ConfigError(f"{ENV}={spec!r}: the count after ':' must be an integer >= 1")
    return name, int(count or 1)


_armed = _parse(os.environ.get(ENV))
_reached = 0


def fault_point(name: str) -> None:
    """Die here by SIGKILL if POLYACT_FAULT names `name` and this is its n-th arrival; else do nothing."""
    global _reached
    if _armed is None or name != _armed[0]:
        return
    _reached += 1
    if _reached == _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
