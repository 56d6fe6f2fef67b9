"""`--http` on the real services: /metrics scraped and parsed with prometheus-client's own parser
after real requests (counters moved, histograms filled, errors counted by code), /healthz, and an
endpoint that only reads: other methods get 405, other paths 404."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_ollama import FakeOllama
from tests.support.services import ROOT, ServiceProcess, free_port
from tests.support.speech import piper_speech, silence
from wyoming_core.audio import AudioFormat, write_wav
from wyoming_core.client import (
    ServiceError,
    converse,
    describe,
    synthesize,
    synthesize_streamed,
    transcribe,
)

TIMEOUT = aiohttp.ClientTimeout(total=20)
VOICE = "en_US-joe-medium"


@dataclass(frozen=True)
class Scrape:
    """Every sample of one /metrics answer: (name, labels) -> value."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]

    def get(self, name: str, **labels: str) -> float:
        """The sample's value; AssertionError (with what there is) if it is not exposed."""
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            there = sorted(str(dict(lbl)) for n, lbl in self.samples if n == name)
            raise AssertionError(f"{name}{labels} is not in /metrics; {name} has: {there or 'nothing'}")
        return self.samples[key]


async def http(port: int, path: str, method: str = "GET", **kwargs: Any) -> tuple[int, str, str]:
    """(status, content type, body) of one request to 127.0.0.1:`port`."""
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.request(method, f"http://127.0.0.1:{port}{path}", **kwargs) as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def scrape(port: int) -> Scrape:
    status, content_type, body = await http(port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(body):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, types)


async def health(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


async def wait_healthy(service: ServiceProcess, port: int, timeout: float = 180.0) -> dict[str, Any]:
    """/healthz polled until it says ready (200); fails at once if the service exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if not service.alive():
            raise AssertionError(f"{service.module} exited:\n{service.log()}")
        try:
            status, body = await health(port)
        except aiohttp.ClientError as err:
            last = err
        else:
            last = (status, body)
            assert status in (200, 503), last
            assert body["ready"] is (status == 200), last
            if status == 200:
                return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"not healthy within {timeout} s: {last}\n{service.log()}")


async def moved(port: int, name: str, above: float, timeout: float = 30.0, **labels: str) -> Scrape:
    """Scrape until the sample is over `above` (a histogram is observed just after the reply's last
    event goes out, so the client may be a moment ahead of it)."""
    latest: list[Scrape] = []

    async def check() -> bool:
        latest[:] = [await scrape(port)]
        return latest[0].get(name, **labels) > above

    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} stayed at {latest[0].get(name, **labels)}")
        await asyncio.sleep(0.1)
    return latest[0]


def start(module: str, *args: str) -> tuple[ServiceProcess, int]:
    port = free_port()
    return ServiceProcess(module, "--http", f"127.0.0.1:{port}", *args).start(), port


# ---- TTS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def tts(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[ServiceProcess, int]]:
    service, port = start("wyoming_tts", "--data-dir", str(tmp_path_factory.mktemp("tts-data")))
    try:
        service.wait_listening()
        await wait_healthy(service, port)
        yield service, port
    finally:
        service.stop()


async def test_tts_health_names_the_voice_and_version(tts: tuple[ServiceProcess, int]) -> None:
    _service, port = tts
    status, body = await health(port)
    assert status == 200
    assert body == {"service": "wyoming-tts", "ready": True, "version": "0.1.0", "voice": VOICE}


async def test_tts_metrics_move_with_real_replies(tts: tuple[ServiceProcess, int]) -> None:
    service, port = tts
    before = await scrape(port)
    assert before.types["wyoming_tts_first_audio_seconds"] == "histogram"
    assert before.get("wyoming_model_load_seconds", model=VOICE) > 0
    assert before.get("wyoming_service_info", service="wyoming-tts", version="0.1.0") == 1
    assert before.get("wyoming_workers", pool="synthesis") >= 1
    assert before.get("wyoming_queue_depth", pool="synthesis") == 0

    await describe(service.uri)
    plain = await synthesize(service.uri, "The kitchen lights are on.")
    streamed = await synthesize_streamed(service.uri, ["The weather is ", "sunny today. ", "Have fun."])
    with pytest.raises(ServiceError) as refused:
        await synthesize(service.uri, "Hello.", voice="no-such-voice")
    assert refused.value.code == "voice-not-found"

    after = await moved(
        port, "wyoming_tts_first_audio_seconds_count", before.get("wyoming_tts_first_audio_seconds_count") + 1
    )
    assert (
        after.get("wyoming_requests_total", kind="describe")
        == before.get("wyoming_requests_total", kind="describe") + 1
    )
    for kind in ("synthesize", "synthesize-stream"):
        assert (
            after.get("wyoming_requests_total", kind=kind)
            >= before.get("wyoming_requests_total", kind=kind) + 1
        )
    assert after.get("wyoming_errors_total", code="voice-not-found") == (
        before.get("wyoming_errors_total", code="voice-not-found") + 1
    )
    # Both replies' first audio timed, in the bucket that holds everything too.
    count = after.get("wyoming_tts_first_audio_seconds_count")
    assert count == after.get("wyoming_tts_first_audio_seconds_bucket", le="+Inf")
    assert after.get("wyoming_tts_first_audio_seconds_sum") > before.get(
        "wyoming_tts_first_audio_seconds_sum"
    )
    # Real-time factor per sentence or clause: more than one of each reply, all of them positive.
    rtf_count = after.get("wyoming_tts_real_time_factor_count") - before.get(
        "wyoming_tts_real_time_factor_count"
    )
    assert rtf_count >= 2
    assert after.get("wyoming_tts_real_time_factor_sum") > before.get("wyoming_tts_real_time_factor_sum")
    made = after.get("wyoming_tts_audio_seconds_total") - before.get("wyoming_tts_audio_seconds_total")
    heard = plain.seconds + streamed.seconds
    # Sentence silences are sent but not synthesized: what was made is at most what was heard.
    assert 0.5 * heard < made <= heard + 0.01, (made, heard)
    assert after.get("wyoming_connections") >= 0


async def test_tts_endpoint_only_reads(tts: tuple[ServiceProcess, int]) -> None:
    _service, port = tts
    for method, path in (
        ("POST", "/metrics"),
        ("PUT", "/healthz"),
        ("DELETE", "/metrics"),
        ("POST", "/healthz"),
    ):
        status, _type, _body = await http(port, path, method, data=b"x" * 100)
        assert status == 405, (method, path, status)
    for path in ("/", "/metrics/", "/metricsx", "/../etc/passwd", "/healthz/x", "/favicon.ico"):
        status, _type, _body = await http(port, path)
        assert status == 404, (path, status)
    status, _type, _body = await http(port, "/metrics", "HEAD")
    assert status == 200
    # A header far over the limit is refused, not read.
    status, _type, _body = await http(port, "/metrics", headers={"X-Big": "a" * 20000})
    assert 400 <= status < 500, status


# ---- core: address checks ---------------------------------------------------------------


def _llm(data_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    """The conversation service (the lightest to start), its output captured."""
    uri = f"tcp://127.0.0.1:{free_port()}"
    ollama = FakeOllama.unreachable_url()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wyoming_llm",
            "--uri",
            uri,
            "--ollama-url",
            ollama,
            "--data-dir",
            str(data_dir),
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_taken_http_port_is_a_clear_exit(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _llm(tmp_path, "--http", f"127.0.0.1:{port}")
        out, _ = proc.communicate(timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode == 4, text
    assert f"127.0.0.1:{port}" in text and "--http" in text and "Traceback" not in text, text


def test_a_bad_http_address_is_refused_at_start(tmp_path: Path) -> None:
    proc = _llm(tmp_path, "--http", "localhost:notaport")
    out, _ = proc.communicate(timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode != 0 and "--http" in text and "Traceback" not in text, text


async def test_the_allow_list_applies_to_http(service_factory: list[ServiceProcess]) -> None:
    port = free_port()
    service = ServiceProcess(
        "tests.discovery.fake_service", "--http", str(port), "--allow", "10.0.0.0/8"
    ).start()
    service_factory.append(service)
    deadline = time.monotonic() + 60

    async def answers() -> int:
        try:
            return (await http(port, "/healthz"))[0]
        except aiohttp.ClientError:
            return 0

    status = 0
    while status == 0 and time.monotonic() < deadline:
        assert service.alive(), service.log()
        status = await answers()
        await asyncio.sleep(0.1)
    assert status == 403


# ---- STT ------------------------------------------------------------------------------------


async def test_stt_metrics_move_with_a_real_transcript(
    service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    service, port = start(
        "wyoming_stt", "--model", "tiny.en", "--data-dir", str(tmp_path), "--language", "en", "--no-partials"
    )
    service_factory.append(service)
    service.wait_listening()
    body = await wait_healthy(service, port)
    assert body == {"service": "wyoming-stt", "ready": True, "version": "0.1.0", "model": "tiny.en"}
    before = await scrape(port)
    assert before.get("wyoming_model_load_seconds", model="tiny.en") > 0
    assert before.get("wyoming_workers", pool="decode") >= 1
    assert before.get("wyoming_queue_depth", pool="decode") == 0

    pcm, fmt = piper_speech("Turn on the kitchen lights.")
    result = await transcribe(service.uri, pcm + silence(0.5, fmt), fmt, language="en", timeout=120)
    assert "kitchen" in result.text.lower()
    with pytest.raises(ServiceError) as refused:
        await transcribe(service.uri, silence(0.2, AudioFormat(500, 2, 1)), AudioFormat(500, 2, 1))
    assert refused.value.code == "unsupported-audio-format"

    after = await moved(port, "wyoming_stt_transcript_seconds_count", 0)
    assert after.get("wyoming_requests_total", kind="transcribe") == 1
    assert after.get("wyoming_errors_total", code="unsupported-audio-format") == 1
    assert after.get("wyoming_stt_transcript_seconds_sum") > 0
    assert after.get("wyoming_stt_real_time_factor_count", decode="final") >= 1
    assert after.get("wyoming_stt_real_time_factor_sum", decode="final") > 0
    assert after.get("wyoming_stt_audio_seconds_total") == pytest.approx(
        len(pcm + silence(0.5, fmt)) / (fmt.rate * fmt.width), abs=0.05
    )


# ---- LLM ------------------------------------------------------------------------------------


async def test_llm_metrics_split_turns_with_and_without_the_model(
    fake_ollama: FakeOllama, service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    service, port = start(
        "wyoming_llm",
        "--ollama-url",
        fake_ollama.url,
        "--data-dir",
        str(tmp_path),
        "--retry-seconds",
        "1",
        "--first-token-timeout",
        "5",
    )
    service_factory.append(service)
    service.wait_listening()
    body = await wait_healthy(service, port, timeout=60)
    assert body["ready"] is True and body["model"] and body["version"] == "0.1.0"
    before = await scrape(port)
    assert before.get("wyoming_model_load_seconds", model=body["model"]) >= 0

    answered = await converse(service.uri, "Tell me a story about a fox.")
    assert answered.handled and answered.text
    reset = await converse(service.uri, "Start over.")
    assert reset.handled

    after = await moved(port, "wyoming_llm_turn_seconds_count", 0, path="local")
    after = await moved(port, "wyoming_llm_turn_seconds_count", 0, path="model")
    assert after.get("wyoming_requests_total", kind="handle") == 2
    assert after.get("wyoming_llm_turn_seconds_count", path="model") == 1
    assert after.get("wyoming_llm_turn_seconds_count", path="local") == 1
    assert after.get("wyoming_llm_model_seconds_count") == 1
    assert after.get("wyoming_llm_model_seconds_sum") > 0
    assert after.get("wyoming_llm_overhead_seconds_count") == 1
    assert after.get("wyoming_llm_first_sentence_seconds_count", path="model") == 1
    assert after.get("wyoming_llm_answers_total", outcome="handled") == 2

    # Ollama gone: the model is asked and fails; counted as not handled, with its reason.
    await fake_ollama.stop()
    failed = await converse(service.uri, "Tell me another story.", timeout=120)
    assert not failed.handled
    after = await moved(port, "wyoming_llm_turn_seconds_count", 1, path="model")
    assert after.get("wyoming_llm_answers_total", outcome="not-handled") == 1
    status, body = await health(port)
    assert status == 503 and body["ready"] is False and "reach" in body["reason"]


# ---- satellite ------------------------------------------------------------------------------


async def test_satellite_serves_health_and_its_servers_metrics(
    service_factory: list[ServiceProcess], tmp_path: Path
) -> None:
    """The satellite (HA mode: its own Wyoming server) with --http: ready once started, and a
    describe from Home Assistant's side counted in the satellite's registry."""
    mic = tmp_path / "mic.wav"
    write_wav(mic, silence(1.0, AudioFormat(16000, 2, 1)), AudioFormat(16000, 2, 1))
    service, port = start("satellite", "--mic-file", str(mic), "--snd-file", str(tmp_path / "snd.wav"))
    service_factory.append(service)
    service.wait_listening(timeout=60)
    body = await wait_healthy(service, port, timeout=60)
    assert body == {"service": "satellite", "ready": True, "version": "0.1.0"}
    info = await describe(service.uri)
    assert info.satellite is not None
    after = await scrape(port)
    assert after.get("wyoming_requests_total", kind="describe") == 1
    assert after.get("wyoming_connections") >= 0
    status, _type, _body = await http(port, "/metrics", "POST")
    assert status == 405
