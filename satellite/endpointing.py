"""When the request is over: the VAD's silence, the STT's word, or a local turn detector.

- Plain: `--end-silence` (0.6 s) of silence ends the request, as always.
- The STT ends turns (standalone, an STT whose `describe` says `requires_external_vad: false`,
  asked with `vad_sensitivity`): it sends the transcript the moment the user has finished (the
  backend then ends the request at once) and waits out a pause to think; the satellite's own
  silence is only the backstop, `--turn-max-silence` plus a margin, so it never cuts a pause
  the STT would wait out.
- `--turn-detector smart-turn` (optional, both modes; Home Assistant mode has no STT of its
  own to ask): after `--turn-silence` (0.2 s) of silence Smart Turn hears whether the user
  sounded finished (about 35 ms of one core per pause, in a thread of its own); finished: the
  request ends (in Home Assistant mode, `audio-stop` goes out then); otherwise it ends after
  `--turn-max-silence` (1.2 s).

Counts audio time, like the Segmenter it extends, so it behaves the same under CPU load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from wyoming_core.models import ModelNotFoundError
from wyoming_core.turn_detector import TurnDetector
from wyoming_core.workers import WorkerPool

from .settings import MIC_FORMAT, VadSettings
from .vad import WINDOW_SECONDS, Segment, Segmenter

_LOGGER = logging.getLogger(__name__)

_DETECTOR_BYTES = 8 * MIC_FORMAT.bytes_per_second  # what Smart Turn hears: the last 8 s
# The STT ends a turn after its own longest silence; the satellite waits a little longer, so
# the transcript (decoded during the silence) comes first.
_BACKSTOP_MARGIN = 0.4
# Speech the detector must have heard before it may end a request: the tail of the wake word
# after its detection is less, so "Hey Jarvis, ... what time is it" is not ended at the comma.
_MIN_REQUEST_SPEECH = 0.5


@dataclass
class TurnSegmenter(Segmenter):
    """A Segmenter whose end of speech may come sooner (a finished-sounding turn) or later (the
    STT decides); `feed` also takes the chunk, for the detector."""

    detector: LocalTurn | None = None
    # Whether the STT ends this turn (asked at each chunk: the backend learns it once the
    # STT has been described, which may be after the turn began).
    service_ends: Callable[[], bool] = lambda: False
    _recent: bytearray = field(default_factory=bytearray)
    _asked: Future[float] | None = None
    _reported: Future[float] | None = None

    def feed(self, audio_seconds: float, probs: list[float], audio: bytes = b"") -> Segment:
        if self.detector is not None and audio:
            self._recent.extend(audio)
            del self._recent[:-_DETECTOR_BYTES]
        before = self._silence
        state = super().feed(audio_seconds, probs)
        if self._silence < before or self._silence == 0.0:
            self._asked = None  # speech again: the next pause gets its own evaluation
        # The plain silence ended it; with the STT or a detector deciding, only the longer limit may.
        backstop = self._backstop()
        if state is Segment.ENDED and backstop > self.settings.end_silence and self._silence < backstop:
            self.state = state = Segment.SPEAKING
        if state is Segment.SPEAKING and self._finished_sounding():
            self.state = state = Segment.ENDED
        return state

    def _backstop(self) -> float:
        if self.service_ends():
            return self.settings.turn_max_silence + _BACKSTOP_MARGIN
        if self.detector is not None:
            return self.settings.turn_max_silence
        return self.settings.end_silence

    def _finished_sounding(self) -> bool:
        if self.detector is None or self._silence < self.settings.turn_silence:
            return False
        if self._speech_seconds < _MIN_REQUEST_SPEECH:
            return False
        if self._asked is None:
            self._asked = self.detector.ask(bytes(self._recent))
            return False
        if not self._asked.done():
            return False
        try:
            probability = self._asked.result()
        except Exception as err:  # the silence still ends the turn
            _LOGGER.debug("Turn detector failed: %s", err)
            return False
        finished = probability >= self.detector.threshold
        if self._reported is not self._asked:
            self._reported = self._asked
            _LOGGER.debug("Turn detector: %.2f that the user has finished", probability)
        return finished

    @property
    def silence(self) -> float:
        return self._silence


class LocalTurn:
    """Smart Turn in the satellite's own thread (one evaluation at a time)."""

    def __init__(self, detector: TurnDetector, threshold: float = 0.5) -> None:
        self.detector = detector
        self.threshold = threshold
        self._pool = WorkerPool(1, "turn")
        self.evaluations = 0

    @classmethod
    def from_settings(cls, settings: VadSettings) -> LocalTurn | None:
        if settings.turn_detector != "smart-turn":
            return None
        try:
            local = cls(TurnDetector(settings.turn_model), settings.turn_threshold)
        except ModelNotFoundError as err:
            _LOGGER.warning("No turn detector (requests end after silence only): %s", err)
            return None
        local._pool.submit(local.detector.load)  # in the background, before the first pause
        return local

    def ask(self, pcm16: bytes) -> Future[float]:
        self.evaluations += 1
        return self._pool.submit(self.detector.complete_probability, pcm16)

    def close(self) -> None:
        self._pool.shutdown()


def segmenter_factory(
    settings: VadSettings, service_ends: Callable[[], bool]
) -> tuple[Callable[[float | None], TurnSegmenter], LocalTurn | None]:
    """What the core makes each request's segmenter with (a follow-up passes its own timeout)."""
    local = LocalTurn.from_settings(settings)

    def make(no_speech_timeout: float | None = None) -> TurnSegmenter:
        return TurnSegmenter(
            settings, no_speech_timeout=no_speech_timeout, detector=local, service_ends=service_ends
        )

    return make, local


__all__ = ["WINDOW_SECONDS", "LocalTurn", "TurnSegmenter", "segmenter_factory"]
