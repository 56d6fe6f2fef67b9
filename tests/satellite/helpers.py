"""Satellite test helpers: mic WAVs from piper speech, and the satellite as a subprocess."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.support.services import ROOT
from tests.support.speech import piper_speech
from wyoming_core.audio import AudioFormat, read_wav, to_stt_format, write_wav

MIC = AudioFormat(16000, 2, 1)
WAKE_REQUEST = "Hey Jarvis, what time is it?"


@functools.cache
def speech(text: str) -> bytes:
    """Piper speech of `text`, 16 kHz mono."""
    pcm, fmt = piper_speech(text)
    return to_stt_format(pcm, fmt)


def silence(seconds: float) -> bytes:
    return b"\0" * (int(MIC.rate * seconds) * MIC.frame_bytes)


def mic_wav(path: Path, *parts: str | float) -> Path:
    """A mic recording: text parts are spoken, numbers are seconds of silence."""
    audio = b"".join(silence(p) if isinstance(p, float | int) else speech(p) for p in parts)
    write_wav(path, audio, MIC)
    return path


def snd_audio(path: Path) -> tuple[bytes, AudioFormat]:
    return read_wav(path)


class SatelliteRun:
    """`python -m satellite ARGS`, log in a file; stopped with SIGTERM."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.log_path = Path(tempfile.mkstemp(prefix="satellite-", suffix=".log")[1])
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> SatelliteRun:
        log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - owned by the process
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "satellite",
            *self.args,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for(self, pattern: str, timeout: float = 60.0, count: int = 1) -> str:
        """Wait until the log matches `pattern` (regex) `count` times; returns the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if len(re.findall(pattern, text)) >= count:
                return text
            if self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"satellite exited ({self.proc.returncode}) before {pattern!r}:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout} s:\n{text}")
            await asyncio.sleep(0.1)

    async def wait_exit(self, timeout: float = 120.0) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"satellite did not exit within {timeout} s:\n{self.log()}") from None

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def sound_spans(pcm: bytes, rate: int, gap: float = 0.5, level: int = 300) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of sound in 16-bit mono `pcm`; stretches less
    than `gap` apart count as one."""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype=np.int16)
    frame = rate // 100  # 10 ms blocks
    blocks = samples[: len(samples) // frame * frame].reshape(-1, frame)
    loud = np.flatnonzero(np.abs(blocks.astype(np.int32)).max(axis=1) >= level)
    spans: list[tuple[float, float]] = []
    if loud.size:
        start = prev = int(loud[0])
        for index in map(int, loud[1:]):
            if (index - prev) / 100 > gap:
                spans.append((start / 100, (prev + 1) / 100))
                start = index
            prev = index
        spans.append((start / 100, (prev + 1) / 100))
    return spans


def sound_runs(path: Path, gap: float = 0.5, level: int = 300) -> list[float]:
    """Seconds of each stretch of sound in a --snd-file (the player writes silence in real
    time between sounds); stretches less than `gap` apart count as one."""
    pcm, fmt = read_wav(path)
    assert (fmt.width, fmt.channels) == (2, 1), fmt
    return [end - start for start, end in sound_spans(pcm, fmt.rate, gap, level)]


def snd_file_pcm(path: Path) -> bytes:
    """The audio a --snd-file holds so far (its header may lag behind while it is written)."""
    return path.read_bytes()[44:] if path.exists() else b""


def played_and_quiet(pcm: bytes, rate: int = 22050, quiet: float = 0.6) -> int:
    """How many stretches of sound have been played and ended (`quiet` s of silence since)."""
    spans = sound_spans(pcm, rate)
    seconds = len(pcm) / (2 * rate)
    return sum(1 for _start, end in spans if seconds - end >= quiet)


@functools.cache
def feedback_sound(kind: str) -> bytes:
    """The satellite's default `kind` sound (wake, done, error, timer) as it plays it."""
    from satellite.settings import SoundSettings
    from satellite.sounds import load_sounds

    return load_sounds(SoundSettings(), AudioFormat(22050, 2, 1)).get(kind)


def times_played(pcm: bytes, kind: str) -> int:
    """How often the default `kind` sound is in `pcm`, sample for sample (16-bit mono 22.05 kHz)."""
    sound = feedback_sound(kind)
    return sum(1 for index in _find_all(pcm, sound) if index % 2 == 0)


def _find_all(data: bytes, part: bytes) -> list[int]:
    found, start = [], data.find(part)
    while start != -1:
        found.append(start)
        start = data.find(part, start + len(part))
    return found


class GatedMic:
    """`--mic-command` for tests/satellite/gated_mic.py: says `first` at once, then each later
    part when the test opens its gate (`open(n)`), and notes when each began (`said_at(n)`)."""

    def __init__(self, folder: Path, first: bytes, *later: bytes) -> None:
        assert later, "a gated mic needs a part after a gate"
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.times = folder / "mic-times.json"
        parts = [folder / f"part-{n}.raw" for n in range(len(later) + 1)]
        for path, pcm in zip(parts, (first, *later), strict=True):
            path.write_bytes(pcm)
        args = [str(parts[0]), str(parts[1]), str(self._gate(1)), str(self.times)]
        for n in range(2, len(parts)):
            args += ["--then", str(self._gate(n)), str(parts[n])]
        self.args = args

    def _gate(self, n: int) -> Path:
        return self.folder / f"go-{n}"

    def command(self) -> str:
        return " ".join([sys.executable, "-m", "tests.satellite.gated_mic", *self.args])

    def open(self, n: int = 1) -> None:
        """Let part `n` (1: the one after `first`) be said."""
        self._gate(n).touch()

    def said_at(self, n: int = 1) -> float | None:
        """Monotonic time part `n` began to enter the microphone (None: not yet)."""
        if not self.times.exists():
            return None
        noted = json.loads(self.times.read_text())
        if n == 1:
            return noted.get("second_at")
        later = noted.get("then_at", [])
        return float(later[n - 2]) if len(later) >= n - 1 else None


class TimedSpeaker:
    """`--snd-command` for tests/satellite/timed_speaker.py: what was played, on the monotonic clock."""

    def __init__(self, path: Path, rate: int = 22050) -> None:
        self.path, self.rate = path, rate
        self.stamp = path.with_name(path.name + ".json")

    def command(self) -> str:
        return f"{sys.executable} -m tests.satellite.timed_speaker {self.path} {self.rate}"

    def pcm(self) -> bytes:
        return self.path.read_bytes() if self.path.exists() else b""

    def started_at(self) -> float | None:
        """Monotonic time the stream's first sample sounded (None before the first read)."""
        return float(json.loads(self.stamp.read_text())["started_at"]) if self.stamp.exists() else None

    def spans(self, gap: float = 0.5) -> list[tuple[float, float]]:
        """(start, end) monotonic times of each stretch of sound played so far."""
        started = self.started_at()
        if started is None:
            return []
        return [(started + a, started + b) for a, b in sound_spans(self.pcm(), self.rate, gap)]

    def audio(self, start: float, end: float) -> bytes:
        """What was played from monotonic time `start` to `end`."""
        started = self.started_at() or 0.0
        begin, stop = (max(0, int((t - started) * self.rate)) * 2 for t in (start, end))
        return self.pcm()[begin:stop]

    def sounding_for(self) -> float:
        """Seconds the sound playing right now has been going (0 when quiet)."""
        spans = self.spans()
        if not spans or time.monotonic() - spans[-1][1] > 0.3:
            return 0.0
        return spans[-1][1] - spans[-1][0]


def barge_in_ms(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"barge_in_ms=([0-9.]+)", log)]
