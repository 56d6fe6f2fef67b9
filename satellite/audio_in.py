"""Microphone input: a WAV file at real-time pace, a command's stdout, or pyaudio.

Every source is turned into fixed-size chunks of 16 kHz 16-bit mono, the format the wake
word, the VAD and STT all use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from wyoming_core.audio import AudioFormat, StreamConverter, read_wav

from .settings import MIC_FORMAT, AudioSettings
from .soundcard import MIC_HINT, open_stream, portaudio

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class MicChunk:
    audio: bytes  # 16 kHz 16-bit mono
    captured_at: float  # monotonic time the chunk's last sample was heard


class MicSource(ABC):
    format: AudioFormat

    async def open(self) -> None:
        pass

    @abstractmethod
    async def read(self, nbytes: int) -> bytes:
        """Up to nbytes of raw audio; b"" at the end of the stream."""

    async def close(self) -> None:
        pass


class FileMic(MicSource):
    """A WAV file played as if it were a microphone: real-time pace, then silence."""

    def __init__(self, path: Any, loop: bool = False) -> None:
        self.path = path
        self.loop = loop
        self.audio = b""
        self.format = MIC_FORMAT
        self._pos = 0
        self._start = 0.0
        self._sent = 0
        self.ended = asyncio.Event()

    async def open(self) -> None:
        self.audio, self.format = await asyncio.to_thread(read_wav, self.path)
        self._start = time.monotonic()
        # Lets a benchmark line the file's timeline up with the satellite's (one monotonic clock).
        _LOGGER.info("mic-file %s started at monotonic %.3f", self.path, self._start)

    async def read(self, nbytes: int) -> bytes:
        nbytes -= nbytes % self.format.frame_bytes
        # Sleep until this chunk "has been heard": an absolute schedule, so no drift.
        due = self._start + (self._sent + nbytes) / self.format.bytes_per_second
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._sent += nbytes
        if self._pos >= len(self.audio):
            if self.loop and self.audio:
                self._pos = 0
            else:
                self.ended.set()
                return b"\0" * nbytes
        data = self.audio[self._pos : self._pos + nbytes]
        self._pos += len(data)
        return data + b"\0" * (nbytes - len(data))


class CommandMic(MicSource):
    """Raw PCM from a command's stdout, e.g. `arecord -r 16000 -c 1 -f S16_LE -t raw`."""

    def __init__(self, command: str, fmt: AudioFormat) -> None:
        self.command = command
        self.format = fmt
        self._proc: asyncio.subprocess.Process | None = None

    async def open(self) -> None:
        argv = shlex.split(self.command)
        self._proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)

    async def read(self, nbytes: int) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            return await self._proc.stdout.readexactly(nbytes)
        except asyncio.IncompleteReadError as err:
            return err.partial

    async def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                await self._proc.wait()


class PyAudioMic(MicSource):
    """A sound card through pyaudio (optional dependency, imported only here)."""

    def __init__(self, device: str, fmt: AudioFormat) -> None:
        self.device = device
        self.format = fmt
        self._pa: Any = None
        self._stream: Any = None

    async def open(self) -> None:
        self._pa = portaudio()
        index = None if self.device == "default" else find_device(self._pa, self.device, "maxInputChannels")
        self._stream = open_stream(
            "microphone",
            MIC_HINT,
            lambda: self._pa.open(
                rate=self.format.rate,
                channels=self.format.channels,
                format=self._pa.get_format_from_width(self.format.width),
                input=True,
                input_device_index=index,
            ),
        )

    async def read(self, nbytes: int) -> bytes:
        frames = nbytes // self.format.frame_bytes
        data: bytes = await asyncio.to_thread(self._stream.read, frames, False)
        return data

    async def close(self) -> None:
        if self._stream is not None:
            await asyncio.to_thread(self._stream.close)
        if self._pa is not None:
            self._pa.terminate()


def find_device(pa: Any, wanted: str, channels_key: str) -> int | None:
    """A device by index or by (part of its) name."""
    if wanted.isdigit():
        return int(wanted)
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        if info.get(channels_key, 0) > 0 and wanted.lower() in str(info.get("name", "")).lower():
            return index
    raise SystemExit(f"No audio device matching {wanted!r}; see --list-devices")


def list_devices() -> str:
    try:
        pa = portaudio()
    except SystemExit as err:  # pyaudio is not installed
        return str(err)
    try:
        lines = []
        for index in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(index)
            kinds = [k for k, key in (("in", "maxInputChannels"), ("out", "maxOutputChannels")) if info[key]]
            lines.append(f"{index}: {info['name']} ({'/'.join(kinds)}, {int(info['defaultSampleRate'])} Hz)")
        return "\n".join(lines) or "No sound devices found"
    finally:
        pa.terminate()


def open_mic(settings: AudioSettings) -> MicSource:
    if settings.mic_file is not None:
        return FileMic(settings.mic_file, loop=settings.mic_file_loop)
    if settings.mic_command:
        return CommandMic(settings.mic_command, settings.mic_format)
    return PyAudioMic(settings.mic_device or "default", settings.mic_format)


async def mic_chunks(source: MicSource, chunk_seconds: float) -> AsyncIterator[MicChunk]:
    """Fixed-size 16 kHz mono chunks with the time each was captured."""
    converter = StreamConverter(target=MIC_FORMAT)
    out_bytes = int(MIC_FORMAT.rate * chunk_seconds) * MIC_FORMAT.frame_bytes
    in_bytes = int(source.format.rate * chunk_seconds) * source.format.frame_bytes
    pending = b""
    while True:
        raw = await source.read(in_bytes)
        if not raw:
            _LOGGER.warning("Microphone stream ended")
            return
        pending += converter.convert(raw, source.format)
        now = time.monotonic()
        while len(pending) >= out_bytes:
            chunk, pending = pending[:out_bytes], pending[out_bytes:]
            yield MicChunk(chunk, now)
