"""A standalone satellite against services that misbehave (issue 13, item 3).

The services are small in-process fakes on loopback; the satellite is a real process that wakes
on "Hey Jarvis" in its mic WAV and runs one turn (`--exit-after-turns 1`). Each attack is a
reply that never ends: a transcript that never comes, an answer or a TTS stream without end, a
`describe` that streams other events, audio in an impossible format; and a second TTS advertised
over zeroconf beside the one the satellite is pinned to. The asserts are on what the fakes see
(the satellite closes the connection, what it asked for), on what the satellite played and on
its exit code, not on its log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from wyoming.asr import Transcript, TranscriptChunk
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event, async_write_event
from wyoming.handle import Handled, HandledChunk, HandledStart
from wyoming.info import Attribution, HandleModel, HandleProgram, Info, TtsProgram, TtsVoice
from wyoming.ping import Ping
from wyoming.tts import SynthesizeStopped

from tests.satellite.helpers import WAKE_REQUEST, SatelliteRun, mic_wav
from tests.support.waiting import until
from wyoming_core.audio import read_wav
from wyoming_core.client import CLIENT_LIMITS
from wyoming_core.protocol import ProtocolError, read_event

_ATTR = Attribution(name="test", url="https://example.invalid")
RATE = 22050
# Generous: the machine is shared; without the fixes these never happen at all.
CLOSED_WITHIN = 60.0

Behaviour = Callable[["Fake", Event, asyncio.StreamWriter], Awaitable[None]]


def _tone(seconds: float) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def _handle_info() -> Info:
    model = HandleModel(
        name="fake", attribution=_ATTR, installed=True, description=None, version=None, languages=["en"]
    )
    program = HandleProgram(
        name="fake-handle",
        attribution=_ATTR,
        installed=True,
        description=None,
        version=None,
        models=[model],
        supports_handled_streaming=True,
    )
    return Info(handle=[program])


def _tts_info() -> Info:
    voice = TtsVoice(
        name="fake", attribution=_ATTR, installed=True, description=None, version=None, languages=["en"]
    )
    program = TtsProgram(
        name="fake-tts",
        attribution=_ATTR,
        installed=True,
        description=None,
        version=None,
        voices=[voice],
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program])


@dataclass
class Fake:
    """One in-process service; every connection's requests and its end are recorded."""

    behaviour: Behaviour
    info: Info = field(default_factory=Info)
    describe: Behaviour | None = None  # None: answer with `info`
    requests: list[str] = field(default_factory=list)  # every non-describe event type received
    # (when the first request came, when the connection ended) for connections with requests.
    spans: list[tuple[float, float]] = field(default_factory=list)
    sent_bytes: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def start(self) -> Fake:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def send(self, writer: asyncio.StreamWriter, event: Event) -> None:
        await async_write_event(event, writer)
        self.sent_bytes += len(event.payload or b"") + len(str(event.data))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks: set[asyncio.Task[None]] = set()
        first: float | None = None
        try:
            while (event := await read_event(reader, CLIENT_LIMITS)) is not None:
                if event.type == "describe":
                    if self.describe is None:
                        await self.send(writer, self.info.event())
                        continue
                    behaviour: Behaviour = self.describe
                else:
                    first = first or time.monotonic()
                    self.requests.append(event.type)
                    behaviour = self.behaviour
                tasks.add(asyncio.create_task(_quietly(behaviour(self, event, writer))))
        except (ConnectionError, OSError, ProtocolError):
            pass
        finally:
            # The client went away (the satellite closed it, or a write to it failed).
            for task in tasks:
                task.cancel()
            if first is not None or self.describe is not None:
                self.spans.append((first or 0.0, time.monotonic()))
            writer.close()

    def closed_by_client(self) -> bool:
        return bool(self.spans)


async def _quietly(coro: Awaitable[None]) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
        await coro


# ---- behaviours: good ones, and attacks ------------------------------------------------------


async def stt_answers(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
    if event.type == "audio-stop":
        await fake.send(writer, Transcript(text="what time is it").event())


async def stt_never_finishes(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
    """Partials for ever after the audio ends, each within any per-event timeout; no transcript."""
    if event.type == "audio-stop":
        while True:
            await fake.send(writer, TranscriptChunk(text="what time").event())
            await asyncio.sleep(0.3)


async def handle_answers(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
    if event.type == "transcript":
        await fake.send(writer, HandledStart().event())
        await fake.send(writer, HandledChunk(text="It is noon. ").event())
        await fake.send(writer, Handled(text="It is noon.").event())


async def handle_never_finishes(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
    """A sentence every 0.3 s, for ever."""
    if event.type == "transcript":
        await fake.send(writer, HandledStart().event())
        while True:
            await fake.send(writer, HandledChunk(text="And another thing. ").event())
            await asyncio.sleep(0.3)


def tts_speaks(seconds: float = 0.5) -> Behaviour:
    async def behaviour(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
        if event.type == "synthesize-chunk":
            pcm = _tone(seconds)
            await fake.send(writer, AudioStart(rate=RATE, width=2, channels=1).event())
            await fake.send(writer, AudioChunk(rate=RATE, width=2, channels=1, audio=pcm).event())
            await fake.send(writer, AudioStop().event())
        elif event.type == "synthesize-stop":
            await fake.send(writer, SynthesizeStopped().event())

    return behaviour


async def tts_never_stops(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
    """Audio as fast as the satellite reads it, for ever (bounded here at 256 MiB)."""
    if event.type == "synthesize-chunk":
        await fake.send(writer, AudioStart(rate=RATE, width=2, channels=1).event())
        second = _tone(1.0)
        while fake.sent_bytes < 256 * 1024 * 1024:
            await fake.send(writer, AudioChunk(rate=RATE, width=2, channels=1, audio=second).event())


async def tts_trickles(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
    """A few milliseconds of audio every half second, for ever: never a timeout between chunks."""
    if event.type == "synthesize-chunk":
        await fake.send(writer, AudioStart(rate=RATE, width=2, channels=1).event())
        while True:
            await fake.send(writer, AudioChunk(rate=RATE, width=2, channels=1, audio=_tone(0.01)).event())
            await asyncio.sleep(0.5)


async def tts_bad_format(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
    if event.type == "synthesize-chunk":
        await fake.send(writer, AudioStart(rate=RATE, width=0, channels=1).event())
        await fake.send(writer, AudioChunk(rate=RATE, width=0, channels=1, audio=b"\0" * 4410).event())


async def endless_describe(fake: Fake, event: Event, writer: asyncio.StreamWriter) -> None:
    """Anything but `info`, every 0.2 s, for ever."""
    while True:
        await fake.send(writer, Ping(text="not info").event())
        await asyncio.sleep(0.2)


# ---- running a turn ------------------------------------------------------------------------------


@pytest.fixture
async def fakes() -> AsyncIterator[list[Fake]]:
    started: list[Fake] = []
    yield started
    for fake in started:
        await fake.stop()


async def _fake(started: list[Fake], behaviour: Behaviour, info: Info | None = None, **kw: object) -> Fake:
    fake = await Fake(behaviour, info or Info(), **kw).start()  # type: ignore[arg-type]
    started.append(fake)
    return fake


async def _run_turn(tmp_path: Path, *args: str) -> tuple[SatelliteRun, Path]:
    mic = mic_wav(tmp_path / "mic.wav", 1.0, WAKE_REQUEST, 2.0)
    out = tmp_path / "out.wav"
    sat = await SatelliteRun(
        "--mic-file",
        str(mic),
        "--snd-file",
        str(out),
        "--wake-word",
        "hey_jarvis",
        "--no-sounds",
        "--follow-up",
        "0",
        "--exit-after-turns",
        "1",
        "--stt-timeout",
        "3",
        "--handle-timeout",
        "3",
        "--tts-timeout",
        "3",
        *args,
    ).start()
    return sat, out


def _sound_seconds(path: Path) -> float:
    pcm, fmt = read_wav(path)
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    return float(np.count_nonzero(np.abs(samples.astype(np.int32)) >= 300)) / fmt.rate


async def _closed_and_exits(sat: SatelliteRun, attacker: Fake) -> None:
    """The satellite cuts the attacker off, ends the turn and goes on (exits 0 after it)."""

    def explain() -> str:
        return f"still connected:\n{sat.log()[-3000:]}"

    try:
        await until(attacker.closed_by_client, CLOSED_WITHIN, explain)
        assert await sat.wait_exit(120) == 0, sat.log()
    finally:
        await sat.stop()


async def test_a_transcript_that_never_comes(tmp_path: Path, fakes: list[Fake]) -> None:
    stt = await _fake(fakes, stt_never_finishes)
    handle = await _fake(fakes, handle_answers, _handle_info())
    tts = await _fake(fakes, tts_speaks(), _tts_info())
    sat, _ = await _run_turn(tmp_path, "--stt-uri", stt.uri, "--handle-uri", handle.uri, "--tts-uri", tts.uri)
    await _closed_and_exits(sat, stt)
    assert "audio-stop" in stt.requests
    assert handle.requests == []  # no transcript, no question


async def test_an_answer_that_never_ends(tmp_path: Path, fakes: list[Fake]) -> None:
    stt = await _fake(fakes, stt_answers)
    handle = await _fake(fakes, handle_never_finishes, _handle_info())
    tts = await _fake(fakes, tts_speaks(0.1), _tts_info())
    sat, _ = await _run_turn(
        tmp_path,
        "--stt-uri",
        stt.uri,
        "--handle-uri",
        handle.uri,
        "--tts-uri",
        tts.uri,
        "--max-playback-seconds",
        "4",
    )
    await _closed_and_exits(sat, handle)
    assert tts.closed_by_client()  # the reply's TTS request ended with it


async def test_a_tts_stream_that_never_ends(tmp_path: Path, fakes: list[Fake]) -> None:
    stt = await _fake(fakes, stt_answers)
    handle = await _fake(fakes, handle_answers, _handle_info())
    tts = await _fake(fakes, tts_never_stops, _tts_info())
    sat, out = await _run_turn(
        tmp_path,
        "--stt-uri",
        stt.uri,
        "--handle-uri",
        handle.uri,
        "--tts-uri",
        tts.uri,
        "--max-playback-seconds",
        "4",
    )
    await _closed_and_exits(sat, tts)
    # What the satellite took: about 4 s of audio (plus what sat in socket buffers), not 256 MiB.
    assert tts.sent_bytes < 32 * 1024 * 1024, tts.sent_bytes
    assert _sound_seconds(out) <= 4.5


async def test_a_tts_stream_that_trickles_for_ever(tmp_path: Path, fakes: list[Fake]) -> None:
    stt = await _fake(fakes, stt_answers)
    handle = await _fake(fakes, handle_answers, _handle_info())
    tts = await _fake(fakes, tts_trickles, _tts_info())
    sat, _ = await _run_turn(
        tmp_path,
        "--stt-uri",
        stt.uri,
        "--handle-uri",
        handle.uri,
        "--tts-uri",
        tts.uri,
        "--max-playback-seconds",
        "4",
    )
    await _closed_and_exits(sat, tts)


async def test_tts_audio_in_an_impossible_format(tmp_path: Path, fakes: list[Fake]) -> None:
    stt = await _fake(fakes, stt_answers)
    handle = await _fake(fakes, handle_answers, _handle_info())
    tts = await _fake(fakes, tts_bad_format, _tts_info())
    sat, _ = await _run_turn(tmp_path, "--stt-uri", stt.uri, "--handle-uri", handle.uri, "--tts-uri", tts.uri)
    await _closed_and_exits(sat, tts)
    assert "Traceback" not in sat.log()  # the user's error sound and a line, not a crash


async def test_a_describe_that_never_answers(tmp_path: Path, fakes: list[Fake]) -> None:
    """The satellite asks its TTS whether it streams: a stream of other events must not stall it."""
    stt = await _fake(fakes, stt_answers)
    handle = await _fake(fakes, handle_answers, _handle_info())
    tts = await _fake(fakes, tts_speaks(), _tts_info(), describe=endless_describe)
    sat, _ = await _run_turn(tmp_path, "--stt-uri", stt.uri, "--handle-uri", handle.uri, "--tts-uri", tts.uri)
    await _closed_and_exits(sat, tts)


async def test_a_pinned_service_name_is_the_only_one_used(tmp_path: Path, fakes: list[Fake]) -> None:
    """Two TTS services advertised over zeroconf with the same token in their names: the one
    pinned with --tts-name speaks; the other (first by name, so picked by --service-filter) is
    never asked anything."""
    from tests.discovery.multicast import loopback_multicast_carries
    from wyoming_core.advertise import Advertiser

    if not loopback_multicast_carries():
        pytest.skip("multicast does not carry on loopback here (tests/discovery run in a netns)")
    token = uuid.uuid4().hex[:8]
    stt = await _fake(fakes, stt_answers)
    handle = await _fake(fakes, handle_answers, _handle_info())
    good = await _fake(fakes, tts_speaks(), _tts_info())
    evil = await _fake(fakes, tts_speaks(), _tts_info())
    adverts = [
        Advertiser(f"a-evil-tts-{token}", evil.port, "127.0.0.1", "tts", recheck_interval=0),
        Advertiser(f"b-good-tts-{token}", good.port, "127.0.0.1", "tts", recheck_interval=0),
    ]
    for advert in adverts:
        await advert.start()
    try:
        sat, out = await _run_turn(
            tmp_path,
            "--stt-uri",
            stt.uri,
            "--handle-uri",
            handle.uri,
            "--service-filter",
            token,
            "--tts-name",
            f"b-good-tts-{token}",
        )
        try:
            assert await sat.wait_exit(120) == 0, sat.log()
        finally:
            await sat.stop()
        assert "synthesize-chunk" in good.requests
        assert evil.requests == []
        assert _sound_seconds(out) > 0.3
    finally:
        for advert in adverts:
            await advert.stop()
