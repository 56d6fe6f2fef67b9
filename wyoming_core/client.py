"""Client API over the stack's services (also used by the satellite and the tests).

    text = (await transcribe("tcp://127.0.0.1:10300", pcm, fmt)).text
    speech = await synthesize("tcp://127.0.0.1:10200", "Hello there.")
    reply = await converse("tcp://127.0.0.1:10400", "What time is it?", "kitchen")

Every failure is a `VoiceError`: `ServiceUnavailable` (cannot connect),
`ServiceTimeout`, `ServiceError` (the service answered with an `error` event)
and `ProtocolViolation` (it answered something that makes no sense).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlparse

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, Eventable, async_write_event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from .audio import AudioFormat, write_wav
from .protocol import Limits, ProtocolError, read_event

CLIENT_LIMITS = Limits(
    max_line_bytes=1024 * 1024,
    max_data_bytes=8 * 1024 * 1024,
    max_payload_bytes=64 * 1024 * 1024,
    idle_timeout=None,
)
# `info` is text (a service's programs, models and voices): ample room, but no 64 MiB payloads.
DESCRIBE_LIMITS = Limits(
    max_line_bytes=64 * 1024,
    max_data_bytes=4 * 1024 * 1024,
    max_payload_bytes=64 * 1024,
    idle_timeout=None,
)


class VoiceError(Exception):
    """Base of every client error."""


class ServiceUnavailable(VoiceError):
    """The service could not be reached."""


class ConnectFailed(ServiceUnavailable):
    """Could not even connect: nothing was sent, so another instance may take the request."""


class ServiceTimeout(VoiceError):
    """The service did not answer in time."""


class ServiceError(VoiceError):
    """The service answered with an `error` event."""

    def __init__(self, code: str | None, text: str) -> None:
        super().__init__(f"{text} ({code})" if code else text)
        self.code = code
        self.text = text


class ProtocolViolation(VoiceError):
    """The service sent something out of protocol."""


@dataclass(frozen=True)
class Transcription:
    text: str
    language: str | None = None
    partials: tuple[str, ...] = ()
    # Monotonic times, for measuring: when the final transcript and audio-stop happened.
    final_at: float = 0.0
    audio_stop_at: float = 0.0
    # The service ended the turn: the transcript came before the audio was over.
    early: bool = False


@dataclass(frozen=True)
class Speech:
    audio: bytes
    format: AudioFormat
    chunks: int = 0
    first_audio_at: float = 0.0

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.format.bytes_per_second if self.audio else 0.0

    def wav(self) -> bytes:
        return write_wav(None, self.audio, self.format)


@dataclass(frozen=True)
class Reply:
    text: str
    handled: bool
    chunks: tuple[str, ...] = ()
    context: dict[str, Any] | None = None


@dataclass(frozen=True)
class Partial:
    """A partial transcript while audio is still being sent."""

    text: str


@dataclass
class Connection:
    """One Wyoming connection with timeouts and error mapping."""

    uri: str
    timeout: float = 30.0
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    _closed: bool = field(default=False)
    limits: Limits = CLIENT_LIMITS
    # Most bytes (payloads and data) this connection may receive in all; None: no bound. A
    # service is not trusted to end its reply: past this, ProtocolViolation.
    max_bytes: int | None = None
    received: int = 0

    def __post_init__(self) -> None:
        if self.max_bytes is not None:
            # No single event may be larger than the whole budget: refused before it is read.
            self.limits = replace(
                self.limits,
                max_data_bytes=min(self.limits.max_data_bytes, self.max_bytes),
                max_payload_bytes=min(self.limits.max_payload_bytes, self.max_bytes),
            )

    async def __aenter__(self) -> Connection:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        parsed = urlparse(self.uri)
        try:
            if parsed.scheme == "tcp":
                coro = asyncio.open_connection(
                    parsed.hostname, parsed.port, limit=CLIENT_LIMITS.max_line_bytes
                )
            elif parsed.scheme == "unix":
                coro = asyncio.open_unix_connection(
                    parsed.netloc + parsed.path, limit=CLIENT_LIMITS.max_line_bytes
                )
            else:
                raise ServiceUnavailable(f"Unsupported URI {self.uri!r}; use tcp:// or unix://")
            self.reader, self.writer = await asyncio.wait_for(coro, min(self.timeout, 10.0))
        except (OSError, TimeoutError) as err:
            raise ConnectFailed(f"Cannot connect to {self.uri}: {err or 'timed out'}") from err

    async def close(self) -> None:
        if self.writer is not None and not self._closed:
            self._closed = True
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def send(self, event: Event | Eventable) -> None:
        assert self.writer is not None
        if isinstance(event, Eventable):
            event = event.event()
        try:
            await async_write_event(event, self.writer)
        except (ConnectionError, RuntimeError) as err:
            raise ServiceUnavailable(f"Connection to {self.uri} lost: {err}") from err

    async def receive(self, timeout: float | None = None) -> Event:
        """Next event; `error` events become ServiceError, EOF ServiceUnavailable."""
        assert self.reader is not None
        try:
            event = await asyncio.wait_for(read_event(self.reader, self.limits), timeout or self.timeout)
        except TimeoutError:
            raise ServiceTimeout(f"{self.uri} did not answer within {timeout or self.timeout:g} s") from None
        except ProtocolError as err:
            raise ProtocolViolation(f"{self.uri} sent a bad event: {err.text}") from err
        except (ConnectionError, OSError) as err:
            raise ServiceUnavailable(f"Connection to {self.uri} lost: {err}") from err
        if event is None:
            raise ServiceUnavailable(f"{self.uri} closed the connection")
        if self.max_bytes is not None:
            self.received += len(event.payload or b"")
            if event.data:
                self.received += len(json.dumps(event.data, ensure_ascii=False))
            if self.received > self.max_bytes:
                raise ProtocolViolation(f"{self.uri} sent more than {self.max_bytes} bytes in one reply")
        if Error.is_type(event.type):
            error = Error.from_event(event)
            raise ServiceError(error.code, error.text)
        return event


async def describe(uri: str, timeout: float = 5.0) -> Info:
    """The service's `info`, within `timeout` seconds in all (connecting included): a service
    that streams other events instead, or an endless info, cannot stall the caller."""
    try:
        async with asyncio.timeout(timeout):
            async with Connection(uri, timeout, limits=DESCRIBE_LIMITS) as conn:
                await conn.send(Describe())
                while True:
                    event = await conn.receive()
                    if Info.is_type(event.type):
                        return Info.from_event(event)
    except TimeoutError:
        raise ServiceTimeout(f"{uri} did not describe itself within {timeout:g} s") from None


def _chunks(audio: bytes, fmt: AudioFormat, seconds: float) -> Iterable[bytes]:
    size = max(fmt.frame_bytes, int(fmt.rate * seconds) * fmt.frame_bytes)
    for start in range(0, len(audio), size):
        yield audio[start : start + size]


async def _paced(audio: bytes, fmt: AudioFormat, seconds: float, realtime: bool) -> AsyncIterator[bytes]:
    start = time.monotonic()
    sent = 0.0
    for chunk in _chunks(audio, fmt, seconds):
        if realtime:
            delay = start + sent - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield chunk
        sent += len(chunk) / fmt.bytes_per_second


async def transcribe_stream(
    uri: str,
    audio: AsyncIterable[bytes],
    fmt: AudioFormat,
    *,
    language: str | None = None,
    timeout: float = 60.0,
    max_bytes: int | None = None,
    vad_sensitivity: str | None = None,
    context: dict[str, Any] | None = None,
) -> AsyncIterator[Partial | Transcription]:
    """Send audio as it comes; yield `Partial`s, then the final `Transcription`.

    With `vad_sensitivity` ("default", "aggressive", "relaxed") the service is asked to tell
    the end of the turn itself: a transcript that comes before `audio` is over ends the
    request at once (audio-stop; the rest of `audio` is not read), `Transcription.early`.
    `context` goes with the request (our STT reads `request_starts_at`: seconds of wake word
    audio at the start, before which a pause ends nothing)."""
    async with Connection(uri, timeout, max_bytes=max_bytes) as conn:
        await conn.send(Transcribe(language=language, vad_sensitivity=vad_sensitivity, context=context))
        await conn.send(AudioStart(rate=fmt.rate, width=fmt.width, channels=fmt.channels))
        audio_stop_at = 0.0

        async def sender() -> None:
            nonlocal audio_stop_at
            async for chunk in audio:
                await conn.send(
                    AudioChunk(rate=fmt.rate, width=fmt.width, channels=fmt.channels, audio=chunk)
                )
            audio_stop_at = time.monotonic()
            await conn.send(AudioStop())

        async def stop_sending() -> None:
            """The service ended the turn: no more audio, audio-stop (once) now."""
            nonlocal audio_stop_at
            stopping = audio_stop_at > 0.0  # the sender got as far as its audio-stop
            send_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await send_task
            if not stopping:
                audio_stop_at = time.monotonic()
                await conn.send(AudioStop())

        send_task = asyncio.create_task(sender())
        partials: list[str] = []
        receive: asyncio.Future[Event] | None = None
        try:
            while True:
                receive = asyncio.ensure_future(
                    conn.receive(timeout=None if not send_task.done() else timeout)
                )
                done, _ = await asyncio.wait({receive, send_task}, return_when=asyncio.FIRST_COMPLETED)
                if send_task in done and receive not in done:
                    send_task.result()  # surface send errors
                    try:
                        event = await asyncio.wait_for(receive, timeout)
                    except TimeoutError:
                        raise ServiceTimeout(f"{uri} gave no transcript within {timeout:g} s") from None
                else:
                    event = receive.result()
                if TranscriptChunk.is_type(event.type):
                    text = TranscriptChunk.from_event(event).text
                    partials.append(text)
                    yield Partial(text)
                elif Transcript.is_type(event.type):
                    final = Transcript.from_event(event)
                    final_at = time.monotonic()
                    early = not send_task.done()
                    if early and vad_sensitivity is not None:
                        await stop_sending()
                    else:
                        await send_task  # let the rest of the audio go out
                    yield Transcription(
                        text=final.text,
                        language=final.language,
                        partials=tuple(partials),
                        final_at=final_at,
                        audio_stop_at=audio_stop_at,
                        early=early,
                    )
                    return
                elif not (TranscriptStart.is_type(event.type) or TranscriptStop.is_type(event.type)):
                    continue
        finally:
            # Cut short (a deadline, a cancel): nothing may be left reading the closed connection.
            if receive is not None and not receive.done():
                receive.cancel()
            if not send_task.done():
                send_task.cancel()
                with contextlib.suppress(BaseException):
                    await send_task


async def transcribe(
    uri: str,
    audio: bytes,
    fmt: AudioFormat,
    *,
    language: str | None = None,
    chunk_seconds: float = 0.1,
    realtime: bool = False,
    timeout: float = 60.0,
) -> Transcription:
    """Transcribe a whole clip (optionally paced as a live microphone would send it)."""
    result: Transcription | None = None
    async for item in transcribe_stream(
        uri, _paced(audio, fmt, chunk_seconds, realtime), fmt, language=language, timeout=timeout
    ):
        if isinstance(item, Transcription):
            result = item
    if result is None:  # pragma: no cover - transcribe_stream always ends with one
        raise ProtocolViolation(f"{uri} ended without a transcript")
    return result


def _voice(voice: str | None, speaker: str | None, language: str | None) -> SynthesizeVoice | None:
    if voice is None and language is None:
        return None
    return SynthesizeVoice(name=voice, speaker=speaker, language=language)


async def _collect_audio(
    conn: Connection, end_types: tuple[str, ...], timeout: float
) -> AsyncIterator[AudioChunk]:
    while True:
        event = await conn.receive(timeout)
        if AudioChunk.is_type(event.type):
            yield AudioChunk.from_event(event)
        elif event.type in end_types:
            return


async def synthesize(
    uri: str,
    text: str,
    *,
    voice: str | None = None,
    speaker: str | None = None,
    language: str | None = None,
    timeout: float = 60.0,
    max_bytes: int | None = None,
) -> Speech:
    """Plain `synthesize`: one request, audio until the first `audio-stop`."""
    async with Connection(uri, timeout, max_bytes=max_bytes) as conn:
        await conn.send(Synthesize(text=text, voice=_voice(voice, speaker, language)))
        return await _gather_speech(_collect_audio(conn, (AudioStop().event().type,), timeout))


async def _gather_speech(chunks: AsyncIterator[AudioChunk]) -> Speech:
    parts: list[bytes] = []
    fmt: AudioFormat | None = None
    first_at = 0.0
    count = 0
    async for chunk in chunks:
        if fmt is None:
            fmt, first_at = AudioFormat(chunk.rate, chunk.width, chunk.channels), time.monotonic()
        elif (chunk.rate, chunk.width, chunk.channels) != (fmt.rate, fmt.width, fmt.channels):
            raise ProtocolViolation("Audio format changed in the middle of a reply")
        parts.append(chunk.audio)
        count += 1
    return Speech(b"".join(parts), fmt or AudioFormat(22050, 2, 1), count, first_at)


async def synthesize_stream(
    uri: str,
    text: AsyncIterable[str] | Iterable[str],
    *,
    voice: str | None = None,
    speaker: str | None = None,
    language: str | None = None,
    timeout: float = 60.0,
    max_bytes: int | None = None,
) -> AsyncGenerator[AudioChunk, None]:
    """Streaming TTS: send text pieces as they come, yield audio chunks as they are ready."""
    async with Connection(uri, timeout, max_bytes=max_bytes) as conn:
        await conn.send(SynthesizeStart(voice=_voice(voice, speaker, language)))

        async def sender() -> None:
            pieces: list[str] = []
            if isinstance(text, AsyncIterable):
                async for piece in text:
                    pieces.append(piece)
                    await conn.send(SynthesizeChunk(text=piece))
            else:
                for piece in text:
                    pieces.append(piece)
                    await conn.send(SynthesizeChunk(text=piece))
            # As Home Assistant does: the full text again, then the stop.
            await conn.send(Synthesize(text="".join(pieces), voice=_voice(voice, speaker, language)))
            await conn.send(SynthesizeStop())

        send_task = asyncio.create_task(sender())
        try:
            async for chunk in _collect_audio(conn, (SynthesizeStopped().event().type,), timeout):
                yield chunk
            await send_task
        finally:
            if not send_task.done():
                send_task.cancel()
                with contextlib.suppress(BaseException):
                    await send_task


async def synthesize_streamed(uri: str, text: Iterable[str], **kwargs: Any) -> Speech:
    """All the audio of `synthesize_stream`, gathered."""
    return await _gather_speech(synthesize_stream(uri, text, **kwargs))


async def converse_stream(
    uri: str,
    text: str,
    conversation_id: str | None = None,
    *,
    language: str | None = None,
    context: dict[str, Any] | None = None,
    timeout: float = 60.0,
    max_bytes: int | None = None,
) -> AsyncIterator[str | Reply]:
    """Yield each sentence as the handler streams it, then the final `Reply`."""
    ctx = dict(context or {})
    if conversation_id is not None:
        ctx.setdefault("conversation_id", conversation_id)
    async with Connection(uri, timeout, max_bytes=max_bytes) as conn:
        await conn.send(Transcript(text=text, language=language, context=ctx or None))
        chunks: list[str] = []
        while True:
            event = await conn.receive(timeout)
            if HandledChunk.is_type(event.type):
                piece = HandledChunk.from_event(event).text
                chunks.append(piece)
                yield piece
            elif Handled.is_type(event.type) or NotHandled.is_type(event.type):
                handled = Handled.is_type(event.type)
                answer = Handled.from_event(event) if handled else NotHandled.from_event(event)
                yield Reply(answer.text or "", handled, tuple(chunks), answer.context)
                return
            elif HandledStart.is_type(event.type) or HandledStop.is_type(event.type):
                continue


async def converse(
    uri: str,
    text: str,
    conversation_id: str | None = None,
    *,
    language: str | None = None,
    context: dict[str, Any] | None = None,
    timeout: float = 60.0,
) -> Reply:
    reply: Reply | None = None
    async for item in converse_stream(
        uri, text, conversation_id, language=language, context=context, timeout=timeout
    ):
        if isinstance(item, Reply):
            reply = item
    if reply is None:  # pragma: no cover
        raise ProtocolViolation(f"{uri} ended without handled/not-handled")
    return reply
