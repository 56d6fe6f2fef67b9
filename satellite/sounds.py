"""Feedback sounds (woken, done, error, timer): generated tones or WAV files, in the speaker format.

Tones are generated in code so nothing binary ships; they are pure tones, which neither the
wake word models nor the VAD take for speech.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wyoming_core.audio import AudioFormat, StreamConverter, float_to_pcm16, read_wav

from .settings import SoundSettings

_LOGGER = logging.getLogger(__name__)

# (frequency Hz, seconds) notes of each generated sound.
_TONES: dict[str, tuple[tuple[float, float], ...]] = {
    "wake": ((660.0, 0.08), (880.0, 0.10)),
    "done": ((880.0, 0.08), (660.0, 0.10)),
    "error": ((220.0, 0.18), (0.0, 0.06), (220.0, 0.18)),
    "timer": ((988.0, 0.15), (0.0, 0.1), (988.0, 0.15), (0.0, 0.1), (988.0, 0.15), (0.0, 0.4)) * 3,
}
_RATE = 22050


def tone(notes: tuple[tuple[float, float], ...], volume: float = 0.3) -> bytes:
    """16-bit mono PCM at 22.05 kHz with short fades, so there are no clicks."""
    parts = []
    for freq, seconds in notes:
        t = np.arange(int(_RATE * seconds)) / _RATE
        wave = np.sin(2 * np.pi * freq * t) * volume if freq else np.zeros_like(t)
        fade = min(len(t) // 4, int(_RATE * 0.01))
        if fade:
            ramp = np.linspace(0.0, 1.0, fade)
            wave[:fade] *= ramp
            wave[-fade:] *= ramp[::-1]
        parts.append(wave)
    return float_to_pcm16(np.concatenate(parts))


@dataclass(frozen=True)
class Sounds:
    """Each sound already converted to the speaker format (empty bytes: off)."""

    wake: bytes = b""
    done: bytes = b""
    error: bytes = b""
    timer: bytes = b""

    def get(self, kind: str) -> bytes:
        pcm: bytes = getattr(self, kind)
        return pcm


def _load(kind: str, choice: str, target: AudioFormat) -> bytes:
    if choice.lower() == "none":
        return b""
    if choice.lower() == "default":
        pcm, fmt = tone(_TONES[kind]), AudioFormat(_RATE, 2, 1)
    else:
        try:
            pcm, fmt = read_wav(Path(choice))
        except (OSError, EOFError, ValueError) as err:
            raise SystemExit(f"Cannot read the {kind} sound {choice!r}: {err}") from None
    return StreamConverter(target=target).convert(pcm, fmt)


def load_sounds(settings: SoundSettings, target: AudioFormat) -> Sounds:
    if not settings.enabled:
        return Sounds()
    return Sounds(
        wake=_load("wake", settings.wake, target),
        done=_load("done", settings.done, target),
        error=_load("error", settings.error, target),
        timer=_load("timer", settings.timer, target),
    )
