"""End of turn in the STT: after a short silence, has the user finished, or only paused?

The session's VAD says how long the user has been quiet; the speculative final decode says
what they said so far; the turn detector (wyoming_core/turn_detector.py, Smart Turn) says
whether it sounded finished. A turn ends early (`short_silence`) only when both the words
and the sound say it is over; otherwise it ends after `long_silence`, however it sounded, so
a user who stops to think ("turn on the ... kitchen lights") is not cut off.

`TurnPolicy` decides; the session asks it after each chunk and when a decode or an
evaluation finishes. Evaluations run in a worker thread, one per pause.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wyoming.asr import VadSensitivity

from wyoming_core.models import ModelNotFoundError
from wyoming_core.turn_detector import TurnDetector
from wyoming_core.workers import WorkerPool

if TYPE_CHECKING:
    from .settings import SttSettings

_LOGGER = logging.getLogger(__name__)

# Words a finished English command does not end with: the sentence goes on after them.
_DANGLING = frozenset(
    " ".join(
        (
            "a an the to for of in on at by with from into onto about like than as after before",
            "until during over under between through and or but so because if when that while",
            "then my your his her our their its this these those some any every each is are was",
            "were be can could would should will do does did have has please um uh er erm hmm mm",
        )
    ).split()
)
# Verbs whose object comes next: "tell me" is not a request yet, "tell me a joke" is.
_WAITING_FOR_OBJECT = frozenset(("tell", "show", "give", "remind", "let", "help", "get", "find", "send"))
_OBJECTS = frozenset(("me", "us", "him", "her", "them"))
_WORD = re.compile(r"[\w']+")
# The wake word may end a little after the client's start of the request (it is detected up
# to a few hundred ms after it was said): speech up to this much later is still the wake word.
_AFTER_WAKE = 0.3
# Whisper writes a trailing-off voice as "..." or a cut word as "-".
_TRAILING_OFF = ("...", "…", "-", "—", ",", ";", ":")


def words_sound_finished(text: str, language: str | None) -> bool:
    """Whether the transcript so far reads like a finished request (English rules only;
    other languages: no opinion, True)."""
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith(_TRAILING_OFF):
        return False
    if language not in (None, "en"):
        return True
    words = [w.lower() for w in _WORD.findall(stripped)]
    if not words:
        return False
    if words[-1] in _DANGLING:
        return False
    # Whisper ends a finished sentence with a full stop, a question or an exclamation mark
    # (an amount may go without: "to 30%").
    if not (stripped.endswith((".", "?", "!", "%")) or stripped[-1].isdigit()):
        return False
    return not (len(words) >= 2 and words[-1] in _OBJECTS and words[-2] in _WAITING_FOR_OBJECT)


@dataclass(frozen=True)
class TurnLimits:
    """Seconds of silence: the early end (when finished), the end whatever it sounded like."""

    short_silence: float = 0.2
    long_silence: float = 1.2
    # Turn detector probability at or above which the turn sounded finished.
    threshold: float = 0.5
    # The decode must be at least this sure of its words (lowest segment average token
    # log-probability): misheard fragments ("remind me to" heard as "Remind me too.") read
    # finished, but Whisper was unsure of them (-0.3 and below; clear commands -0.25 and up).
    min_confidence: float = -0.25

    def for_sensitivity(self, sensitivity: VadSensitivity | str | None) -> TurnLimits:
        """A client's `vad_sensitivity`: "aggressive" ends sooner, "relaxed" waits longer."""
        value = getattr(sensitivity, "value", sensitivity)
        if value == VadSensitivity.AGGRESSIVE.value:
            long = max(self.short_silence, self.long_silence * 0.6)
            return TurnLimits(self.short_silence, long, 0.3, self.min_confidence * 1.5)
        if value == VadSensitivity.RELAXED.value:
            # Never before the longest hesitation the corpus holds (0.8 s) is over.
            short = max(self.short_silence * 1.5, 0.9)
            return TurnLimits(short, max(self.long_silence * 1.75, short), 0.7, self.min_confidence)
        return self


@dataclass
class TurnPolicy:
    """One request's decision. `ended(...)` is asked whenever something changed."""

    limits: TurnLimits
    detector: bool  # a turn detector runs (else only the words and the long silence count)
    # Seconds into the audio where the request proper begins (the client's wake word is
    # before it): a pause before anything was said after it ends nothing early.
    request_start: float = 0.0
    # Probability the detector gave for the current pause (None: not asked / not back yet).
    probability: float | None = None
    asked: bool = False
    reason: str = ""

    def speech_resumed(self) -> None:
        """The user spoke again: the next pause gets its own evaluation."""
        self.probability = None
        self.asked = False

    def wants_evaluation(self, silence: float) -> bool:
        return self.detector and not self.asked and silence >= self.limits.short_silence

    def ended(
        self,
        silence: float,
        text: str | None,
        language: str | None,
        confidence: float = 0.0,
        last_speech_at: float | None = None,
    ) -> bool:
        """Whether the turn is over after `silence` s of quiet; `text` is the final decode of
        the speech so far (None: not decoded yet), `confidence` how sure Whisper was of it,
        `last_speech_at` seconds into the audio where the speech so far ends."""
        if silence >= self.limits.long_silence:
            self.reason = "silence"
            return True
        if silence < self.limits.short_silence or text is None:
            return False
        if last_speech_at is not None and last_speech_at <= self.request_start + _AFTER_WAKE:
            return False  # "Hey Jarvis, ...": only the wake word has been said
        if not words_sound_finished(text, language) or confidence < self.limits.min_confidence:
            return False
        if not self.detector:
            return False
        if self.probability is None or self.probability < self.limits.threshold:
            return False
        self.reason = "turn-detector"
        return True


class TurnService:
    """The service's turn detector (one model, loaded once) and the thread it runs in."""

    def __init__(self, detector: TurnDetector | None, limits: TurnLimits, silence: float = 0.5) -> None:
        self.detector = detector
        self.limits = limits
        # Without a detector a turn ends after this much silence (--early-silence).
        self.silence_only = TurnLimits(limits.short_silence, silence, limits.threshold)
        self.error: str | None = None
        # One evaluation at a time: about 30 ms of one core each, one per pause per client.
        self._pool = WorkerPool(1, "stt-turn")
        self.evaluations = 0

    @classmethod
    def from_settings(cls, settings: SttSettings) -> TurnService:
        limits = TurnLimits(settings.turn_silence, settings.turn_max_silence, settings.turn_threshold)
        silence = settings.early_silence
        if settings.turn_detector == "off":
            return cls(None, limits, silence)
        try:
            return cls(TurnDetector(settings.turn_model), limits, silence)
        except ModelNotFoundError as err:
            _LOGGER.warning("No end-of-turn detection (turns end after silence only): %s", err)
            return cls(None, limits, silence)

    async def load(self) -> None:
        if self.detector is None:
            return
        try:
            await self._pool.run(self.detector.load)
            _LOGGER.info("Turn detector %s is ready", self.detector.path.name)
        except Exception as err:  # a broken model file: silence alone ends turns
            self.error = f"Could not load the turn detector {self.detector.path}: {err}"
            _LOGGER.error("%s; turns end after silence only", self.error)
            self.detector = None

    async def probability(self, pcm16: bytes) -> float:
        assert self.detector is not None
        self.evaluations += 1
        return await self._pool.run(self.detector.complete_probability, pcm16)

    def watch(self, sensitivity: VadSensitivity | str | None, request_start: float = 0.0) -> TurnWatch:
        """One request's watch; `request_start`: seconds of wake word audio before the request."""
        limits = self.limits if self.detector is not None else self.silence_only
        return TurnWatch(self, limits.for_sensitivity(sensitivity), request_start)

    def close(self) -> None:
        self._pool.shutdown()


class TurnWatch:
    """One request: asks the detector once per pause, and says when the turn is over."""

    def __init__(self, service: TurnService, limits: TurnLimits, request_start: float = 0.0) -> None:
        self.service = service
        self.policy = TurnPolicy(limits, service.detector is not None, request_start)
        # Called when the detector's answer is in (the session then looks again).
        self.on_change: Callable[[], None] = lambda: None
        self._task: asyncio.Task[None] | None = None

    @property
    def reason(self) -> str:
        return self.policy.reason

    def on_audio(self, heard: bool, silence: float, recent: Callable[[], bytes]) -> None:
        """After each chunk: `heard` new speech, `silence` s quiet since; `recent()` the audio."""
        if heard:
            self.policy.speech_resumed()
            self._cancel()
        elif self.policy.wants_evaluation(silence):
            self.policy.asked = True
            self._task = asyncio.create_task(self._evaluate(recent()))

    async def _evaluate(self, pcm16: bytes) -> None:
        try:
            probability = await self.service.probability(pcm16)
        except Exception as err:  # the silence still ends the turn
            _LOGGER.debug("Turn detector failed: %s", err)
            return
        self.policy.probability = probability
        _LOGGER.debug("Turn detector: %.2f that the user has finished", probability)
        self.on_change()

    def ended(
        self, silence: float, text: str, language: str | None, confidence: float, last_speech_at: float
    ) -> bool:
        return self.policy.ended(silence, text, language, confidence, last_speech_at)

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def close(self) -> None:
        self._cancel()
