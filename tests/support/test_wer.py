"""The WER normaliser forgives spellings, not mistakes."""

from __future__ import annotations

from tests.support.wer import wer, words


def test_spellings_a_listener_cannot_hear_are_equal() -> None:
    assert words("Today's Saturday, November 22nd, 2026.") == words("Today is Saturday, November 22, 2026.")
    assert words("It's seven o'clock, isn't it? I can't.") == [
        *("it", "is", "7", "o'clock", "is", "not", "it", "i", "can", "not"),
    ]
    assert words("Tom's car") == ["tom's", "car"]  # a possessive stays one word


def test_wrong_words_still_count() -> None:
    assert wer("Today is Saturday, November 22, 2026.", "Today's Saturday, November 22nd, 2026.") == 0.0
    assert wer("Today is Saturday, November 22, 2026.", "Today is Sunday, December 22, 2026.") > 0.3
    assert wer("What day is it today?", "What time is it now?") > 0.3
    assert wer("It is noon.", "") == 1.0
