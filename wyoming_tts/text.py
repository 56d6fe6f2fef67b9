"""Text in: cleaning, sentence boundaries in a stream cut anywhere, clause parts for early audio."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

# SSML and other markup: tags are removed, their text kept (<emphasis>yes</emphasis> -> yes).
_TAG = re.compile(r"<[^<>]{0,200}>")
# Markdown that LLM replies carry and a voice would otherwise read out ("asterisk").
_MARKDOWN = re.compile(r"[*_`#~]+")
_SPACES = re.compile(r"\s+")

# A sentence ends at . ! ? … (plus closing quotes/brackets) followed by whitespace, or at a
# line break; CJK full stops need no space after them.
_BOUNDARY = re.compile("[.!?\u2026]+[\"'\u201d\u2019)\\]]*(?=\\s)|[\u3002\uff01\uff1f]+|\n")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "approx", "no", "dept", "fig"}
    | {"inc", "ltd", "co", "mt", "ave", "apt", "est", "min", "max"}
)
# Clause boundaries inside a sentence: , ; : followed by space, or a spaced dash.
_CLAUSE = re.compile("(?<=[,;:])\\s+|\\s+[-\u2013\u2014]+\\s+|(?<=\\w)[\u2013\u2014](?=\\w)")
# A tag still being streamed: hold the text back until it closes (or clearly is no tag).
_OPEN_TAG_WINDOW = 200
# The very first part of a reply is at most this many words: the listener waits for its whole
# synthesis (about as long as the part is), so a long first clause is cut at a word boundary.
FIRST_PART_WORDS = 6
# Never cut before this many words: a shorter part sounds clipped.
_MIN_CUT_WORDS = 3
# A cut before one of these (a new phrase starts) sounds like the speaker's own breath.
_PHRASE_STARTS = frozenset(
    {"and", "but", "or", "nor", "so", "yet", "because", "since", "although", "though", "unless"}
    | {"after", "before", "until", "while", "when", "where", "whether", "if", "then", "than"}
    | {"that", "which", "who", "whom", "whose", "to", "in", "on", "at", "for", "with", "from"}
    | {"about", "into", "onto", "over", "under", "between", "through", "during", "without"}
    | {"please", "by", "of", "as"}
)


def clean_text(text: str) -> str:
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _MARKDOWN.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def has_words(text: str) -> bool:
    """True if there is anything a voice could say (not just spaces and punctuation)."""
    return any(ch.isalnum() for ch in text)


def _is_abbreviation(text: str, dot_at: int) -> bool:
    if text[dot_at] != ".":
        return False
    start = dot_at
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:dot_at].strip("\"'(\u201c\u2018")
    if not word:
        return False
    # Initials ("J. R. Smith"), dotted abbreviations ("e.g.", "p.m.") and titles ("Dr.").
    return (len(word) == 1 and word.isalpha()) or "." in word or word.lower() in _ABBREVIATIONS


@dataclass
class SentenceSplitter:
    """Feed text as it arrives (cut anywhere, even mid-word); get complete sentences back."""

    max_sentence_chars: int = 400
    _buffer: str = field(default="", repr=False)

    def add(self, text: str) -> list[str]:
        # Complete tags go before boundaries are looked for ("Really?</speak> Yes" ends a sentence).
        self._buffer = _TAG.sub(" ", self._buffer + text)
        return self._take(final=False)

    def finish(self) -> list[str]:
        self._buffer = _TAG.sub(" ", self._buffer)
        return self._take(final=True)

    def _safe_end(self) -> int:
        """Boundaries are only looked for before a tag that has not closed yet."""
        start = self._buffer.rfind("<")
        if start >= 0 and ">" not in self._buffer[start:] and len(self._buffer) - start < _OPEN_TAG_WINDOW:
            return start
        return len(self._buffer)

    def _take(self, final: bool) -> list[str]:
        sentences: list[str] = []
        start = 0
        end = len(self._buffer) if final else self._safe_end()
        for match in _BOUNDARY.finditer(self._buffer, 0, end):
            if _is_abbreviation(self._buffer, match.start()):
                continue
            sentences.append(self._buffer[start : match.end()])
            start = match.end()
        rest = self._buffer[start:]
        while len(rest) > self.max_sentence_chars:
            # A run-on without punctuation: cut at the last clause break or space, so one
            # synthesis (and its wait) stays bounded.
            cut = _last_break(rest[: self.max_sentence_chars])
            sentences.append(rest[:cut])
            rest = rest[cut:]
        if final:
            sentences.append(rest)
            rest = ""
        self._buffer = rest
        cleaned = (clean_text(s) for s in sentences)
        return [s for s in cleaned if has_words(s)]

    def take_clause(self, min_chars: int = 12, max_words: int | None = FIRST_PART_WORDS) -> str | None:
        """The first clause of a sentence still being streamed, if one is complete; or, once more
        than `max_words` words of it have come without a clause break, its first words.

        Lets the first sentence of a streamed reply start speaking before its end has arrived.
        """
        end = self._safe_end()
        # A match needs the space after the comma, so "3,5" or "well,-" never cut a word.
        for match in _CLAUSE.finditer(self._buffer, 0, end):
            clause = clean_text(self._buffer[: match.start()] + ("," if match.group().strip() else ""))
            if len(clause) >= min_chars and has_words(clause):
                self._buffer = self._buffer[match.end() :]
                return clause
        if max_words is None:
            return None
        # Words followed by a space are complete ("the" may still become "there").
        complete = _WORD_WITH_SPACE.findall(self._buffer, 0, end)
        if len(complete) <= max_words:
            return None  # the word after the cut is needed to choose where to cut
        cut = _first_part_end(complete, max_words)
        text = "".join(complete[:cut])
        words = clean_text(text)
        # A clause too short to go ahead alone ("Sure,") may end the first words: a whole
        # text's first part ends there too (clause_parts).
        if not has_words(words) or (len(words) < min_chars and not _ends_clause(complete[cut - 1])):
            return None
        self._buffer = self._buffer[len(text) :]
        return words


# A word and the spaces after it (leading spaces belong to the first word).
_WORD_WITH_SPACE = re.compile(r"\s*\S+\s+")


def _ends_clause(word: str) -> bool:
    return word.strip().rstrip("\"')]\u201d\u2019").endswith((",", ";", ":"))


def _first_part_end(words: list[str], max_words: int) -> int:
    """How many of `words` (more than `max_words`) go into the first part: the last clause break
    at or before `max_words`, else the last place where a new phrase starts, else `max_words`."""
    for count in range(max_words, 0, -1):
        if _ends_clause(words[count - 1]):
            return count
    for count in range(max_words, _MIN_CUT_WORDS - 1, -1):
        if words[count].strip().strip("\"'(\u201c\u2018").lower() in _PHRASE_STARTS:
            return count
    return max_words


def _cut_first_words(clause: str, max_words: int) -> list[str]:
    """A first clause of more than `max_words` words as [its first words, the rest]; a clause
    only a little longer stays whole (the rest would be too short to be worth a part)."""
    words = _WORD_WITH_SPACE.findall(clause + " ")
    if len(words) <= max_words + 2:
        return [clause]
    cut = _first_part_end(words, max_words)
    return ["".join(words[:cut]).strip(), "".join(words[cut:]).strip()]


def _last_break(text: str) -> int:
    clauses = [m.end() for m in _CLAUSE.finditer(text)]
    if clauses and clauses[-1] > len(text) // 2:
        return clauses[-1]
    space = text.rfind(" ")
    return space + 1 if space > len(text) // 2 else len(text)


def split_sentences(text: str, max_sentence_chars: int = 400) -> list[str]:
    splitter = SentenceSplitter(max_sentence_chars)
    return splitter.add(text) + splitter.finish()


def clause_parts(
    sentence: str, growth: float = 3.0, min_first_chars: int = 3, first_words: int | None = FIRST_PART_WORDS
) -> list[str]:
    """Split a sentence at clause boundaries into parts that grow in length.

    The first part is the first clause, so its audio is ready early; a first clause of more than
    `first_words` words is cut after at most that many (before a word that starts a new phrase
    where there is one). Each later part is at most `growth` times as long as everything before
    it, so it is synthesized while the earlier audio plays and no gap opens. Parts keep their
    punctuation (a comma still ends its clause, and the voice makes its own short pause there);
    no silence is added between them.
    """
    pieces: list[str] = []
    start = 0
    for match in _CLAUSE.finditer(sentence):
        piece = sentence[start : match.start()].strip()
        if match.group().strip():  # a dash: keep the pause as a comma
            piece += ","
        if piece:
            pieces.append(piece)
        start = match.end()
    tail = sentence[start:].strip()
    if tail:
        pieces.append(tail)
    if pieces and first_words is not None:
        pieces[:1] = _cut_first_words(pieces[0], first_words)
    if len(pieces) <= 1:
        return [sentence]

    parts: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current} {piece}" if current else piece
        if not parts:  # still building the first part
            current = candidate
            if len(current) >= min_first_chars:
                parts.append(current)
                current = ""
        elif current and len(candidate) > growth * sum(len(p) for p in parts):
            parts.append(current)
            current = piece
        else:
            current = candidate
    if current:
        parts.append(current)
    # A dangling tiny last part sounds clipped; give it to the part before.
    if len(parts) > 1 and not has_words(parts[-1]):
        parts[-2:] = [f"{parts[-2]} {parts[-1]}"]
    return parts
