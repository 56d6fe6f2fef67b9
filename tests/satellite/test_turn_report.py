"""`--turn-report FILE`: each turn's result as data (issue 15, item 5), in both modes.

What the satellite heard and answered comes back as a JSON line per turn, so nothing has to read
its log for it (`python -m stack --via-satellite` reads this file). In Home Assistant mode what
HA heard and answered stays out of the log unless --log-transcripts, as in standalone mode.
"""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

from wyoming.asr import Transcript
from wyoming.tts import Synthesize

from satellite.report import read_turns
from tests.satellite.fake_ha import FakeHa
from tests.satellite.fake_services import FakeService, tone_speech
from tests.satellite.helpers import WAKE_REQUEST, GatedMic, SatelliteRun, mic_wav, silence, speech
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import until
from wyoming_core.client import VoiceError, describe


async def _ha_satellite(*args: str) -> tuple[SatelliteRun, int]:
    """The satellite in Home Assistant mode, once it listens."""
    port = free_port()
    sat = await SatelliteRun("--uri", f"tcp://127.0.0.1:{port}", "--wake-word", "hey_jarvis", *args).start()
    deadline = time.monotonic() + 60
    while True:  # until it answers describe
        try:
            await describe(f"tcp://127.0.0.1:{port}", timeout=2.0)
            return sat, port
        except VoiceError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the satellite did not answer describe:\n{sat.log()}") from None
            await asyncio.sleep(0.1)


async def _one_turn(tmp_path: Path, *services: str) -> tuple[SatelliteRun, Path]:
    mic = mic_wav(tmp_path / "mic.wav", 1.0, WAKE_REQUEST, 2.0)
    report = tmp_path / "turns.jsonl"
    sat = await SatelliteRun(
        *("--mic-file", str(mic), "--snd-file", str(tmp_path / "out.wav"), "--wake-word", "hey_jarvis"),
        *("--no-sounds", "--follow-up", "0", "--exit-after-turns", "1", "--turn-report", str(report)),
        *services,
    ).start()
    return sat, report


async def test_a_standalone_turn_is_reported(
    tmp_path: Path, stt_service: ServiceProcess, service_factory: list[ServiceProcess]
) -> None:
    handle = FakeService(tmp_path / "handle.jsonl", "handle")
    tts = FakeService(tmp_path / "tts.jsonl", "tts")
    service_factory.extend([handle.start(), tts.start()])
    handle.wait_listening()
    tts.wait_listening()
    sat, report = await _one_turn(
        tmp_path, "--stt-uri", stt_service.uri, "--tts-uri", tts.uri, "--handle-uri", handle.uri
    )
    assert await sat.wait_exit(120) == 0, sat.log()
    [turn] = read_turns(report)
    assert (turn.turn, turn.outcome, turn.error) == (1, "answered", None), turn
    assert turn.transcript is not None and "time" in turn.transcript.lower(), turn
    # The same words the handle service was asked, and the answer it gave.
    assert handle.texts("transcript") == [turn.transcript]
    assert turn.reply == handle.texts("answered")[0] == "It is twelve o'clock."
    # What people said: readable by its owner only.
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert turn.transcript not in sat.log()  # nor in the log, without --log-transcripts


async def test_a_failed_turn_is_reported_with_what_failed(tmp_path: Path) -> None:
    nowhere = "tcp://127.0.0.1:9"
    sat, report = await _one_turn(
        tmp_path, "--stt-uri", nowhere, "--tts-uri", nowhere, "--handle-uri", nowhere
    )
    assert await sat.wait_exit(60) == 0, sat.log()
    [turn] = read_turns(report)
    assert (turn.outcome, turn.transcript, turn.reply) == ("failed", None, None), turn
    assert turn.error is not None and turn.error.startswith(f"STT service at {nowhere} failed"), turn


async def test_a_home_assistant_turn_is_reported_and_its_words_stay_out_of_the_log(tmp_path: Path) -> None:
    words, answer = "what time is it in Reykjavik", "It is noon in Reykjavik."
    mic = GatedMic(tmp_path / "mic", silence(0.5), speech(WAKE_REQUEST) + silence(1.0))
    report = tmp_path / "turns.jsonl"
    sat, port = await _ha_satellite(
        *("--mic-command", mic.command(), "--snd-file", str(tmp_path / "out.wav")),
        *("--no-sounds", "--follow-up", "0", "--turn-report", str(report)),
    )
    ha = await FakeHa("127.0.0.1", port).connect()
    try:
        await until(lambda: ha.info is not None, 30)
        mic.open(1)
        await ha.next("detection", timeout=30)
        await ha.next("run-pipeline")
        await ha.next("audio-start")
        await ha.collect_audio()
        await ha.send(Transcript(text=words).event())
        await ha.send(Synthesize(text=answer).event())
        await ha.play(tone_speech(answer))
        await ha.next("played", timeout=30)
        await until(lambda: bool(read_turns(report)), 30, sat.log)
    finally:
        await ha.close()
        await sat.stop()
    [turn] = read_turns(report)
    assert (turn.outcome, turn.transcript, turn.reply, turn.error) == ("answered", words, answer, None), turn
    log = sat.log()
    assert "Reykjavik" not in log, log
