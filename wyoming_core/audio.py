"""Audio conversion and WAV helpers shared by all services."""

from __future__ import annotations

import io
import warnings
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:  # audioop is gone in Python 3.13; wyoming ships a pure-Python copy.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
except ImportError:  # pragma: no cover
    from wyoming import pyaudioop as audioop  # type: ignore[no-redef]

STT_RATE = 16000
STT_WIDTH = 2
STT_CHANNELS = 1

MAX_RATE = 384_000
MAX_CHANNELS = 16
SUPPORTED_WIDTHS = (1, 2, 3, 4)


class AudioFormatError(ValueError):
    """Audio whose format cannot be converted."""


@dataclass(frozen=True)
class AudioFormat:
    rate: int
    width: int
    channels: int

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.width * self.channels

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


def check_format(rate: Any, width: Any, channels: Any) -> AudioFormat:
    """Validate an audio format from a client, with a message a user understands."""
    for name, value in (("rate", rate), ("width", width), ("channels", channels)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise AudioFormatError(f"Audio {name} must be an integer, got {value!r}")
    if width not in SUPPORTED_WIDTHS:
        raise AudioFormatError(
            f"Unsupported sample width {width} bytes; supported: {', '.join(map(str, SUPPORTED_WIDTHS))}"
        )
    if not 1000 <= rate <= MAX_RATE:
        raise AudioFormatError(f"Unsupported sample rate {rate} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"Unsupported channel count {channels}")
    return AudioFormat(rate, width, channels)


def _to_int16(audio: bytes, width: int) -> np.ndarray:
    if width == 2:
        return np.frombuffer(audio, dtype="<i2")
    if width == 1:  # 8-bit WAV is unsigned
        return ((np.frombuffer(audio, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 3:
        raw = np.frombuffer(audio, dtype=np.uint8).reshape(-1, 3)
        # top two bytes of little-endian 24-bit samples = 16-bit value
        return (raw[:, 1].astype(np.uint16) | (raw[:, 2].astype(np.uint16) << 8)).view(np.int16)
    return (np.frombuffer(audio, dtype="<i4") >> 16).astype(np.int16)


@dataclass
class StreamConverter:
    """Converts a stream of PCM chunks to one target format, keeping resampler state.

    Partial frames at a chunk's end are kept for the next chunk, so clients may
    cut audio anywhere.
    """

    target: AudioFormat = AudioFormat(STT_RATE, STT_WIDTH, STT_CHANNELS)
    _state: Any = None
    _remainder: bytes = b""
    _source: AudioFormat | None = field(default=None)

    def convert(self, audio: bytes, source: AudioFormat) -> bytes:
        if source != self._source:
            self._source, self._state, self._remainder = source, None, b""
        data = self._remainder + audio
        usable = len(data) - len(data) % source.frame_bytes
        data, self._remainder = data[:usable], data[usable:]
        if not data:
            return b""
        if source == self.target:
            return data
        samples = _to_int16(data, source.width).reshape(-1, source.channels)
        if self.target.channels == 1:
            mono = samples.mean(axis=1).astype(np.int16) if source.channels > 1 else samples[:, 0]
            frames = np.ascontiguousarray(mono)
        else:
            first = samples[:, :1] if source.channels == 1 else samples[:, : self.target.channels]
            frames = np.ascontiguousarray(np.repeat(first, self.target.channels // first.shape[1], axis=1))
        pcm = frames.tobytes()
        if source.rate != self.target.rate:
            pcm, self._state = audioop.ratecv(
                pcm, 2, self.target.channels, source.rate, self.target.rate, self._state
            )
        if self.target.width != 2:
            pcm = audioop.lin2lin(pcm, 2, self.target.width)
            if self.target.width == 1:
                pcm = audioop.bias(pcm, 1, 128)
        return pcm


def pcm16_to_float(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def read_wav(source: str | Path | bytes) -> tuple[bytes, AudioFormat]:
    """Read a WAV file (path or bytes) -> (PCM, format)."""
    with wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb") as handle:
        fmt = AudioFormat(handle.getframerate(), handle.getsampwidth(), handle.getnchannels())
        return handle.readframes(handle.getnframes()), fmt


def write_wav(target: str | Path | None, audio: bytes, fmt: AudioFormat) -> bytes:
    """Write PCM as WAV to `target` (or just return the WAV bytes)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setframerate(fmt.rate)
        handle.setsampwidth(fmt.width)
        handle.setnchannels(fmt.channels)
        handle.writeframes(audio)
    data = buffer.getvalue()
    if target is not None:
        Path(target).write_bytes(data)
    return data


def to_stt_format(audio: bytes, fmt: AudioFormat) -> bytes:
    """One-shot conversion of a whole clip to 16 kHz 16-bit mono."""
    converter = StreamConverter()
    return converter.convert(audio, fmt)


def duration(audio: bytes, fmt: AudioFormat) -> float:
    return len(audio) / fmt.bytes_per_second
