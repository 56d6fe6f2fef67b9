"""What the STT service measures (served by `--http`): transcriptions, the wait from audio-stop
to the transcript, the real-time factor of decodes, seconds of audio heard, the model's load."""

from __future__ import annotations

import time

from prometheus_client import Counter

from wyoming_core.metrics import LATENCY_BUCKETS, RTF_BUCKETS, ServiceMetrics

from . import __version__


class SttMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("wyoming-stt", __version__, kinds=("transcribe",))
        self._transcript = self.histogram(
            "wyoming_stt_transcript_seconds",
            "Seconds from audio-stop to the final transcript (0 when it went out before audio-stop)",
            LATENCY_BUCKETS,
        )
        self._rtf = self.histogram(
            "wyoming_stt_real_time_factor",
            "Seconds of decoding per second of speech, by decode (final or partial; no wait for a worker)",
            RTF_BUCKETS,
            ["decode"],
        )
        self._audio = Counter(
            "wyoming_stt_audio_seconds", "Seconds of audio received", registry=self.registry
        )
        for decode in ("final", "partial"):
            self._rtf.labels(decode=decode)

    def heard(self, seconds: float) -> None:
        self._audio.inc(seconds)

    def transcription(self) -> TranscriptTimer:
        """audio-stop came: a request counted, timed until its transcript is out."""
        self.request("transcribe")
        return TranscriptTimer(self)

    def transcribed(self, seconds: float) -> None:
        self._transcript.observe(seconds)

    def decoded(self, partial: bool, audio_seconds: float, seconds: float) -> None:
        """One decode: `seconds` of the model's time on `audio_seconds` of speech."""
        if audio_seconds > 0:
            self._rtf.labels(decode="partial" if partial else "final").observe(seconds / audio_seconds)


class TranscriptTimer:
    def __init__(self, metrics: SttMetrics) -> None:
        self._metrics = metrics
        self._started = time.monotonic()

    def done(self) -> None:
        self._metrics.transcribed(time.monotonic() - self._started)
