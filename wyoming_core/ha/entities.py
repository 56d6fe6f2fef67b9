"""What Home Assistant's `GetLiveContext` tool says about the exposed entities, as data."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import yaml

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExposedEntity:
    # The entity's name first, then its aliases.
    names: tuple[str, ...]
    domain: str
    state: str | None = None
    # The area's name first, then its aliases.
    areas: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def area(self) -> str | None:
        return self.areas[0] if self.areas else None


def _split(value: Any) -> tuple[str, ...]:
    """HA joins names and aliases with ", "."""
    if not isinstance(value, str):
        return ()
    return tuple(part.strip() for part in value.split(", ") if part.strip())


def parse_live_context(text: str) -> list[ExposedEntity]:
    """The YAML list after GetLiveContext's heading line; anything unreadable is skipped."""
    body = text.split("\n", 1)[1] if not text.lstrip().startswith("-") and "\n" in text else text
    try:
        items = yaml.safe_load(body)
    except yaml.YAMLError as err:
        _LOGGER.warning("Home Assistant's live context could not be read: %s", err)
        return []
    entities = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        names = _split(item.get("names"))
        domain = item.get("domain")
        if not names or not isinstance(domain, str):
            continue
        state = item.get("state")
        attributes = item.get("attributes")
        entities.append(
            ExposedEntity(
                names=names,
                domain=domain,
                state=None if state is None else str(state),
                areas=_split(item.get("areas")),
                attributes=attributes if isinstance(attributes, dict) else {},
            )
        )
    return entities
