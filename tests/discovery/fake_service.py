"""A tiny Wyoming service for discovery tests: answers describe and one kind of request.

`python -m tests.discovery.fake_service --uri tcp://127.0.0.1:PORT --zeroconf NAME --kind asr
--reply TEXT`: it runs through `wyoming_core.server.serve`, so it advertises exactly as the
real services do, without loading a model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import partial

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
)

from wyoming_core.cli import EnvArgs, server_settings
from wyoming_core.handler import ConnectionHandler, Route
from wyoming_core.logs import setup_logging
from wyoming_core.protocol import Limits
from wyoming_core.server import serve

_ATTR = Attribution(name="tests", url="https://example.invalid")


def build_info(kind: str, model: str, languages: list[str]) -> Info:
    if kind == "asr":
        models = [AsrModel(model, _ATTR, True, None, "1", languages)]
        return Info(asr=[AsrProgram("fake-asr", _ATTR, True, None, "1", models)])
    if kind == "tts":
        voices = [TtsVoice(model, _ATTR, True, None, "1", languages)]
        return Info(tts=[TtsProgram("fake-tts", _ATTR, True, None, "1", voices)])
    handle = [HandleModel(model, _ATTR, True, None, "1", languages)]
    return Info(handle=[HandleProgram("fake-handle", _ATTR, True, None, "1", handle)])


class FakeHandler(ConnectionHandler):
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        *,
        info: Info,
        reply: str,
    ) -> None:
        self._info = info
        self.reply = reply
        super().__init__(reader, writer, limits)

    def info(self) -> Info:
        return self._info

    def routes(self) -> Mapping[str, Route]:
        return {
            AudioStop().event().type: self._audio_stop,
            "synthesize": self._synthesize,
            "transcript": self._transcript,
        }

    async def _audio_stop(self, _event: Event) -> bool:
        await self.write_event(Transcript(text=self.reply).event())
        return True

    async def _synthesize(self, _event: Event) -> bool:
        await self.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await self.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=b"\0\0" * 160).event())
        await self.write_event(AudioStop().event())
        return True

    async def _transcript(self, event: Event) -> bool:
        await self.write_event(Handled(text=f"{self.reply}: {Transcript.from_event(event).text}").event())
        return True


def run() -> None:
    args = EnvArgs("fake_service", "fake Wyoming service", "FAKE_")
    args.add_server_args("tcp://127.0.0.1:0")
    args.add("--kind", default="asr", choices=["asr", "tts", "handle"])
    args.add("--model", default="fake-model")
    args.add("--language", action="append", default=[])
    args.add("--reply", default="hello")
    ns = args.parse()
    setup_logging(ns.debug, f"fake-{ns.kind}")
    info = build_info(ns.kind, ns.model, ns.language or ["en"])
    factory = partial(FakeHandler, info=info, reply=ns.reply)
    try:
        asyncio.run(serve(server_settings(ns), factory, service_name=f"fake-{ns.kind}"))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    run()
