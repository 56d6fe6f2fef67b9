"""The conversation service as a process, talking to a fake Ollama through the real `ollama` client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.info import Describe, Info

from tests.support.fake_ollama import FakeOllama, echo_reply
from tests.support.services import ServiceProcess
from wyoming_core.client import Connection, converse, describe
from wyoming_llm.local import EMPTY_REPLY, RESET_REPLY

FIRST_TOKEN_TIMEOUT = 2.0
RETRY_SECONDS = 2.0
# Bounds are generous: the machine is shared and busy. They prove "bounded", not "fast".
SLACK = 6.0

Timed = list[tuple[float, Event]]


def start_llm(url: str, data_dir: Path, *extra: str) -> ServiceProcess:
    return ServiceProcess(
        "wyoming_llm",
        "--ollama-url",
        url,
        "--data-dir",
        str(data_dir),
        "--first-token-timeout",
        str(FIRST_TOKEN_TIMEOUT),
        "--retry-seconds",
        str(RETRY_SECONDS),
        "--answer-timeout",
        "20",
        "--debug",
        *extra,
    ).start()


async def ready(service: ServiceProcess, marker: str = "is ready") -> ServiceProcess:
    service.wait_listening()
    await service.wait_ready(timeout=60, marker=marker)
    return service


async def exchange(
    uri: str, text: str, context: dict[str, Any] | None = None, language: str | None = None
) -> Timed:
    """Every event of one answer, with seconds since the transcript was sent."""
    async with Connection(uri, timeout=60) as conn:
        started = time.monotonic()
        await conn.send(Transcript(text=text, context=context, language=language))
        events: Timed = []
        while True:
            event = await conn.receive()
            events.append((time.monotonic() - started, event))
            if HandledStop.is_type(event.type):
                return events


def final(events: Timed) -> tuple[bool, str, dict[str, Any] | None]:
    for _at, event in events:
        if Handled.is_type(event.type):
            answer = Handled.from_event(event)
            return True, answer.text or "", answer.context
        if NotHandled.is_type(event.type):
            not_handled = NotHandled.from_event(event)
            return False, not_handled.text or "", not_handled.context
    raise AssertionError(f"no handled/not-handled in {events}")


def chunks(events: Timed) -> list[str]:
    return [HandledChunk.from_event(e).text for _at, e in events if HandledChunk.is_type(e.type)]


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeOllama]:
    async with FakeOllama(reply=echo_reply) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake: FakeOllama) -> Iterator[None]:
    """Every test starts from a healthy, fast fake with no recorded requests."""
    fake.reply, fake.tokens_per_second, fake.first_token_delay = echo_reply, 200.0, 0.0
    fake.mode, fake.fail_first, fake.models, fake.cut_after = "ok", 0, ("llama3.2:latest",), 3
    fake.requests.clear()
    yield


@pytest.fixture(scope="module")
async def service(
    fake: FakeOllama, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServiceProcess]:
    proc = start_llm(fake.url, tmp_path_factory.mktemp("llm"), "--max-history-turns", "3")
    try:
        yield await ready(proc, "is loaded and warm")
    finally:
        proc.stop()


# -- describe ---------------------------------------------------------------------------------------


async def test_describe_is_immediate_while_the_model_loads(
    service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    async with FakeOllama(load_delay=30.0) as slow:
        proc = start_llm(slow.url, tmp_path)
        service_factory.append(proc)
        await ready(proc)
        await slow.wait_for(lambda f: any(r.path == "/api/generate" for r in f.requests))
        # The load takes 30 s: an answer within a generous deadline came while it was loading.
        info = await describe(proc.uri, timeout=10.0)
        assert "loaded and warm" not in proc.log()
    program = info.handle[0]
    assert program.installed and program.attribution.name and program.version
    assert program.supports_handled_streaming
    model = program.models[0]
    assert model.name == "llama3.2" and model.installed and model.attribution.url
    assert "en" in model.languages


async def test_describe_is_answered_while_an_answer_is_pending(
    service: ServiceProcess, fake: FakeOllama
) -> None:
    fake.mode = "hang"
    async with Connection(service.uri, timeout=10) as conn:
        await conn.send(Transcript(text="Think hard.", context={"conversation_id": "describe"}))
        await fake.wait_for(lambda f: bool(f.chats))
        # The model never answers ("hang"): an info at all (within the connection's 10 s) shows
        # describe is not queued behind the pending answer.
        await conn.send(Describe())
        while not Info.is_type((event := await conn.receive()).type):
            assert not (Handled.is_type(event.type) or NotHandled.is_type(event.type))


# -- streaming --------------------------------------------------------------------------------------


async def test_sentences_arrive_before_the_model_has_finished(
    service: ServiceProcess, fake: FakeOllama
) -> None:
    fake.reply = "The first sentence is short. Here comes a second one. And this is the third and last."
    fake.tokens_per_second = 10.0
    async with Connection(service.uri, timeout=30) as conn:
        await conn.send(Transcript(text="Talk to me.", context={"conversation_id": "stream"}))
        types: list[str] = []
        first_chunk_while_generating: bool | None = None
        texts: list[str] = []
        while True:
            event = await conn.receive()
            types.append(event.type)
            if HandledChunk.is_type(event.type):
                if first_chunk_while_generating is None:
                    first_chunk_while_generating = not fake.chats[-1].completed
                texts.append(HandledChunk.from_event(event).text)
            if Handled.is_type(event.type):
                answer = Handled.from_event(event).text
            if HandledStop.is_type(event.type):
                break
    assert first_chunk_while_generating, "the first sentence only came after the model had finished"
    assert types == [
        "handled-start",
        "handled-chunk",
        "handled-chunk",
        "handled-chunk",
        "handled",
        "handled-stop",
    ]
    assert texts == [
        "The first sentence is short.",
        "Here comes a second one.",
        "And this is the third and last.",
    ]
    assert answer == " ".join(texts)


async def test_context_is_echoed(service: ServiceProcess) -> None:
    context = {"conversation_id": "ctx-1", "device_id": "dev-7", "satellite_id": "kitchen", "extra": {"n": 1}}
    events = await exchange(service.uri, "Hello.", context)
    start = HandledStart.from_event(events[0][1])
    assert start.context == context
    assert final(events) == (True, "You said: Hello.", context)


async def test_a_client_without_conversation_id_gets_one_to_continue_with(
    service: ServiceProcess, fake: FakeOllama
) -> None:
    _handled, _text, context = final(await exchange(service.uri, "Remember the word apple."))
    assert context and context.get("conversation_id")
    await exchange(service.uri, "What was the word?", context)
    assert fake.chats[-1].user_texts == ["Remember the word apple.", "What was the word?"]


# -- memory -----------------------------------------------------------------------------------------


async def test_history_is_sent_and_trimmed_to_the_last_turns(
    service: ServiceProcess, fake: FakeOllama
) -> None:
    for n in range(5):
        reply = await converse(service.uri, f"Question {n}.", "trim")
        assert reply.handled and reply.text == f"You said: Question {n}."
    messages = fake.chats[-1].messages
    assert messages[0]["role"] == "system"
    # --max-history-turns 3: three earlier exchanges, then the new question.
    assert [m["content"] for m in messages[1:]] == [
        "Question 1.",
        "You said: Question 1.",
        "Question 2.",
        "You said: Question 2.",
        "Question 3.",
        "You said: Question 3.",
        "Question 4.",
    ]


async def test_satellite_id_keys_memory_without_conversation_id(
    service: ServiceProcess, fake: FakeOllama
) -> None:
    await exchange(service.uri, "One.", {"satellite_id": "bedroom"})
    await exchange(service.uri, "Two.", {"satellite_id": "bedroom"})
    await exchange(service.uri, "Other.", {"satellite_id": "garage"})
    assert fake.chats[1].user_texts == ["One.", "Two."]
    assert fake.chats[2].user_texts == ["Other."]


async def test_system_message_has_date_time_and_language(service: ServiceProcess, fake: FakeOllama) -> None:
    await exchange(service.uri, "Hallo.", {"conversation_id": "lang"}, language="de")
    system = fake.chats[-1].messages[0]["content"]
    assert str(time.localtime().tm_year) in system and "current date and time" in system
    assert "German" in system
    assert "short" in system and "markdown" in system


async def test_concurrent_conversations_never_mix(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.tokens_per_second = 40.0

    async def talk(name: str) -> None:
        for turn in range(3):
            reply = await converse(service.uri, f"{name} turn {turn}.", f"mix-{name}")
            assert reply.text == f"You said: {name} turn {turn}."

    names = ["alpha", "bravo", "charlie", "delta"]
    await asyncio.gather(*(talk(name) for name in names))
    assert len(fake.chats) == 12
    for chat in fake.chats:
        owners = {text.split()[0] for text in chat.user_texts}
        owners |= {m["content"].split()[2] for m in chat.messages if m["role"] == "assistant"}
        assert len(owners) == 1, chat.messages


async def test_reset_commands_clear_the_memory_and_say_so(service: ServiceProcess, fake: FakeOllama) -> None:
    await converse(service.uri, "My name is Sam.", "reset")
    for command in ("Start over.", "Clear history", "New conversation!"):
        reply = await converse(service.uri, command, "reset")
        assert reply.handled and reply.text == RESET_REPLY and reply.chunks == (RESET_REPLY,)
    assert len(fake.chats) == 1  # the model never saw the commands
    await converse(service.uri, "What is my name?", "reset")
    assert fake.chats[-1].user_texts == ["What is my name?"]


async def test_memory_survives_a_restart(
    fake: FakeOllama, service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    first = start_llm(fake.url, tmp_path)
    service_factory.append(first)
    await converse((await ready(first)).uri, "The code word is banana.", "restart")
    first.stop()
    second = start_llm(fake.url, tmp_path)
    service_factory.append(second)
    await converse((await ready(second)).uri, "What is the code word?", "restart")
    assert fake.chats[-1].user_texts == ["The code word is banana.", "What is the code word?"]


async def test_idle_conversations_expire(
    fake: FakeOllama, service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    idle = 12.0  # room for a slow second turn on a busy machine
    proc = start_llm(fake.url, tmp_path, "--history-idle-minutes", str(idle / 60))
    service_factory.append(proc)
    await ready(proc)
    await converse(proc.uri, "Remember this.", "idle")
    await converse(proc.uri, "Still there?", "idle")
    last_turn_done = time.monotonic()  # the service stored the turn before answering it
    assert fake.chats[-1].user_texts == ["Remember this.", "Still there?"]
    # Idle from the last turn on, whatever the time the turns took.
    await asyncio.sleep(last_turn_done + idle + 0.5 - time.monotonic())
    await converse(proc.uri, "And now?", "idle")
    assert fake.chats[-1].user_texts == ["And now?"]


async def test_unwritable_data_dir_is_logged_and_answers_go_on(
    fake: FakeOllama, service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = start_llm(fake.url, blocker / "data")
    service_factory.append(proc)
    await ready(proc)
    assert "keeping it in memory only" in proc.log()
    await converse(proc.uri, "First.", "ro")
    reply = await converse(proc.uri, "Second.", "ro")
    assert reply.handled and fake.chats[-1].user_texts == ["First.", "Second."]


# -- speech -----------------------------------------------------------------------------------------


async def test_markdown_emoji_and_urls_are_not_spoken(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.reply = (
        "**Sure!** 😀 Read [the guide](https://example.com/guide.html) now.\n- Step one\n```sh\nrm x\n```"
    )
    events = await exchange(service.uri, "Help me.", {"conversation_id": "md"})
    handled, text, _ = final(events)
    assert handled and text == "Sure! Read the guide now. Step one."
    assert chunks(events) == ["Sure!", "Read the guide now.", "Step one."]
    # What the model hears next time is what was said.
    await exchange(service.uri, "Again.", {"conversation_id": "md"})
    assert fake.chats[-1].messages[2]["content"] == text


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   "])
async def test_empty_transcript_asks_to_repeat(service: ServiceProcess, fake: FakeOllama, text: str) -> None:
    assert final(await exchange(service.uri, text, {"conversation_id": "empty"}))[:2] == (False, EMPTY_REPLY)
    assert not fake.chats


async def test_a_huge_transcript_is_cut_and_answered(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.reply = "That was long."
    handled, text, _ = final(await exchange(service.uri, "word " * 2048, {"conversation_id": "huge"}))
    assert handled and text == "That was long."
    assert len(fake.chats[-1].user_texts[-1]) == 2000
    assert "cut to 2000" in service.log()


# -- failures: always spoken, always bounded --------------------------------------------------------


async def answer_within(uri: str, bound: float, text: str = "Hello?") -> tuple[bool, str, float]:
    started = time.monotonic()
    handled, spoken, _ = final(await exchange(uri, text, {"conversation_id": f"fail-{time.monotonic()}"}))
    took = time.monotonic() - started
    assert took < bound, f"took {took:.1f} s"
    return handled, spoken, took


async def test_model_not_pulled(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.models = ()
    assert (await answer_within(service.uri, SLACK))[:2] == (False, "The language model isn't installed yet.")
    assert len(fake.chats) == 1  # not worth retrying
    assert "ollama pull llama3.2" in service.log()


async def test_no_first_token_in_time(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.mode = "hang"
    handled, text, took = await answer_within(service.uri, FIRST_TOKEN_TIMEOUT + SLACK)
    assert (handled, text) == (False, "The language model is taking too long to answer. Please try again.")
    assert took >= FIRST_TOKEN_TIMEOUT * 0.9
    # The request to Ollama is given up, not left running.
    await fake.wait_for(lambda f: f.chats[-1].disconnected, timeout=5)
    assert "no first word within 2 s" in service.log()


async def test_server_error_is_retried_then_spoken(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.mode = "error"
    handled, text, _ = await answer_within(service.uri, RETRY_SECONDS + SLACK)
    assert (handled, text) == (False, "The language model ran into a problem. Please try again.")
    assert len(fake.chats) >= 2
    assert "llama runner process has terminated" in service.log()


async def test_busy_server_recovers_within_the_retry_window(
    service: ServiceProcess, fake: FakeOllama
) -> None:
    fake.fail_first = 2
    handled, text, _ = await answer_within(service.uri, RETRY_SECONDS + SLACK)
    assert handled and text.startswith("You said")
    assert [c.status for c in fake.chats] == [503, 503, 200]


@pytest.mark.parametrize("mode", ["cut", "stream-error"])
async def test_stream_broken_after_a_sentence(service: ServiceProcess, fake: FakeOllama, mode: str) -> None:
    fake.reply, fake.mode, fake.cut_after = "It is sunny today. Tomorrow it will rain a lot.", mode, 6
    events = await exchange(service.uri, "Weather?", {"conversation_id": f"cut-{mode}"})
    assert chunks(events) == ["It is sunny today."]
    handled, text, _ = final(events)
    assert not handled
    expected = (
        "Sorry, I lost the connection to the language model." if mode == "cut" else "ran into a problem"
    )
    assert expected in text
    assert len(fake.chats) == 1  # never retried once something was said


async def test_model_going_silent_mid_answer(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.reply, fake.mode, fake.cut_after = "It is sunny today. Tomorrow it will rain a lot.", "stall", 6
    started = time.monotonic()
    events = await exchange(service.uri, "Weather?", {"conversation_id": "stall"})
    assert time.monotonic() - started < FIRST_TOKEN_TIMEOUT + SLACK
    assert chunks(events) == ["It is sunny today."]
    assert final(events)[:2] == (False, "The language model is taking too long to answer. Please try again.")
    await fake.wait_for(lambda f: f.chats[-1].disconnected, timeout=5)
    assert "no further words within 2 s" in service.log()


async def test_slow_but_in_time_is_fine(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.first_token_delay = FIRST_TOKEN_TIMEOUT / 2
    handled, text, _ = await answer_within(service.uri, FIRST_TOKEN_TIMEOUT + SLACK)
    assert handled and text == "You said: Hello?"


async def test_unreachable_ollama_is_spoken_and_time_still_answered(
    service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    proc = start_llm(FakeOllama.unreachable_url(), tmp_path)
    service_factory.append(proc)
    await ready(proc)
    handled, text, _ = await answer_within(proc.uri, RETRY_SECONDS + SLACK, "Tell me a joke.")
    assert (handled, text) == (False, "I can't reach the language model right now.")
    handled, text, _ = await answer_within(proc.uri, RETRY_SECONDS + SLACK, "What time is it?")
    assert handled and text.startswith("It's ") and text.endswith(("AM.", "PM."))
    handled, text, _ = await answer_within(proc.uri, RETRY_SECONDS + SLACK, "What's the date?")
    assert handled and text.startswith("Today is ")
    log = proc.log()
    assert "At start-up, Ollama is not reachable at" in log and "is ready" in log


# -- start-up ---------------------------------------------------------------------------------------


async def test_model_is_warmed_at_start_up(service_factory: list[ServiceProcess], tmp_path: Path) -> None:
    async with FakeOllama(load_delay=1.0) as slow:
        proc = start_llm(slow.url, tmp_path, "--keep-alive", "1h")
        service_factory.append(proc)
        await ready(proc, "is loaded and warm")
        assert "is reachable and has the model llama3.2" in proc.log()
        warm_up = [r for r in slow.requests if r.path == "/api/generate"]
        assert len(warm_up) == 1 and warm_up[0].body.get("keep_alive") == "1h"
        assert warm_up[0].completed and warm_up[0].load_seconds == 1.0
        # The first question finds the model loaded: it does not pay the load.
        await converse(proc.uri, "Hello.", "warm")
        assert slow.chats[-1].body.get("keep_alive") == "1h"
        assert slow.chats[-1].completed and slow.chats[-1].load_seconds == 0.0


async def test_missing_model_is_reported_at_start_up(
    service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    async with FakeOllama(models=("qwen2.5:0.5b",)) as other:
        proc = start_llm(other.url, tmp_path)
        service_factory.append(proc)
        await ready(proc)
        await proc.wait_log("the model llama3.2 is not pulled", timeout=60)
        info = await describe(proc.uri)
        assert not info.handle[0].models[0].installed


async def test_home_assistant_style_client(service: ServiceProcess) -> None:
    """As Home Assistant's wyoming conversation agent does it, with the stock wyoming client."""
    from wyoming.client import AsyncTcpClient

    async with AsyncTcpClient("127.0.0.1", service.port) as client:
        await client.write_event(Describe().event())
        while not Info.is_type((event := await client.read_event()).type):
            pass
        info = Info.from_event(event)
    handle = next(p for p in info.handle if p.installed)
    assert [lang for m in handle.models if m.installed for lang in m.languages]
    context = {
        "conversation_id": "01HS6SP2XD1E5HEHVDZE8R2WMR",
        "device_id": "abc",
        "satellite_id": "assist_1",
    }
    async with AsyncTcpClient("127.0.0.1", service.port) as client:
        await client.write_event(Transcript("What is a lumen?", context=context, language="en").event())
        while True:
            event = await client.read_event()
            assert event is not None
            if Handled.is_type(event.type):
                assert Handled.from_event(event).text == "You said: What is a lumen?"
                break
            assert not NotHandled.is_type(event.type)


# -- cancellation -----------------------------------------------------------------------------------


async def test_disconnect_mid_answer_stops_the_model(service: ServiceProcess, fake: FakeOllama) -> None:
    fake.reply = "Short start. " + "then a very long ramble " * 40
    fake.tokens_per_second = 20.0
    async with Connection(service.uri, timeout=30) as conn:
        await conn.send(Transcript(text="Ramble.", context={"conversation_id": "cancel"}))
        while not HandledChunk.is_type((await conn.receive()).type):
            pass
    await fake.wait_for(lambda f: f.chats[-1].disconnected, timeout=5)
    chat = fake.chats[-1]
    assert not chat.completed and chat.tokens_sent < 100


async def test_disconnect_before_the_first_word_stops_the_request(
    service: ServiceProcess, fake: FakeOllama
) -> None:
    fake.first_token_delay = 30.0
    async with Connection(service.uri, timeout=30) as conn:
        await conn.send(Transcript(text="Think.", context={"conversation_id": "cancel-early"}))
        await fake.wait_for(lambda f: bool(f.chats))
    await fake.wait_for(lambda f: f.chats[-1].disconnected, timeout=5)
    assert fake.chats[-1].tokens_sent == 0


async def test_odd_transcript_fields_are_answered_not_fatal(
    service: ServiceProcess, fake: FakeOllama
) -> None:
    from tests.support.raw import RawClient

    client = await RawClient.connect(service.port)
    try:
        await client.send("transcript", {"context": "not a dict", "language": 5})
        events = await client.receive_until("handled-stop")
        assert [e.type for e in events] == ["handled-start", "not-handled", "handled-stop"]
        assert NotHandled.from_event(events[1]).text == EMPTY_REPLY
        # The connection is still usable.
        await client.send("transcript", {"text": "Still here?", "context": {"conversation_id": "odd"}})
        events = await client.receive_until("handled-stop")
        assert Handled.from_event(events[-2]).text == "You said: Still here?"
    finally:
        await client.close()
