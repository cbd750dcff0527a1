"""Dynamic batching: concurrent requests wait up to ``max_wait_ms`` to share one padded forward pass.

A single worker task drains an asyncio queue: it takes the first waiting item and every item already queued
behind it (those arrived while the previous batch ran), keeps collecting until the batch is full or the wait is
over, runs the batch function in a thread (so the event loop keeps accepting
requests) and resolves each caller's future with its own result, or with the exception its item raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class BatcherClosed(RuntimeError):
    """Raised by :meth:`DynamicBatcher.submit` once :meth:`DynamicBatcher.stop` has begun (shutting down)."""


@dataclass
class BatchingStats:
    batches: int = 0
    items: int = 0
    sizes: list[int] = field(default_factory=list)  # last sizes, for /metrics histograms

    def record(self, size: int) -> None:
        self.batches += 1
        self.items += size


class DynamicBatcher(Generic[ItemT, ResultT]):
    """Group items submitted concurrently into calls of ``run_batch(items) -> results`` (same order, same length).

    ``run_batch`` may return an Exception instance in place of a result to fail just that item."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[ItemT]], Sequence[ResultT | Exception]],
        max_batch_size: int = 8,
        max_wait_ms: float = 10.0,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.stats = BatchingStats()
        self._queue: asyncio.Queue[tuple[ItemT, asyncio.Future[Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._closed = False

    async def start(self) -> None:
        self._closed = False
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._loop(), name="mtspeech-batcher")

    async def stop(self) -> None:
        """Finish every queued and running item, then stop the worker (graceful shutdown)."""
        self._closed = True
        if self._worker is None or self._queue is None:
            return
        while not self._queue.empty() or self._in_flight:
            await asyncio.sleep(0.005)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None

    def queue_depth(self) -> int:
        """Items waiting for a batch (not counting the batch being computed)."""
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, item: ItemT) -> ResultT:
        if self._closed:
            raise BatcherClosed("the server is shutting down; retry on another replica or later")
        if self._queue is None:
            await self.start()
        assert self._queue is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _loop(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            batch = [first]
            self._in_flight = 1
            deadline = time.monotonic() + self.max_wait
            # Whatever queued up while the previous batch ran joins at once (no added latency under load);
            # then wait up to max_wait for more batch-mates.
            while len(batch) < self.max_batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
                self._in_flight = len(batch)
            await self._run(batch)
            self._in_flight = 0

    async def _run(self, batch: list[tuple[ItemT, asyncio.Future[Any]]]) -> None:
        items = [item for item, _ in batch]
        self.stats.record(len(items))
        if self.on_batch is not None:
            self.on_batch(len(items))
        try:
            results = await asyncio.to_thread(self.run_batch, items)
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        except Exception as err:  # the whole batch failed: every caller gets the error
            results = [err] * len(items)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away (client disconnected)
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
