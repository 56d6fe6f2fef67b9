"""What the TTS service measures (served by `--http`): replies, the time to their first audio,
the real-time factor of synthesis, seconds of audio made, how long voices took to load."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Histogram
from wyoming.audio import AudioChunk
from wyoming.event import Event

from wyoming_core.metrics import LATENCY_BUCKETS, RTF_BUCKETS, ServiceMetrics

from . import __version__

Send = Callable[[Event], Awaitable[None]]


class TtsMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("wyoming-tts", __version__, kinds=("synthesize", "synthesize-stream"))
        self._first_audio = self.histogram(
            "wyoming_tts_first_audio_seconds",
            "Seconds from a reply's first speakable text to its first audio chunk",
            LATENCY_BUCKETS,
        )
        self._rtf = self.histogram(
            "wyoming_tts_real_time_factor",
            "Seconds of synthesis per second of audio, per sentence or clause (no wait for a worker)",
            RTF_BUCKETS,
        )
        self._audio = Counter(
            "wyoming_tts_audio_seconds", "Seconds of speech synthesized", registry=self.registry
        )

    def reply(self, streaming: bool, send: Send) -> ReplyTimer:
        """A new reply: counted, and timed by the events it sends through the returned timer."""
        self.request("synthesize-stream" if streaming else "synthesize")
        return ReplyTimer(self._first_audio, send)

    def synthesized(self, seconds: float, audio_seconds: float) -> None:
        """One sentence or clause: `seconds` of the model's time made `audio_seconds` of speech."""
        if audio_seconds > 0:
            self._audio.inc(audio_seconds)
            self._rtf.observe(seconds / audio_seconds)

    def voice_loaded(self, voice: str, seconds: float) -> None:
        self.model_loaded(voice, seconds)


class ReplyTimer:
    """One reply's time to first audio: from its first speakable text (`text_came`) to the first
    audio chunk that goes out through `send`."""

    def __init__(self, histogram: Histogram, send: Send) -> None:
        self._histogram = histogram
        self._send = send
        self._since: float | None = None
        self._done = False

    def text_came(self) -> None:
        if self._since is None:
            self._since = time.monotonic()

    async def send(self, event: Event) -> None:
        await self._send(event)
        if not self._done and self._since is not None and AudioChunk.is_type(event.type):
            self._done = True
            self._histogram.observe(time.monotonic() - self._since)
