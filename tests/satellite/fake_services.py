"""Small stand-ins for the handle and TTS services, run as subprocesses in satellite tests.

    python -m tests.satellite.fake_services --uri tcp://127.0.0.1:PORT handle --reply "..." --delay 0.2
    python -m tests.satellite.fake_services --uri tcp://127.0.0.1:PORT tts [--speech]

They log what they receive (`handle got ...`, `tts got ...`) for the tests to check.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
from collections.abc import Callable, Mapping

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop
from wyoming.info import (
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStopped
from wyoming.wake import Detection

from wyoming_core.audio import float_to_pcm16
from wyoming_core.handler import ConnectionHandler, Route
from wyoming_core.protocol import Limits
from wyoming_core.server import ServerSettings, serve

_LOGGER = logging.getLogger("fake")
_ATTR = Attribution(name="test", url="https://example.invalid")
RATE = 22050


def tone_speech(text: str) -> bytes:
    """A tone per word (not speech, but long enough to interrupt): 0.25 s per word."""
    words = max(1, len(text.split()))
    t = np.arange(int(RATE * 0.25 * words)) / RATE
    return float_to_pcm16(0.2 * np.sin(2 * np.pi * 440 * t))


def piper(text: str) -> bytes:
    from tests.support.speech import piper_speech

    pcm, fmt = piper_speech(text)
    assert fmt.rate == RATE
    return pcm


class FakeHandle(ConnectionHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        args: argparse.Namespace,
    ) -> None:
        self.args = args
        self.answering = False
        super().__init__(reader, writer, limits)

    def info(self) -> Info:
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

    def routes(self) -> Mapping[str, Route]:
        return {"transcript": self._transcript}

    async def _transcript(self, event: Event) -> bool:
        transcript = Transcript.from_event(event)
        conversation = (transcript.context or {}).get("conversation_id")
        _LOGGER.info("handle got %r conversation_id=%s", transcript.text, conversation)
        sentences = [s for s in re.split(r"(?<=[.?!])\s+", self.args.reply) if s]
        self.answering = True
        await self.write_event(HandledStart().event())
        await asyncio.sleep(self.args.first_delay)
        for index, sentence in enumerate(sentences):
            if index:
                await asyncio.sleep(self.args.delay)
            await self.write_event(HandledChunk(text=sentence + " ").event())
        await self.write_event(HandledStop().event())
        await self.write_event(Handled(text=self.args.reply).event())
        self.answering = False
        return True

    async def disconnect(self) -> None:
        if self.answering:  # the client hung up mid-answer: it cancelled the request
            _LOGGER.info("handle answer cancelled by the client")


class FakeTts(ConnectionHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        speak: Callable[[str], bytes],
        can_stream: bool = True,
    ) -> None:
        self.speak = speak
        self.can_stream = can_stream
        self.streaming = False
        super().__init__(reader, writer, limits)

    def info(self) -> Info:
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
            supports_synthesize_streaming=self.can_stream,
        )
        return Info(tts=[program])

    def routes(self) -> Mapping[str, Route]:
        if not self.can_stream:  # an older TTS: plain `synthesize` only
            return {"synthesize": self._synthesize}
        return {
            "synthesize-start": self._start,
            "synthesize-chunk": self._chunk,
            "synthesize": self._synthesize,
            "synthesize-stop": self._stop,
        }

    async def _audio(self, text: str) -> None:
        pcm = await asyncio.to_thread(self.speak, text)
        await self.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        step = RATE // 10 * 2
        for start in range(0, len(pcm), step):
            await self.write_event(
                AudioChunk(rate=RATE, width=2, channels=1, audio=pcm[start : start + step]).event()
            )
        await self.write_event(AudioStop().event())

    async def _start(self, event: Event) -> bool:
        self.streaming = True
        return True

    async def disconnect(self) -> None:
        if self.streaming:  # the client hung up mid-stream: it cancelled the request
            _LOGGER.info("tts stream cancelled by the client")

    async def _chunk(self, event: Event) -> bool:
        text = SynthesizeChunk.from_event(event).text
        _LOGGER.info("tts got %r", text)
        await self._audio(text)
        return True

    async def _synthesize(self, event: Event) -> bool:
        if not self.streaming:  # in streaming mode this is the full text again: ignore
            text = Synthesize.from_event(event).text
            _LOGGER.info("tts got plain %r", text)
            await self._audio(text)
        return True

    async def _stop(self, event: Event) -> bool:
        await self.write_event(SynthesizeStopped().event())
        self.streaming = False
        return True


class FakeWake(ConnectionHandler):
    """A remote wake word service (it runs the satellite's own in-process detector)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits) -> None:
        from satellite.settings import WakeSettings
        from satellite.wake import LocalWake

        self.wake = LocalWake(WakeSettings(names=("hey_jarvis",)))
        super().__init__(reader, writer, limits)

    def info(self) -> Info:
        model = WakeModel(
            name="hey_jarvis",
            attribution=_ATTR,
            installed=True,
            description=None,
            version=None,
            languages=["en"],
            phrase="Hey Jarvis",
        )
        program = WakeProgram(
            name="fake-wake",
            attribution=_ATTR,
            installed=True,
            description=None,
            version=None,
            models=[model],
        )
        return Info(wake=[program])

    def routes(self) -> Mapping[str, Route]:
        return {"detect": self._ignore, "audio-start": self._ignore, "audio-chunk": self._chunk}

    async def _ignore(self, event: Event) -> bool:
        return True

    async def _chunk(self, event: Event) -> bool:
        name = self.wake.process(AudioChunk.from_event(event).audio)
        if name:
            _LOGGER.info("wake detected %s", name)
            await self.write_event(Detection(name=name).event())
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--zeroconf", default=None, help="Advertise under this name")
    sub = parser.add_subparsers(dest="kind", required=True)
    handle = sub.add_parser("handle")
    handle.add_argument("--reply", default="It is twelve o'clock.")
    handle.add_argument("--first-delay", type=float, default=0.0)
    handle.add_argument("--delay", type=float, default=0.2)
    tts = sub.add_parser("tts")
    tts.add_argument("--speech", action="store_true", help="Real speech with the piper voice")
    tts.add_argument("--no-streaming", action="store_true", help="Plain synthesize only (older TTS)")
    sub.add_parser("wake")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = ServerSettings(uri=args.uri, zeroconf_name=args.zeroconf)
    if args.kind == "handle":
        asyncio.run(
            serve(settings, lambda r, w, lim: FakeHandle(r, w, lim, args), service_name="fake-handle")
        )
    elif args.kind == "wake":
        asyncio.run(serve(settings, FakeWake, service_name="fake-wake"))
    else:
        speak = piper if args.speech else tone_speech
        if args.speech:
            speak("warm up")
        _LOGGER.info("fake tts is ready")
        asyncio.run(
            serve(
                settings,
                lambda r, w, lim: FakeTts(r, w, lim, speak, not args.no_streaming),
                service_name="fake-tts",
            )
        )


if __name__ == "__main__":
    main()
