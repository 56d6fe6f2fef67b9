"""Bounded worker pool for blocking model calls, kept off the event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class WorkerPool:
    """Runs blocking calls in threads; at most `size` at once, the rest queue."""

    def __init__(self, size: int, name: str) -> None:
        self.size = max(1, size)
        self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=name)

    async def run(self, func: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    def submit(self, func: Callable[..., T], *args: object) -> Future[T]:
        """The thread's own future: unlike `run`'s, it is done only when the call has returned,
        so a caller that was cancelled can still tell when the thread is finished with its data."""
        return self._executor.submit(func, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
