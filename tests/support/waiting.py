"""Wait for a condition with a generous deadline, instead of sleeping and checking once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    condition: Callable[[], bool], timeout: float = 30.0, explain: Callable[[], str] = lambda: ""
) -> None:
    """Poll `condition` until it holds; fail after `timeout` s with `explain()` as the message."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s\n{explain()}")
        await asyncio.sleep(0.05)
