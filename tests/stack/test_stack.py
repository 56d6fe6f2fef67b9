"""The README's one command, end to end: services up, a WAV question answered, all stopped.

No Ollama here: the conversation service answers the date by itself, which is what we ask.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.raw import RawClient
from tests.support.services import ROOT, ServiceProcess, free_port
from tests.support.speech import piper_speech
from tests.support.waiting import until
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat, read_wav, to_stt_format, write_wav
from wyoming_core.client import converse, describe, synthesize, transcribe

pytestmark = pytest.mark.timeout(600)


def _ports() -> list[str]:
    return [
        *("--stt-port", str(free_port()), "--tts-port", str(free_port())),
        *("--llm-port", str(free_port())),
    ]


def _stack_command(data_dir: Path, *args: str) -> list[str]:
    # The README's command; SKIP_SETUP because the test run has just been set up.
    return ["bash", "scripts/run-stack.sh", "--data-dir", str(data_dir), *_ports(), *args]


def _env() -> dict[str, str]:
    # An address where nothing answers: the test must not depend on an Ollama being around.
    return {**os.environ, "SKIP_SETUP": "1", "LLM_OLLAMA_URL": f"http://127.0.0.1:{free_port()}"}


@pytest.fixture(scope="module")
def stack_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack-data")


async def test_wav_in_reply_wav_out(tmp_path: Path, stack_data: Path, stt_service: ServiceProcess) -> None:
    question = tmp_path / "question.wav"
    write_wav(question, *piper_speech("What day is it today?"))
    reply_wav = tmp_path / "reply.wav"

    result = await asyncio.to_thread(
        subprocess.run,
        _stack_command(stack_data, "--wav", str(question), "--reply-wav", str(reply_wav)),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    transcript = re.search(r"^Transcript: (.*)$", result.stdout, re.M)
    answer = re.search(r"^Answer: (.*)$", result.stdout, re.M)
    assert transcript and answer, result.stdout
    assert wer("What day is it today?", transcript.group(1)) <= 0.2, transcript.group(1)
    assert answer.group(1).startswith("Today is "), answer.group(1)
    # Each service's log lines are there, prefixed by its name; all of them stopped.
    for label in ("stt", "tts", "llm"):
        assert re.search(rf"^{label} +\| .*is shutting down", result.stderr, re.M), result.stderr

    audio, fmt = read_wav(reply_wav)
    heard = await transcribe(stt_service.uri, audio, fmt)
    assert wer(answer.group(1), heard.text) <= 0.3, (answer.group(1), heard.text)


def test_ctrl_c_stops_every_process(tmp_path: Path, stack_data: Path) -> None:
    # Live mode with the satellite listening to a (silent) file instead of a microphone.
    mic = tmp_path / "silence.wav"
    write_wav(mic, b"\0" * 32000, AudioFormat(16000, 2, 1))
    proc = subprocess.Popen(
        _stack_command(
            stack_data,
            *(f"--satellite-arg=--mic-file={mic}", f"--satellite-arg=--snd-file={tmp_path / 'out.wav'}"),
            *("--stt-model", "tiny.en"),
        ),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # like a terminal: Ctrl-C goes to the runner's process group
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 400
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if re.match(r"^satellite +\| .*is ready", line):
                break
        assert any(re.match(r"^satellite +\| .*is ready", line) for line in lines), "".join(lines)
        # No pause needed: the satellite sets its signal handlers before it says it is ready.
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(lines)
    assert proc.returncode == 0, output
    for label in ("stt", "tts", "llm"):
        assert re.search(rf"^{label} +\| .*is shutting down", output, re.M), output
    assert re.search(r"^satellite +\| .*Satellite stopped", output, re.M), output
    assert "exited with code" not in output, output  # every process stopped cleanly (code 0)


async def test_wav_through_the_satellite(tmp_path: Path, stack_data: Path) -> None:
    # The WAV plays as the satellite's microphone, so it starts with the wake word.
    speech, fmt = piper_speech("Hey Jarvis, what day is it today?")
    mic_fmt = AudioFormat(16000, 2, 1)
    second = b"\0" * mic_fmt.bytes_per_second
    question = tmp_path / "wake-question.wav"
    write_wav(question, second + to_stt_format(speech, fmt) + 2 * second, mic_fmt)
    reply_wav = tmp_path / "reply.wav"
    result = await asyncio.to_thread(
        subprocess.run,
        _stack_command(
            stack_data,
            *("--wav", str(question), "--reply-wav", str(reply_wav), "--via-satellite"),
            "--satellite-arg=--wake-word=hey_jarvis",
        ),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    transcript = re.search(r"^Transcript: (.*)$", result.stdout, re.M)
    answer = re.search(r"^Answer: (.*)$", result.stdout, re.M)
    assert transcript and "day" in transcript.group(1).lower(), result.stdout + result.stderr
    # The answer depends on how much of the wake word the transcript kept ("Jarvis, what day...");
    # what matters here is that the satellite's turn went through and was reported.
    assert answer and answer.group(1), result.stdout
    assert read_wav(reply_wav)[0].strip(b"\0"), "the reply WAV is silent"


def _start_stack_logged(log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """The stack in its own process group (as in a terminal), its output in a file."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            ["bash", "scripts/run-stack.sh", *args],
            cwd=ROOT,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, then SIGKILL if it has not stopped within a minute."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def test_client_strings_of_100_kb_do_not_freeze_the_stack(tmp_path: Path, stack_data: Path) -> None:
    """A 100 KB voice name, language or conversation id is logged cut, and everything answers on."""
    ports = {name: free_port() for name in ("stt", "tts", "llm")}
    flags = [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    log_path = tmp_path / "stack.log"
    args = ("--data-dir", str(stack_data), *flags, "--no-satellite", "--stt-model", "tiny.en")
    proc = _start_stack_logged(log_path, *args)
    uri = {name: f"tcp://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        await until(lambda: "are answering" in log_path.read_text(errors="replace"), 400, log_path.read_text)
        big = "v" * 100_000 + "\n\x1b[31m"
        voice = {"name": big, "language": big, "speaker": big}
        attacks: list[tuple[str, str, dict[str, Any]]] = [
            ("tts", "synthesize", {"text": "Hello.", "voice": voice}),
            ("stt", "transcribe", {"language": big, "name": big}),
            ("llm", "transcript", {"text": big, "context": {"conversation_id": big}, "language": big}),
        ]
        for name, event_type, data in attacks:
            client = await RawClient.connect(ports[name])
            await client.send(event_type, data)
            while (event := await client.receive(timeout=60)) is not None:  # to the end of the answer
                if event.type in ("error", "handled", "not-handled"):
                    break
            await client.close()
        # Everything still answers, with real work.
        for name in ports:
            assert await describe(uri[name], timeout=30)
        speech = await synthesize(uri["tts"], "Still here.", timeout=120)
        assert speech.seconds > 0.3
        reply = await converse(uri["llm"], "What day is it today?", "after-the-attack", timeout=120)
        assert reply.text.startswith("Today is "), reply.text
        assert proc.poll() is None
    finally:
        await asyncio.to_thread(_interrupt, proc)
    output = log_path.read_text(errors="replace")
    assert proc.returncode == 0, output[-5000:]
    assert max(len(line) for line in output.splitlines()) < 2000, "a client's string was logged whole"
    assert output.count("more characters") >= 3, output  # each service logged it, cut
    assert "\x1b[31m" not in output  # escaped, not passed to the terminal
    assert "exited with code" not in output, output[-5000:]
