"""The common home commands, matched without a model: hassil and Home Assistant's own sentences.

`home-assistant-intents` ships the sentence templates Home Assistant's built-in agent uses
("turn on [the] {name}", "set {name} to {brightness} percent", ...), for every language it
has. Matched against the names and areas of the entities HA exposes, they turn a transcript
into a `Command` in about a millisecond. Matched against a wildcard instead, they tell whether
a sentence is a device command at all (for an honest "I can't" without a home connection).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hassil import Intents, recognize_all, recognize_best
from hassil.expression import TextChunk
from hassil.intents import SlotList, TextSlotList, TextSlotValue, WildcardSlotList

from wyoming_core.ha import ExposedEntity

_LOGGER = logging.getLogger(__name__)

# What the local path answers by itself; everything else goes to the model.
LOCAL_INTENTS = ("HassTurnOn", "HassTurnOff", "HassLightSet", "HassGetState")
# Intents that change the home (a claim that one was carried out needs a result behind it).
ACTION_INTENTS = ("HassTurnOn", "HassTurnOff", "HassLightSet")


@dataclass(frozen=True)
class Command:
    intent: str
    # Slot values as Home Assistant's tools take them (name, area, domain, brightness, state...).
    slots: dict[str, Any]
    # The words the user said for each slot ("kitchen lights").
    spoken: dict[str, str] = field(default_factory=dict)
    # Key of the response template that fits the sentence that matched.
    response: str = "default"


@dataclass(frozen=True)
class LanguageData:
    language: str
    intents: Intents
    responses: dict[str, Any]


def load_language(language: str) -> LanguageData | None:
    """Home Assistant's sentences for a language (en, en-US, de_DE...), or None if it has none."""
    import home_assistant_intents as hai

    base = language.replace("_", "-")
    available = set(hai.get_languages())
    for candidate in (base, base.split("-")[0]):
        if candidate in available:
            data = hai.get_intents(candidate)
            if data is None:
                return None
            keep = {name: value for name, value in data["intents"].items() if name in LOCAL_INTENTS}
            intents = Intents.from_dict({**data, "intents": keep})
            return LanguageData(candidate, intents, data.get("responses", {}).get("intents", {}))
    return None


def _chunk_list(name: str, values: Sequence[tuple[str, str, dict[str, Any] | None]]) -> TextSlotList:
    return TextSlotList(
        name=name,
        values=[TextSlotValue(TextChunk(spoken), out, context) for spoken, out, context in values],
    )


def slot_lists(entities: Sequence[ExposedEntity]) -> dict[str, SlotList]:
    """Every name and alias (with its domain, which the sentences check) and every area."""
    names: list[tuple[str, str, dict[str, Any] | None]] = []
    areas: dict[str, str] = {}
    for entity in entities:
        for name in entity.names:
            names.append((name.lower(), entity.name, {"domain": entity.domain}))
        for area in entity.areas:
            areas.setdefault(area.lower(), entity.areas[0])
    return {
        "name": _chunk_list("name", names),
        "area": _chunk_list("area", [(spoken, out, None) for spoken, out in areas.items()]),
        "floor": _chunk_list("floor", []),
    }


def _command(result: Any) -> Command:
    slots = {key: entity.value for key, entity in result.entities.items()}
    spoken = {key: entity.text.strip() for key, entity in result.entities.items() if entity.text}
    # A sentence's fixed domain ("turn on the lights in {area}") is part of the command.
    for key, value in (result.intent_data.slots or {}).items():
        slots.setdefault(key, value)
    return Command(result.intent.name, slots, spoken, result.response or "default")


def match(
    text: str, data: LanguageData, lists: dict[str, SlotList], *, actions_only: bool = False
) -> Command | None:
    """The best match of `text` against the names and areas in `lists` (None: no local command)."""
    result = recognize_best(
        text, data.intents, slot_lists=lists, language=data.language, best_slot_name="name"
    )
    if result is None or (actions_only and result.intent.name not in ACTION_INTENTS):
        return None
    return _command(result)


def _required_words(template: str) -> bool:
    """Whether a sentence template has words that must be said besides connectors ("in",
    "the"): HA's scene sentences ("[the] {name} [scene] <in> {area}") would otherwise take any
    sentence ("what is the capital of France") for a device command."""
    depth, kept = 0, []
    for char in template:
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif depth == 0:
            kept.append(char)
    required = re.sub(r"\{[^}]*\}|<(?:in|the|here|all)>", " ", "".join(kept))
    return bool(re.search(r"<\w|\w", required))


# A device or area name never starts with these: "Are the lights on?" is a question, not
# "turn on the lights in the area called 'Are the'".
_QUESTION_WORDS = frozenset(
    {"are", "is", "am", "was", "were", "what", "whats", "how", "why", "where", "when", "who"}
    | {"which", "do", "does", "did", "will", "would", "should", "could", "can", "have", "has"}
)


def _asks(text: str) -> bool:
    words = text.lower().replace("'", "").split()
    return bool(words) and words[0] in _QUESTION_WORDS


# The slots a command may fill with words no list knows (the device and where it is).
OPEN_SLOTS = frozenset({"name", "area", "floor", "domain", "device_class"})


@dataclass(frozen=True)
class ActionGuess:
    """`text` asks to change a device; `name` is the device or area as said, if it said one."""

    intent: str
    name: str | None


def guess_action(text: str, data: LanguageData) -> ActionGuess | None:
    """Whether `text` is a device command by HA's sentences, whatever the device's name."""
    lists: dict[str, SlotList] = {**slot_lists([]), "name": WildcardSlotList(name="name")}
    best = None
    for result in recognize_all(
        text, data.intents, slot_lists=lists, language=data.language, allow_unmatched_entities=True
    ):
        sentence = result.intent_sentence.text if result.intent_sentence else ""
        if result.intent.name not in ACTION_INTENTS or not _required_words(sentence or ""):
            continue
        if set(result.unmatched_entities) - OPEN_SLOTS:  # "to me" is no colour or brightness
            continue
        heard = [*result.unmatched_entities.values(), *result.entities.values()]
        if any(_asks(getattr(value, "text", "") or "") for value in heard):
            continue
        if best is None or result.text_chunks_matched > best.text_chunks_matched:
            best = result
    if best is None:
        return None
    for key in ("name", "area", "device_class"):
        value = best.unmatched_entities.get(key) or best.entities.get(key)
        spoken = getattr(value, "text", None)
        if isinstance(spoken, str) and spoken.strip() and not spoken.startswith("<"):
            return ActionGuess(best.intent.name, spoken.strip())
    return ActionGuess(best.intent.name, None)
