"""A short request is encoded with a shorter window than Whisper's 30 s (wyoming_stt/window.py):
never under 15 s, always 10 s of silence after the words, and the same words come out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hesitation import speech_16k
from tests.support.wer import wer
from wyoming_core.audio import pcm16_to_float
from wyoming_core.workers import PriorityPool
from wyoming_stt.engine import WhisperEngine
from wyoming_stt.models import resolve_model
from wyoming_stt.settings import build_parser, settings_from_args
from wyoming_stt.window import FULL_FRAMES, window_frames

COMMANDS = ("What time is it?", "Turn off the bedroom lamp.", "Set a timer for ten minutes.")


def test_the_window_keeps_ten_seconds_of_silence_after_the_words() -> None:
    second = 16000
    assert window_frames(0) == 1500 and window_frames(2 * second) == 1500
    for seconds in (5.0, 7.3, 12.0, 19.9):
        frames = window_frames(int(seconds * second))
        assert frames % 100 == 0 and frames >= seconds * 100 + 1000, (seconds, frames)
    assert window_frames(21 * second) == FULL_FRAMES and window_frames(60 * second) == FULL_FRAMES


async def _engine(data_dir: Path, *extra: str) -> AsyncIterator[WhisperEngine]:
    args = ["--model", "base", "--data-dir", str(data_dir), "--language", "en", *extra]
    settings = settings_from_args(build_parser().parse(args))
    pool = PriorityPool(1, "test-window")
    engine = WhisperEngine(settings, resolve_model("base", settings.data_dirs, True), pool)
    await engine.load()
    yield engine
    pool.shutdown()


@pytest.fixture(scope="module")
async def short(stt_data_dir: Path) -> AsyncIterator[WhisperEngine]:
    async for engine in _engine(stt_data_dir):
        yield engine


@pytest.fixture(scope="module")
async def full(stt_data_dir: Path) -> AsyncIterator[WhisperEngine]:
    async for engine in _engine(stt_data_dir, "--full-window"):
        yield engine


async def test_short_requests_are_heard_as_with_the_full_window(
    short: WhisperEngine, full: WhisperEngine
) -> None:
    pad = b"\0" * 9600
    for text in COMMANDS:
        for voice in ("piper", "espeak"):
            audio = pcm16_to_float(pad + speech_16k(text, voice) + pad)
            got = (await short.transcribe(audio, "en")).text
            assert wer(text, got) <= 0.2, (voice, text, got)
            assert wer(text, got) <= wer(text, (await full.transcribe(audio, "en")).text) + 0.2, (voice, got)


async def test_a_long_request_is_heard_to_its_end(short: WhisperEngine) -> None:
    """Over 20 s: the full 30 s windows, one after another, every sentence in the transcript."""
    sentences = [f"This is sentence number {n} of a long dictation about the garden." for n in range(1, 9)]
    pcm = b"".join(speech_16k(s, "piper") + b"\0" * 16000 for s in sentences)
    assert len(pcm) / 32000 > 21
    got = (await short.transcribe(pcm16_to_float(pcm), "en")).text
    assert wer(" ".join(sentences), got) <= 0.25, got
