"""Home Assistant mode, driven by a client that behaves like HA's wyoming satellite driver."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wyoming.asr import Transcript
from wyoming.error import Error
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite
from wyoming.timer import TimerFinished, TimerStarted
from wyoming.tts import Synthesize
from wyoming.wake import Detection

from tests.satellite.fake_ha import FakeHa
from tests.satellite.fake_services import tone_speech
from tests.satellite.helpers import WAKE_REQUEST, SatelliteRun, barge_in_ms, mic_wav
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import until
from wyoming_core.audio import AudioFormat
from wyoming_core.client import transcribe

MIC = AudioFormat(16000, 2, 1)


async def _start(tmp_path: Path, mic: Path, *extra: str) -> tuple[SatelliteRun, int]:
    port = free_port()
    sat = await SatelliteRun(
        "--uri",
        f"tcp://127.0.0.1:{port}",
        "--name",
        "kitchen",
        "--area",
        "Kitchen",
        "--mic-file",
        str(mic),
        "--snd-file",
        str(tmp_path / "out.wav"),
        "--wake-word",
        "hey_jarvis",
        "--debug-recording-dir",
        str(tmp_path / "rec"),
        *extra,
    ).start()
    await sat.wait_for(r"satellite is listening on", timeout=60)
    return sat, port


async def test_ha_pipeline_with_barge_in(tmp_path: Path, stt_service: ServiceProcess) -> None:
    # The mic: silence while HA connects, a request, then the wake word again during the reply.
    mic = mic_wav(tmp_path / "mic.wav", 4.0, WAKE_REQUEST, 6.0, WAKE_REQUEST, 8.0)
    sat, port = await _start(tmp_path, mic)
    ha = await FakeHa("127.0.0.1", port).connect()
    try:
        await sat.wait_for("State: paused .* -> waiting for the wake word \\(run-satellite\\)")
        # Turn 1: detection, run-pipeline, then the user's request as audio.
        detection = Detection.from_event(await ha.next("detection", timeout=30))
        assert detection.name == "hey_jarvis"
        run = RunPipeline.from_event(await ha.next("run-pipeline"))
        assert (run.start_stage, run.end_stage, run.wake_word_name) == (
            PipelineStage.ASR,
            PipelineStage.TTS,
            "hey_jarvis",
        )
        await ha.next("audio-start")
        request = await ha.collect_audio()

        # HA's pipeline answers with a long reply; the user says the wake word in the middle.
        await ha.send(Transcript(text="what time is it").event())
        await ha.send(Synthesize(text="A long answer.").event())
        await ha.play(tone_speech(" ".join(["word"] * 48)))  # 12 s of audio
        heard = await transcribe(stt_service.uri, request, MIC)
        assert "time" in heard.text.lower(), heard.text

        # Barge-in: the satellite ends the old turn (audio-stop) and starts a new pipeline.
        await ha.next("audio-stop", timeout=30)
        await ha.next("detection", timeout=5)
        run2 = RunPipeline.from_event(await ha.next("run-pipeline", timeout=5))
        assert run2.start_stage is PipelineStage.ASR
        await ha.next("audio-start")
        request2 = await ha.collect_audio()
        assert len(request2) > MIC.bytes_per_second  # the user's words after the barge-in

        log = sat.log()
        assert "Barge-in by wake word 'hey_jarvis'" in log
        assert all(ms <= 200 for ms in barge_in_ms(log)), barge_in_ms(log)
        assert "played" not in ha.received  # the interrupted reply was never "played"

        # Turn 2 ends normally: a short reply, then `played` once it has been heard.
        await ha.send(Transcript(text="what time is it").event())
        await ha.send(Synthesize(text="It is noon.").event())
        await ha.play(tone_speech("it is noon"))
        await ha.next("played", timeout=20)
        await sat.wait_for("speaking the answer -> waiting for the wake word")
        assert ha.ping_failures == 0 and len(ha.pong_delays) >= 3
        assert max(ha.pong_delays) < 5.0
        assert len(list((tmp_path / "rec").glob("*.wav"))) >= 2  # --debug-recording-dir, one per turn
    finally:
        await ha.close()
        await sat.stop()


async def test_ha_connections_pause_timers_and_announcements(tmp_path: Path) -> None:
    mic = mic_wav(tmp_path / "mic.wav", 1.0)
    sat, port = await _start(tmp_path, mic, "--mic-file-loop")
    first = await FakeHa("127.0.0.1", port).connect()
    watcher = await FakeHa("127.0.0.1", port, run_satellite=False).connect()
    second: FakeHa | None = None
    try:
        await sat.wait_for("asked for audio")
        await until(lambda: watcher.info is not None)  # its describe is answered
        assert watcher.info is not None and watcher.info.satellite is not None
        assert watcher.info.satellite.name == "kitchen" and watcher.info.satellite.area == "Kitchen"
        assert [m.phrase for p in watcher.info.wake for m in p.models] == ["Hey Jarvis"]

        # A second HA replaces the first cleanly.
        second = await FakeHa("127.0.0.1", port).connect()
        await asyncio.wait_for(first.closed.wait(), 10)
        await sat.wait_for("replaces")

        # An announcement outside a pipeline: played, then `played`.
        await second.play(tone_speech("attention please"))
        await second.next("played", timeout=20)
        assert watcher.events.empty()  # no audio to a peer that did not ask for it

        # Timers: a finished timer rings.
        await second.send(TimerStarted(id="t1", total_seconds=60, name="pasta").event())
        await second.send(TimerFinished(id="t1").event())
        await sat.wait_for("Timer t1 finished")
        await sat.wait_for("Playing the timer sound")

        # An error from HA outside a turn is only logged.
        await second.send(Error(text="stt failed", code="stt-error").event())
        await sat.wait_for("Home Assistant reports an error")

        await second.send(PauseSatellite().event())
        await sat.wait_for(r"-> paused .*\(pause-satellite\)")
        assert second.ping_failures == 0
    finally:
        for ha in (first, watcher, second):
            if ha is not None:
                await ha.close()
        await sat.stop()
