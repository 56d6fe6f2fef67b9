"""Home Assistant mode, driven by a client that behaves like HA's wyoming satellite driver.

Asserted on what HA and the user would notice: the events the fake HA receives, the speaker
output (timed against when the wake word entered the mic, or the feedback sounds found in it
sample for sample), and the debug recordings. tests/ha/ runs the same against the real HA.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from wyoming.asr import Transcript
from wyoming.error import Error
from wyoming.info import Describe
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.timer import TimerFinished, TimerStarted
from wyoming.tts import Synthesize
from wyoming.wake import Detection

from tests.satellite.fake_ha import FakeHa
from tests.satellite.fake_services import tone_speech
from tests.satellite.helpers import (
    WAKE_REQUEST,
    GatedMic,
    SatelliteRun,
    TimedSpeaker,
    silence,
    snd_file_pcm,
    sound_spans,
    speech,
    times_played,
)
from tests.support.services import ServiceProcess, free_port
from tests.support.waiting import until
from wyoming_core.audio import AudioFormat
from wyoming_core.client import transcribe

MIC = AudioFormat(16000, 2, 1)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def _start(tmp_path: Path, *extra: str) -> tuple[SatelliteRun, int]:
    port = free_port()
    sat = await SatelliteRun(
        "--uri",
        f"tcp://127.0.0.1:{port}",
        "--name",
        "kitchen",
        "--area",
        "Kitchen",
        "--wake-word",
        "hey_jarvis",
        "--debug-recording-dir",
        str(tmp_path / "rec"),
        *extra,
    ).start()
    await until(lambda: _listening(port), 60, sat.log)
    return sat, port


async def _taken(ha: FakeHa) -> None:
    """Until the satellite has handled what `ha` sent so far: it answers a describe after it."""
    ha.info = None
    await ha.send(Describe().event())
    await until(lambda: ha.info is not None, 30)


async def test_ha_pipeline_with_barge_in(tmp_path: Path, stt_service: ServiceProcess) -> None:
    # The mic: a request once HA is connected, then the wake word again during the reply.
    request = speech(WAKE_REQUEST) + silence(1.0)
    mic = GatedMic(tmp_path / "mic", silence(0.5), request, request)
    speaker = TimedSpeaker(tmp_path / "out.raw")
    sat, port = await _start(
        tmp_path, "--mic-command", mic.command(), "--snd-command", speaker.command(), "--no-sounds"
    )
    ha = await FakeHa("127.0.0.1", port).connect()
    try:
        await until(lambda: ha.info is not None, 30)  # run-satellite went before its describe
        mic.open(1)
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
        heard_request = await ha.collect_audio()

        # HA's pipeline answers with a long reply; the user says the wake word in the middle.
        await ha.send(Transcript(text="what time is it").event())
        await ha.send(Synthesize(text="A long answer.").event())
        await ha.play(tone_speech(" ".join(["word"] * 48)))  # 12 s of audio
        heard = await transcribe(stt_service.uri, heard_request, MIC)
        assert "time" in heard.text.lower(), heard.text
        await until(lambda: speaker.sounding_for() >= 1.0, 30, sat.log)
        mic.open(2)

        # Barge-in: the satellite ends the old turn (audio-stop) and starts a new pipeline.
        await ha.next("audio-stop", timeout=30)
        await ha.next("detection", timeout=5)
        run2 = RunPipeline.from_event(await ha.next("run-pipeline", timeout=5))
        assert run2.start_stage is PipelineStage.ASR
        await ha.next("audio-start")
        request2 = await ha.collect_audio()
        assert len(request2) > MIC.bytes_per_second  # the user's words after the barge-in
        assert "played" not in ha.received  # the interrupted reply was never "played"

        # On the speaker: the reply went silent soon after the wake word entered the mic (a
        # generous bound for a busy machine; bench/satellite.py measures the target).
        said_at = mic.said_at(2)
        assert said_at is not None
        cut = next(((a, b) for a, b in speaker.spans() if a < said_at < b + 0.5), None)
        assert cut is not None, (said_at, speaker.spans())
        wake_phrase = len(speech("Hey Jarvis")) / MIC.bytes_per_second
        assert cut[1] - said_at <= wake_phrase + 1.5, (cut, said_at, wake_phrase)
        assert cut[1] - cut[0] < 10.0, cut  # 12 s were queued

        # Turn 2 ends normally: a short reply, then `played` once it has been heard.
        await ha.send(Transcript(text="what time is it").event())
        await ha.send(Synthesize(text="It is noon.").event())
        await ha.play(tone_speech("it is noon"))
        await ha.next("played", timeout=20)
        assert 0.6 <= speaker.spans()[-1][1] - speaker.spans()[-1][0] <= 0.9, speaker.spans()
        assert ha.ping_failures == 0 and len(ha.pong_delays) >= 3
        assert max(ha.pong_delays) < 5.0
        # --debug-recording-dir: one recording per turn, written as the turn ends.
        recordings = tmp_path / "rec"
        await until(lambda: len(list(recordings.glob("*.wav"))) >= 2, 30, sat.log)
    finally:
        await ha.close()
        await sat.stop()


async def test_ha_connections_pause_timers_and_announcements(tmp_path: Path) -> None:
    request = speech(WAKE_REQUEST) + silence(1.0)
    mic = GatedMic(tmp_path / "mic", silence(0.5), request, request)
    out = tmp_path / "out.wav"
    sat, port = await _start(tmp_path, "--mic-command", mic.command(), "--snd-file", str(out))
    first = await FakeHa("127.0.0.1", port).connect()
    watcher = await FakeHa("127.0.0.1", port, run_satellite=False).connect()
    second: FakeHa | None = None
    try:
        await until(lambda: first.info is not None and watcher.info is not None)
        assert watcher.info is not None and watcher.info.satellite is not None
        assert watcher.info.satellite.name == "kitchen" and watcher.info.satellite.area == "Kitchen"
        assert [m.phrase for p in watcher.info.wake for m in p.models] == ["Hey Jarvis"]

        # A second HA replaces the first cleanly.
        second = await FakeHa("127.0.0.1", port).connect()
        await asyncio.wait_for(first.closed.wait(), 10)
        await _taken(second)

        # An announcement outside a pipeline: played (0.5 s of tone on the speaker), then `played`.
        await second.play(tone_speech("attention please"))
        await second.next("played", timeout=20)
        spans = sound_spans(snd_file_pcm(out), 22050)
        assert spans and 0.4 <= spans[-1][1] - spans[-1][0] <= 0.7, spans
        assert watcher.events.empty()  # no audio to a peer that did not ask for it

        # Timers: a finished timer rings (the timer sound, sample for sample, on the speaker).
        await second.send(TimerStarted(id="t1", total_seconds=60, name="pasta").event())
        await second.send(TimerFinished(id="t1").event())
        await until(lambda: times_played(snd_file_pcm(out), "timer") >= 1, 30, sat.log)

        # An error from HA outside a turn is only logged (nothing else can see it).
        await second.send(Error(text="stt failed", code="stt-error").event())
        await sat.wait_for("Home Assistant reports an error")

        # Paused: the wake word is not heard. Running again: it is.
        await second.send(PauseSatellite().event())
        await _taken(second)
        mic.open(1)
        await until(lambda: mic.said_at(1) is not None, 10)
        await asyncio.sleep(len(request) / MIC.bytes_per_second + 3.0)  # said, and time to detect
        assert "detection" not in second.received and "run-pipeline" not in second.received
        await second.send(RunSatellite().event())
        await _taken(second)
        mic.open(2)
        detection = Detection.from_event(await second.next("detection", timeout=30))
        assert detection.name == "hey_jarvis"
        assert second.ping_failures == 0
    finally:
        for ha in (first, watcher, second):
            if ha is not None:
                await ha.close()
        await sat.stop()
