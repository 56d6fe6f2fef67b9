"""A first run as a new user meets it: taken ports, no microphone, no Ollama, --version and
--help, an interrupted model assembly. Each ends in one clear line, never a traceback."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack.checks import NO_MIC, SERVICES, identity_problem, sound_problem
from tests.support.services import ROOT, ServiceProcess, free_port
from wyoming_core.models import build_atomically

COMMANDS = [
    "wyoming_stt",
    "wyoming_tts",
    "wyoming_llm",
    "satellite",
    "stack",
    "discovery",
    "discovery.health",
]


def _run(
    *argv: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another program listens on (a plain socket: nobody answers there)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield int(server.getsockname()[1])


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output and "ALSA lib" not in output, output


def _mic_here() -> bool:
    return sound_problem(()) != NO_MIC


# -- ports ----------------------------------------------------------------------------------


def test_a_port_held_by_another_wyoming_service_is_named_with_its_flag(
    service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    # As on the user's machine: another Wyoming TTS already answers on the stack's TTS port.
    other = ServiceProcess("tests.satellite.fake_services", "tts").start()
    service_factory.append(other)
    other.wait_listening()
    started = time.monotonic()
    result = _run(
        *("bash", "scripts/run-stack.sh", "--data-dir", str(tmp_path), "--no-satellite"),
        *("--stt-port", str(free_port()), "--tts-port", str(other.port), "--llm-port", str(free_port())),
        env={"SKIP_SETUP": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"Port {other.port} is already in use" in output and "--tts-port PORT" in output, output
    assert "are answering" not in output, output
    assert len(output.strip().splitlines()) == 1, output  # one line, nothing started
    assert time.monotonic() - started < 60  # refused before any model loads
    _no_traceback(output)


def test_a_service_on_a_taken_port_says_so_in_one_line(held_port: int, tmp_path: Path) -> None:
    result = _run(sys.executable, "-m", "wyoming_llm", "--uri", f"tcp://127.0.0.1:{held_port}",
                  "--data-dir", str(tmp_path), "--ollama-url", f"http://127.0.0.1:{free_port()}")  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 4, output
    assert f"port {held_port} on 127.0.0.1 is already in use" in output and "--uri" in output, output
    _no_traceback(output)


async def test_the_stack_recognises_its_own_services(
    service_factory: list[ServiceProcess], tts_service: ServiceProcess
) -> None:
    tts = next(s for s in SERVICES if s.label == "tts")
    assert await identity_problem(tts, tts_service.uri) is None
    other = ServiceProcess("tests.satellite.fake_services", "tts").start()
    service_factory.append(other)
    other.wait_listening()
    problem = await identity_problem(tts, other.uri)
    assert problem is not None and "fake-tts" in problem and "--tts-port" in problem, problem


# -- sound ----------------------------------------------------------------------------------


@pytest.mark.skipif(_mic_here(), reason="this machine has a microphone; the test needs one without")
def test_no_microphone_is_one_line_pointing_to_the_alternatives(tmp_path: Path) -> None:
    ports = [arg for name in ("stt", "tts", "llm") for arg in (f"--{name}-port", str(free_port()))]
    result = _run(
        "bash", "scripts/run-stack.sh", "--data-dir", str(tmp_path), *ports, env={"SKIP_SETUP": "1"}
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert len(output.strip().splitlines()) == 1, output
    for way_out in ("--wav", "--mic-command", "--no-satellite"):
        assert way_out in output, output
    _no_traceback(output)

    # The satellite by itself: one line (no ALSA/JACK chatter), its own options, exit code 4.
    nowhere = "tcp://127.0.0.1:9"
    sat = _run(sys.executable, "-m", "satellite", "--stt-uri", nowhere, "--tts-uri", nowhere,
               "--handle-uri", nowhere)  # fmt: skip
    assert sat.returncode == 4, sat.stderr
    errors = [line for line in sat.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "--mic-command" in errors[0] and "--mic-file" in errors[0], sat.stderr
    _no_traceback(sat.stdout + sat.stderr)


def test_other_sound_given_to_the_satellite_needs_no_sound_card(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SATELLITE_MIC_COMMAND",
        "SATELLITE_SND_COMMAND",
        "SATELLITE_MIC_FILE",
        "SATELLITE_SND_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    assert sound_problem(("--mic-command=arecord -q -t raw", "--snd-file", "/tmp/answers.wav")) is None
    monkeypatch.setenv("SATELLITE_MIC_COMMAND", "arecord")
    monkeypatch.setenv("SATELLITE_SND_COMMAND", "aplay")
    assert sound_problem(()) is None


# -- Ollama -----------------------------------------------------------------------------------


async def test_without_ollama_the_log_gives_the_exact_fix(
    service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    llm = ServiceProcess(
        "wyoming_llm", "--data-dir", str(tmp_path), "--ollama-url", f"http://127.0.0.1:{free_port()}"
    ).start()
    service_factory.append(llm)
    llm.wait_listening(timeout=60)
    await llm.wait_log("At start-up", timeout=60)
    await llm.wait_log("--ollama-url", timeout=10)  # the whole line is written
    line = next(line for line in llm.log().splitlines() if "At start-up" in line)
    for step in ("https://ollama.com/download", "ollama pull llama3.2", "ollama serve", "--ollama-url"):
        assert step in line, line


# -- --version and --help ---------------------------------------------------------------------


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_has_version_and_help(module: str) -> None:
    version = _run(sys.executable, "-m", module, "--version")
    assert version.returncode == 0 and re.search(r"\b0\.\d+\.\d+\b", version.stdout), version
    shown = _run(sys.executable, "-m", module, "--help")
    assert shown.returncode == 0 and "--version" in shown.stdout, shown
    # Real defaults only: nothing says "None", no Python object shows through.
    assert "default: None" not in shown.stdout and "AudioFormat(" not in shown.stdout, shown.stdout


def test_help_shows_the_defaults_worked_out_at_run_time() -> None:
    satellite = " ".join(_run(sys.executable, "-m", "satellite", "--help").stdout.split())
    assert "(default: okay_nabu)" in satellite, satellite
    assert "(default: 16000:2:1)" in satellite and "(default: 22050:2:1)" in satellite, satellite
    for module, service in (("wyoming_stt", "stt"), ("wyoming_tts", "tts"), ("wyoming_llm", "llm")):
        shown = "".join(_run(sys.executable, "-m", module, "--help").stdout.split())
        assert f"wyoming-local-voice/{service})" in shown, shown  # the data dir


# -- an interrupted model assembly ------------------------------------------------------------


def _slow_build(target: str) -> None:
    def build(tmp: Path) -> None:
        (tmp / "model.bin").write_bytes(b"\0" * (8 << 20))
        time.sleep(600)  # killed here, as by Ctrl-C twice, the OOM killer or a power cut

    build_atomically(Path(target), build)


def test_an_interrupted_model_assembly_is_cleaned_up_next_time(tmp_path: Path) -> None:
    target = tmp_path / "models" / "base"
    child = multiprocessing.get_context("spawn").Process(target=_slow_build, args=(str(target),))
    child.start()
    try:
        deadline = time.monotonic() + 60
        while not any((tmp_path / "models").glob(".base.*/model.bin")):
            assert time.monotonic() < deadline and child.is_alive(), "the build never started"
            time.sleep(0.05)
    finally:
        if child.pid is not None and child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    left = [p for p in (tmp_path / "models").iterdir() if p.is_dir()]
    assert len(left) == 1 and left[0].name.startswith(".base."), left  # what the kill leaves

    def build(tmp: Path) -> None:
        (tmp / "model.bin").write_bytes(b"model")

    built = build_atomically(target, build)
    assert built == target and (target / "model.bin").read_bytes() == b"model"
    assert [p.name for p in (tmp_path / "models").iterdir() if p.is_dir()] == ["base"]
