"""The terminal view of a `runner=ray` evaluation: episodes done per task, success so far, retries.

A cluster run is long and its workers are out of sight, so the view says more than one bar: a
header with the totals, one row per task in progress (finished and unstarted tasks are counted, not
listed, so MT50 fits a terminal) and the latest retries. On a terminal it is redrawn in place at
most twice a second; into a file or pipe it prints a line when a task finishes and one per retry.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import TextIO

from polyact.eval.ray_runner import Observer, Retry
from polyact.eval.store import EpisodeResult

REDRAW_S = 0.5
RETRIES_SHOWN = 3


def _rate(successes: int, done: int) -> str:
    return f"{successes}/{done} ({100 * successes / done:.0f}%)" if done else "-"


class RayProgress(Observer):
    """Counts per task, drawn to `stream`; `enabled=False` counts without drawing."""

    def __init__(
        self,
        title: str,
        tasks: Sequence[str],
        episodes_per_task: int,
        finished: Iterable[EpisodeResult],
        enabled: bool = True,
        stream: TextIO | None = None,
    ):
        self.title, self.total, self.workers = title, episodes_per_task, 0
        self.done = dict.fromkeys(tasks, 0)
        self.successes = dict.fromkeys(tasks, 0)
        self.retries: list[Retry] = []
        for r in finished:
            self._count(r)
        self.resumed = sum(self.done.values())
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._tty = self.stream.isatty()
        self._drawn = 0  # lines of the last in-place drawing
        self._last_draw = 0.0
        self._start = time.monotonic()

    def _count(self, r: EpisodeResult) -> None:
        self.done[r.task] += 1
        self.successes[r.task] += int(r.success)

    def started(self, workers: int) -> None:
        self.workers = workers
        self._start = time.monotonic()
        if self._tty:
            self._redraw(force=True)
        else:
            self._print(f"{self.title}: {workers} workers, {self.resumed} episode(s) already recorded")

    def finished(self, result: EpisodeResult) -> None:
        self._count(result)
        if self._tty:
            self._redraw()
        elif self.done[result.task] == self.total:
            self._print(f"{self.title}: {result.task} done, success {_rate(self.successes[result.task], self.total)}")

    def retried(self, retry: Retry) -> None:
        self.retries.append(retry)
        if self._tty:
            self._redraw(force=True)
        else:
            self._print(f"{self.title}: {self._retry_line(retry)}")

    def lines(self) -> list[str]:
        """The view as text lines (what a terminal shows)."""
        done, successes = sum(self.done.values()), sum(self.successes.values())
        elapsed = time.monotonic() - self._start
        run = done - self.resumed
        speed = f" | {60 * run / elapsed:.1f} episodes/min" if run and elapsed > 0 else ""
        out = [
            f"{self.title} | {done}/{self.total * len(self.done)} episodes | success {_rate(successes, done)} "
            f"| {self.workers} workers | {len(self.retries)} retried{speed}"
        ]
        width = max(len(t) for t in self.done)
        for task, n in self.done.items():
            if 0 < n < self.total:
                out.append(f"  {task:<{width}}  {n:>4}/{self.total}  success {_rate(self.successes[task], n)}")
        finished = sum(n == self.total for n in self.done.values())
        waiting = sum(n == 0 for n in self.done.values())
        out.append(f"  {finished} task(s) finished, {waiting} not started")
        out += [f"  {self._retry_line(r)}" for r in self.retries[-RETRIES_SHOWN:]]
        return out

    def close(self) -> None:
        if self._tty:
            self._redraw(force=True)
        elif self.retries:
            self._print(f"{self.title}: {len(self.retries)} episode(s) run again after a lost worker")

    @staticmethod
    def _retry_line(r: Retry) -> str:
        return f"retried {r.task} episode {r.index} (attempt {r.attempt + 1}): {r.reason}"

    def _print(self, line: str) -> None:
        if self.enabled:
            print(line, file=self.stream, flush=True)

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last_draw < REDRAW_S):
            return
        lines = self.lines()
        up = f"\x1b[{self._drawn}F" if self._drawn else ""  # back to the first line of the last drawing
        self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines) + "\x1b[J")
        self.stream.flush()
        self._drawn, self._last_draw = len(lines), now
