"""When the request is over (satellite/endpointing.py), seen from what the services receive.

Standalone, with the real STT (it ends turns itself: `requires_external_vad` false): a user
who pauses 0.8 s to think ("turn on the ... kitchen lights") is not cut off by the satellite's
own 0.6 s silence limit; the handle service gets the whole request. Home Assistant mode with
`--turn-detector smart-turn`: a finished request ends with `audio-stop` after a short silence,
long before the longest pause the satellite would wait out (counted in audio sent, which is
what HA sees, not in wall time). And the segmenter's three ways to end a request, on the real
VAD and model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from satellite.endpointing import LocalTurn, TurnSegmenter
from satellite.settings import VadSettings
from satellite.vad import Segment, SpeechProbability
from tests.satellite.fake_ha import FakeHa
from tests.satellite.fake_services import FakeService
from tests.satellite.helpers import GatedMic, SatelliteRun, silence, speech
from tests.support.hesitation import hesitant
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import until
from wyoming_core.audio import AudioFormat
from wyoming_core.client import transcribe

MIC = AudioFormat(16000, 2, 1)


def _trailing_silence(pcm: bytes) -> float:
    """Seconds after the last sound (above -40 dBFS) in 16 kHz PCM16."""
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    loud = np.flatnonzero(samples > 328)
    return (len(samples) - (int(loud[-1]) + 1 if loud.size else 0)) / MIC.rate


async def test_a_pause_to_think_is_not_the_end(
    tmp_path: Path, stt_service: ServiceProcess, service_factory: list[ServiceProcess]
) -> None:
    paused = hesitant("Hey Jarvis, turn on the", "kitchen lights.", "piper", 0.8)
    handle = FakeService(tmp_path / "handle.jsonl", "handle", "--reply", "Okay.", "--delay", "0")
    tts = FakeService(tmp_path / "tts.jsonl", "tts")
    for service in (handle, tts):
        service_factory.append(service.start())
        service.wait_listening()
    mic = GatedMic(tmp_path / "mic", silence(0.5), paused.audio + silence(4.0))
    sat = await SatelliteRun(
        "--mic-command", mic.command(), "--snd-file", str(tmp_path / "out.wav"),
        "--wake-word", "hey_jarvis", "--stt-uri", stt_service.uri, "--handle-uri", handle.uri,
        "--tts-uri", tts.uri, "--follow-up", "0", "--no-sounds",
    ).start()  # fmt: skip
    try:
        await sat.wait_for("is ready", timeout=120)
        mic.open(1)
        await until(lambda: bool(handle.texts("transcript")), 90, sat.log)
        heard = handle.texts("transcript")
        assert len(heard) == 1, heard
        # The words after the pause are in the request (the 0.6 s silence did not end it).
        assert "kitchen" in heard[0].lower() and "light" in heard[0].lower(), heard
    finally:
        await sat.stop()


async def test_ha_mode_ends_a_finished_request_on_the_detector(
    tmp_path: Path, stt_service: ServiceProcess
) -> None:
    request = speech("Hey Jarvis, turn on the kitchen lights.")
    mic = GatedMic(tmp_path / "mic", silence(0.5), request + silence(6.0))
    port = free_port()
    # Without the detector a request would end only after 3 s of silence.
    sat = await SatelliteRun(
        "--uri", f"tcp://127.0.0.1:{port}", "--wake-word", "hey_jarvis",
        "--mic-command", mic.command(), "--snd-file", str(tmp_path / "out.wav"),
        "--no-sounds", "--turn-detector", "smart-turn", "--turn-max-silence", "3",
    ).start()  # fmt: skip
    await sat.wait_for("satellite is listening on", timeout=120)
    ha = await FakeHa("127.0.0.1", port).connect()
    try:
        await until(lambda: ha.info is not None, 30)
        mic.open(1)
        await ha.next("detection", timeout=30)
        await ha.next("run-pipeline")
        await ha.next("audio-start")
        heard = await ha.collect_audio(timeout=60)
        # audio-stop came after the words, with well under the 3 s limit of silence after them.
        assert _trailing_silence(heard) < 2.0, _trailing_silence(heard)
        text = (await transcribe(stt_service.uri, heard, MIC, language="en")).text.lower()
        assert "kitchen" in text and "light" in text, text
    finally:
        await ha.close()
        await sat.stop()


def _end_of_request(segmenter: TurnSegmenter, audio: bytes) -> float | None:
    """Seconds into `audio` at which `segmenter` (fed 20 ms chunks, with the real silero VAD)
    ends the request; a turn detector's answer is waited for as soon as it is asked."""
    vad = SpeechProbability()
    for start in range(0, len(audio), 640):
        chunk = audio[start : start + 640]
        state = segmenter.feed(0.02, vad.process(chunk), chunk)
        if segmenter._asked is not None:  # the answer is there at once: the hardest case
            segmenter._asked.result(timeout=60)
            state = segmenter.feed(0.0, [], b"")
        if state is Segment.ENDED:
            return (start + len(chunk)) / MIC.bytes_per_second
    return None


def test_who_ends_the_request() -> None:
    command = speech("Turn on the kitchen lights.")
    words_end = 0.3 + len(command) / MIC.bytes_per_second - _trailing_silence(command)
    audio = silence(0.3) + command + silence(3.0)
    plain = VadSettings()
    # Plain: the satellite's own 0.6 s of silence.
    alone = _end_of_request(TurnSegmenter(plain), audio)
    assert alone is not None and 0.6 <= alone - words_end < 1.2, (alone, words_end)
    # The STT ends turns: the satellite waits past its own 0.6 s, up to the backstop.
    waiting = _end_of_request(TurnSegmenter(plain, service_ends=lambda: True), audio)
    assert waiting is not None and waiting - words_end >= plain.turn_max_silence, (waiting, words_end)
    # A local detector: a finished command ends after the short silence, before 0.6 s.
    local = LocalTurn.from_settings(VadSettings(turn_detector="smart-turn"))
    assert local is not None
    try:
        early = _end_of_request(TurnSegmenter(plain, detector=local), audio)
        assert early is not None and early - words_end < plain.end_silence, (early, words_end)
        assert local.evaluations == 1
        # "Hey Jarvis, ... turn on the kitchen lights": the request's audio begins just before
        # the wake word's end (where it is detected); the pause after it ends nothing.
        woken = hesitant("Hey Jarvis,", "turn on the kitchen lights.", "piper", 0.7)
        tail = int((woken.pause_start - 0.15) * MIC.rate) * 2
        after_wake = woken.audio[tail:] + silence(3.0)
        ended = _end_of_request(TurnSegmenter(plain, detector=local), after_wake)
        pause_end = woken.pause_end - tail / MIC.bytes_per_second
        assert ended is not None and ended > pause_end, (ended, pause_end)
    finally:
        local.close()
