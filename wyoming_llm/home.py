"""The home, as the conversation service sees it: local commands, the model's tools, honest replies.

Every action goes through Home Assistant's MCP tools (`HomeLink`), whether a local sentence
matched it or the model asked for it; what the user hears about an action comes from the
result HA returned, never from the model's say-so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wyoming_core.ha import ExposedEntity, HomeError, HomeLink
from wyoming_core.ha.link import LIVE_CONTEXT, ToolInfo, ToolResult
from wyoming_core.logs import clip

from . import intents, replies
from .intents import Command, LanguageData
from .replies import Responses, StateView

_LOGGER = logging.getLogger(__name__)

# How old the entity list may be for the local path; a command that names something unknown
# refreshes it once (a device added a moment ago is found).
ENTITY_MAX_AGE = 30.0
ENTITY_RECHECK_AGE = 2.0
# Tool descriptions and long enums cost prompt tokens on every turn; the model needs little.
MAX_DESCRIPTION = 160
MAX_ENUM = 12
# Tools the model calls often that change nothing (their results are not actions).
READ_ONLY_TOOLS = (LIVE_CONTEXT, "GetDateTime")

# A sentence that says a device action was carried out.
_CLAIM = re.compile(
    r"\b(?:turned|switched|set|dimmed|brightened|opened|closed|locked|unlocked|activated|started)\b"
    r"|\b(?:is|are)\s+now\s+(?:on|off|open|closed|locked|unlocked|at|set)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Spoken:
    text: str
    handled: bool
    # A failure code for logs and tests (None when it went well).
    reason: str | None = None


@dataclass(frozen=True)
class ToolOutcome:
    # What goes back to the model as the tool's result.
    content: str
    # The tool changed something in the home, by HA's own result.
    acted: bool
    ok: bool


def claims_action(sentence: str) -> bool:
    return bool(_CLAIM.search(sentence))


def home_error_reply(err: HomeError) -> str:
    return {
        "unauthorized": replies.UNAUTHORIZED,
        "not-found": replies.NOT_FOUND,
    }.get(err.kind, replies.UNREACHABLE)


def tool_arguments(slots: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Slot values in the shapes the tool's schema asks for (lists, whole numbers)."""
    properties = schema.get("properties") or {}
    arguments: dict[str, Any] = {}
    for key, value in slots.items():
        spec = properties.get(key)
        if not isinstance(spec, dict) or value in (None, ""):
            continue
        if spec.get("type") == "array" and not isinstance(value, list):
            value = [value]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        arguments[key] = value
    return arguments


def _compact(schema: Any) -> Any:
    """The schema without long descriptions and long enums (the names alone stay meaningful)."""
    if isinstance(schema, list):
        return [_compact(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            out[key] = value[:MAX_DESCRIPTION]
        elif key == "enum" and isinstance(value, list) and len(value) > MAX_ENUM:
            continue
        else:
            out[key] = _compact(value)
    return out


def ollama_tool(tool: ToolInfo) -> dict[str, Any]:
    description = tool.description.split(". ")[0][:MAX_DESCRIPTION]
    parameters = _compact(tool.schema) or {"type": "object", "properties": {}}
    parameters.setdefault("type", "object")
    return {
        "type": "function",
        "function": {"name": tool.name, "description": description, "parameters": parameters},
    }


def _targets(result: ToolResult, key: str) -> list[StateView]:
    data = result.data.get("data") if isinstance(result.data, dict) else None
    views = []
    for target in (data or {}).get(key) or []:
        if isinstance(target, dict) and isinstance(target.get("name"), str):
            entity_id = str(target.get("id") or "")
            domain = entity_id.split(".", 1)[0] if "." in entity_id else str(target.get("type") or "")
            views.append(StateView(name=target["name"], domain=domain))
    return views


def _view(entity: ExposedEntity) -> StateView:
    return StateView(entity.name, entity.domain, entity.state or "", dict(entity.attributes))


class Home:
    """Shared by all connections of the service. `link` is None without `--ha-url`."""

    def __init__(self, link: HomeLink | None, default_language: str) -> None:
        self.link = link
        self.default_language = default_language
        self._languages: dict[str, LanguageData | None] = {}
        self._responses: dict[str, Responses] = {}
        # Slot lists of the last entity list seen (rebuilt only when it changes).
        self._lists: tuple[Sequence[ExposedEntity], dict[str, Any]] | None = None
        self._tools: tuple[tuple[ToolInfo, ...], list[dict[str, Any]]] | None = None

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected

    # -- languages --------------------------------------------------------------------------------

    async def _language(self, language: str | None) -> LanguageData | None:
        code = (language or self.default_language).lower()
        if code not in self._languages:
            data = await asyncio.to_thread(intents.load_language, code)
            if data is None:
                _LOGGER.info(
                    "Home Assistant has no command sentences for %s: commands go to the model", clip(code)
                )
            self._languages[code] = data
            if data is not None:
                self._responses.setdefault(data.language, Responses(data.responses))
        return self._languages[code]

    def _slot_lists(self, entities: Sequence[ExposedEntity]) -> dict[str, Any]:
        if self._lists is None or self._lists[0] is not entities:
            self._lists = (entities, intents.slot_lists(entities))
        return self._lists[1]

    async def looks_like_action(self, text: str, language: str | None) -> bool:
        """Whether `text` asks to change a device (by HA's sentences, any device name)."""
        data = await self._language(language)
        if data is None:
            return False
        return await asyncio.to_thread(intents.guess_action, text, data) is not None

    # -- the local fast path ----------------------------------------------------------------------

    async def handle_locally(self, text: str, language: str | None) -> Spoken | None:
        """A reply if `text` is a command the local sentences cover (or no home is connected and
        it is a device command); None if the model should answer."""
        data = await self._language(language)
        if data is None:
            return None
        if self.link is None:
            if await self.looks_like_action(text, language):
                return Spoken(replies.NOT_CONNECTED, False, "no-home")
            return None
        try:
            entities = await self.link.entities(ENTITY_MAX_AGE)
            command = await asyncio.to_thread(intents.match, text, data, self._slot_lists(entities))
            if command is None and await self.looks_like_action(text, language):
                entities = await self.link.entities(ENTITY_RECHECK_AGE)
                command = await asyncio.to_thread(intents.match, text, data, self._slot_lists(entities))
        except HomeError as err:
            if await self.looks_like_action(text, language):
                _LOGGER.warning("Could not carry out a home command: %s", err.cause)
                return Spoken(home_error_reply(err), False, f"home-{err.kind}")
            return None
        if command is None:
            return None
        try:
            return await self._run(command, data, entities)
        except HomeError as err:
            _LOGGER.warning("Could not carry out a home command: %s", err.cause)
            return Spoken(home_error_reply(err), False, f"home-{err.kind}")

    async def unknown_device_reply(self, text: str, language: str | None) -> str | None:
        """ "I don't know a device called X" for a command whose device nothing knows."""
        data = await self._language(language)
        if data is None:
            return None
        guess = await asyncio.to_thread(intents.guess_action, text, data)
        return replies.unknown_device(guess.name) if guess and guess.name else None

    async def _run(self, command: Command, data: LanguageData, entities: Sequence[ExposedEntity]) -> Spoken:
        assert self.link is not None
        responses = self._responses[data.language]
        slots = dict(command.slots)
        if command.intent == "HassGetState":
            return await self._state(command, responses)
        tool = self.link.tool(command.intent)
        target = command.spoken.get("name") or command.spoken.get("area")
        if tool is None:
            return Spoken(replies.failure(command.intent, target, ""), False, "no-tool")
        result = await self.link.call(command.intent, tool_arguments(command.slots, tool.schema))
        done = _targets(result, "success")
        if not result.ok or not done:
            _LOGGER.info("Home Assistant did not carry out %s", command.intent)
            _LOGGER.debug("Home Assistant said: %s", clip(result.text))
            return Spoken(replies.failure(command.intent, target, result.text), False, "action-failed")
        _LOGGER.info("Carried out %s on %s", command.intent, ", ".join(v.name for v in done))
        text = responses.render(command.intent, command.response, slots=slots, state=done[0], matched=done)
        return Spoken(text or "Done.", True)

    async def _state(self, command: Command, responses: Responses) -> Spoken:
        assert self.link is not None
        entities = await self.link.entities(0.0)  # a question about now: always fresh
        name, area = command.slots.get("name"), command.slots.get("area")
        domain = command.slots.get("domain")
        found = [
            e
            for e in entities
            if (name is None or name in e.names)
            and (area is None or area in e.areas)
            and (domain is None or e.domain == domain)
        ]
        if not found:
            return Spoken(replies.unknown_device(str(command.spoken.get("name") or name)), False, "unknown")
        wanted = command.slots.get("state")
        matched = [_view(e) for e in found if wanted is None or e.state == wanted]
        unmatched = [_view(e) for e in found if wanted is not None and e.state != wanted]
        text = responses.render(
            command.intent,
            command.response,
            slots=command.slots,
            state=_view(found[0]),
            matched=matched,
            unmatched=unmatched,
        )
        return Spoken(text or f"{found[0].name} is {found[0].state}.", True)

    # -- the model's tools ------------------------------------------------------------------------

    def ollama_tools(self) -> list[dict[str, Any]]:
        """HA's tools in Ollama's format, compacted (empty while HA is not connected)."""
        if self.link is None or not self.link.connected:
            return []
        tools = self.link.tools
        if self._tools is None or self._tools[0] is not tools:
            self._tools = (tools, [ollama_tool(tool) for tool in tools])
        return self._tools[1]

    async def run_tool(self, name: str, arguments: Any) -> ToolOutcome:
        """One tool call the model asked for: refused if the tool or its arguments are wrong."""
        if self.link is None:
            return ToolOutcome("Error: no home connection; nothing was done.", False, False)
        tool = self.link.tool(name)
        if tool is None:
            known = ", ".join(t.name for t in self.link.tools)
            return ToolOutcome(
                f"Error: there is no tool called {name!r}. The tools are: {known}.", False, False
            )
        if not isinstance(arguments, dict):
            return ToolOutcome(f"Error: the arguments of {name} must be an object.", False, False)
        properties = tool.schema.get("properties") or {}
        unknown = sorted(set(arguments) - set(properties))
        missing = sorted(set(tool.schema.get("required") or []) - set(arguments))
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(f"unknown arguments {', '.join(unknown)}")
            if missing:
                problems.append(f"missing arguments {', '.join(missing)}")
            return ToolOutcome(f"Error: {name} was not called: {'; '.join(problems)}.", False, False)
        try:
            result = await self.link.call(name, arguments)
        except HomeError as err:
            _LOGGER.warning("The model's %s call failed: %s", clip(name), clip(err.cause, 500))
            return ToolOutcome(f"Error: {home_error_reply(err)}", False, False)
        acted = result.ok and name not in READ_ONLY_TOOLS and bool(_targets(result, "success"))
        if acted:
            _LOGGER.info("Carried out %s for the model", clip(name))
        content = result.text if result.ok else f"Error: {result.text[:500]}"
        return ToolOutcome(content or json.dumps({"success": result.ok}), acted, result.ok)
