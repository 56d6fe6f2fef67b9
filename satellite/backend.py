"""What runs a turn once the satellite has woken (standalone services or Home Assistant), and
the narrow seam back to the satellite core: `Core` is all a backend may use of it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .audio_out import Player
    from .state import State


class Core(Protocol):
    """The satellite core as a backend sees it (`satellite.core.Satellite` is one)."""

    @property
    def state(self) -> State:
        """What the satellite is doing now (read only: changes go through the named methods)."""

    @property
    def player(self) -> Player:
        """The speaker: replies are queued here, and waited for."""

    def play_sound(self, kind: str) -> None:
        """A feedback sound: wake, done, error, timer."""

    def thinking(self, why: str) -> None:
        """The request is over; the answer is awaited."""

    def speaking(self, why: str) -> None:
        """Reply (or announcement) audio has started to play."""

    def idle(self, why: str) -> None:
        """Back to waiting for the wake word, or paused when nobody asks for audio."""

    def tell(self, kind: str, **data: object) -> None:
        """What the turn heard or answered (transcript, sentence, timing), for whoever watches
        (the status page: satellite/events.py); nothing happens when nobody does."""

    async def speech_over(self, why: str) -> None:
        """The backend's service heard the request end (the STT's early transcript): the
        request is over now, as if the VAD had heard it end (no-op once it has)."""

    async def end_turn(
        self,
        *,
        error: bool = False,
        follow_up: bool = False,
        transcript: str | None = None,
        reply: str | None = None,
        problem: str | None = None,
    ) -> None:
        """The turn is over, whatever happened: its sound, then waiting or a follow-up. What was
        heard and answered (None: the turn did not get that far) and what failed go to the
        turn report (`--turn-report`)."""


class Backend(ABC):
    """The core calls these from the mic loop; they must return quickly (no long awaits)."""

    core: Core
    # The service the request goes to ends turns itself (the STT's early transcript): the
    # satellite's own silence limit is then only a backstop (satellite/endpointing.py).
    service_ends_turns: bool = False

    def attach(self, core: Core) -> None:
        self.core = core

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def can_start_turn(self) -> bool:
        return True

    @abstractmethod
    async def begin_turn(self, wake_word: str | None, preroll: bytes) -> None:
        """The user woke the satellite (or speaks a follow-up); `preroll` is audio from before."""

    @abstractmethod
    async def audio(self, chunk: bytes) -> None:
        """Mic audio while the user speaks."""

    @abstractmethod
    async def end_of_speech(self, at: float) -> None:
        """The request ended (the VAD heard it end) at monotonic time `at`."""

    @abstractmethod
    async def abandon_turn(self, reason: str) -> None:
        """The turn ends without an answer (nobody spoke)."""

    @abstractmethod
    async def barge_in(self) -> None:
        """Playback has been stopped for a barge-in: drop the old turn's work."""
