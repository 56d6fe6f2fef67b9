"""What the STT gives the decoder from Home Assistant's exposed entities (`--ha-url`)."""

from __future__ import annotations

from wyoming_core.ha import ExposedEntity, parse_live_context
from wyoming_stt.home_names import MAX_CHARS, hotwords_text, names_of

# What GetLiveContext answers (HA 2026.2.3), aliases and area aliases joined with ", ".
LIVE_CONTEXT = """Live Context: An overview of the areas and the devices in this smart home:
- names: Hue Go, Ottilie's lamp
  domain: light
  state: 'off'
  areas: Ottilie's Room, Kids room
- names: Lumière du Salon
  domain: light
  state: 'on'
  areas: Salon
- names: hue go
  domain: light
  state: 'off'
- names: Moccamaster
  domain: switch
  state: 'off'
  areas: Kitchen
"""


def test_names_come_once_entities_first_then_areas_then_aliases() -> None:
    names = names_of(parse_live_context(LIVE_CONTEXT))
    assert names == [
        "Hue Go",
        "Lumière du Salon",
        "Moccamaster",
        "Ottilie's Room",
        "Salon",
        "Kitchen",
        "Ottilie's lamp",
        "Kids room",
    ]
    text, count = hotwords_text(names)
    assert text == (
        "Hue Go, Lumière du Salon, Moccamaster, Ottilie's Room, Salon, Kitchen, Ottilie's lamp, Kids room."
    )
    assert count == len(names)


def test_a_big_home_is_cut_to_a_short_prompt() -> None:
    entities = [ExposedEntity(names=(f"Hallway Ceiling Light {i}",), domain="light") for i in range(200)]
    text, count = hotwords_text(names_of(entities))
    assert text is not None and len(text) <= MAX_CHARS
    assert 0 < count < 200
    assert text.startswith("Hallway Ceiling Light 0, ") and text.count(",") == count - 1


def test_no_names_no_prompt() -> None:
    assert hotwords_text(names_of([])) == (None, 0)
