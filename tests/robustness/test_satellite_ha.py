"""A satellite in Home Assistant mode against a stranger on the network (issue 13, item 2).

Each case starts a real satellite process (HA mode, a silent mic, the speaker a WAV file) and
attacks it on loopback: bad audio formats, one huge announcement chunk, a take-over while Home
Assistant is connected, events from a connection that is not the active peer. The asserts are
on what the attacker and Home Assistant receive, on what comes out of the speaker (the WAV) and
on the process's memory and CPU time, never on our log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from wyoming.event import Event

from tests.robustness.checks import PROMPT
from tests.robustness.peers import address, connect_from, settled, wait_for
from tests.support.raw import RawClient
from tests.support.services import ServiceProcess
from tests.support.speech import silence
from wyoming_core.audio import AudioFormat, write_wav

MIB = 1024 * 1024
SND = AudioFormat(22050, 2, 1)  # the satellite's speaker format (its default)
SND_DATA = {"rate": SND.rate, "width": SND.width, "channels": SND.channels}
WAV_HEADER = 44
# Samples louder than this are sound, not the silence the player writes between sounds.
LOUD = 300

Start = Callable[..., Awaitable["Satellite"]]


class Satellite:
    """A satellite process in Home Assistant mode; its speaker is `snd` (a WAV written in real time)."""

    def __init__(self, service: ServiceProcess, snd: Path) -> None:
        self.service = service
        self.snd = snd
        self.port = service.port

    def rss_mb(self) -> float:
        return self.service.rss_mb()

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        assert self.service.proc is not None
        stat = Path(f"/proc/{self.service.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def snd_bytes(self) -> int:
        return max(0, self.snd.stat().st_size - WAV_HEADER)

    def loud_seconds(self, start: int, end: int | None = None) -> float:
        """Seconds of sound in the speaker output between two byte offsets of its audio."""
        with self.snd.open("rb") as handle:
            handle.seek(WAV_HEADER + start)
            data = handle.read(None if end is None else max(0, end - start))
        samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
        return float(np.count_nonzero(np.abs(samples.astype(np.int32)) >= LOUD)) / SND.rate

    async def wait_snd_grows(self, seconds: float, timeout: float = 60.0) -> int:
        """Wait until the speaker has written `seconds` more audio (sound or silence); its new size."""
        target = self.snd_bytes() + int(seconds * SND.bytes_per_second)
        await wait_for(lambda: self.snd_bytes() >= target, timeout, f"{seconds} s more speaker output")
        return self.snd_bytes()


@pytest.fixture
async def start_satellite(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[ServiceProcess] = []

    async def start(*extra: str) -> Satellite:
        mic_fmt = AudioFormat(16000, 2, 1)
        mic = tmp_path / "mic.wav"
        write_wav(mic, silence(0.5, mic_fmt), mic_fmt)  # then silence: no wake word, ever
        snd = tmp_path / f"out{len(started)}.wav"
        service = ServiceProcess(
            "satellite", "--name", "robust", "--mic-file", str(mic), "--snd-file", str(snd), *extra
        )
        started.append(service.start())
        service.wait_listening(timeout=120)
        await service.wait_ready()
        await wait_for(lambda: snd.exists() and snd.stat().st_size > WAV_HEADER, 30, "the speaker file")
        return Satellite(service, snd)

    yield start
    for service in started:
        service.stop()


class Peer:
    """A client on one loopback address that reads everything and, like HA, pings every 2 s."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def connect(cls, port: int, source: str, *, ping: bool = True) -> Peer:
        peer = cls(await connect_from(port, source))
        peer._tasks.append(asyncio.create_task(peer._read()))
        if ping:
            peer._tasks.append(asyncio.create_task(peer._ping()))
        return peer

    async def send(self, event_type: str, data: dict[str, Any] | None = None, payload: bytes = b"") -> None:
        await self.client.send(event_type, data, payload)

    async def _read(self) -> None:
        try:
            while (event := await read_forever(self.client)) is not None:
                if event.type != "pong":
                    await self.events.put(event)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            await self.events.put(None)

    async def _ping(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await self.client.send("ping")
                await asyncio.sleep(2.0)

    async def next(self, event_type: str, timeout: float = 30.0) -> Event:
        """The next event of this type (others are skipped); fails if the connection closes."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                assert event is not None, f"connection closed while waiting for {event_type}"
                if event.type == event_type:
                    return event

    async def round_trip(self, timeout: float = 30.0) -> None:
        """Everything sent before has been handled: the satellite handles one connection's
        events in order, so a `describe` answered means the events before it were done."""
        await self.send("describe")
        await self.next("info", timeout)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.client.writer.transport.abort()


async def read_forever(client: RawClient) -> Event | None:
    from wyoming_core.client import CLIENT_LIMITS
    from wyoming_core.protocol import read_event

    return await read_event(client.reader, CLIENT_LIMITS)


def tone(seconds: float, fmt: AudioFormat = SND) -> bytes:
    """A loud 440 Hz tone, 16-bit mono."""
    t = np.arange(int(seconds * fmt.rate)) / fmt.rate
    return (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2").tobytes()


async def play(peer: Peer, pcm: bytes, data: dict[str, Any] = SND_DATA, chunk: int = 2048) -> None:
    await peer.send("audio-start", data)
    for start in range(0, len(pcm), chunk):
        await peer.send("audio-chunk", data, pcm[start : start + chunk])
    await peer.send("audio-stop")


# ---- formats ----------------------------------------------------------------------------------


BAD_FORMATS: list[dict[str, Any]] = [
    {"rate": 22050, "width": 0, "channels": 1},
    {"rate": 0, "width": 2, "channels": 1},
    {"rate": 22050, "width": 2, "channels": 0},
    {"rate": 22050, "width": 2, "channels": 1000},
    {"rate": 10**12, "width": 2, "channels": 1},
    {"rate": "fast", "width": 2, "channels": 1},
    {"rate": 22050, "width": 2},
]


async def test_bad_audio_formats_get_an_error_and_nothing_breaks(start_satellite: Start) -> None:
    sat = await start_satellite("--no-sounds")
    peer = await Peer.connect(sat.port, address(1))
    try:
        await peer.send("run-satellite")
        for fmt in BAD_FORMATS:
            # As the start of an announcement...
            await peer.send("audio-start", fmt)
            event = await peer.next("error", PROMPT)
            assert event.data["code"] == "unsupported-audio-format", event.data
            await peer.send("audio-chunk", fmt, b"\0" * 4096)
            await peer.send("audio-stop")
            await peer.next("played", PROMPT)  # HA's wait for the end of playback ends at once
            # ...and as a chunk of a well-formed one.
            await peer.send("audio-start", SND_DATA)
            await peer.send("audio-chunk", fmt, b"\0" * 4096)
            event = await peer.next("error", PROMPT)
            assert event.data["code"] == "unsupported-audio-format", event.data
            await peer.send("audio-stop")
            await peer.next("played", PROMPT)
        # Still the same connection, still served: a good announcement plays and is acknowledged.
        mark = sat.snd_bytes()
        await play(peer, tone(1.0))
        await peer.next("played", 30)
        assert sat.loud_seconds(mark) >= 0.8
        assert sat.service.alive()
    finally:
        await peer.close()


# ---- the playback queue -----------------------------------------------------------------------


async def test_one_huge_announcement_chunk_is_refused_before_it_costs_anything(
    start_satellite: Start,
) -> None:
    """4 MiB at 1000 Hz / 8 bit is 70 minutes of audio: 185 MB once converted for the speaker.
    Before: RSS 47 -> 224 MB and 3.4 s of CPU per 5 s, playing on after the client left."""
    sat = await start_satellite("--no-sounds")
    before = await settled(sat.rss_mb)
    peer = await Peer.connect(sat.port, address(1))
    data = {"rate": 1000, "width": 1, "channels": 1}
    try:
        await peer.send("run-satellite")
        await peer.send("audio-start", data)
        mark = sat.snd_bytes()
        cpu = sat.cpu_seconds()
        await peer.send("audio-chunk", data, bytes(range(256)) * (4 * MIB // 256))
        event = await peer.next("error", 30)
        assert event.data["code"] == "audio-too-long", event.data
        await peer.send("audio-stop")
        await peer.next("played", 30)  # the announcement is over: what fitted (nothing) was played
        await sat.wait_snd_grows(5.0)
        assert sat.cpu_seconds() - cpu < 2.0
        assert sat.loud_seconds(mark) == 0.0
        after = await settled(sat.rss_mb)
        assert after - before < 25, (before, after)
    finally:
        await peer.close()


async def test_the_queue_costs_the_same_per_tick_however_much_is_queued(start_satellite: Start) -> None:
    """The operator allows 80 minutes of queued audio; one 4 MiB chunk at 1000 Hz / 8 bit fills it.
    Playing it must not copy the rest of the queue every 20 ms (before: 3.4 s of CPU per 5 s)."""
    sat = await start_satellite("--no-sounds", "--max-playback-seconds", "5000")
    peer = await Peer.connect(sat.port, address(1))
    data = {"rate": 1000, "width": 1, "channels": 1}
    try:
        await peer.send("run-satellite")
        await peer.send("audio-start", data)
        mark = sat.snd_bytes()
        square = (b"\x10" * 2 + b"\xf0" * 2) * (4 * MIB // 4)  # loud at any rate
        await peer.send("audio-chunk", data, square)
        await peer.round_trip()  # converted and queued
        await wait_for(lambda: sat.loud_seconds(mark) > 0.5, 60, "the announcement plays")
        await sat.wait_snd_grows(1.0)
        cpu = sat.cpu_seconds()
        await sat.wait_snd_grows(5.0)
        used = sat.cpu_seconds() - cpu
        assert used < 1.5, f"{used:.2f} s of CPU for 5 s of playback"
    finally:
        await peer.close()


async def test_playback_stops_when_home_assistant_leaves(start_satellite: Start) -> None:
    sat = await start_satellite("--no-sounds")
    peer = await Peer.connect(sat.port, address(1))
    try:
        await peer.send("run-satellite")
        mark = sat.snd_bytes()
        await play(peer, tone(60.0), chunk=64 * 1024)
        await peer.round_trip()
        await wait_for(lambda: sat.loud_seconds(mark) > 0.5, 60, "the announcement plays")
    finally:
        await peer.close()
    left = sat.snd_bytes()
    # Give it a few seconds to notice, then the speaker must be quiet (before: 60 s of tone).
    end = await sat.wait_snd_grows(8.0)
    quiet_from = left + 3 * SND.bytes_per_second
    assert sat.loud_seconds(quiet_from, end) == 0.0
    assert sat.loud_seconds(left, quiet_from) < 3.0


async def test_a_long_reply_is_cut_at_the_bound_with_an_error(start_satellite: Start) -> None:
    """Audio beyond --max-playback-seconds is refused; what fitted plays and is acknowledged."""
    sat = await start_satellite("--no-sounds", "--max-playback-seconds", "4")
    peer = await Peer.connect(sat.port, address(1))
    try:
        await peer.send("run-satellite")
        mark = sat.snd_bytes()
        await play(peer, tone(10.0), chunk=22050)  # 0.5 s chunks
        event = await peer.next("error", 30)
        assert event.data["code"] == "audio-too-long", event.data
        await peer.next("played", 60)
        assert 2.0 <= sat.loud_seconds(mark) <= 5.0
        # The next announcement plays in full.
        mark = sat.snd_bytes()
        await play(peer, tone(1.0))
        await peer.next("played", 30)
        assert sat.loud_seconds(mark) >= 0.8
    finally:
        await peer.close()


async def test_a_reply_paced_in_real_time_is_cut_at_the_bound_too(start_satellite: Start) -> None:
    """A stream sent no faster than it plays never fills the queue: the bound is on the stream."""
    sat = await start_satellite("--no-sounds", "--max-playback-seconds", "3")
    peer = await Peer.connect(sat.port, address(1))
    try:
        await peer.send("run-satellite")
        mark = sat.snd_bytes()
        await peer.send("audio-start", SND_DATA)
        pcm = tone(0.5)
        refused: Event | None = None
        for _ in range(40):  # 20 s of audio at most, half a second at a time
            await peer.send("audio-chunk", SND_DATA, pcm)
            with contextlib.suppress(TimeoutError):
                refused = await peer.next("error", 0.5)  # also paces the stream
                break
        assert refused is not None and refused.data["code"] == "audio-too-long", refused
        await peer.send("audio-stop")
        await peer.next("played", 30)
        assert sat.loud_seconds(mark) <= 3.5
    finally:
        await peer.close()


# ---- who is the peer --------------------------------------------------------------------------


async def test_a_stranger_cannot_take_over_a_live_home_assistant(start_satellite: Start) -> None:
    sat = await start_satellite()
    ha = await Peer.connect(sat.port, address(1))
    stranger = await Peer.connect(sat.port, address(2))
    try:
        await ha.send("run-satellite")
        await ha.round_trip()
        await stranger.send("run-satellite")
        event = await _error_of(stranger)
        assert event.data["code"] == "satellite-in-use", event.data
        await wait_for(lambda: stranger.closed.is_set(), PROMPT, "the stranger is closed")
        # Home Assistant still has the satellite: its announcement plays and is acknowledged.
        assert not ha.closed.is_set()
        mark = sat.snd_bytes()
        await play(ha, tone(1.0))
        await ha.next("played", 30)
        assert sat.loud_seconds(mark) >= 0.8
    finally:
        await ha.close()
        await stranger.close()


async def _error_of(peer: Peer) -> Event:
    event = await peer.next("error", PROMPT)
    assert event.data.get("text"), event.data
    return event


async def test_events_from_other_connections_are_ignored(start_satellite: Start) -> None:
    """A timer, an announcement and an error from a connection that is not the active peer do
    nothing: the speaker stays quiet (the timer sound is on), while HA's own timer rings."""
    sat = await start_satellite()
    ha = await Peer.connect(sat.port, address(1))
    other = await Peer.connect(sat.port, address(1), ping=False)
    try:
        await ha.send("run-satellite")
        await ha.round_trip()
        mark = sat.snd_bytes()
        await other.send("timer-started", {"id": "x", "total_seconds": 1})
        await other.send("timer-finished", {"id": "x"})
        await play(other, tone(2.0))
        await other.send("error", {"text": "forged", "code": "stt-error"})
        await other.round_trip()
        await sat.wait_snd_grows(3.0)
        assert sat.loud_seconds(mark) == 0.0
        assert not ha.closed.is_set()
        await ha.send("timer-started", {"id": "t1", "total_seconds": 1})
        await ha.send("timer-finished", {"id": "t1"})
        await wait_for(lambda: sat.loud_seconds(mark) > 0.1, 30, "HA's timer rings")
    finally:
        await ha.close()
        await other.close()


async def test_a_quiet_peer_can_be_replaced_from_another_address(start_satellite: Start) -> None:
    """Home Assistant that vanished without a close (power cut) sends no pings: after a while a
    Home Assistant at another address may take the satellite."""
    sat = await start_satellite("--no-sounds")
    gone = await Peer.connect(sat.port, address(1), ping=False)
    try:
        await gone.send("run-satellite")
        await gone.round_trip()

        async def taken() -> bool:
            new = await Peer.connect(sat.port, address(3))
            try:
                await new.send("run-satellite")
                await new.round_trip()
                await play(new, tone(0.5))
                await new.next("played", 10)
                return True
            except (AssertionError, TimeoutError, ConnectionError):
                return False  # refused (satellite-in-use): the old peer is not quiet long enough yet
            finally:
                await new.close()

        await wait_for(taken, 60, "HA at another address takes over the quiet satellite", every=2.0)
        await wait_for(lambda: gone.closed.is_set(), PROMPT, "the quiet peer is closed")
    finally:
        await gone.close()


async def test_allow_list_decides_who_may_connect_and_so_take_over(start_satellite: Start) -> None:
    sat = await start_satellite("--no-sounds", "--allow", "127.0.0.1")
    ha = await Peer.connect(sat.port, address(1))
    try:
        await ha.send("run-satellite")
        await ha.round_trip()
        stranger = await connect_from(sat.port, address(2))
        try:
            with contextlib.suppress(ConnectionError, OSError):
                await stranger.send("run-satellite")
                await stranger.send("describe")
            assert await cut_off(stranger), "a client outside --allow was served"
        finally:
            stranger.writer.transport.abort()
        mark = sat.snd_bytes()
        await play(ha, tone(1.0))
        await ha.next("played", 30)
        assert sat.loud_seconds(mark) >= 0.8
        assert not ha.closed.is_set()
    finally:
        await ha.close()


async def cut_off(client: RawClient) -> bool:
    """True if the satellite closed the connection (a close or a reset) without a word."""
    try:
        data = await asyncio.wait_for(client.reader.read(65536), PROMPT)
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return data == b""
