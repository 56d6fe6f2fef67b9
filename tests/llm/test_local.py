"""Answers that need no model: memory resets, and the time and date."""

from __future__ import annotations

from datetime import datetime

import pytest

from wyoming_llm.local import clock_answer, is_reset

NOW = datetime(2026, 11, 21, 15, 7)


@pytest.mark.parametrize(
    "text",
    [
        "Clear history.",
        "clear the conversation history",
        "Start over!",
        "New conversation",
        "OK start over please",
    ],
)
def test_reset_commands(text: str) -> None:
    assert is_reset(text)


@pytest.mark.parametrize("text", ["Tell me about history.", "How do I start over in a new job?", "new"])
def test_other_sentences_are_not_reset_commands(text: str) -> None:
    assert not is_reset(text)


@pytest.mark.parametrize("text", ["What time is it?", "what's the time", "What is the time right now?"])
def test_time(text: str) -> None:
    assert clock_answer(text, NOW) == "It's 3:07 PM."


@pytest.mark.parametrize(
    "text", ["What's the date?", "What day is it?", "what is today's date", "What day is today"]
)
def test_date(text: str) -> None:
    assert clock_answer(text, NOW) == "Today is Saturday, November 21, 2026."


def test_other_questions_are_left_to_the_model() -> None:
    assert clock_answer("What time does the shop open?", NOW) is None
