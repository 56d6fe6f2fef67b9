"""`VoiceClient` over the project's real services: every call, typed results, failover, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from wyoming.audio import AudioChunk

from discovery.voice import VoiceClient, load_audio
from tests.support.fake_ollama import FakeOllama
from tests.support.services import ServiceProcess, free_port
from tests.support.speech import piper_speech
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat, write_wav
from wyoming_core.client import Partial, Reply, ServiceUnavailable, Transcription, VoiceError

pytestmark = pytest.mark.timeout(300)

QUESTION = "What is the weather like in the kitchen today?"


@pytest.fixture
def voice(
    stt_service: ServiceProcess, tts_service: ServiceProcess, llm_service: ServiceProcess
) -> VoiceClient:
    # A dead instance first in each list: every call must still succeed (failover).
    dead = f"tcp://127.0.0.1:{free_port()}"
    return VoiceClient(
        [dead, stt_service.uri], [dead, tts_service.uri], [dead, llm_service.uri], language="en"
    )


async def test_transcribe_a_wav_file_bytes_or_pcm(voice: VoiceClient, tmp_path: Path) -> None:
    pcm, fmt = piper_speech(QUESTION)
    path = tmp_path / "q.wav"
    wav = write_wav(path, pcm, fmt)
    for audio in (path, str(path), wav, (pcm, fmt)):
        result = await voice.transcribe(audio)
        assert isinstance(result, Transcription)
        assert wer(QUESTION, result.text) <= 0.2, result.text
    assert wer(QUESTION, (await voice.transcribe(pcm, fmt)).text) <= 0.2


async def test_transcribe_stream_yields_partials_then_the_transcript(voice: VoiceClient) -> None:
    pcm, fmt = piper_speech(QUESTION + " And tell me if I need an umbrella for the walk to the station.")
    items = [item async for item in voice.transcribe_stream(pcm, fmt, realtime=True)]
    assert isinstance(items[-1], Transcription)
    assert all(isinstance(item, Partial) for item in items[:-1])
    assert len(items) >= 2, items  # at least one partial while the audio was still going out
    assert "umbrella" in items[-1].text.lower()


async def test_synthesize_and_synthesize_stream(voice: VoiceClient, stt_service: ServiceProcess) -> None:
    speech = await voice.synthesize("The kitchen light is on.")
    assert speech.seconds > 0.5 and speech.wav()[:4] == b"RIFF"
    heard = await voice.transcribe(speech.wav())
    assert wer("The kitchen light is on.", heard.text) <= 0.2, heard.text

    chunks = [c async for c in voice.synthesize_stream(["The kitchen light ", "is on. ", "It is late."])]
    assert chunks and all(isinstance(c, AudioChunk) for c in chunks)
    assert sum(len(c.audio) for c in chunks) > AudioFormat(chunks[0].rate, 2, 1).bytes_per_second


def _first_words(messages: list[dict[str, Any]]) -> str:
    """A fake model whose answer shows whether the conversation's first turn reached it."""
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    return f"You first said: {users[0]}"


async def test_converse_keeps_the_conversation(
    tmp_path: Path, stt_service: ServiceProcess, tts_service: ServiceProcess
) -> None:
    async with FakeOllama(reply=_first_words, tokens_per_second=100.0) as fake:
        llm = ServiceProcess("wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(tmp_path)).start()
        try:
            llm.wait_listening()
            await llm.wait_ready(marker="is loaded and warm")
            dead = f"tcp://127.0.0.1:{free_port()}"
            voice = VoiceClient(
                [dead, stt_service.uri], [dead, tts_service.uri], [dead, llm.uri], language="en"
            )
            reply = await voice.converse("Hello there, who are you?", "voice-client-test")
            assert isinstance(reply, Reply) and reply.text == "You first said: Hello there, who are you?"
            pieces = [item async for item in voice.converse_stream("Tell me more.", "voice-client-test")]
            # The second answer was made with the first turn in the model's context.
            assert isinstance(pieces[-1], Reply), pieces
            assert pieces[-1].text == "You first said: Hello there, who are you?", pieces
            assert fake.chats[-1].user_texts == ["Hello there, who are you?", "Tell me more."]
            # Another conversation id starts afresh.
            other = await voice.converse("Tell me more.", "voice-client-other")
            assert other.text == "You first said: Tell me more.", other
        finally:
            llm.stop()


async def test_a_whole_turn(voice: VoiceClient) -> None:
    turn = await voice.turn(piper_speech("What time is it?"), conversation_id="voice-turn")
    assert "time" in turn.transcript.lower()
    assert turn.answer and turn.speech is not None and turn.speech.seconds > 0.3


async def test_errors_are_voice_errors() -> None:
    nowhere = VoiceClient(f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailable, match="No tts service answered"):
        await nowhere.synthesize("hello")
    with pytest.raises(VoiceError):
        await nowhere.transcribe(b"\0\0" * 1600, AudioFormat(16000, 2, 1))
    with pytest.raises(ValueError, match="needs its format"):
        load_audio(b"\0\0" * 10)
