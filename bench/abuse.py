"""Abuse benchmark (issue 13): what a stranger on the network or a misbehaving client costs each
service, with the attacks the outside review ran, on loopback.

Each service runs as a process with its default flags (STT on the default `base` model, TTS on
the bundled voice, the conversation service on a fake Ollama in this process) and, as in the
review, with its open-file limit at 128. Clients come from several loopback addresses
(127.0.0.x), so per-address and global limits both take part. Figures, per service:

- RSS growth under each attack: the peak RSS while it lasts (VmHWM, reset just before) minus the
  RSS before it (target <= 50 MB);
- describe p99 while 300 connections from one address are held open (target <= 1 s), from
  another address, one new connection per describe;
- time until a departed client's work stops: the client leaves in the middle of real work; the
  service's CPU time is sampled every 50 ms, and the work has stopped at the end of the last
  sample that used more than a fifth of a core (target <= 1 s). For the conversation service:
  until its request to the model is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import Figure, parser, report
from tests.robustness.peers import connect_from
from tests.support.fake_ollama import FakeOllama
from tests.support.raw import RawClient
from tests.support.services import ServiceProcess
from tests.support.speech import piper_speech, silence
from wyoming_core.protocol import ProtocolError

MIB = 1024 * 1024
RSS_TARGET = 50.0
P99_TARGET = 1.0
STOP_TARGET = 1.0
DESCRIBE_TIMEOUT = 5.0  # a describe that fails counts as this long
SAMPLED = "CPU sampled every 50 ms: 0 means under 50 ms"
ATTACKER, PROBE = "127.0.0.1", "127.0.0.2"


def _fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


def start(module: str, *args: str) -> ServiceProcess:
    service = ServiceProcess(module, *args)
    service.preexec = _fd_limit
    return service.start()


def _status(service: ServiceProcess, key: str) -> float:
    assert service.proc is not None
    for line in Path(f"/proc/{service.proc.pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak(service: ServiceProcess) -> None:
    assert service.proc is not None
    Path(f"/proc/{service.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS


def cpu_seconds(service: ServiceProcess) -> float:
    assert service.proc is not None
    fields = Path(f"/proc/{service.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def quiet(service: ServiceProcess, timeout: float = 120.0) -> None:
    """Until the service uses under 5 % of a core for a second (the last attack has settled)."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(service)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = cpu_seconds(service)
        if now - last < 0.05:
            return
        last = now


async def rss_growth(service: ServiceProcess, attack: Callable[[], Awaitable[Any]]) -> float:
    """Peak RSS during `attack` minus the RSS before it, in MB."""
    await quiet(service)
    before = _status(service, "VmRSS")
    _reset_peak(service)
    await attack()
    await asyncio.sleep(1.0)
    return max(0.0, _status(service, "VmHWM") - before)


async def work_stops_after(service: ServiceProcess, left_at: float, window: float = 30.0) -> float:
    """Seconds from `left_at` to the end of the last busy 50 ms sample (quiet for 1.5 s after)."""
    busy_until = left_at
    last_cpu, last_t = cpu_seconds(service), time.monotonic()
    end = time.monotonic() + window
    while time.monotonic() < end:
        await asyncio.sleep(0.05)
        cpu, now = cpu_seconds(service), time.monotonic()
        if cpu - last_cpu > 0.2 * (now - last_t):
            busy_until = now
        elif now - busy_until > 1.5:
            break
        last_cpu, last_t = cpu, now
    return busy_until - left_at


async def abort_all(clients: list[RawClient]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            client.writer.transport.abort()


def _event(event_type: str, data: dict[str, Any] | None = None, payload: bytes = b"") -> bytes:
    header: dict[str, Any] = {"type": event_type}
    body = json.dumps(data).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + body + payload


# ---- attacks every service gets ----------------------------------------------------------------------


async def describe_once(port: int) -> float:
    started = time.monotonic()
    try:
        client = await asyncio.wait_for(connect_from(port, PROBE), DESCRIBE_TIMEOUT)
        try:
            await client.send("describe")
            event = await client.receive(timeout=DESCRIBE_TIMEOUT)
            if event is None or event.type != "info":
                return DESCRIBE_TIMEOUT
        finally:
            await client.close()
    except (OSError, TimeoutError, ProtocolError):
        return DESCRIBE_TIMEOUT
    return time.monotonic() - started


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


async def describes(port: int, count: int) -> list[float]:
    return [await describe_once(port) for _ in range(count)]


async def unfinished_payloads(port: int) -> int:
    """40 clients (10 from each of 4 addresses) each send all but one byte of a 4 MiB payload and
    hold; returns how many the service refused."""
    size = 4 * MIB
    raw = json.dumps({"type": "audio-chunk", "payload_length": size}).encode() + b"\n" + b"\0" * (size - 1)
    refused = 0

    async def one(n: int) -> RawClient | None:
        nonlocal refused
        try:
            client = await connect_from(port, f"127.0.0.{11 + n % 4}")
        except OSError:
            refused += 1
            return None
        try:
            await client.send_bytes(raw)
            event = await client.receive(timeout=2.0)
            if event is not None and event.type != "error":
                return client
        except TimeoutError:
            return client  # held
        except Exception:
            pass  # reset or cut: refused while still sending
        refused += 1
        return client

    clients = [c for c in await asyncio.gather(*(one(n) for n in range(40))) if c is not None]
    await asyncio.sleep(2.0)  # held a while: the peak is what the service keeps, not a blip
    await abort_all(clients)
    return refused


async def idle_flood(port: int) -> tuple[list[float], int]:
    """300 connections from one address held open; 200 describes from another meanwhile."""
    clients: list[RawClient] = []
    for _ in range(300):
        try:
            clients.append(await connect_from(port, ATTACKER))
        except OSError:
            break
    await asyncio.sleep(1.0)
    kept = 0
    for client in clients:
        # Refused ones got an error and were closed; the rest stay idle (the idle timeout is 300 s).
        try:
            await client.receive(timeout=0.05)
        except TimeoutError:
            kept += 1
        except Exception:
            pass
    latencies = await describes(port, 200)
    await abort_all(clients)
    return latencies, kept


async def common_figures(name: str, service: ServiceProcess) -> list[Figure]:
    figures = []
    refused = 0

    async def payloads() -> None:
        nonlocal refused
        refused = await unfinished_payloads(service.port)

    grown = await rss_growth(service, payloads)
    figures.append(Figure(f"{name}: RSS growth, 40 unfinished 4 MiB payloads", grown, "MB", RSS_TARGET))
    figures.append(Figure(f"{name}: of those 40, refused (overloaded)", refused, ""))
    flood: tuple[list[float], int] = ([], 0)

    async def idle() -> None:
        nonlocal flood
        flood = await idle_flood(service.port)

    grown = await rss_growth(service, idle)
    latencies, kept = flood
    failed = sum(1 for t in latencies if t >= DESCRIBE_TIMEOUT)
    figures += [
        Figure(f"{name}: RSS growth, 300 idle connections", grown, "MB", RSS_TARGET),
        Figure(f"{name}: describe p99 while 300 connections are held open", p99(latencies), "s", P99_TARGET),
        Figure(f"{name}: describes that failed, of 200", failed, "", 0),
        Figure(f"{name}: of the 300, kept open by the service", kept, ""),
    ]
    return figures


# ---- TTS ---------------------------------------------------------------------------------------------

RUN_ON = "the quick brown fox jumps over the lazy dog and keeps running along the river "
LONG_TEXT = (RUN_ON * 120)[:9000]


async def tts_flood(port: int) -> None:
    """1,500 queued 9,000-character requests on one connection that never reads."""
    client = await RawClient.connect(port)
    request = _event("synthesize", {"text": LONG_TEXT})
    with contextlib.suppress(ConnectionError):
        for _ in range(1500):
            await client.send_bytes(request)
    with contextlib.suppress(Exception):
        await client.closed(timeout=30)
    await abort_all([client])


async def tts_departure(service: ServiceProcess) -> float:
    """Eight long replies queued, the first one speaking; the client vanishes."""
    client = await RawClient.connect(service.port)
    for _ in range(8):
        await client.send_bytes(_event("synthesize", {"text": LONG_TEXT}))
    await client.receive_until("audio-chunk", timeout=120)
    left = time.monotonic()
    await abort_all([client])
    return await work_stops_after(service, left)


async def bench_tts() -> list[Figure]:
    service = start("wyoming_tts", "--data-dir", tempfile.mkdtemp(prefix="abuse-tts-"))
    try:
        service.wait_listening(timeout=120)
        await service.wait_ready()
        figures = await common_figures("tts", service)
        grown = await rss_growth(service, lambda: tts_flood(service.port))
        figures.append(
            Figure("tts: RSS growth, 1,500 queued 9,000-character requests, unread", grown, "MB", RSS_TARGET)
        )
        await quiet(service)
        stops = statistics.median([await tts_departure(service) for _ in range(3)])
        figures.append(
            Figure(
                "tts: time until a departed client's work stops (median of 3)",
                stops,
                "s",
                STOP_TARGET,
                note=SAMPLED,
            )
        )
        return figures
    finally:
        service.stop()


# ---- STT ---------------------------------------------------------------------------------------------

LOW = {"rate": 1000, "width": 1, "channels": 1}
STT_FMT = {"rate": 16000, "width": 2, "channels": 1}


async def stt_big_chunks(port: int) -> None:
    """Three clients at once: a 4 MiB chunk at 1000 Hz / 8 bit (70 minutes of audio)."""

    async def one() -> None:
        client = await RawClient.connect(port)
        with contextlib.suppress(ConnectionError):
            chunk = _event("audio-chunk", LOW, b"\x80" * 4 * MIB)
            await client.send_bytes(_event("audio-start", LOW) + chunk)
            with contextlib.suppress(Exception):
                await client.receive(timeout=30)
        await abort_all([client])

    await asyncio.gather(*(one() for _ in range(3)))


async def stt_full_speed(port: int) -> list[float]:
    """119 s of quiet noise sent as fast as the service takes it; describes meanwhile."""
    noise = bytes((n * 7919) % 17 for n in range(16000 * 2))  # 1 s, low level
    client = await RawClient.connect(port)
    done = asyncio.Event()
    latencies: list[float] = []

    async def probe() -> None:
        while not done.is_set():
            latencies.append(await describe_once(port))
            await asyncio.sleep(0.05)

    prober = asyncio.create_task(probe())
    try:
        await client.send_bytes(_event("transcribe", {"language": "en"}) + _event("audio-start", STT_FMT))
        for _ in range(119):
            await client.send_bytes(_event("audio-chunk", STT_FMT, noise))
        await client.send_bytes(_event("audio-stop"))
        await client.receive_until("transcript", timeout=120)
    finally:
        done.set()
        await prober
        await abort_all([client])
    return latencies


def long_speech() -> tuple[bytes, dict[str, int]]:
    sentences = [
        "Please remind me to water the plants in the garden tomorrow morning before it gets hot.",
        "Then tell me the weather for the weekend and whether I need an umbrella on Saturday.",
        "After that read me the shopping list, one item after the other, slowly and in detail.",
    ]
    parts = []
    fmt = None
    for sentence in sentences:
        pcm, fmt = piper_speech(sentence)
        parts.append(pcm + silence(0.4, fmt))
    assert fmt is not None
    clip = b"".join(parts)
    repeats = int(100 * fmt.bytes_per_second // len(clip)) + 1
    return clip * repeats, {"rate": fmt.rate, "width": fmt.width, "channels": fmt.channels}


async def stt_departure(service: ServiceProcess, speech: bytes, fmt: dict[str, int]) -> float:
    """About 100 s of speech sent at once, then audio-stop; the client leaves while it is decoded."""
    client = await RawClient.connect(service.port)
    second = fmt["rate"] * fmt["width"] * fmt["channels"]
    await client.send_bytes(_event("transcribe", {"language": "en"}) + _event("audio-start", fmt))
    for offset in range(0, len(speech), second):
        await client.send_bytes(_event("audio-chunk", fmt, speech[offset : offset + second]))
    await client.send_bytes(_event("audio-stop"))
    await asyncio.sleep(1.0)  # the final decode is under way
    left = time.monotonic()
    await abort_all([client])
    return await work_stops_after(service, left, window=120.0)


async def bench_stt() -> list[Figure]:
    service = start("wyoming_stt", "--data-dir", tempfile.mkdtemp(prefix="abuse-stt-"), "--language", "en")
    try:
        service.wait_listening(timeout=120)
        await service.wait_ready()
        figures = await common_figures("stt", service)
        grown = await rss_growth(service, lambda: stt_big_chunks(service.port))
        figures.append(
            Figure("stt: RSS growth, three 4 MiB chunks at 1000 Hz / 8 bit", grown, "MB", RSS_TARGET)
        )
        latencies: list[float] = []

        async def full_speed() -> None:
            nonlocal latencies
            latencies = await stt_full_speed(service.port)

        grown = await rss_growth(service, full_speed)
        figures += [
            Figure("stt: RSS growth, 119 s of audio at full speed", grown, "MB", RSS_TARGET),
            Figure(
                "stt: describe p99 while 119 s of audio arrive at full speed", p99(latencies), "s", P99_TARGET
            ),
        ]
        speech, fmt = long_speech()
        await quiet(service)
        stops = statistics.median([await stt_departure(service, speech, fmt) for _ in range(3)])
        figures.append(
            Figure(
                "stt: time until a departed client's work stops (median of 3; leaves during the final "
                "decode of 100 s of speech)",
                stops,
                "s",
                STOP_TARGET,
                note=SAMPLED,
            )
        )
        return figures
    finally:
        service.stop()


# ---- conversation ------------------------------------------------------------------------------------


async def llm_requests(port: int, transcripts: list[dict[str, Any]], concurrency: int = 10) -> None:
    queue = list(transcripts)

    async def worker() -> None:
        while queue:
            data = queue.pop()
            client = await RawClient.connect(port)
            try:
                await client.send("transcript", data)
                with contextlib.suppress(Exception):
                    while True:
                        event = await client.receive(timeout=30)
                        if event is None or event.type in ("handled", "not-handled", "error"):
                            break
            finally:
                await abort_all([client])

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MIB


async def llm_departure(service: ServiceProcess, fake: FakeOllama) -> float:
    """The client leaves while the answer streams; until the service drops its model request."""
    before = len(fake.chats)
    client = await RawClient.connect(service.port)
    await client.send("transcript", {"text": "Tell me a long story.", "context": {"conversation_id": "gone"}})
    await client.receive_until("handled-chunk", timeout=60)
    left = time.monotonic()
    await abort_all([client])
    record = fake.chats[before]
    # Dropped: the fake sees the disconnect; not dropped: the whole answer is generated first.
    await fake.wait_for(lambda _f: record.disconnected or record.completed, timeout=120)
    return (record.finished_at or time.monotonic()) - left


async def bench_llm() -> list[Figure]:
    long_reply = " ".join(f"This is sentence number {n} of a long story." for n in range(200))
    async with FakeOllama(reply="Okay.", tokens_per_second=40) as fake:
        data_dir = Path(tempfile.mkdtemp(prefix="abuse-llm-"))
        service = start("wyoming_llm", "--ollama-url", fake.url, "--data-dir", str(data_dir))
        try:
            service.wait_listening(timeout=120)
            await service.wait_ready(marker="is loaded and warm")
            figures = await common_figures("llm", service)
            resets = [
                {"text": "Start over", "context": {"conversation_id": f"{n:03d}" + "x" * 256 * 1024}}
                for n in range(200)
            ]
            grown = await rss_growth(service, lambda: llm_requests(service.port, resets))
            figures.append(
                Figure("llm: RSS growth, 200 start-over requests with 256 KB ids", grown, "MB", RSS_TARGET)
            )
            db_before = _dir_mb(data_dir)
            turns = [
                {"text": "Hello", "context": {"conversation_id": f"{n:03d}" + "y" * 100 * 1024}}
                for n in range(100)
            ]
            grown = await rss_growth(service, lambda: llm_requests(service.port, turns))
            figures += [
                Figure("llm: RSS growth, 100 turns with 100 KB ids", grown, "MB", RSS_TARGET),
                Figure(
                    "llm: history on disk, growth after those 100 turns", _dir_mb(data_dir) - db_before, "MB"
                ),
            ]
            before = len(fake.chats)
            await llm_requests(service.port, [{"text": "Hello", "language": "x" * 300 * 1024}], 1)
            prompt = 0
            if len(fake.chats) > before:
                prompt = max(len(str(m.get("content", ""))) for m in fake.chats[before].messages)
            figures.append(Figure("llm: longest prompt message for a 300 KB language", prompt, "chars"))
            fake.reply = long_reply
            await quiet(service)
            stops = statistics.median([await llm_departure(service, fake) for _ in range(3)])
            figures.append(
                Figure(
                    "llm: time until a departed client's model request is dropped (median of 3)",
                    stops,
                    "s",
                    STOP_TARGET,
                )
            )
            return figures
        finally:
            service.stop()


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--only", default="stt,tts,llm", help="Services to attack (comma-separated)")
    args = cli.parse_args()
    benches = {"stt": bench_stt, "tts": bench_tts, "llm": bench_llm}
    figures: list[Figure] = []
    for name in args.only.split(","):
        figures += await benches[name.strip()]()
    figures.append(Figure("machine load average (1 min, shared machine)", os.getloadavg()[0], ""))
    title = "Abuse (issue 13): memory, describe and clean-up under attack, open files at 128"
    report(figures, title, args.json)


if __name__ == "__main__":
    asyncio.run(main())
