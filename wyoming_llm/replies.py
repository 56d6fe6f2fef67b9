"""What the assistant says about the home: HA's own response templates, and failures in plain words.

Confirmations come from the response templates in `home-assistant-intents` (the ones Home
Assistant's built-in agent speaks, in every language it has), rendered in a sandbox with the
entities the action really changed. Failure sentences are English for now.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_LOGGER = logging.getLogger(__name__)

NOT_CONNECTED = (
    "I can't control devices: I'm not connected to Home Assistant. "
    "Start the conversation service with a Home Assistant URL and token."
)
UNREACHABLE = "I can't reach Home Assistant right now, so nothing was changed."
UNAUTHORIZED = "Home Assistant rejected my access token, so nothing was changed. Please check the token."
NOT_FOUND = "Home Assistant's MCP server integration isn't set up, so I can't control devices."
NOTHING_DONE = "I didn't change anything: no device action was carried out."
TOO_MANY_CALLS = "I stopped after too many steps, so that may be only partly done."

_VERBS = {
    "HassTurnOn": "turn on",
    "HassTurnOff": "turn off",
    "HassLightSet": "set",
}
# HA's MatchFailedError says why nothing matched; the user hears which name was unknown.
_REASON = re.compile(r"MatchFailedReason\.(\w+)")


@dataclass(frozen=True)
class StateView:
    """The `state` object HA's templates read (`state.domain`, `state.state_with_unit`, ...)."""

    name: str
    domain: str
    state: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def state_with_unit(self) -> str:
        unit = self.attributes.get("unit_of_measurement")
        return f"{self.state} {unit}" if unit else self.state


def unknown_device(name: str) -> str:
    return f"I don't know a device called {name}."


def failure(intent: str, target: str | None, detail: str) -> str:
    """A failed action, said plainly: never HA's exception text."""
    reason = _REASON.search(detail)
    if reason and target:
        kind = reason.group(1)
        if kind in ("NAME", "INVALID_AREA", "AREA", "ASSISTANT", "DOMAIN", "DEVICE_CLASS"):
            what = "an area" if "AREA" in kind else "a device"
            return f"I don't know {what} called {target}."
        if kind == "STATE":
            return f"{target[:1].upper()}{target[1:]} is already in that state."
    verb = _VERBS.get(intent, "do that with")
    where = f" {target}" if target else ""
    return f"I couldn't {verb}{where}: Home Assistant reported an error."


class Responses:
    """Renders the response templates of one language (compiled once, kept per instance)."""

    def __init__(self, templates: dict[str, Any]) -> None:
        self._templates = templates
        self._env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self._compiled: dict[tuple[str, str], Any] = {}

    def render(
        self,
        intent: str,
        key: str,
        *,
        slots: dict[str, Any],
        state: StateView | None,
        matched: list[StateView],
        unmatched: list[StateView] | None = None,
    ) -> str | None:
        sources = self._templates.get(intent) or {}
        source = sources.get(key) or sources.get("default")
        if not isinstance(source, str):
            return None
        compiled = self._compiled.get((intent, key))
        try:
            if compiled is None:
                compiled = self._env.from_string(source)
                self._compiled[(intent, key)] = compiled
            text = compiled.render(
                slots=slots, state=state, query={"matched": matched, "unmatched": unmatched or []}
            )
        except (TemplateError, TypeError, ValueError, AttributeError) as err:
            _LOGGER.debug("Response %s/%s could not be rendered: %s", intent, key, err)
            return None
        text = " ".join(text.split())
        if not text:
            return None
        return text if text[-1] in ".!?" else text + "."
