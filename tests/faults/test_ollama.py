"""Fault drill: Ollama goes away and comes back while the conversation service runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.robustness.targets import BUILDERS
from tests.support.services import ServiceProcess
from wyoming_core.client import converse

REPLY = "The kitchen lights are on."


async def test_ollama_gone_then_back(tmp_path: Path) -> None:
    reason = BUILDERS["llm"].missing()
    if reason is not None:
        pytest.skip(reason)
    from tests.support.fake_ollama import FakeOllama

    fake = await FakeOllama(reply=REPLY).start()
    port = fake.port
    service = ServiceProcess(
        "wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(tmp_path), "--retry-seconds", "1"
    ).start()
    try:
        service.wait_listening()
        await service.wait_ready(marker="is loaded and warm")
        assert (await converse(service.uri, "Are the lights on?", "drill", timeout=60)).text == REPLY

        await fake.stop()  # Ollama is gone (stopped, crashed, machine rebooting)
        started = time.monotonic()
        down = await converse(service.uri, "Are the lights on?", "drill", timeout=60)
        took = time.monotonic() - started
        # Not handled, but still something to say to the user: one spoken sentence, soon.
        assert not down.handled, down
        assert down.text and down.text.rstrip()[-1] in ".!?", down
        assert REPLY not in down.text
        assert took < 15, f"the apology took {took:.1f} s"
        assert "Ollama" in service.log()[-3000:]  # the log says what is wrong

        fake = await FakeOllama(reply=REPLY, port=port).start()  # back, same address
        back = await converse(service.uri, "Are the lights on?", "drill", timeout=60)
        assert back.handled and back.text == REPLY, back
    finally:
        service.stop()
        await fake.stop()
