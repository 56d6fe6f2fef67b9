"""Text for the voice: sentences cut as soon as they are complete, nothing unspeakable left in."""

from __future__ import annotations

import pytest

from tests.support.fake_ollama import tokenize
from wyoming_llm.speech import SentenceStream, clean_for_speech


def stream(text: str) -> tuple[list[tuple[str, list[str]]], str]:
    """Feed `text` token by token: (token that completed sentences, those sentences), full text."""
    sentences = SentenceStream()
    emitted = [(token, got) for token in tokenize(text) if (got := sentences.feed(token))]
    emitted.append(("<end>", sentences.flush()))
    return emitted, sentences.text


def test_a_sentence_is_released_by_its_own_full_stop() -> None:
    emitted, text = stream("Hello there. How can I help?")
    # Released on the "." and "?" tokens themselves, not one token later.
    assert emitted[:2] == [(".", ["Hello there."]), ("?", ["How can I help?"])]
    assert text == "Hello there. How can I help?"


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("**Sure!** Here is _one_ idea.", "Sure! Here is one idea."),
        ("# Weather\nIt is sunny.", "Weather. It is sunny."),
        ("- Eggs\n- Milk\n1. Flour", "Eggs. Milk. Flour."),
        ("See [the manual](https://example.com/a.b) for details.", "See the manual for details."),
        ("Visit https://example.com/x?y=1 or www.example.org today.", "Visit or today."),
        ("Great idea 😀👍🏽! Let's go 🚀.", "Great idea! Let's go."),
        ("Use `ls` to list.", "Use ls to list."),
        ("Run:\n```bash\nrm -rf /tmp/x. Then more.\n```\nDone.", "Run: Done."),
        ("| Day | Temp |\n|---|---|\n| Mon | 20 |", "Day, Temp. Mon, 20."),
        ("<b>Bold</b> move.", "Bold move."),
    ],
)
def test_markdown_emoji_urls_and_code_never_reach_the_voice(raw: str, spoken: str) -> None:
    _emitted, text = stream(raw)
    assert text == spoken
    for marker in ("*", "#", "`", "http", "www.", "[", "](", "|", "😀", "🚀"):
        assert marker not in text


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Smith is in. Mr. Jones too.",
        "It is 3.5 degrees. Version 2.0 is out.",
        "The U.S. is large. E.g. this one.",
    ],
)
def test_abbreviations_and_decimals_do_not_end_sentences(text: str) -> None:
    emitted, spoken = stream(text)
    sentences = [s for _token, got in emitted for s in got]
    assert len(sentences) == 2, sentences
    assert spoken == text


def test_unclosed_fence_is_never_spoken() -> None:
    _emitted, text = stream("Here you go:\n```python\nprint('secret')")
    assert text == "Here you go:"


def test_reasoning_blocks_are_not_spoken() -> None:
    _emitted, text = stream("<think>The user wants the time. Fine.</think>It is noon. Enjoy lunch.")
    assert text == "It is noon. Enjoy lunch."


def test_only_unspeakable_text_gives_nothing() -> None:
    assert stream("😀 🚀 👍")[1] == ""
    assert clean_for_speech("```") == ""
