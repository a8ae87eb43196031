"""Dynamic batching: concurrent requests share one forward pass.

A request waits at most `max_wait_s` after the oldest pending one arrived, until `max_batch` are
pending, or until every possible caller is pending (`callers()`, the server's open connections: each
robot waits for its answer before it asks again, so nobody else can join); then one call of
`run(items)` serves them all, in a single worker thread so that the event
loop keeps answering health checks and error replies meanwhile. Requests that pile up during a forward
pass have already waited, so they go out as the next batch at once. With `max_batch=1` every request
is its own forward pass (the unbatched server of the benchmark).

If a batch fails, each of its items is run alone, so one request that breaks the model gets its own
error and never costs other clients their answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Served(Generic[R]):
    """One request's result, with how long it queued and how large its batch was."""

    result: R
    batch: int
    queue_s: float
    run_s: float


class MicroBatcher(Generic[T, R]):
    """`await submit(item)` -> Served(run([... item ...])[i]); start() and stop() on the event loop."""

    def __init__(
        self,
        run: Callable[[list[T]], Sequence[R]],
        max_batch: int,
        max_wait_s: float,
        callers: Callable[[], int] | None = None,
    ):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"need max_batch >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}")
        self._run, self.max_batch, self.max_wait_s = run, max_batch, max_wait_s
        self._callers = callers
        self._pending: deque[tuple[T, asyncio.Future, float]] = deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="policy")
        self._task: asyncio.Task | None = None
        self.batch_sizes: Counter[int] = Counter()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, future, _ in self._pending:
            future.cancel()
        self._executor.shutdown(wait=True)

    def wake(self) -> None:
        """Check the pending batch again: the number of callers changed (a client left)."""
        self._wakeup.set()

    async def submit(self, item: T) -> Served[R]:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future, time.monotonic()))
        self._wakeup.set()
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = self._pending[0][2] + self.max_wait_s
            while len(self._pending) < self._full() and (remaining := deadline - time.monotonic()) > 0:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            batch = [entry for entry in batch if not entry[1].done()]  # a client that gave up
            if batch:
                await self._serve(loop, batch)

    def _full(self) -> int:
        """How many pending requests make a batch worth sending now."""
        return self.max_batch if self._callers is None else max(1, min(self.max_batch, self._callers()))

    async def _serve(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future, float]]) -> None:
        began = time.monotonic()
        try:
            results = await loop.run_in_executor(self._executor, self._run, [item for item, _, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run returned {len(results)} results for {len(batch)} items")
        except Exception as err:
            if len(batch) > 1:
                for entry in batch:  # isolate the request that broke the batch
                    await self._serve(loop, [entry])
                return
            _settle(batch[0][1], error=err)
            return
        ran = time.monotonic() - began
        self.batch_sizes[len(batch)] += 1
        for (_, future, queued), result in zip(batch, results, strict=True):
            _settle(future, Served(result, len(batch), began - queued, ran))


def _settle(future: asyncio.Future, value: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
