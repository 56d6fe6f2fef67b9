"""`clip`: what a client sent, safe for one log line."""

from __future__ import annotations

from wyoming_core.logs import CLIP_CHARS, clip


def test_short_printable_values_are_kept_as_they_are() -> None:
    assert clip("en_US-joe-medium") == "en_US-joe-medium"
    assert clip("Grüße, 東京") == "Grüße, 東京"
    assert clip(None) == "None"


def test_control_characters_are_escaped_so_no_line_can_be_forged() -> None:
    assert clip("a\nFAKE ERROR\x1b[31m\r\t\u2028") == "a\\nFAKE ERROR\\x1b[31m\\r\\t\\u2028"


def test_long_values_are_cut_with_a_note() -> None:
    value = "v" * 100_000
    out = clip(value)
    assert out == "v" * CLIP_CHARS + f"… ({100_000 - CLIP_CHARS} more characters)"
    assert len(clip("\n" * 1000)) < CLIP_CHARS + 40  # escapes count towards the limit
    assert clip("x" * 600, limit=500).startswith("x" * 500 + "…")
