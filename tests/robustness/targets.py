"""Every service under test described the same way, so each abuse case runs against all of them.

A `Target` is a running service process plus what the generic cases need to know about it:
one real request (`work`), the opening events of a real request (for clients that vanish
mid-stream) and a sequence of events out of order. Adding a service is one `Builder`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.services import ServiceProcess
from wyoming_core.audio import AudioFormat
from wyoming_core.client import converse, synthesize, transcribe

# Short: the idle case waits for it, and every half-open case ends with it.
IDLE_TIMEOUT = 2.0
# The load cases run 50 clients at once, all from 127.0.0.1: above the default per-address cap
# (16), which tests/robustness/test_exposure.py checks.
PER_ADDRESS = ("--max-connections-per-address", "64")

RawEvent = tuple[str, dict[str, Any] | None, bytes]


@dataclass
class Target:
    name: str
    service: ServiceProcess
    # One real request against the service; raises (or fails an assert) if the answer is wrong.
    work: Callable[[], Awaitable[None]]
    # The opening of a real request that makes the service busy; the client vanishes after it.
    stream_start: list[RawEvent]
    # Events in an order the protocol does not allow.
    out_of_order: list[RawEvent]
    # The error code the service should answer `out_of_order` with; None: any clear error
    # (not internal-error), or the events are ignored and the connection stays usable.
    out_of_order_code: str | None = None
    # Known bugs in services owned by others: test name -> xfail reason (strict=False).
    known_bugs: dict[str, str] = field(default_factory=dict)
    # Extra clean-up (helper processes, fake servers).
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # None: `describe` says when the model is loaded (wyoming_core.readiness); a log line only
    # where it cannot (the conversation service's model being warm).
    ready_marker: str | None = None
    # Helpers the fault drills reach for (e.g. the fake Ollama).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return self.service.uri

    async def restart(self, *, crash: bool = True) -> None:
        """Stop the service (SIGKILL, as a crash, or SIGTERM) and start it again on the same port."""
        old = self.service
        if crash and old.proc is not None and old.alive():
            old.proc.kill()
            old.proc.wait()
        old.stop()
        new = ServiceProcess(old.module, *old.args)
        new.env = old.env
        new.port, new.uri = old.port, old.uri
        self.service = new.start()
        new.wait_listening(timeout=120)
        await new.wait_ready(marker=self.ready_marker)

    async def stop(self) -> None:
        self.service.stop()
        for step in self.cleanup:
            with contextlib.suppress(Exception):
                await step()


@dataclass(frozen=True)
class Builder:
    name: str
    module: str
    start: Callable[[Path], Awaitable[Target]]

    def missing(self) -> str | None:
        """Why this service cannot be tested yet (its package is not built), or None."""
        try:
            spec = importlib.util.find_spec(f"{self.module}.__main__")
        except (ImportError, ValueError):
            spec = None
        return None if spec is not None else f"{self.module} has no __main__ yet (not built)"


# ---- STT -------------------------------------------------------------------------------------------


@functools.cache
def stt_clip() -> tuple[bytes, AudioFormat]:
    """A short real utterance with the trailing silence a client's VAD waits before audio-stop."""
    from tests.support.speech import piper_speech, silence

    pcm, fmt = piper_speech("Lights on.")
    return silence(0.1, fmt) + pcm + silence(0.5, fmt), fmt


def stt_process(data_dir: Path, *extra: str) -> ServiceProcess:
    # tiny.en: bundled, loads in a second and decodes fast; the cases are about the
    # protocol and the process, not about accuracy (tests/stt covers that on base).
    return ServiceProcess(
        "wyoming_stt",
        "--model",
        "tiny.en",
        "--data-dir",
        str(data_dir),
        "--language",
        "en",
        "--idle-timeout",
        str(IDLE_TIMEOUT),
        *PER_ADDRESS,
        *extra,
    )


async def stt_work(uri: str) -> None:
    pcm, fmt = stt_clip()
    result = await transcribe(uri, pcm, fmt, language="en", chunk_seconds=0.25, timeout=120)
    assert "light" in result.text.lower(), result.text


async def start_stt(data_dir: Path) -> Target:
    service = stt_process(data_dir).start()
    service.wait_listening()
    await service.wait_ready()
    pcm, fmt = stt_clip()
    audio = {"rate": fmt.rate, "width": fmt.width, "channels": fmt.channels}
    half = pcm[: len(pcm) // 2 // fmt.frame_bytes * fmt.frame_bytes]
    return Target(
        name="stt",
        service=service,
        work=lambda: stt_work(service.uri),
        stream_start=[
            ("transcribe", {"language": "en"}, b""),
            ("audio-start", audio, b""),
            ("audio-chunk", audio, half),
        ],
        out_of_order=[("audio-chunk", audio, pcm[:3200])],
        out_of_order_code="out-of-order",
    )


# ---- TTS -------------------------------------------------------------------------------------------

LONG_TEXT = " ".join(
    [
        "This is a long answer that keeps the service busy for a while.",
        "It goes on about the weather, the lights in the kitchen and the timers that are running.",
        "Then it lists the shopping, one item after the other, slowly and in detail.",
    ]
    * 3
)


async def tts_work(uri: str) -> None:
    speech = await synthesize(uri, "Okay.", timeout=120)
    assert speech.seconds > 0.2, speech.seconds


async def start_tts(data_dir: Path) -> Target:
    service = ServiceProcess(
        "wyoming_tts", "--data-dir", str(data_dir), "--idle-timeout", str(IDLE_TIMEOUT), *PER_ADDRESS
    ).start()
    service.wait_listening()
    await service.wait_ready()
    return Target(
        name="tts",
        service=service,
        work=lambda: tts_work(service.uri),
        stream_start=[("synthesize", {"text": LONG_TEXT}, b"")],
        # Streaming text before synthesize-start.
        out_of_order=[("synthesize-chunk", {"text": "Hello there."}, b""), ("synthesize-stop", None, b"")],
        out_of_order_code="out-of-order",
    )


# ---- LLM (conversation) ----------------------------------------------------------------------------


async def llm_work(uri: str) -> None:
    reply = await converse(uri, "Hello there", timeout=120)
    assert reply.handled and reply.text, reply


async def start_fake_ollama(reply: str = "Sure. Here is what I found for you today.") -> Any:
    from tests.support.fake_ollama import FakeOllama

    return await FakeOllama(reply=reply, tokens_per_second=100).start()


async def start_llm(data_dir: Path) -> Target:
    fake = await start_fake_ollama()
    service = ServiceProcess(
        "wyoming_llm",
        "--ollama-url",
        fake.url,
        "--data-dir",
        str(data_dir),
        "--idle-timeout",
        str(IDLE_TIMEOUT),
        *PER_ADDRESS,
    ).start()
    try:
        service.wait_listening()
        await service.wait_ready(marker="is loaded and warm")
    except BaseException:
        service.stop()
        await fake.stop()
        raise
    return Target(
        name="llm",
        service=service,
        work=lambda: llm_work(service.uri),
        stream_start=[("transcript", {"text": "Tell me a long story about the kitchen lights."}, b"")],
        # Answer events sent *to* the handler, and a stop before any start.
        out_of_order=[("handled-stop", None, b""), ("handled", {"text": "I answer myself"}, b"")],
        cleanup=[fake.stop],
        ready_marker="is loaded and warm",
        extras={"fake_ollama": fake},
    )


# ---- satellite (Home Assistant mode: a Wyoming server) ---------------------------------------------


async def satellite_work(uri: str) -> None:
    """What any client may ask of a satellite: describe it and ping it (HA pings every 2 s).

    Only the one connection that sent run-satellite gets mic audio and plays replies (a new
    one replaces it), so many clients at once can only do this; tests/satellite covers turns.
    """
    from wyoming.info import Describe, Info
    from wyoming.ping import Ping, Pong

    from wyoming_core.client import Connection

    async with Connection(uri, timeout=30) as conn:
        await conn.send(Describe())
        await conn.send(Ping(text="robust"))
        seen: dict[str, Any] = {}
        while len(seen) < 2:
            event = await conn.receive()
            if Info.is_type(event.type):
                info = Info.from_event(event)
                assert info.satellite is not None, info
                seen["info"] = info
            elif Pong.is_type(event.type):
                assert Pong.from_event(event).text == "robust"
                seen["pong"] = True


async def start_satellite(data_dir: Path) -> Target:
    from tests.support.speech import silence
    from wyoming_core.audio import write_wav

    mic_fmt = AudioFormat(16000, 2, 1)
    mic = data_dir / "mic.wav"
    write_wav(mic, silence(0.5, mic_fmt), mic_fmt)  # then silence for ever: no wake word
    service = ServiceProcess(
        "satellite",
        "--name",
        "robust",
        "--mic-file",
        str(mic),
        "--snd-file",
        str(data_dir / "out.wav"),
        "--no-sounds",
        "--idle-timeout",
        str(IDLE_TIMEOUT),
        *PER_ADDRESS,
    ).start()
    service.wait_listening(timeout=120)
    await service.wait_ready()
    snd = {"rate": 22050, "width": 2, "channels": 1}
    return Target(
        name="satellite",
        service=service,
        work=lambda: satellite_work(service.uri),
        # Home Assistant takes the satellite and starts an announcement, then vanishes.
        stream_start=[
            ("run-satellite", None, b""),
            ("audio-start", snd, b""),
            ("audio-chunk", snd, b"\0" * 22050),
        ],
        # Reply audio without audio-start, and audio-stop for it.
        out_of_order=[
            ("run-satellite", None, b""),
            ("audio-chunk", snd, b"\0" * 4410),
            ("audio-stop", None, b""),
        ],
    )


BUILDERS: dict[str, Builder] = {
    "stt": Builder("stt", "wyoming_stt", start_stt),
    "tts": Builder("tts", "wyoming_tts", start_tts),
    "llm": Builder("llm", "wyoming_llm", start_llm),
    "satellite": Builder("satellite", "satellite", start_satellite),
}
