"""Per-chunk listening: wake word and VAD in one worker thread, and the pre-roll ring buffer."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace

from wyoming_core.workers import WorkerPool

from .settings import MIC_FORMAT
from .vad import SpeechProbability, level_dbfs
from .wake import Detector


@dataclass(frozen=True)
class Analysis:
    wake: str | None = None
    probs: list[float] = field(default_factory=list)
    level: float = -120.0
    detected_at: float = 0.0  # monotonic time the detector reported the wake word


class Preroll:
    """The last few seconds of mic audio, so the start of a request is never lost."""

    def __init__(self, seconds: float) -> None:
        self.max_bytes = int(MIC_FORMAT.rate * seconds) * MIC_FORMAT.frame_bytes
        self._chunks: deque[bytes] = deque()
        self._bytes = 0

    def add(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._bytes += len(chunk)
        while self._chunks and self._bytes - len(self._chunks[0]) >= self.max_bytes:
            self._bytes -= len(self._chunks.popleft())

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._bytes = 0
        return data[-self.max_bytes :] if self.max_bytes else b""


class Listener:
    """Runs the (blocking) models off the event loop, one chunk at a time, in order."""

    def __init__(self, wake: Detector, vad: SpeechProbability) -> None:
        self.wake = wake
        self.vad = vad
        self._pool = WorkerPool(1, "listen")
        self.wake_cpu_seconds = 0.0
        self.audio_seconds = 0.0

    def _analyse(self, chunk: bytes, want_wake: bool, want_vad: bool) -> Analysis:
        wake = None
        if want_wake:
            start = time.thread_time()
            wake = self.wake.process(chunk)
            self.wake_cpu_seconds += time.thread_time() - start
        probs = self.vad.process(chunk) if want_vad else []
        return Analysis(wake, probs, level_dbfs(chunk) if want_vad else -120.0, time.monotonic())

    async def analyse(self, chunk: bytes, want_wake: bool, want_vad: bool) -> Analysis:
        self.audio_seconds += len(chunk) / MIC_FORMAT.bytes_per_second
        # A remote wake service is fed on the loop (it only queues); local models in the thread.
        remote = self.wake.process(chunk) if not self.wake.blocking else None
        if self.wake.blocking and self.wake.cheap and not want_vad:
            return self._analyse(chunk, want_wake, False)
        if self.wake.blocking or want_vad:
            result = await self._pool.run(self._analyse, chunk, want_wake and self.wake.blocking, want_vad)
        else:
            result = Analysis(detected_at=time.monotonic())
        if remote is not None and want_wake:
            result = replace(result, wake=remote)
        return result

    def reset_vad(self) -> None:
        self.vad.reset()

    def close(self) -> None:
        self._pool.shutdown()
