"""What runs a turn once the satellite has woken: standalone services or Home Assistant."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core import Satellite


class Backend(ABC):
    """The core calls these from the mic loop; they must return quickly (no long awaits)."""

    sat: Satellite

    def attach(self, sat: Satellite) -> None:
        self.sat = sat

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
    async def end_of_speech(self) -> None:
        """The VAD heard the request end."""

    @abstractmethod
    async def abandon_turn(self, reason: str) -> None:
        """The turn ends without an answer (nobody spoke)."""

    @abstractmethod
    async def barge_in(self) -> None:
        """Playback has been stopped for a barge-in: drop the old turn's work."""
