"""Small stand-ins for the handle and TTS services, run as subprocesses in satellite tests.

    python -m tests.satellite.fake_services --uri tcp://127.0.0.1:PORT handle --reply "..." --delay 0.2
    python -m tests.satellite.fake_services --uri tcp://127.0.0.1:PORT tts [--speech]

With `--record FILE` each request they receive, and what became of it, is appended to FILE
as a JSON line (`{"at": monotonic, "event": ..., ...}`) for the test to read: `FakeService`
starts one that way and reads it back. They also log what they receive (`handle got ...`).

Records: handle `transcript` (text, conversation_id), `answered` (text), `cancelled` (the
client hung up mid-answer); tts `synthesize-start`, `synthesize-chunk` (text), `synthesize`
(text, plain requests only), `audio-sent` (text, seconds), `synthesize-stop`, `cancelled`;
wake `audio-start`, `detection` (name).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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

from tests.support.services import ServiceProcess
from wyoming_core.audio import float_to_pcm16
from wyoming_core.handler import ConnectionHandler, Route
from wyoming_core.protocol import Limits
from wyoming_core.server import ServerSettings, serve

_LOGGER = logging.getLogger("fake")
_ATTR = Attribution(name="test", url="https://example.invalid")
RATE = 22050


class Recorder:
    """Appends one JSON line per fact to a file (or nowhere); each line is flushed at once."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def __call__(self, event: str, **fields: Any) -> None:
        if self.path is not None:
            with self.path.open("a") as out:
                out.write(json.dumps({"at": time.monotonic(), "event": event, **fields}) + "\n")


class FakeService(ServiceProcess):
    """A fake service process whose request record the test can read."""

    def __init__(self, record: Path, kind: str, *args: str, zeroconf: str | None = None) -> None:
        self.record_path = record
        record.unlink(missing_ok=True)
        front = ["--record", str(record)] + (["--zeroconf", zeroconf] if zeroconf else [])
        super().__init__("tests.satellite.fake_services", *front, kind, *args)

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        """What the fake recorded so far, oldest first (only `event` ones if given)."""
        if not self.record_path.exists():
            return []
        lines = self.record_path.read_text().splitlines()
        # A line being written right now may be incomplete: only whole lines count.
        found = [json.loads(line) for line in lines if line.endswith("}")]
        return [r for r in found if event is None or r["event"] == event]

    def texts(self, event: str) -> list[str]:
        return [str(r["text"]) for r in self.records(event)]


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
        self.record = Recorder(args.record)
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
        self.record("transcript", text=transcript.text, conversation_id=conversation)
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
        self.record("answered", text=self.args.reply)
        return True

    async def disconnect(self) -> None:
        if self.answering:  # the client hung up mid-answer: it cancelled the request
            _LOGGER.info("handle answer cancelled by the client")
            self.record("cancelled")


class FakeTts(ConnectionHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        speak: Callable[[str], bytes],
        can_stream: bool = True,
        record: Recorder | None = None,
    ) -> None:
        self.speak = speak
        self.can_stream = can_stream
        self.record = record or Recorder(None)
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
        self.record("audio-sent", text=text, seconds=len(pcm) / (RATE * 2))

    async def _start(self, event: Event) -> bool:
        self.streaming = True
        self.record("synthesize-start")
        return True

    async def disconnect(self) -> None:
        if self.streaming:  # the client hung up mid-stream: it cancelled the request
            _LOGGER.info("tts stream cancelled by the client")
            self.record("cancelled")

    async def _chunk(self, event: Event) -> bool:
        text = SynthesizeChunk.from_event(event).text
        _LOGGER.info("tts got %r", text)
        self.record("synthesize-chunk", text=text)
        await self._audio(text)
        return True

    async def _synthesize(self, event: Event) -> bool:
        if not self.streaming:  # in streaming mode this is the full text again: ignore
            text = Synthesize.from_event(event).text
            _LOGGER.info("tts got plain %r", text)
            self.record("synthesize", text=text)
            await self._audio(text)
        return True

    async def _stop(self, event: Event) -> bool:
        await self.write_event(SynthesizeStopped().event())
        self.streaming = False
        self.record("synthesize-stop")
        return True


class FakeWake(ConnectionHandler):
    """A remote wake word service (it runs the satellite's own in-process detector)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        record: Recorder | None = None,
    ) -> None:
        from satellite.settings import WakeSettings
        from satellite.wake import LocalWake

        self.wake = LocalWake(WakeSettings(names=("hey_jarvis",)))
        self.record = record or Recorder(None)
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
        return {"detect": self._ignore, "audio-start": self._audio_start, "audio-chunk": self._chunk}

    async def _ignore(self, event: Event) -> bool:
        return True

    async def _audio_start(self, event: Event) -> bool:
        self.record("audio-start")
        return True

    async def _chunk(self, event: Event) -> bool:
        name = self.wake.process(AudioChunk.from_event(event).audio)
        if name:
            _LOGGER.info("wake detected %s", name)
            self.record("detection", name=name)
            await self.write_event(Detection(name=name).event())
        return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--zeroconf", default=None, help="Advertise under this name")
    parser.add_argument("--record", default=None, help="Append each request received to this JSON-lines file")
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
    record = Recorder(args.record)
    if args.kind == "handle":
        asyncio.run(
            serve(settings, lambda r, w, lim: FakeHandle(r, w, lim, args), service_name="fake-handle")
        )
    elif args.kind == "wake":
        asyncio.run(serve(settings, lambda r, w, lim: FakeWake(r, w, lim, record), service_name="fake-wake"))
    else:
        speak = piper if args.speech else tone_speech
        if args.speech:
            speak("warm up")
        _LOGGER.info("fake tts is ready")
        asyncio.run(
            serve(
                settings,
                lambda r, w, lim: FakeTts(r, w, lim, speak, not args.no_streaming, record),
                service_name="fake-tts",
            )
        )


if __name__ == "__main__":
    main()
