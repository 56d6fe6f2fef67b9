"""The names Home Assistant exposes to Assist, as hotwords for the final decode.

Whisper spells "Tradfri", "Moccamaster" or "Ottilie's room" however it likes unless it has
seen them: given as hotwords (a prompt before the audio's text), the names come out as the
user wrote them in Home Assistant, which is what Home Assistant's sentence matching needs.
They are fetched in the background (`GetLiveContext` over HA's MCP server) and refreshed
every minute; a decode only reads the last text, it never waits for Home Assistant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from wyoming_core.ha import ExposedEntity, HomeError, HomeLink
from wyoming_core.ha.link import LIVE_CONTEXT

_LOGGER = logging.getLogger(__name__)

# faster-whisper keeps at most 223 prompt tokens; names run at about 3-4 characters a token,
# so 600 characters stay under that, and a short prompt costs the decoder little.
MAX_CHARS = 600


def names_of(entities: Iterable[ExposedEntity]) -> list[str]:
    """Entity names first, then areas, then aliases (what is cut when there are too many),
    each once (case does not make a new name)."""
    entities = list(entities)
    ordered = [e.name for e in entities]
    ordered += [area for e in entities for area in e.areas[:1]]
    ordered += [alias for e in entities for alias in (*e.names[1:], *e.areas[1:])]
    seen: dict[str, str] = {}
    for name in ordered:
        name = " ".join(name.split())
        if name and name.casefold() not in seen:
            seen[name.casefold()] = name
    return list(seen.values())


def hotwords_text(names: list[str], max_chars: int = MAX_CHARS) -> tuple[str | None, int]:
    """("Kitchen Lights, Hue Go, Ottilie's Room.", how many names it holds)."""
    kept: list[str] = []
    length = 0
    for name in names:
        if length + len(name) + 2 > max_chars:
            break
        kept.append(name)
        length += len(name) + 2
    return (", ".join(kept) + "." if kept else None), len(kept)


class HomeNames:
    """Keeps `hotwords` up to date from Home Assistant; `start()` once, `close()` on shutdown."""

    def __init__(self, link: HomeLink, refresh_seconds: float = 60.0) -> None:
        self.link = link
        self.refresh_seconds = refresh_seconds
        # What the final decode is given (None: nothing known yet, decode as without HA).
        self.hotwords: str | None = None
        # How many names `hotwords` holds (shown by describe).
        self.count = 0
        self._names: list[str] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.link.start()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="home-assistant-names")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.link.close()

    async def _run(self) -> None:
        while True:
            # The link logs (once) why Home Assistant cannot be reached and keeps retrying.
            if await self.link.wait_connected(self.refresh_seconds):
                await self.refresh()
                await asyncio.sleep(self.refresh_seconds)

    async def refresh(self) -> None:
        """Ask Home Assistant once; on failure the names known so far stay in use."""
        try:
            entities = await self.link.entities(max_age=self.refresh_seconds / 2)
        except HomeError as err:
            _LOGGER.debug("Names not refreshed: %s", err.cause)
            return
        except Exception as err:  # a bad answer must not end the refreshes
            _LOGGER.warning("Home Assistant's names could not be read: %s", err)
            return
        names = names_of(entities)
        if names == self._names:
            return
        first = self._names is None
        self._names = names
        self.hotwords, self.count = hotwords_text(names)
        if not names and self.link.tool(LIVE_CONTEXT) is None:
            _LOGGER.warning(
                "Home Assistant at %s does not list its devices (no %s tool in its MCP server): "
                "transcripts are not biased; Home Assistant 2025.4 or later has it",
                self.link.url,
                LIVE_CONTEXT,
            )
        elif not names:
            if first:
                _LOGGER.info(
                    "Home Assistant at %s exposes no entities to Assist: transcripts are not biased "
                    "(expose devices in Settings -> Voice assistants -> Expose)",
                    self.link.url,
                )
            else:
                _LOGGER.info("Home Assistant exposes no entities any more: transcripts are not biased")
            return
        cut = (
            f" (the first {self.count} of {len(names)}: the prompt is kept short)"
            if self.count < len(names)
            else ""
        )
        _LOGGER.info("Listening for %d names from Home Assistant%s", self.count, cut)
        _LOGGER.debug("Names from Home Assistant: %s", self.hotwords)
