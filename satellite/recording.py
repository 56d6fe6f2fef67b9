"""--debug-recording-dir: what the mic heard during each turn, one WAV per turn."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from wyoming_core.audio import write_wav
from wyoming_core.models import make_private_dir

from .settings import MIC_FORMAT

_LOGGER = logging.getLogger(__name__)


class TurnRecorder:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._parts: list[bytes] | None = None
        self._count = 0

    @property
    def active(self) -> bool:
        return self._parts is not None

    def begin(self, preroll: bytes) -> None:
        if self.directory is not None:
            self._parts = [preroll]

    def add(self, chunk: bytes) -> None:
        if self._parts is not None:
            self._parts.append(chunk)

    async def finish(self, label: str) -> Path | None:
        if self._parts is None or self.directory is None:
            return None
        audio, self._parts = b"".join(self._parts), None
        self._count += 1
        path = self.directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{self._count:03d}-{label}.wav"
        try:
            await asyncio.to_thread(make_private_dir, self.directory)  # what people said
            await asyncio.to_thread(write_wav, path, audio, MIC_FORMAT)
        except OSError as err:
            _LOGGER.warning("Cannot save the debug recording %s: %s", path, err)
            return None
        _LOGGER.info("Saved what the mic heard to %s", path)
        return path
