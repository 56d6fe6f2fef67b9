"""`VoiceClient`: the stack's services behind one object, for people who script rather than talk.

    stt, tts, llm = "tcp://127.0.0.1:10300", "tcp://127.0.0.1:10200", "tcp://127.0.0.1:10400"
    async with VoiceClient(stt, tts, llm) as voice:
        text = (await voice.transcribe("question.wav")).text
        reply = await voice.converse(text, "kitchen")
        (await voice.synthesize(reply.text)).wav()          # WAV bytes

    async with await VoiceClient.discover() as voice:      # whatever zeroconf finds
        ...

Each kind of service is a `ServicePool`: give one URI, several, or let discovery find them;
requests go round-robin and fail over (see `discovery.pool`). Results are the typed ones of
`wyoming_core.client` and every failure is a `VoiceError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wyoming.audio import AudioChunk

from wyoming_core import client, readiness
from wyoming_core.audio import AudioFormat, read_wav
from wyoming_core.client import Partial, Reply, Speech, Transcription

from .browse import Browser
from .pool import ServicePool

DEFAULT_URIS = {
    "asr": "tcp://127.0.0.1:10300",
    "tts": "tcp://127.0.0.1:10200",
    "handle": "tcp://127.0.0.1:10400",
}

# A WAV file path, WAV bytes, raw PCM with `fmt`, or (pcm, fmt) as `read_wav` returns it.
AudioInput = str | Path | bytes | tuple[bytes, AudioFormat]
Endpoints = str | Sequence[str] | ServicePool | None


def load_audio(audio: AudioInput, fmt: AudioFormat | None = None) -> tuple[bytes, AudioFormat]:
    if isinstance(audio, tuple):
        return audio
    if isinstance(audio, str | Path):
        return read_wav(Path(audio))
    if fmt is None:
        if audio[:4] == b"RIFF":
            return read_wav(audio)
        raise ValueError("Raw PCM needs its format: pass fmt=AudioFormat(rate, width, channels)")
    return audio, fmt


async def _chunks(pcm: bytes, fmt: AudioFormat, realtime: bool, seconds: float = 0.1) -> AsyncIterator[bytes]:
    """A clip as a microphone would send it: 100 ms chunks, at real-time pace if asked."""
    size = max(fmt.frame_bytes, int(fmt.rate * seconds) * fmt.frame_bytes)
    for start in range(0, len(pcm), size):
        if realtime and start:
            await asyncio.sleep(seconds)
        yield pcm[start : start + size]


@dataclass(frozen=True)
class Turn:
    """One wake-less turn: what was heard, what the assistant said, and its speech."""

    transcription: Transcription
    reply: Reply | None
    speech: Speech | None

    @property
    def transcript(self) -> str:
        return self.transcription.text

    @property
    def answer(self) -> str:
        return self.reply.text if self.reply is not None else ""


class VoiceClient:
    """STT, TTS and conversation by URI, by list of URIs or by discovery, with failover."""

    def __init__(
        self,
        stt: Endpoints = None,
        tts: Endpoints = None,
        handle: Endpoints = None,
        *,
        browser: Browser | None = None,
        language: str | None = None,
        voice: str | None = None,
        timeout: float = 60.0,
        retry_after: float = 30.0,
    ) -> None:
        self.browser = browser
        self.language = language
        self.voice = voice
        self.timeout = timeout
        self.stt = self._pool("asr", stt, retry_after)
        self.tts = self._pool("tts", tts, retry_after)
        self.handle = self._pool("handle", handle, retry_after)
        self._owns_browser = False

    def _pool(self, kind: str, given: Endpoints, retry_after: float) -> ServicePool:
        if isinstance(given, ServicePool):
            return given
        if given is None and self.browser is None:
            given = DEFAULT_URIS[kind]  # nothing given, nothing to discover: this machine
        # STT and TTS requests go to the least loaded instance; the conversation is spread by
        # turn (the service keeps each conversation's memory itself).
        return ServicePool(
            kind, given or (), browser=self.browser, retry_after=retry_after, balance=kind != "handle"
        )

    @classmethod
    async def discover(
        cls, seconds: float = 3.0, interfaces: Sequence[str] | None = None, **kwargs: Any
    ) -> VoiceClient:
        """Browse zeroconf until STT, TTS and conversation are found (or `seconds` pass); keeps browsing."""
        browser = Browser(interfaces)
        await browser.start()
        try:
            await browser.wait_for(
                lambda found: all(any(s.offers_kind(k) and s.answering for s in found) for k in DEFAULT_URIS),
                timeout=seconds,
            )
        except TimeoutError:
            pass  # use what was found; a missing kind fails when it is first asked for
        voice = cls(browser=browser, **kwargs)
        voice._owns_browser = True
        return voice

    async def close(self) -> None:
        if self._owns_browser and self.browser is not None:
            await self.browser.stop()

    async def __aenter__(self) -> VoiceClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # Speech to text -----------------------------------------------------------------------

    async def transcribe(
        self,
        audio: AudioInput,
        fmt: AudioFormat | None = None,
        *,
        language: str | None = None,
        realtime: bool = False,
    ) -> Transcription:
        """The transcript of a whole clip (sent again elsewhere if an instance fails)."""
        pcm, pcm_fmt = load_audio(audio, fmt)
        lang = language or self.language
        return await self.stt.call(
            lambda uri: client.transcribe(
                uri, pcm, pcm_fmt, language=lang, realtime=realtime, timeout=self.timeout
            ),
            replayable=True,
        )

    def transcribe_stream(
        self,
        audio: AudioInput | AsyncIterable[bytes],
        fmt: AudioFormat | None = None,
        *,
        language: str | None = None,
        realtime: bool = False,
    ) -> AsyncIterator[Partial | Transcription]:
        """`Partial`s while the audio goes out, then the final `Transcription`.

        `audio` may be a live source (an async iterable of PCM chunks, with `fmt`).
        """
        lang = language or self.language
        if isinstance(audio, AsyncIterable):
            if fmt is None:
                raise ValueError("Streamed audio needs its format: fmt=AudioFormat(rate, width, channels)")
            live, live_fmt = audio, fmt
        else:
            pcm, live_fmt = load_audio(audio, fmt)
            live = _chunks(pcm, live_fmt, realtime)
        return self.stt.stream(
            lambda uri: client.transcribe_stream(uri, live, live_fmt, language=lang, timeout=self.timeout)
        )

    # Text to speech -----------------------------------------------------------------------

    async def synthesize(self, text: str, *, voice: str | None = None) -> Speech:
        name = voice or self.voice
        return await self.tts.call(
            lambda uri: client.synthesize(uri, text, voice=name, language=None, timeout=self.timeout),
            replayable=True,
        )

    def synthesize_stream(
        self, text: str | Iterable[str] | AsyncIterable[str], *, voice: str | None = None
    ) -> AsyncIterator[AudioChunk]:
        """Audio chunks as soon as they are ready; `text` may arrive piece by piece."""
        pieces: Iterable[str] | AsyncIterable[str] = [text] if isinstance(text, str) else text
        name = voice or self.voice
        return self.tts.stream(
            lambda uri: client.synthesize_stream(uri, pieces, voice=name, timeout=self.timeout)
        )

    # Conversation -------------------------------------------------------------------------

    async def converse(
        self, text: str, conversation_id: str | None = None, *, context: dict[str, Any] | None = None
    ) -> Reply:
        return await self.handle.call(
            lambda uri: client.converse(
                uri, text, conversation_id, language=self.language, context=context, timeout=self.timeout
            ),
            replayable=True,
        )

    def converse_stream(self, text: str, conversation_id: str | None = None) -> AsyncIterator[str | Reply]:
        """Each sentence as the conversation service streams it, then the final `Reply`."""
        return self.handle.stream(
            lambda uri: client.converse_stream(
                uri, text, conversation_id, language=self.language, timeout=self.timeout
            )
        )

    # All three ----------------------------------------------------------------------------

    async def turn(
        self, audio: AudioInput, fmt: AudioFormat | None = None, conversation_id: str | None = None
    ) -> Turn:
        """Audio in, spoken answer out, as a satellite's turn without the wake word."""
        transcription = await self.transcribe(audio, fmt)
        if not transcription.text.strip():
            return Turn(transcription, None, None)
        reply = await self.converse(transcription.text, conversation_id)
        speech = await self.synthesize(reply.text) if reply.text.strip() else None
        return Turn(transcription, reply, speech)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until one instance of each service is ready (e.g. right after starting them): it
        answers `describe` and is loading nothing (`wyoming_core.readiness.is_ready`)."""
        async with asyncio.timeout(timeout):
            for pool in (self.stt, self.tts, self.handle):
                while not await _any_ready(pool.uris()):  # noqa: ASYNC110 - polling other processes
                    await asyncio.sleep(0.25)


async def _any_ready(uris: list[str]) -> bool:
    for uri in uris:
        try:
            info = await client.describe(uri, timeout=2.0)
        except client.VoiceError:
            continue
        if readiness.is_ready(info):
            return True
    return False
