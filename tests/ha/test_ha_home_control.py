"""Our conversation service acting on a real Home Assistant through its MCP server.

Every outcome is read from Home Assistant's entity states and from the fake Ollama's request
record, never from our own log. HA is reached through a TCP proxy the test can cut, as if
Home Assistant had stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ha.harness import Home
from tests.support.fake_ollama import FakeOllama, ReplyValue, ToolCall
from tests.support.proxy import TcpProxy
from tests.support.services import ServiceProcess
from wyoming_core.audio import read_wav
from wyoming_core.client import converse, describe, transcribe
from wyoming_llm import replies

pytestmark = pytest.mark.ha


def home_model(messages: list[dict[str, Any]]) -> ReplyValue:
    """A fake model that uses the tools like a real one would, for the phrasings below."""
    last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    text = str(messages[last].get("content", "")).lower()
    results = [str(m.get("content", "")) for m in messages[last + 1 :] if m.get("role") == "tool"]
    if "cosy" in text:  # no sentence template says this: only the model can act on it
        if not results:
            return [ToolCall("HassTurnOn", {"name": "Bedroom Lamp"})]
        return "The bedroom lamp is on now." if '"success"' in results[-1] else "That did not work."
    if "pod bay" in text:  # a tool that does not exist, then a claim
        if not results:
            return [ToolCall("OpenPodBayDoors", {"speed": "fast"})]
        return "The pod bay doors are now open."
    if "garage" in text:  # a claim with no tool call at all
        return "The garage door has been turned on."
    return "I am the fake model."


@dataclass
class HomeLlm:
    home: Home
    service: ServiceProcess
    fake: FakeOllama
    proxy: TcpProxy

    async def say(self, text: str, conversation: str = "home") -> Any:
        return await converse(self.service.uri, text, conversation, timeout=60)

    async def wait_connected(self, connected: bool = True, timeout: float = 60.0) -> None:
        """Readiness through the protocol: describe's supports_home_control."""
        deadline = time.monotonic() + timeout
        while True:
            info = await describe(self.service.uri, timeout=10)
            if info.handle[0].supports_home_control == connected:
                return
            assert time.monotonic() < deadline, (
                f"home control never became {connected}:\n{self.service.log()}"
            )
            await asyncio.sleep(0.2)


def _token_file(tmp: Path, token: str) -> Path:
    path = tmp / "ha-token"
    path.write_text(token)
    path.chmod(0o600)
    return path


def start_llm(tmp: Path, ollama_url: str, ha_url: str, token: str, *extra: str) -> ServiceProcess:
    service = ServiceProcess(
        "wyoming_llm",
        "--ollama-url",
        ollama_url,
        "--ha-url",
        ha_url,
        "--ha-token-file",
        str(_token_file(tmp, token)),
        "--data-dir",
        str(tmp / "data"),
        "--no-warm-up",
        *extra,
    ).start()
    service.wait_listening()
    return service


@pytest.fixture(scope="session")
async def home_llm(ha_home: Home, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HomeLlm]:
    host_port = ha_home.url.removeprefix("http://")
    host, port = host_port.rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    async with FakeOllama(reply=home_model, tokens_per_second=200.0) as fake:
        service = start_llm(tmp_path_factory.mktemp("home-llm"), fake.url, proxy.url, ha_home.token)
        try:
            llm = HomeLlm(ha_home, service, fake, proxy)
            await llm.wait_connected()
            yield llm
        finally:
            service.stop()
            await proxy.stop()


def _chats_since(fake: FakeOllama, count: int) -> list[Any]:
    return fake.chats[count:]


async def test_local_commands_change_home_assistant_without_the_model(home_llm: HomeLlm) -> None:
    home = home_llm.home
    await home.reset()
    before = len(home_llm.fake.chats)

    reply = await home_llm.say("Turn on the kitchen lights.")
    assert reply.handled and reply.text, reply
    await home.assert_state(home.entity_id("Kitchen Lights"), "on")

    reply = await home_llm.say("turn off the kitchen lights")
    assert reply.handled, reply
    await home.assert_state(home.entity_id("Kitchen Lights"), "off")

    reply = await home_llm.say("Set the living room lights to 50 percent.")
    assert reply.handled, reply
    state = await home.assert_state(home.entity_id("Living Room Lights"), "on")
    assert state.attributes.get("brightness") in range(120, 135), state  # 50 % of 255

    assert _chats_since(home_llm.fake, before) == [], "a local command reached the model"


async def test_state_questions_are_answered_from_home_assistant(home_llm: HomeLlm) -> None:
    home = home_llm.home
    await home.reset()
    before = len(home_llm.fake.chats)
    off = await home_llm.say("Is the coffee maker on?")
    assert off.handled and off.text.lower().startswith("no"), off
    await home.set_on("Coffee Maker", True)
    on = await home_llm.say("Is the coffee maker on?")
    assert on.handled and on.text.lower().startswith("yes"), on
    assert _chats_since(home_llm.fake, before) == []


async def test_the_model_acts_through_home_assistants_tools(home_llm: HomeLlm) -> None:
    home = home_llm.home
    await home.reset()
    before = len(home_llm.fake.chats)
    reply = await home_llm.say("Make the bedroom cosy for me.")
    await home.assert_state(home.entity_id("Bedroom Lamp"), "on")
    assert reply.handled and reply.text == "The bedroom lamp is on now.", reply

    chats = _chats_since(home_llm.fake, before)
    offered = {tool["function"]["name"] for tool in chats[0].tools}
    assert {"HassTurnOn", "HassTurnOff", "GetLiveContext"} <= offered, offered
    # The second request carries HA's result of the call the model asked for.
    assert [c.name for c in chats[0].tool_calls] == ["HassTurnOn"]
    tool_results = [m for m in chats[1].messages if m.get("role") == "tool"]
    assert tool_results and '"success"' in tool_results[0]["content"], tool_results


async def test_invented_tools_and_unbacked_claims_are_never_spoken(home_llm: HomeLlm) -> None:
    home = home_llm.home
    await home.reset()
    before = len(home_llm.fake.chats)

    invented = await home_llm.say("Open the pod bay doors.")
    assert not invented.handled, invented
    assert invented.text == replies.NOTHING_DONE, invented
    chats = _chats_since(home_llm.fake, before)
    refusal = [m["content"] for m in chats[-1].messages if m.get("role") == "tool"]
    assert refusal and "no tool called 'OpenPodBayDoors'" in refusal[0], refusal

    claimed = await home_llm.say("Turn on the garage door.")
    assert not claimed.handled and claimed.text == replies.NOTHING_DONE, claimed
    for entity in home.entities:  # nothing changed anywhere
        assert (await home.state(entity.entity_id)).state == "off", entity


async def test_home_assistant_gone_is_said_and_the_next_turn_works_when_it_is_back(
    home_llm: HomeLlm,
) -> None:
    home = home_llm.home
    await home.reset()
    await home_llm.proxy.cut()
    try:
        started = time.monotonic()
        reply = await home_llm.say("Turn on the kitchen lights.")
        assert not reply.handled and reply.text == replies.UNREACHABLE, reply
        assert time.monotonic() - started < 30, "the failure took too long to be said"
        await home_llm.wait_connected(False)
    finally:
        await home_llm.proxy.restore()
    # Back: the very next turn works (the call itself reconnects; no waiting for a retry).
    reply = await home_llm.say("Turn on the kitchen lights.")
    assert reply.handled, reply
    await home.assert_state(home.entity_id("Kitchen Lights"), "on")


async def test_a_wrong_token_is_said_and_nothing_changes(
    ha_home: Home, home_llm: HomeLlm, tmp_path: Path
) -> None:
    await ha_home.reset()
    service = start_llm(tmp_path, home_llm.fake.url, ha_home.url, "not-a-valid-token")
    try:
        reply = await converse(service.uri, "Turn on the kitchen lights.", "token", timeout=60)
        assert not reply.handled and reply.text == replies.UNAUTHORIZED, reply
        info = await describe(service.uri)
        assert info.handle[0].supports_home_control is False
        assert "not-a-valid-token" not in service.log()
    finally:
        service.stop()
    assert (await ha_home.state(ha_home.entity_id("Kitchen Lights"))).state == "off"


async def test_local_commands_work_without_ollama(ha_home: Home, tmp_path: Path) -> None:
    await ha_home.reset()
    service = start_llm(tmp_path, FakeOllama.unreachable_url(), ha_home.url, ha_home.token)
    try:
        llm = HomeLlm(ha_home, service, FakeOllama(), TcpProxy("127.0.0.1", 1))
        await llm.wait_connected()
        reply = await llm.say("Turn on the bedroom lamp.")
        assert reply.handled, reply
        await ha_home.assert_state(ha_home.entity_id("Bedroom Lamp"), "on")
        # An unknown device, with no model to ask: said plainly.
        unknown = await llm.say("Turn on the garage door.")
        assert not unknown.handled and unknown.text == replies.unknown_device("garage door"), unknown
    finally:
        service.stop()


@pytest.mark.slow
async def test_spoken_command_through_the_satellite_turns_the_light_on(
    home_llm: HomeLlm, stt_service: ServiceProcess, tts_service: ServiceProcess, tmp_path: Path
) -> None:
    """A WAV with the wake word and the command, played to the standalone satellite as its
    microphone: HA's light goes on, and the reply in the speaker file says so (heard by our STT)."""
    from tests.satellite.helpers import SatelliteRun, mic_wav

    home = home_llm.home
    await home.reset()
    mic = mic_wav(tmp_path / "mic.wav", 1.0, "Hey Jarvis, turn on the kitchen lights.", 2.5)
    speaker = tmp_path / "speaker.wav"
    sat = await SatelliteRun(
        *("--mic-file", str(mic), "--snd-file", str(speaker), "--wake-word", "hey_jarvis"),
        *("--stt-uri", stt_service.uri, "--tts-uri", tts_service.uri, "--handle-uri", home_llm.service.uri),
        *("--no-sounds", "--follow-up", "0", "--exit-after-turns", "1"),
    ).start()
    assert await sat.wait_exit(180) == 0, sat.log()
    await home.assert_state(home.entity_id("Kitchen Lights"), "on")
    pcm, fmt = read_wav(speaker)
    heard = await transcribe(stt_service.uri, pcm, fmt)
    assert "turned on" in heard.text.lower(), heard.text
