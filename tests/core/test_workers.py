"""The priority worker pool: real threads, blocking calls, what runs first and what is shed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from tests.support.waiting import until
from wyoming_core.workers import Priority, PriorityPool, Shed, Ticket

DEADLINE = 30.0  # generous: the machine may be busy


class Gate:
    """A call that holds its worker until opened."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self._open = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        self._open.wait(DEADLINE)
        return "gate"

    def open(self) -> None:
        self._open.set()

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, DEADLINE)


def recorder(order: list[str], name: str) -> Callable[[], str]:
    def call() -> str:
        order.append(name)
        return name

    return call


async def _queued(pool: PriorityPool, count: int) -> None:
    await until(lambda: pool.queued >= count, DEADLINE, lambda: f"{pool.queued} queued")


@pytest.fixture
def pool() -> PriorityPool:
    return PriorityPool(1, "test-priority")


async def test_the_most_urgent_call_runs_first(pool: PriorityPool) -> None:
    gate, order = Gate(), list[str]()
    busy = asyncio.create_task(pool.run(gate, ticket=Ticket(Priority.URGENT, "gate")))
    await gate.wait_started()
    calls = [
        asyncio.create_task(pool.run(recorder(order, name), ticket=Ticket(priority, name)))
        for name, priority in [
            ("partial", Priority.OPTIONAL),
            ("speculative", Priority.LIKELY),
            ("final-1", Priority.URGENT),
            ("final-2", Priority.URGENT),
        ]
    ]
    await _queued(pool, 4)
    gate.open()
    await asyncio.wait_for(asyncio.gather(busy, *calls), DEADLINE)
    assert order == ["final-1", "final-2", "speculative", "partial"]


async def test_a_speculative_call_raised_to_urgent_goes_before_later_urgent_ones(pool: PriorityPool) -> None:
    gate, order = Gate(), list[str]()
    busy = asyncio.create_task(pool.run(gate, ticket=Ticket(Priority.URGENT, "gate")))
    await gate.wait_started()
    speculative = Ticket(Priority.LIKELY, "final")
    first = asyncio.create_task(pool.run(recorder(order, "speculative"), ticket=speculative))
    await _queued(pool, 1)
    second = asyncio.create_task(pool.run(recorder(order, "final"), ticket=Ticket(Priority.URGENT, "final")))
    await _queued(pool, 2)
    speculative.raise_to(Priority.URGENT)  # its client sent audio-stop: it waits for it now
    gate.open()
    await asyncio.wait_for(asyncio.gather(busy, first, second), DEADLINE)
    assert order == ["speculative", "final"]


async def test_optional_work_leaves_a_worker_free_for_urgent_work() -> None:
    pool = PriorityPool(2, "test-priority")
    gate, order = Gate(), list[str]()
    busy = asyncio.create_task(pool.run(gate, ticket=Ticket(Priority.LIKELY, "gate")))
    await gate.wait_started()
    partial = asyncio.create_task(pool.run(recorder(order, "partial"), ticket=Ticket(Priority.OPTIONAL, "p")))
    await _queued(pool, 1)
    # One worker is free, but not for the partial: the final takes it at once.
    final = await asyncio.wait_for(
        pool.run(recorder(order, "final"), ticket=Ticket(Priority.URGENT, "f")), DEADLINE
    )
    assert final == "final" and order == ["final"] and not partial.done()
    gate.open()
    await asyncio.wait_for(asyncio.gather(busy, partial), DEADLINE)
    assert order == ["final", "partial"]


async def test_optional_work_that_waited_too_long_is_shed(pool: PriorityPool) -> None:
    gate, order = Gate(), list[str]()
    busy = asyncio.create_task(pool.run(gate, ticket=Ticket(Priority.URGENT, "gate")))
    await gate.wait_started()
    partial = asyncio.create_task(
        pool.run(recorder(order, "partial"), ticket=Ticket(Priority.OPTIONAL, "p"), max_wait=0.05)
    )
    final = asyncio.create_task(pool.run(recorder(order, "final"), ticket=Ticket(Priority.URGENT, "f")))
    await _queued(pool, 2)
    await asyncio.sleep(0.1)
    gate.open()
    await asyncio.wait_for(asyncio.gather(busy, final), DEADLINE)
    with pytest.raises(Shed):
        await asyncio.wait_for(partial, DEADLINE)
    assert order == ["final"] and pool.shed == 1
    # A final is never shed, however long it waited.
    assert pool.snapshot()["shed"] == 1


async def test_a_call_cancelled_while_queued_never_runs(pool: PriorityPool) -> None:
    gate, order = Gate(), list[str]()
    busy = asyncio.create_task(pool.run(gate, ticket=Ticket(Priority.URGENT, "gate")))
    await gate.wait_started()
    gone = asyncio.create_task(pool.run(recorder(order, "gone"), ticket=Ticket(Priority.URGENT, "f")))
    await _queued(pool, 1)
    gone.cancel()
    kept = asyncio.create_task(pool.run(recorder(order, "kept"), ticket=Ticket(Priority.URGENT, "f")))
    gate.open()
    await asyncio.wait_for(asyncio.gather(busy, kept), DEADLINE)
    assert order == ["kept"] and pool.queued == 0 and pool.running == 0


async def test_a_long_job_in_steps_takes_turns_with_a_short_one(pool: PriorityPool) -> None:
    """A long decode goes back to the queue after each window: a short request that came
    while it ran is done before the long one."""
    order: list[str] = []
    first_step = Gate()

    async def long_job() -> None:
        ticket = Ticket(Priority.URGENT, "final")
        await pool.run(first_step, ticket=ticket)
        for step in range(3):
            await pool.run(recorder(order, f"long-{step}"), ticket=ticket)

    long_task = asyncio.create_task(long_job())
    await first_step.wait_started()
    short = asyncio.create_task(pool.run(recorder(order, "short"), ticket=Ticket(Priority.URGENT, "final")))
    await _queued(pool, 1)
    first_step.open()
    await asyncio.wait_for(asyncio.gather(long_task, short), DEADLINE)
    assert order.index("short") < order.index("long-0")


async def test_the_expected_wait_grows_with_the_queue(pool: PriorityPool) -> None:
    gate = Gate()
    assert pool.expected_wait() == 0.0
    busy = asyncio.create_task(pool.run(gate, ticket=Ticket(Priority.URGENT, "final")))
    await gate.wait_started()
    one = pool.expected_wait()
    queued = [
        asyncio.create_task(pool.run(recorder([], "f"), ticket=Ticket(Priority.URGENT, "final")))
        for _ in range(3)
    ]
    await _queued(pool, 3)
    assert pool.expected_wait() > one
    # Optional work queued does not delay urgent work, but waits behind it.
    optional = asyncio.create_task(pool.run(recorder([], "p"), ticket=Ticket(Priority.OPTIONAL, "partial")))
    await _queued(pool, 4)
    assert pool.expected_wait(Priority.OPTIONAL) > pool.expected_wait(Priority.URGENT)
    assert pool.busy(0.0)
    gate.open()
    await asyncio.wait_for(asyncio.gather(busy, *queued, optional), DEADLINE)
    assert pool.expected_wait() == 0.0 and pool.snapshot()["completed"] == 5
