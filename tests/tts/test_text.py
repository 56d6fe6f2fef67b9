"""Text handling of the TTS service: sentences from a stream cut anywhere, clause parts, markup."""

from __future__ import annotations

import pytest

from wyoming_tts.text import SentenceSplitter, clause_parts, clean_text, split_sentences

REPLY = (
    "Sure, I have turned off the lights in the living room, locked the front door, and set the "
    "alarm for 7 a.m. tomorrow. Dr. Smith called at 3.5 past noon! <emphasis>Really?</emphasis> "
    "Yes &amp; no.\nA list item without a full stop"
)
EXPECTED = [
    "Sure, I have turned off the lights in the living room, locked the front door, and set the "
    "alarm for 7 a.m. tomorrow.",
    "Dr. Smith called at 3.5 past noon!",
    "Really?",
    "Yes & no.",
    "A list item without a full stop",
]


def test_sentences_of_a_whole_text() -> None:
    assert split_sentences(REPLY) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 13])
def test_sentences_of_a_stream_cut_anywhere(size: int) -> None:
    splitter = SentenceSplitter()
    got: list[str] = []
    for start in range(0, len(REPLY), size):
        got += splitter.add(REPLY[start : start + size])
    assert got + splitter.finish() == EXPECTED


def test_a_sentence_is_released_as_soon_as_the_next_one_starts() -> None:
    splitter = SentenceSplitter()
    assert splitter.add("Hello there.") == []  # could still be "there.com"
    assert splitter.add(" How") == ["Hello there."]
    assert splitter.finish() == ["How"]


def test_run_on_text_is_cut_to_bounded_sentences() -> None:
    sentences = split_sentences("word " * 400, max_sentence_chars=300)
    assert len(sentences) > 1 and all(len(s) <= 300 for s in sentences)
    assert sum(len(s.split()) for s in sentences) == 400


def test_markup_and_blank_text() -> None:
    assert clean_text('<speak>Hi <break time="1s"/> **there**</speak>') == "Hi there"
    assert split_sentences("   \n\t ") == []
    assert split_sentences("... !!") == []


def test_clause_parts_grow_and_keep_every_word() -> None:
    sentence = EXPECTED[0]
    parts = clause_parts(sentence)
    assert parts[0] == "Sure,"
    assert len(parts) >= 2
    assert " ".join(parts).split() == sentence.split()
    for i in range(1, len(parts)):
        # A later part is at most 3x what came before, unless it is one clause that cannot be cut.
        single_clause = ", " not in parts[i]
        assert len(parts[i]) <= 3 * sum(len(p) for p in parts[:i]) or single_clause, parts


def test_dash_becomes_a_comma_and_short_sentences_stay_whole() -> None:
    assert clause_parts("We can go now - or later, if you like.")[0] == "We can go now,"
    assert clause_parts("Yes.") == ["Yes."]
    assert clause_parts("Turn on the light.") == ["Turn on the light."]


def test_first_clause_of_a_streamed_sentence_can_go_ahead() -> None:
    splitter = SentenceSplitter()
    assert splitter.add("When you get home tonight,") == []
    assert splitter.take_clause() is None  # the comma may still be "tonight,5"
    assert splitter.add(" please") == []
    assert splitter.take_clause() == "When you get home tonight,"
    assert splitter.add(" lock the door. Thanks") == ["please lock the door."]
    assert splitter.finish() == ["Thanks"]
    short = SentenceSplitter()
    short.add("Sure, I")
    assert short.take_clause() is None  # too short to be worth a part of its own


def test_a_long_first_clause_is_cut_after_a_few_words() -> None:
    # The listener waits for the whole first part: at most six words, cut where a phrase starts.
    sentence = "When you get home tonight after the long meeting with the team, please lock the back door."
    parts = clause_parts(sentence)
    assert parts[0] == "When you get home tonight" and len(parts) >= 2  # cut before "after"
    assert " ".join(parts).split() == sentence.split()
    no_comma = (
        "The temperature in the living room is twenty one degrees and the humidity is at forty percent."
    )
    parts = clause_parts(no_comma)
    assert parts[0] == "The temperature in the living room"  # no phrase start: six words
    assert " ".join(parts).split() == no_comma.split()
    # A clause only a little longer than that stays whole (the rest would be a clipped part).
    assert clause_parts("Your alarm is set for six thirty tomorrow.") == [
        "Your alarm is set for six thirty tomorrow."
    ]
    # A short first clause is the first part as before; nothing is cut when asked not to.
    assert clause_parts("Sure, I have turned off the lights in the kitchen and the hall.")[0] == "Sure,"
    assert clause_parts(no_comma, first_words=None) == [no_comma]


def test_a_streamed_sentence_without_a_clause_break_starts_after_a_few_words() -> None:
    splitter = SentenceSplitter()
    splitter.add("The temperature in the living room i")
    assert splitter.take_clause() is None  # where to cut depends on the word after the sixth
    splitter.add("s")
    assert splitter.take_clause() is None  # "is" could still become "island"
    splitter.add(" twenty one")
    assert splitter.take_clause() == "The temperature in the living room"
    assert splitter.add(" degrees now. Ok") == ["is twenty one degrees now."]
    cut_before_a_phrase = SentenceSplitter()
    cut_before_a_phrase.add("I turned off the lights in the kitchen ")
    assert cut_before_a_phrase.take_clause() == "I turned off the lights"
    assert cut_before_a_phrase.take_clause(max_words=None) is None
    # A clause too short to go ahead alone still ends the first words, as in a whole text.
    short_clause = SentenceSplitter()
    short_clause.add("Sure, I have turned off the lights ")
    assert short_clause.take_clause() == "Sure,"
    assert short_clause.add("now. ") == ["I have turned off the lights now."]
