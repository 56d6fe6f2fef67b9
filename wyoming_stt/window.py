"""Encode only as much of Whisper's 30 s window as a short request needs.

faster-whisper pads every request to a 30 s window (3000 mel frames) before the encoder, and
the encoder is most of a short command's decode: about 0.55 s of a 0.65 s final decode of
"What time is it?" here (whisper base, int8, 2 cores), while 15 s of window take 0.12 s.
Whisper reads a window that ends right after the words badly (it repeats the sentence until
the window is full, or finishes a cut-off sentence with a made-up word), so the window keeps
at least 10 s of silence after the words and is never under 15 s. Measured on 152 clips (38
commands, two piper and two espeak-ng voices): WER 5.61 % against 5.78 % with the full window,
for half the time (0.26 s against 0.52 s a decode); the words before a pause (the hesitation
corpus of tests/stt/test_turn.py) end the turn in the same places. Longer audio keeps the full
30 s windows; `--full-window` keeps them always.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

FULL_FRAMES = 3000  # 30 s of 10 ms mel frames
_MIN_FRAMES = 1500  # never a window under 15 s
_SILENCE_FRAMES = 1000  # at least 10 s of padding after the words
_SAMPLES_PER_FRAME = 160  # 16 kHz


def window_frames(samples: int) -> int:
    """Mel frames to encode for `samples` of 16 kHz audio decoded in one window (whole
    hundreds: the encoder halves the frames, and 100 frames are one second)."""
    frames = -(-samples // _SAMPLES_PER_FRAME) + _SILENCE_FRAMES
    return min(FULL_FRAMES, max(_MIN_FRAMES, -(-frames // 100) * 100))


def load_model(path: str, **kwargs: Any) -> Any:
    """faster-whisper's `WhisperModel`, whose encoder takes a shorter window inside `window()`."""
    from faster_whisper import WhisperModel

    class ShortWindowModel(WhisperModel):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            # Per thread: every decode runs in one worker thread, several at once.
            self._frames = threading.local()

        @contextmanager
        def window(self, frames: int | None) -> Iterator[None]:
            """Decodes in this thread encode `frames` mel frames (None: the full window)."""
            self._frames.value = frames
            try:
                yield
            finally:
                self._frames.value = None

        def encode(self, features: Any) -> Any:
            frames = getattr(self._frames, "value", None)
            # The padded 30 s window: only its first `frames` (the audio, then silence) go in.
            if frames is not None and features.shape[-1] > frames:
                features = features[..., :frames]
            return super().encode(features)

    return ShortWindowModel(path, **kwargs)
