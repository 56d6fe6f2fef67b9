"""Protocol abuse against every real service process (tests/core covers the same in-process).

Each case sends its abuse from a few clients at once, expects a clear `error` (or a clean
close) at once, then checks the service still answers others, logged no unexpected
exception and holds no more memory than before.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.robustness.checks import (
    PROMPT,
    RSS_MARGIN_MB,
    assert_clean_log,
    assert_serving,
    connect,
    expect_error,
    log_mark,
    send_events,
    settled_rss,
)
from tests.robustness.targets import IDLE_TIMEOUT, Target
from wyoming_core import protocol

BURST = 5  # abusive clients at once per case
TERA = 2**40

BAD_INPUTS = [
    pytest.param(b"{not json at all\n", {protocol.INVALID_JSON}, id="invalid-json"),
    pytest.param(b'{"data": {"text": "hello"}}\n', {protocol.MISSING_TYPE}, id="no-type"),
    pytest.param(b'{"type": "describe"\xff\xfe\x80}\n', {protocol.INVALID_JSON}, id="non-utf8"),
    pytest.param(
        json.dumps({"type": "describe", "data_length": TERA}).encode() + b"\n",
        {protocol.DATA_TOO_LARGE},
        id="data-length-2^40",
    ),
    pytest.param(
        json.dumps({"type": "audio-chunk", "payload_length": TERA}).encode() + b"\n",
        {protocol.PAYLOAD_TOO_LARGE},
        id="payload-length-2^40",
    ),
    pytest.param(
        random.Random(7).randbytes(8192) + b"\n",
        {protocol.INVALID_JSON, protocol.LINE_TOO_LONG},
        id="garbage",
    ),
]


async def _burst(case: Callable[[], Awaitable[None]], count: int = BURST) -> None:
    await asyncio.gather(*(case() for _ in range(count)))


async def _after(target: Target, mark: int, rss_before: float) -> None:
    await assert_serving(target)
    assert_clean_log(target, mark)
    rss_after = await settled_rss(target)
    assert rss_after <= rss_before + RSS_MARGIN_MB, f"RSS {rss_before:.0f} -> {rss_after:.0f} MB"


@pytest.mark.parametrize(("raw", "codes"), BAD_INPUTS)
async def test_bad_input_gets_an_error_and_a_close(target: Target, raw: bytes, codes: set[str]) -> None:
    mark, rss_before = log_mark(target), await settled_rss(target, 0)

    async def abuse() -> None:
        client = await connect(target)
        await client.send_bytes(raw)
        await expect_error(client, codes)
        assert await client.closed(timeout=PROMPT)

    await _burst(abuse)
    await _after(target, mark, rss_before)


async def test_one_mib_header_line_is_refused_without_buffering(target: Target) -> None:
    mark, rss_before = log_mark(target), await settled_rss(target, 0)

    async def abuse() -> None:
        client = await connect(target)
        answer = asyncio.create_task(expect_error(client, {protocol.LINE_TOO_LONG}, timeout=60))
        # A line that never ends: refused and cut once past the line limit (64 KiB), not read on
        # and held (a service that buffered it would take all 32 MiB and wait for the newline).
        sent = await client.send_endless_line(cap=32 * 2**20)
        await answer
        # Beyond the limit, only what the socket buffers hold got out (about 0.5 MiB).
        assert sent < 4 * 2**20, f"the service took {sent} bytes of one header line"
        await client.close()

    await _burst(abuse)
    await _after(target, mark, rss_before)


async def test_unknown_events_are_ignored_and_the_connection_stays_usable(target: Target) -> None:
    mark = log_mark(target)
    client = await connect(target)
    await client.send("no-such-event", {"x": 1})
    await client.send("from-the-future", {"nested": {"a": [1, 2]}}, b"\x00\x01" * 100)
    await client.send("describe")
    event = await client.receive(timeout=PROMPT)
    assert event is not None and event.type == "info", event
    await client.close()
    # And real work still goes through afterwards.
    await target.work()
    assert_clean_log(target, mark)


async def test_events_out_of_order(target: Target) -> None:
    mark = log_mark(target)
    client = await connect(target)
    await send_events(client, target.out_of_order)
    if target.out_of_order_code is not None:
        await expect_error(client, {target.out_of_order_code})
        assert await client.closed(timeout=PROMPT)
    else:
        # Either a clear error (then a close), or the events are dropped and the connection works.
        error = None
        while error is None:
            try:
                # Well inside the idle timeout, so a quiet connection is still open after it.
                event = await client.receive(timeout=IDLE_TIMEOUT / 2)
            except TimeoutError:
                break  # quiet: the events were dropped
            assert event is not None, "closed without an error event"
            if event.type == "error":
                error = event
        if error is not None:
            assert error.data.get("code") not in (None, "internal-error"), error.data
            assert await client.closed(timeout=PROMPT)
        else:
            await client.send("describe")
            assert (await client.receive_until("info", timeout=PROMPT))[-1].type == "info"
        await client.close()
    await target.work()
    await assert_serving(target)
    assert_clean_log(target, mark)


async def test_idle_connection_is_closed_with_idle_timeout(target: Target) -> None:
    mark = log_mark(target)

    async def idle() -> None:
        client = await connect(target)
        started = time.monotonic()
        event = await expect_error(client, {protocol.IDLE_TIMEOUT}, timeout=IDLE_TIMEOUT + PROMPT)
        # Not before the timeout (it is the idle rule, not some other refusal).
        assert time.monotonic() - started >= IDLE_TIMEOUT * 0.8, event
        assert await client.closed(timeout=PROMPT)

    await _burst(idle)
    await assert_serving(target)
    assert_clean_log(target, mark)


async def test_half_sent_event_then_silence_times_out(target: Target) -> None:
    mark = log_mark(target)
    client = await connect(target)
    # The header promises 1000 payload bytes; 10 come, then nothing (a half-open peer).
    await client.send_bytes(json.dumps({"type": "audio-chunk", "payload_length": 1000}).encode() + b"\n")
    await client.send_bytes(b"\x00" * 10)
    await expect_error(client, {protocol.IDLE_TIMEOUT}, timeout=IDLE_TIMEOUT + PROMPT)
    assert await client.closed(timeout=PROMPT)
    await assert_serving(target)
    assert_clean_log(target, mark)


async def test_half_close_mid_event_is_a_truncated_event(target: Target) -> None:
    mark = log_mark(target)
    client = await connect(target)
    await client.send_bytes(json.dumps({"type": "audio-chunk", "payload_length": 1000}).encode() + b"\n")
    await client.send_bytes(b"\x00" * 10)
    # FIN on our side only: the service sees the end of stream in the middle of the event.
    client.writer.get_extra_info("socket").shutdown(socket.SHUT_WR)
    started = time.monotonic()
    await expect_error(client, {protocol.TRUNCATED})
    assert time.monotonic() - started < IDLE_TIMEOUT, "answered by the idle timeout, not at once"
    assert await client.closed(timeout=PROMPT)
    await assert_serving(target)
    assert_clean_log(target, mark)


async def test_half_close_after_a_request_still_gets_the_answer(target: Target) -> None:
    client = await connect(target)
    await client.send("describe")
    client.writer.get_extra_info("socket").shutdown(socket.SHUT_WR)
    event = await client.receive(timeout=PROMPT)
    assert event is not None and event.type == "info", event
    assert await client.closed(timeout=PROMPT)
    await assert_serving(target)


async def test_garbage_in_the_middle_of_a_real_request(target: Target) -> None:
    mark = log_mark(target)
    client = await connect(target)
    await send_events(client, target.stream_start)  # the service is busy with this client now
    await client.send_bytes(b"\x00\x9f garbage {{{\n")
    await expect_error(client, {protocol.INVALID_JSON})
    assert await client.closed(timeout=PROMPT)
    # The request it dropped leaves nothing behind: the next real one works.
    await target.work()
    await assert_serving(target)
    assert_clean_log(target, mark)
