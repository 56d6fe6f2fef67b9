"""Satellite test helpers: mic WAVs from piper speech, and the satellite as a subprocess."""

from __future__ import annotations

import asyncio
import functools
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


def sound_runs(path: Path, gap: float = 0.5, level: int = 300) -> list[float]:
    """Seconds of each stretch of sound in a --snd-file (the player writes silence in real
    time between sounds); stretches less than `gap` apart count as one."""
    pcm, fmt = read_wav(path)
    assert (fmt.width, fmt.channels) == (2, 1), fmt
    samples = np.frombuffer(pcm[: len(pcm) // fmt.frame_bytes * fmt.frame_bytes], dtype=np.int16)
    frame = fmt.rate // 100  # 10 ms blocks
    blocks = samples[: len(samples) // frame * frame].reshape(-1, frame)
    loud = np.flatnonzero(np.abs(blocks.astype(np.int32)).max(axis=1) >= level)
    runs: list[float] = []
    if loud.size:
        start = prev = int(loud[0])
        for index in map(int, loud[1:]):
            if (index - prev) / 100 > gap:
                runs.append((prev + 1 - start) / 100)
                start = index
            prev = index
        runs.append((prev + 1 - start) / 100)
    return runs


def barge_in_ms(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"barge_in_ms=([0-9.]+)", log)]
