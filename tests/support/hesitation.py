"""The hesitation corpus: spoken commands with a pause in the middle ("turn on the ... kitchen
lights"), by the piper voice and by espeak-ng, the pause made of inserted digital silence.

The whole command is spoken in one go and the silence goes in at the word boundary, so the
words before the pause keep the rising, unfinished sound of a sentence that goes on (the
fragment said alone would sound finished). espeak-ng gets an SSML break there and the break
is swapped for exactly the pause wanted; for piper (no breaks) the quietest 20 ms near where
the first words end is the cut. A turn that ends inside the pause has cut the user off.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from tests.support.speech import espeak_speech, piper_speech
from wyoming_core.audio import AudioFormat, to_stt_format

RATE = 16000
STT = AudioFormat(RATE, 2, 1)

# (before the pause, after it): what people say while they look for the word.
COMMANDS = (
    ("Turn on the", "kitchen lights."),
    ("Set a timer for", "ten minutes."),
    ("What's the weather", "tomorrow?"),
    ("Turn off the", "bedroom lamp."),
    ("Play some music in the", "living room."),
    ("Remind me to", "call my sister."),
    ("What is the temperature in the", "garage?"),
    ("Add milk and", "eggs to my shopping list."),
    ("Dim the living room lights to", "thirty percent."),
    ("Can you tell me", "when the store closes?"),
)
PAUSES = (0.4, 0.5, 0.6, 0.7, 0.8)
VOICES = ("piper", "espeak")


@dataclass(frozen=True)
class Hesitant:
    before: str
    after: str
    voice: str
    pause: float
    audio: bytes  # 16 kHz mono PCM16: words, pause, words (no silence before or after)
    pause_start: float  # seconds into `audio`
    pause_end: float

    @property
    def text(self) -> str:
        return f"{self.before} {self.after}"

    def __str__(self) -> str:
        return f"{self.voice}: {self.before} ... ({self.pause:g} s) {self.after}"


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32)


def _trim(pcm: bytes, level: float = 300.0) -> bytes:
    """Without the silence before the first and after the last sound."""
    loud = np.flatnonzero(np.abs(_samples(pcm)) >= level)
    return pcm[int(loud[0]) * 2 : (int(loud[-1]) + 1) * 2] if loud.size else b""


def _block_energy(pcm: bytes, block: int) -> np.ndarray:
    x = _samples(pcm)
    x = x[: len(x) // block * block].reshape(-1, block)
    return np.sqrt(np.mean(x * x, axis=1))


@functools.cache
def _piper_parts(before: str, after: str) -> tuple[bytes, bytes]:
    whole = _trim(to_stt_format(*piper_speech(f"{before} {after}")))
    alone = _trim(to_stt_format(*piper_speech(before)))
    # Said alone the first words are drawn out a little at the end: the boundary in the
    # whole command is near, and mostly before, where they end on their own.
    block = RATE // 100
    energy = _block_energy(whole, block)
    end = len(alone) // 2 // block
    lo, hi = max(1, int(end * 0.75)), min(len(energy) - 1, end + 8)
    quiet = lo + int(np.argmin(energy[lo:hi]))
    cut = quiet * block * 2
    return _trim(whole[:cut]), _trim(whole[cut:])


@functools.cache
def _espeak_parts(before: str, after: str) -> tuple[bytes, bytes]:
    pcm, fmt = espeak_speech(f'<speak>{before} <break time="2000ms"/> {after}</speak>', ssml=True)
    whole = to_stt_format(pcm, fmt)
    block = RATE // 100
    quiet = _block_energy(whole, block) < 30.0
    # The longest run of quiet blocks is the break.
    best, start = (0, 0), None
    for index, is_quiet in enumerate([*quiet, False]):
        if is_quiet and start is None:
            start = index
        elif not is_quiet and start is not None:
            if index - start > best[1] - best[0]:
                best = (start, index)
            start = None
    first, second = best
    return _trim(whole[: first * block * 2]), _trim(whole[second * block * 2 :])


def hesitant(before: str, after: str, voice: str, pause: float) -> Hesitant:
    first, second = (_piper_parts if voice == "piper" else _espeak_parts)(before, after)
    gap = b"\0" * (int(RATE * pause) * 2)
    start = len(first) / (2 * RATE)
    return Hesitant(before, after, voice, pause, first + gap + second, start, start + pause)


def corpus() -> list[Hesitant]:
    """20 hesitations: each command by each voice, pauses 0.4-0.8 s."""
    items = []
    for index, (before, after) in enumerate(COMMANDS):
        for offset, voice in enumerate(VOICES):
            items.append(hesitant(before, after, voice, PAUSES[(index + offset) % len(PAUSES)]))
    return items


def speech_16k(text: str, voice: str) -> bytes:
    """`text` said by `voice` ("piper" or "espeak"): 16 kHz PCM16 without silence around it."""
    said = piper_speech(text) if voice == "piper" else espeak_speech(text)
    return _trim(to_stt_format(*said))


def fluent(voice: str) -> list[tuple[str, bytes]]:
    """The same commands said without a pause: (text, 16 kHz PCM16 without silence around it)."""
    return [(f"{before} {after}", speech_16k(f"{before} {after}", voice)) for before, after in COMMANDS]
