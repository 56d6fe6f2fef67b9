"""Audio conversion to 16 kHz 16-bit mono from any rate, width and channel count."""

from __future__ import annotations

import numpy as np
import pytest

from wyoming_core.audio import AudioFormat, AudioFormatError, StreamConverter, check_format


def _tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def _encode(samples: np.ndarray, width: int, channels: int) -> bytes:
    stacked = np.repeat(samples[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        return (stacked * 127 + 128).astype(np.uint8).tobytes()
    if width == 2:
        return (stacked * 32767).astype("<i2").tobytes()
    if width == 4:
        return (stacked * 2147483647).astype("<i4").tobytes()
    ints = (stacked * 8388607).astype("<i4")
    return b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)


@pytest.mark.parametrize(
    ("rate", "width", "channels"),
    [(16000, 2, 1), (44100, 2, 2), (48000, 4, 1), (22050, 1, 1), (8000, 3, 2), (48000, 2, 6)],
)
def test_converts_to_16k_mono(rate: int, width: int, channels: int) -> None:
    source = AudioFormat(rate, width, channels)
    raw = _encode(_tone(rate, 1.0), width, channels)
    converter = StreamConverter()
    # Cut into odd-sized pieces: partial frames must carry over between chunks.
    out = b"".join(converter.convert(raw[i : i + 1001], source) for i in range(0, len(raw), 1001))
    samples = np.frombuffer(out, dtype="<i2").astype(np.float32) / 32768
    assert abs(len(samples) - 16000) < 50
    # The tone survives: the dominant frequency is still 440 Hz.
    spectrum = np.abs(np.fft.rfft(samples))
    peak = np.argmax(spectrum) * 16000 / len(samples)
    assert abs(peak - 440) < 5
    assert 0.3 < np.max(np.abs(samples)) < 0.6


@pytest.mark.parametrize(
    ("rate", "width", "channels"),
    [(16000, 5, 1), (16000, 0, 1), (0, 2, 1), (16000, 2, 0), ("16000", 2, 1), (16000, True, 1)],
)
def test_bad_formats_are_refused(rate: object, width: object, channels: object) -> None:
    with pytest.raises(AudioFormatError):
        check_format(rate, width, channels)
