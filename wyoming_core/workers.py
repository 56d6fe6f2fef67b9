"""Worker pools for blocking model calls, kept off the event loop.

`WorkerPool` runs calls first come, first served. `PriorityPool` is for the model calls of a
service many clients share: a call a client is waiting on right now (a final transcript) runs
before one that is only likely to be needed (a speculative decode), and that before work that is
nice to have (partial transcripts), which is shed when the queue is long. Long work is run in
steps (one 30 s window of audio each) that go back to the queue in between, so a long request
takes turns with short ones instead of holding a worker until it is done. The pool measures how
long each kind of call takes and how long calls wait, which is what its load estimate (used for
shedding and for refusing new requests) is made of.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

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


class Priority(IntEnum):
    """Lower runs first."""

    URGENT = 0  # a client waits for it now (the final transcript after audio-stop)
    LIKELY = 1  # will very likely be needed soon (the final decode begun at the end of speech)
    OPTIONAL = 2  # nice to have (partial transcripts): shed first when the machine is busy


class Shed(Exception):
    """Optional work dropped from the queue because it would have come too late."""


# Cost assumed for a kind of call before any has been measured (seconds).
_FIRST_GUESS = 0.5
# Weight of the newest measurement in the moving averages.
_ALPHA = 0.3
# A measured wait counts as "recent" for this long after it was measured.
_RECENT = 2.0


class Ticket:
    """One request's place in a `PriorityPool`: every step of its work queues with this
    priority, which may rise (a speculative decode becomes the final one a client waits for)."""

    def __init__(self, priority: Priority, kind: str) -> None:
        self.priority = priority
        self.kind = kind  # what the call is ("final", "partial"): its cost is measured by kind
        self.pool: PriorityPool | None = None

    def raise_to(self, priority: Priority) -> None:
        if priority < self.priority:
            self.priority = priority
            if self.pool is not None:
                self.pool.reorder()


@dataclass(eq=False)
class _Job:
    ticket: Ticket
    func: Callable[..., Any]
    args: tuple[object, ...]
    future: asyncio.Future[Any]
    seq: int
    queued_at: float
    # OPTIONAL work not started by then is shed.
    deadline: float | None = None
    started_at: float = 0.0
    cost: float = field(default=0.0)  # the expected seconds of this step

    def key(self) -> tuple[int, int]:
        return (int(self.ticket.priority), self.seq)


class PriorityPool:
    """At most `size` calls at once, the most urgent first (first come, first served within one
    priority). Use from one event loop only.

    `OPTIONAL` work never takes the last free worker (when there is more than one), so a call a
    client waits for never waits behind it for more than a moment.
    """

    def __init__(self, size: int, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = max(1, size)
        self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=name)
        self._clock = clock
        self._seq = itertools.count()
        self._waiting: list[_Job] = []
        self._running: list[_Job] = []
        self._cost: dict[str, float] = {}  # seconds of one step, by kind
        # The last measured wait in the queue of a call a client needed (URGENT or LIKELY).
        self._needed_wait = (0.0, -_RECENT)
        self.completed = 0
        self.shed = 0

    # ---- running work ------------------------------------------------------

    async def run(
        self,
        func: Callable[..., T],
        *args: object,
        ticket: Ticket,
        max_wait: float | None = None,
    ) -> T:
        """`func(*args)` in a worker thread when its turn comes. Raises `Shed` if the ticket is
        OPTIONAL and the call has not started within `max_wait` seconds. Cancelled while queued,
        it never runs; cancelled while running, its thread still holds the worker until it returns."""
        loop = asyncio.get_running_loop()
        ticket.pool = self
        now = self._clock()
        job = _Job(
            ticket,
            func,
            args,
            loop.create_future(),
            next(self._seq),
            now,
            deadline=None if max_wait is None else now + max_wait,
            cost=self.cost(ticket.kind),
        )
        self._waiting.append(job)
        self._dispatch()
        try:
            return await job.future
        finally:
            if job in self._waiting:  # cancelled before it ran
                self._waiting.remove(job)

    def reorder(self) -> None:
        """A ticket's priority changed: maybe it can start now."""
        self._dispatch()

    def _dispatch(self) -> None:
        now = self._clock()
        for job in [j for j in self._waiting if j.future.done()]:
            self._waiting.remove(job)
        for job in [j for j in self._waiting if j.deadline is not None and now > j.deadline]:
            if job.ticket.priority == Priority.OPTIONAL:
                self._waiting.remove(job)
                self.shed += 1
                job.future.set_exception(Shed("dropped: the machine is busy with more urgent work"))
        while self._waiting:
            job = min(self._waiting, key=_Job.key)
            if not self._free_for(job.ticket.priority):
                return
            self._waiting.remove(job)
            self._start(job, now)

    def _start(self, job: _Job, now: float) -> None:
        loop = job.future.get_loop()
        job.started_at = now
        if job.ticket.priority < Priority.OPTIONAL:
            self._needed_wait = (now - job.queued_at, now)
        self._running.append(job)
        work = self._executor.submit(job.func, *job.args)
        # The worker counts as busy until the thread returns, even if the caller left.
        work.add_done_callback(lambda w: loop.call_soon_threadsafe(self._finished, job, w))

    def _finished(self, job: _Job, work: Future[Any]) -> None:
        self._running.remove(job)
        took = self._clock() - job.started_at
        kind = job.ticket.kind
        self._cost[kind] = took if kind not in self._cost else (1 - _ALPHA) * self._cost[kind] + _ALPHA * took
        self.completed += 1
        if not job.future.done():
            if work.cancelled():
                job.future.cancel()
            elif (error := work.exception()) is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(work.result())
        self._dispatch()

    # ---- load ----------------------------------------------------------------

    def cost(self, kind: str) -> float:
        """Seconds one step of this kind of call has been taking (a first guess until measured)."""
        return self._cost.get(kind, _FIRST_GUESS)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    def _slots(self, priority: Priority) -> int:
        """Workers a call of this priority may use."""
        return self.size - 1 if priority == Priority.OPTIONAL and self.size > 1 else self.size

    def _free_for(self, priority: Priority) -> bool:
        return len(self._running) < self._slots(priority)

    def expected_wait(self, priority: Priority = Priority.URGENT) -> float:
        """Seconds a call of this priority queued now would wait before it starts: the work
        still to do of the calls running and of those queued ahead of it, spread over the
        workers it may use, by the costs measured so far."""
        now = self._clock()
        slots = self._slots(priority)
        ahead = sum(j.cost for j in self._waiting if j.ticket.priority <= priority) / slots
        if len(self._running) < slots:  # a worker is free: only the queue ahead counts
            return ahead
        # Every worker it may use is busy: it waits for enough of them to finish. A call that
        # overran its expected cost is not taken to be about done: it has a quarter still to go.
        left = sorted(max(j.cost - (now - j.started_at), j.cost / 4) for j in self._running)
        return left[len(self._running) - slots] + ahead

    def recent_wait(self) -> float:
        """How long the last needed call (URGENT or LIKELY) waited in the queue, if recent."""
        wait, at = self._needed_wait
        return wait if self._clock() - at < _RECENT else 0.0

    def busy(self, limit: float) -> bool:
        """Whether optional work should be shed: it would wait longer than `limit` seconds, or
        a call a client needed lately did."""
        return max(self.expected_wait(Priority.OPTIONAL), self.recent_wait()) > limit

    def note_shed(self) -> None:
        """Count optional work that was not even queued because the pool was busy."""
        self.shed += 1

    def snapshot(self) -> dict[str, Any]:
        """The load as a client may read it (the `load` field of `info`)."""
        return {
            "workers": self.size,
            "running": self.running,
            "queued": self.queued,
            "expected_wait": round(self.expected_wait(Priority.LIKELY), 3),
            "recent_wait": round(self.recent_wait(), 3),
            "completed": self.completed,
            "shed": self.shed,
        }

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for job in self._waiting:
            if not job.future.done():
                job.future.cancel()
        self._waiting.clear()
