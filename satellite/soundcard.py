"""Sound cards through PortAudio (pyaudio), opened quietly and failing with one clear message.

PortAudio probes ALSA and JACK when it starts and their C libraries print dozens of lines to
stderr on a machine without a sound card (and a traceback followed). Those lines say nothing a
user can act on, so they are hidden unless --debug is on; a missing device becomes
`NoAudioDevice`, which the satellite reports in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")

# The satellite's exit code when it has no microphone or speaker to use.
EXIT_NO_AUDIO_DEVICE = 4

MIC_HINT = (
    'use --mic-command (e.g. "arecord -q -r 16000 -c 1 -f S16_LE -t raw"), --mic-file FILE.wav, '
    "or --mic-device (see --list-devices)"
)
SPEAKER_HINT = (
    'use --snd-command (e.g. "aplay -q -r 22050 -c 1 -f S16_LE -t raw"), --snd-file FILE.wav, '
    "or --snd-device (see --list-devices)"
)


class NoAudioDevice(Exception):
    """No usable microphone or speaker; the message says what to use instead."""


@contextlib.contextmanager
def _native_stderr_hidden() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a moment (the C libraries write there directly)."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_pyaudio() -> Any:
    """pyaudio is optional: only sound cards need it."""
    try:
        import pyaudio
    except ImportError:
        raise SystemExit(
            "pyaudio is not installed (pip install 'wyoming-local-voice[audio]'); "
            "or use --mic-command/--snd-command or --mic-file/--snd-file"
        ) from None
    return pyaudio


def portaudio() -> Any:
    """A PyAudio instance, started without ALSA/JACK's start-up chatter."""
    pyaudio = import_pyaudio()
    with _native_stderr_hidden():
        return pyaudio.PyAudio()


def open_stream(what: str, hint: str, opener: Callable[[], _T]) -> _T:
    """`opener()` (a PyAudio `open`), quietly; a missing device becomes `NoAudioDevice`."""
    try:
        with _native_stderr_hidden():
            return opener()
    except OSError as err:
        reason = err.args[1] if len(err.args) > 1 else str(err)
        raise NoAudioDevice(f"No {what} could be opened ({reason}): {hint}") from None
