"""Barge-in: the user interrupts a reply. Stops playback and measures how fast, in the
satellite's own monotonic clock (detection -> last sound already handed to the speaker)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .audio_out import Player
from .settings import BargeInSettings

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BargeInReport:
    trigger: str
    detected_at: float
    stopped_at: float
    audible_until: float
    flushed_seconds: float

    @property
    def latency_ms(self) -> float:
        """Detection until playback is silent (what was already out included)."""
        return (max(self.stopped_at, self.audible_until) - self.detected_at) * 1000


class BargeIn:
    def __init__(self, settings: BargeInSettings, player: Player) -> None:
        self.settings = settings
        self.player = player
        self.reports: list[BargeInReport] = []

    def wants_vad(self) -> bool:
        return self.settings.enabled and self.settings.vad

    def triggered_by_voice(self, probs: list[float], level: float, threshold: float) -> bool:
        return self.wants_vad() and level >= self.settings.vad_level and any(p >= threshold for p in probs)

    def stop_playback(self, trigger: str, detected_at: float) -> BargeInReport:
        stop = self.player.stop()
        report = BargeInReport(
            trigger, detected_at, stop.stopped_at, stop.audible_until, stop.flushed_seconds
        )
        self.reports.append(report)
        # Tests and the benchmark read this line: keep its wording.
        _LOGGER.info(
            "Barge-in by %s: detected at %.3f, playback stopped at %.3f, silent at %.3f "
            "(barge_in_ms=%.1f, %.2f s of reply flushed)",
            trigger,
            detected_at,
            stop.stopped_at,
            max(stop.stopped_at, stop.audible_until),
            report.latency_ms,
            stop.flushed_seconds,
        )
        return report
