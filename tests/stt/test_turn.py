"""End of turn in the STT: Smart Turn plus the words, so a pause to think is not the end.

The hesitation corpus (tests/support/hesitation.py: 10 commands x piper and espeak-ng, a
0.4-0.8 s pause of silence inside each) goes through the service's own decision with the real
Whisper and Smart Turn models, every answer available at once (tests/support/turn_sim.py):
no turn may end inside a pause. The same commands said without a pause end on the detector's
word, after a short silence, not after the longest one. Then the service itself: a client
that sends `vad_sensitivity` gets the transcript while it is still streaming silence, whole
even when the user paused, and the service says it tells the end of turns itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.hesitation import PAUSES, corpus, fluent, hesitant, speech_16k
from tests.support.services import ServiceProcess
from tests.support.turn_sim import decide
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat
from wyoming_core.client import Transcription, describe, transcribe_stream
from wyoming_core.turn_detector import TurnDetector, last_window, log_mel
from wyoming_core.workers import PriorityPool
from wyoming_stt.engine import WhisperEngine
from wyoming_stt.models import resolve_model
from wyoming_stt.settings import build_parser, settings_from_args
from wyoming_stt.turn import TurnLimits, words_sound_finished

FMT = AudioFormat(16000, 2, 1)


def _silence(seconds: float) -> bytes:
    return b"\0" * (int(16000 * seconds) * 2)


@pytest.fixture(scope="module")
async def engine(stt_data_dir: Path) -> AsyncIterator[WhisperEngine]:
    """The STT's own final-decode engine (base, beam 5), in this process."""
    settings = settings_from_args(
        build_parser().parse(["--model", "base", "--data-dir", str(stt_data_dir), "--language", "en"])
    )
    pool = PriorityPool(1, "test-decode")
    whisper = WhisperEngine(settings, resolve_model("base", settings.data_dirs, True), pool)
    await whisper.load()
    yield whisper
    pool.shutdown()


@pytest.fixture(scope="module")
def detector() -> TurnDetector:
    found = TurnDetector()
    found.load()
    return found


def test_features_are_whisper_shaped_and_bounded() -> None:
    """8 s -> 80 mel bands x 800 frames of 10 ms, floored 8 decades under the peak."""
    t = __import__("numpy").arange(16000) / 16000
    tone = (0.3 * __import__("numpy").sin(2 * 3.14159 * 440 * t)).astype("float32")
    features = log_mel(last_window(tone))
    assert features.shape == (80, 800) and features.dtype.name == "float32"
    assert features.max() - features.min() <= 2.0 + 1e-6  # 8 decades / 4
    # The 440 Hz tone is in the last second (silence was put before it), in the low bands.
    assert features[:, 700:].max() == features.max()
    assert features[:20, 750].mean() > features[60:, 750].mean()


def test_words_that_go_on() -> None:
    assert words_sound_finished("Turn on the kitchen lights.", "en")
    assert words_sound_finished("Can you tell me a joke?", "en")
    for unfinished in (
        "Turn on the",
        "Turn on the...",
        "Set a timer for",
        "Remind me to-",
        "Can you tell me?",
    ):
        assert not words_sound_finished(unfinished, "en"), unfinished
    assert not words_sound_finished("", "en")
    # Other languages: only the trailing-off marks count.
    assert words_sound_finished("Mach das Licht an.", "de")
    assert not words_sound_finished("Mach das...", "de")


async def test_no_turn_ends_inside_a_hesitation(engine: WhisperEngine, detector: TurnDetector) -> None:
    """No cut-offs, except where no rule can tell: words before the pause that are a whole
    request by themselves ("What's the weather ... tomorrow?"), sounding finished to the
    detector, must be answered at once when that is all the user said. Such an item is only
    excused when the same decision is proven for the request said alone; at most one of 20."""
    items = corpus()
    assert len(items) == 20 and {i.voice for i in items} == {"piper", "espeak"}
    lead = 0.5
    cut_off, excused = [], []
    for item in items:
        decision = await decide(_silence(lead) + item.audio + _silence(2.0), engine, detector)
        assert decision.ended_at is not None, f"{item}: the turn never ended"
        if not lead + item.pause_start <= decision.ended_at <= lead + item.pause_end:
            # Not before the words that followed the pause were over either.
            assert decision.ended_at > lead + len(item.audio) / 32000, (str(item), decision)
            continue
        said_alone = _silence(lead) + speech_16k(item.before + "?", item.voice) + _silence(2.0)
        alone = await decide(said_alone, engine, detector)
        if words_sound_finished(decision.text, "en") and alone.reason == "turn-detector":
            excused.append(f"{item} -> {decision.text!r}")
        else:
            cut_off.append(f"{item} -> {decision.text!r} ({decision.reason}); alone: {alone}")
    assert not cut_off, f"turns ended inside a hesitation: {cut_off}"
    assert len(excused) <= 1, excused
    # "relaxed" (a client's vad_sensitivity) never ends a turn before the longest pause is over.
    assert TurnLimits().for_sensitivity("relaxed").short_silence > max(PAUSES)


async def test_a_pause_after_the_wake_word_is_not_the_end(
    engine: WhisperEngine, detector: TurnDetector
) -> None:
    """ "Hey Jarvis, ... what's the weather": the client says where its wake word ends
    (`context.request_starts_at`); "Hey Jarvis." reads and sounds finished, but nothing was
    asked yet."""
    lead = 0.5
    for voice in ("piper", "espeak"):
        item = hesitant("Hey Jarvis,", "what is the weather like tomorrow?", voice, 0.7)
        audio = _silence(lead) + item.audio + _silence(2.0)
        # The satellite's pre-roll ends at the wake word's detection, about when it was said.
        decision = await decide(audio, engine, detector, request_start=lead + item.pause_start)
        assert decision.ended_at is not None and decision.ended_at > lead + item.pause_end, (voice, decision)
        assert "weather" in decision.text.lower(), decision


async def test_finished_commands_end_on_the_detector(engine: WhisperEngine, detector: TurnDetector) -> None:
    """Said without a pause, a command ends after the short silence when it sounded and reads
    finished, not after the longest pause; piper's voice (natural prosody) nearly always."""
    limits = TurnLimits()
    early: dict[str, list[str]] = {"piper": [], "espeak": []}
    for voice in ("piper", "espeak"):
        for text, pcm in fluent(voice):
            lead = 0.5
            decision = await decide(_silence(lead) + pcm + _silence(2.0), engine, detector, limits)
            assert decision.ended_at is not None
            speech_end = lead + len(pcm) / 32000
            # Never before the words were over.
            assert decision.ended_at > speech_end, (text, decision)
            if decision.reason == "turn-detector":
                early[voice].append(text)
                assert decision.ended_at - speech_end < limits.long_silence, (text, decision)
    # espeak-ng's flat voice sounds unfinished to the detector more often (bench/turn.py).
    assert len(early["piper"]) >= 8, early


async def _paced(pcm: bytes) -> AsyncIterator[bytes]:
    """A live microphone: 20 ms every 20 ms."""
    started = time.monotonic()
    for index, start in enumerate(range(0, len(pcm), 640)):
        await asyncio.sleep(max(0.0, started + index * 0.02 - time.monotonic()))
        yield pcm[start : start + 640]


async def test_service_ends_the_turn_for_clients_that_ask(stt_service: ServiceProcess) -> None:
    info = await describe(stt_service.uri)
    assert info.asr and info.asr[0].requires_external_vad is False
    items = [i for i in corpus() if i.pause >= 0.7][:2]
    for item in items:
        # 4 s of silence after the words: the transcript comes during it, without audio-stop.
        audio = _silence(0.5) + item.audio + _silence(4.0)
        result: Transcription | None = None
        async for got in transcribe_stream(
            stt_service.uri, _paced(audio), FMT, language="en", vad_sensitivity="default", timeout=120
        ):
            if isinstance(got, Transcription):
                result = got
        assert result is not None and result.early, (item, result)
        # Whole: the words after the pause are in it.
        assert wer(item.text, result.text) <= 0.35, (item, result.text)
    # Without vad_sensitivity the service waits for audio-stop, as before.
    pcm = fluent("piper")[0][1]
    async for got in transcribe_stream(
        stt_service.uri, _paced(_silence(0.3) + pcm + _silence(2.5)), FMT, language="en", timeout=120
    ):
        if isinstance(got, Transcription):
            assert not got.early
