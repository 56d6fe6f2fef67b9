"""Standalone turns on the project's real services (and small fakes where a test needs control).

What a test asserts is what can be seen from outside the satellite: the speaker output
(transcribed back by the real STT, or the feedback sounds found in it sample for sample),
the requests the model and the fake services received (their records), and the exit code.
The satellite's own log is read only for what nothing else can see: the words a user is told.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.satellite.fake_services import FakeService
from tests.satellite.helpers import (
    WAKE_REQUEST,
    GatedMic,
    SatelliteRun,
    TimedSpeaker,
    mic_wav,
    played_and_quiet,
    silence,
    snd_file_pcm,
    sound_spans,
    speech,
    times_played,
)
from tests.support.fake_ollama import FakeOllama, Reply
from tests.support.services import ServiceProcess
from tests.support.waiting import until
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat, read_wav
from wyoming_core.client import transcribe

# Not a time or date question (the conversation service answers those itself when Ollama is
# away): only the model can answer it.
MODEL_REQUEST = "Hey Jarvis, tell me a joke about penguins."
MODEL_REPLY = "The sun is shining and the birds are singing in the garden."
SND = AudioFormat(22050, 2, 1)


@dataclass
class Model:
    """The real conversation service on an in-process fake Ollama that records every chat."""

    service: ServiceProcess
    fake: FakeOllama

    @property
    def uri(self) -> str:
        return self.service.uri

    def asked(self) -> list[list[str]]:
        """The user messages of each chat the model was asked (its warm-up left out)."""
        return [chat.user_texts for chat in self.fake.chats if chat.user_texts]


StartModel = Callable[..., Awaitable[Model]]


@pytest.fixture
async def start_model(tmp_path: Path) -> AsyncIterator[StartModel]:
    started: list[tuple[ServiceProcess, FakeOllama]] = []

    async def start(reply: Reply = MODEL_REPLY, *extra: str) -> Model:
        fake = await FakeOllama(reply=reply, tokens_per_second=100.0).start()
        service = ServiceProcess(
            "wyoming_llm",
            "--ollama-url",
            fake.url,
            "--data-dir",
            str(tmp_path / f"llm{len(started)}"),
            *extra,
        ).start()
        started.append((service, fake))
        service.wait_listening()
        await service.wait_ready(marker="is loaded and warm")
        return Model(service, fake)

    yield start
    for service, fake in started:
        service.stop()
        await fake.stop()


def _fake(tmp_path: Path, factory: list[ServiceProcess], kind: str, *args: str) -> FakeService:
    service = FakeService(tmp_path / f"{kind}-{len(factory)}.jsonl", kind, *args)
    factory.append(service.start())
    service.wait_listening()
    return service


def _services(stt: str, tts: str, handle: str) -> list[str]:
    return ["--stt-uri", stt, "--tts-uri", tts, "--handle-uri", handle]


async def _heard(stt: ServiceProcess, path: Path) -> str:
    audio, fmt = read_wav(path)
    return (await transcribe(stt.uri, audio, fmt)).text


async def test_wav_in_spoken_reply_out(
    tmp_path: Path, stt_service: ServiceProcess, tts_service: ServiceProcess, start_model: StartModel
) -> None:
    model = await start_model()
    mic = mic_wav(tmp_path / "mic.wav", 1.0, MODEL_REQUEST, 2.0)
    out = tmp_path / "reply.wav"
    sat = await SatelliteRun(
        "--mic-file",
        str(mic),
        "--snd-file",
        str(out),
        "--wake-word",
        "hey_jarvis",
        *_services(stt_service.uri, tts_service.uri, model.uri),
        "--no-sounds",
        "--follow-up",
        "0",
        "--exit-after-turns",
        "1",
    ).start()
    assert await sat.wait_exit(180) == 0, sat.log()
    # What the user said reached the model, once...
    asked = model.asked()
    assert len(asked) == 1 and "penguin" in asked[0][-1].lower(), asked
    # ...and the model's answer came out of the speaker, as the real STT hears it.
    heard = await _heard(stt_service, out)
    assert wer(MODEL_REPLY, heard) <= 0.25, heard
    assert "turn-timing" in sat.log()  # the timing line exists nowhere else


async def test_follow_up_question_without_wake_word_same_conversation(
    tmp_path: Path, stt_service: ServiceProcess, tts_service: ServiceProcess, start_model: StartModel
) -> None:
    def answer(messages: list[dict[str, Any]]) -> str:
        turns = sum(1 for m in messages if m.get("role") == "user")
        return "Penguins love cold water. Want another one?" if turns == 1 else "Cats sleep all day long."

    model = await start_model(answer)
    # The follow-up (no wake word) is said once the first answer has been played.
    first = silence(1.0) + speech(MODEL_REQUEST) + silence(1.0)
    mic = GatedMic(tmp_path / "mic", first, speech("And one about cats.") + silence(2.0))
    out = tmp_path / "out.wav"
    sat = await SatelliteRun(
        "--mic-command",
        mic.command(),
        "--snd-file",
        str(out),
        "--wake-word",
        "hey_jarvis",
        *_services(stt_service.uri, tts_service.uri, model.uri),
        "--no-sounds",
        "--follow-up",
        "10",
        "--exit-after-turns",
        "2",
    ).start()
    await until(lambda: played_and_quiet(snd_file_pcm(out)) >= 1, 120, sat.log)
    mic.open()
    assert await sat.wait_exit(120) == 0, sat.log()
    asked = model.asked()
    assert len(asked) == 2, asked
    # The second question had no wake word, and the model got it with the first turn before it.
    assert asked[1][:1] == asked[0] and "cat" in asked[1][-1].lower(), asked
    heard = (await _heard(stt_service, out)).lower()
    # Both answers were played (the TTS voice varies from run to run: "sleep" was once heard
    # as "leap", so two words of each answer, any one heard).
    assert any(w in heard for w in ("penguins", "water")), heard
    assert any(w in heard for w in ("sleep", "day long")), heard


async def test_what_was_said_stays_out_of_the_log_by_default(
    tmp_path: Path, stt_service: ServiceProcess, service_factory: list[ServiceProcess]
) -> None:
    """Without --log-transcripts (issue 13, item 8): the turn happens, its words are not logged."""
    handle = _fake(tmp_path, service_factory, "handle", "--reply", "The flamingo is in the kitchen.")
    tts = _fake(tmp_path, service_factory, "tts")
    mic = mic_wav(tmp_path / "mic.wav", 1.0, WAKE_REQUEST, 2.0)
    sat = await SatelliteRun(
        "--mic-file",
        str(mic),
        "--snd-file",
        str(tmp_path / "out.wav"),
        "--wake-word",
        "hey_jarvis",
        *_services(stt_service.uri, tts.uri, handle.uri),
        "--follow-up",
        "0",
        "--exit-after-turns",
        "1",
    ).start()
    assert await sat.wait_exit(120) == 0, sat.log()
    # The whole turn happened: the question reached the handle service, the answer the TTS.
    assert "time" in " ".join(handle.texts("transcript")).lower(), handle.records()
    assert "flamingo" in " ".join(tts.texts("synthesize-chunk")), tts.records()
    log = sat.log()
    assert "Transcript:" not in log and "Reply:" not in log, log
    assert "flamingo" not in log and "time is it" not in log.lower(), log


async def test_barge_in_stops_playback_and_starts_a_new_turn(
    tmp_path: Path, stt_service: ServiceProcess, service_factory: list[ServiceProcess]
) -> None:
    long_reply = " ".join(f"This is sentence number {n} of a rather long answer." for n in range(1, 7))
    # Sentences 2 s apart: the handle and TTS requests are still running at the barge-in.
    handle = _fake(tmp_path, service_factory, "handle", "--reply", long_reply, "--delay", "2.0")
    tts = _fake(tmp_path, service_factory, "tts")
    first = silence(1.0) + speech(WAKE_REQUEST) + silence(1.0)
    mic = GatedMic(tmp_path / "mic", first, speech(WAKE_REQUEST) + silence(1.0))
    speaker = TimedSpeaker(tmp_path / "out.raw")
    sat = await SatelliteRun(
        "--mic-command",
        mic.command(),
        "--snd-command",
        speaker.command(),
        "--wake-word",
        "hey_jarvis",
        *_services(stt_service.uri, tts.uri, handle.uri),
        "--no-sounds",
        "--follow-up",
        "0",
        "--exit-after-turns",
        "2",
    ).start()
    # The wake word again once the (about 15 s) reply has been sounding for 2 s.
    await until(lambda: speaker.sounding_for() >= 2.0, 90, sat.log)
    mic.open()
    # The new turn hears the user from the barge-in on: the handle service gets a second request.
    await until(lambda: len(handle.records("transcript")) >= 2, 90, sat.log)
    assert "time" in handle.texts("transcript")[1].lower(), handle.records()
    # The interrupted turn's requests were cancelled (their connections closed), not left to run.
    await until(lambda: bool(tts.records("cancelled")), 30, tts.log)
    await until(lambda: bool(handle.records("cancelled")), 30, handle.log)
    await sat.stop()
    assert len(handle.records("transcript")) == 2, handle.records()
    assert len(handle.records("answered")) <= 1, handle.records()  # only the second turn's, if any
    # On the speaker: the reply went silent soon after the wake word entered the microphone
    # (a generous bound for a busy machine; bench/satellite.py measures the target).
    said_at = mic.said_at()
    assert said_at is not None
    cut = next(((start, end) for start, end in speaker.spans() if start < said_at < end + 0.5), None)
    assert cut is not None, (said_at, speaker.spans())
    wake_phrase = len(speech("Hey Jarvis")) / 32000
    print(f"barge-in: silent {cut[1] - said_at - wake_phrase:.2f} s after the wake phrase was said")
    assert cut[1] - said_at <= wake_phrase + 1.5, (cut, said_at, wake_phrase)
    assert cut[1] - cut[0] < 12.0, cut  # cut short: 15 s of tone were on their way


async def test_service_killed_mid_turn_error_sound_then_recovers(
    tmp_path: Path, stt_service: ServiceProcess, service_factory: list[ServiceProcess]
) -> None:
    handle = _fake(tmp_path, service_factory, "handle", "--first-delay", "30")
    tts = _fake(tmp_path, service_factory, "tts")
    first = silence(1.0) + speech(WAKE_REQUEST) + silence(1.0)
    mic = GatedMic(tmp_path / "mic", first, speech(WAKE_REQUEST) + silence(2.0))
    out = tmp_path / "out.wav"
    sat = await SatelliteRun(
        "--mic-command",
        mic.command(),
        "--snd-file",
        str(out),
        "--wake-word",
        "hey_jarvis",
        *_services(stt_service.uri, tts.uri, handle.uri),
        "--follow-up",
        "0",
        "--exit-after-turns",
        "2",
    ).start()
    # Kill the handle service while it is "thinking" about the first request: the request
    # reached it and was never answered.
    await until(lambda: bool(handle.records("transcript")), 90, sat.log)
    assert handle.proc is not None
    handle.proc.kill()
    handle.proc.wait()
    assert [r["event"] for r in handle.records()] == ["transcript"], handle.records()
    # The user hears the error sound; the message says which service failed.
    await until(lambda: times_played(snd_file_pcm(out), "error") >= 1, 30, sat.log)
    assert re.search(r"handle service at tcp://127\.0\.0\.1:\d+ failed", sat.log()), sat.log()
    assert not tts.records("synthesize-chunk"), tts.records()

    # Back on the same port, answering at once: the next turn works.
    revived = FakeService(tmp_path / "revived.jsonl", "handle")
    revived.port, revived.uri = handle.port, handle.uri
    service_factory.append(revived.start())
    revived.wait_listening()
    mic.open()
    assert await sat.wait_exit(120) == 0, sat.log()
    assert "time" in " ".join(revived.texts("transcript")).lower(), revived.records()
    assert revived.texts("answered") == ["It is twelve o'clock."], revived.records()
    assert "".join(tts.texts("synthesize-chunk")).strip() == "It is twelve o'clock.", tts.records()
    errors = times_played(snd_file_pcm(out), "error")
    assert errors == 1, errors  # the second turn did not fail


async def test_stt_down_at_wake_is_never_stuck(tmp_path: Path) -> None:
    mic = mic_wav(tmp_path / "mic.wav", 1.0, WAKE_REQUEST, 1.0)
    out = tmp_path / "out.wav"
    sat = await SatelliteRun(
        "--mic-file",
        str(mic),
        "--snd-file",
        str(out),
        "--wake-word",
        "hey_jarvis",
        *_services("tcp://127.0.0.1:9", "tcp://127.0.0.1:9", "tcp://127.0.0.1:9"),
        "--exit-after-turns",
        "1",
    ).start()
    # The turn ends (it counts), with the error sound, and the user is told what failed.
    assert await sat.wait_exit(60) == 0, sat.log()
    errors = times_played(snd_file_pcm(out), "error")
    assert errors == 1, errors
    assert re.search(r"STT service at tcp://127\.0\.0\.1:9 failed: Cannot connect", sat.log()), sat.log()


async def test_services_found_over_zeroconf(
    tmp_path: Path,
    stt_service: ServiceProcess,
    service_factory: list[ServiceProcess],
    start_model: StartModel,
) -> None:
    token = uuid.uuid4().hex[:8]
    model = await start_model(MODEL_REPLY, "--zeroconf", f"sat-handle-{token}")
    tts = ServiceProcess("wyoming_tts", "--data-dir", str(tmp_path / "tts"), "--zeroconf", f"sat-tts-{token}")
    service_factory.append(tts.start())
    tts.wait_listening()
    await tts.wait_ready()
    mic = mic_wav(tmp_path / "mic.wav", 1.0, MODEL_REQUEST, 2.0)
    out = tmp_path / "out.wav"
    sat = await SatelliteRun(
        "--mic-file",
        str(mic),
        "--snd-file",
        str(out),
        "--wake-word",
        "hey_jarvis",
        "--stt-uri",
        stt_service.uri,
        "--service-filter",
        token,
        "--no-sounds",
        "--follow-up",
        "0",
        "--exit-after-turns",
        "1",
    ).start()
    assert await sat.wait_exit(120) == 0, sat.log()
    # No --handle-uri, no --tts-uri: the question reached the model through the service found,
    # and its answer was spoken by the TTS found.
    assert len(model.asked()) == 1 and "penguin" in model.asked()[0][-1].lower(), model.asked()
    heard = await _heard(stt_service, out)
    assert wer(MODEL_REPLY, heard) <= 0.25, heard


async def test_remote_wake_service(
    tmp_path: Path,
    stt_service: ServiceProcess,
    tts_service: ServiceProcess,
    service_factory: list[ServiceProcess],
    start_model: StartModel,
) -> None:
    wake = _fake(tmp_path, service_factory, "wake")
    model = await start_model()
    mic = mic_wav(tmp_path / "mic.wav", 1.0, MODEL_REQUEST, 2.0)
    out = tmp_path / "out.wav"
    sat = await SatelliteRun(
        "--mic-file",
        str(mic),
        "--snd-file",
        str(out),
        "--wake-uri",
        wake.uri,
        "--wake-word",
        "hey_jarvis",
        *_services(stt_service.uri, tts_service.uri, model.uri),
        "--no-sounds",
        "--follow-up",
        "0",
        "--exit-after-turns",
        "1",
    ).start()
    assert await sat.wait_exit(90) == 0, sat.log()
    # The mic went to the wake service, which detected the wake word; the turn followed.
    assert wake.records("audio-start") and [r["name"] for r in wake.records("detection")] == ["hey_jarvis"]
    assert len(model.asked()) == 1 and "penguin" in model.asked()[0][-1].lower(), model.asked()
    heard = await _heard(stt_service, out)
    assert wer(MODEL_REPLY, heard) <= 0.25, heard


async def test_tts_without_streaming_gets_one_request_per_sentence(
    tmp_path: Path, stt_service: ServiceProcess, service_factory: list[ServiceProcess]
) -> None:
    handle = _fake(tmp_path, service_factory, "handle", "--reply", "It is noon. The sun is out.")
    tts = _fake(tmp_path, service_factory, "tts", "--no-streaming")
    mic = mic_wav(tmp_path / "mic.wav", 1.0, WAKE_REQUEST, 2.0)
    out = tmp_path / "out.wav"
    sat = await SatelliteRun(
        "--mic-file",
        str(mic),
        "--snd-file",
        str(out),
        "--wake-word",
        "hey_jarvis",
        *_services(stt_service.uri, tts.uri, handle.uri),
        "--no-sounds",
        "--follow-up",
        "0",
        "--exit-after-turns",
        "1",
    ).start()
    assert await sat.wait_exit(90) == 0, sat.log()
    assert tts.texts("synthesize") == ["It is noon. ", "The sun is out. "], tts.records()
    assert not tts.records("synthesize-start"), tts.records()
    # Both sentences were played: 7 words of tone, 0.25 s each.
    pcm = snd_file_pcm(out)
    loud = sum(end - start for start, end in sound_spans(pcm, SND.rate))
    assert 1.5 <= loud <= 2.1, loud
