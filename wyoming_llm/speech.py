"""Turn a model's streamed tokens into clean spoken sentences.

Models write for screens: markdown, emoji, links, code. None of that may reach
a text-to-speech voice. `SentenceStream` takes tokens as they arrive and hands
back each sentence, cleaned, as soon as it is complete, so the first sentence
can be spoken while the model is still writing the rest.
"""

from __future__ import annotations

import re

FENCE = "```"
# Blocks never spoken: code, and the reasoning some models write before answering.
HIDDEN = ((FENCE, FENCE), ("<think>", "</think>"))

_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "jr",
        "sr",
        "prof",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "eg",
        "ie",
        "approx",
        "no",
        "nr",
        "inc",
        "ltd",
        "co",
        "mt",
        "ft",
        "min",
        "max",
        "fig",
        "ca",
    ]
)
# Typographic quotes and dashes, spelled as escapes so the source stays plain ASCII.
_CLOSERS = "\"')]\u201d\u2019"
_OPENERS = "\"'([\u201c\u2018"
_DASHES = "\u2013\u2014"

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"<?(?:https?://|ftp://|www\.)[^\s>]+>?", re.IGNORECASE)
_HTML = re.compile(r"</?[A-Za-z][^>]*>")
_LINE_MARKUP = re.compile(r"^\s{0,3}(?:#{1,6}\s*|>\s?|[-*+•]\s+|\d{1,3}[.)]\s+)+", re.MULTILINE)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)
_EMPHASIS = re.compile(r"\*\*|__|~~|\*|`")
_UNDERSCORE = re.compile(r"(?<!\w)_(\S(?:[^_]*\S)?)_(?!\w)")
_TABLE = re.compile(r"\s*\|\s*")
_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, symbols & pictographs ext.
    "\U00002600-\U000027bf"  # misc symbols, dingbats
    "\U00002300-\U000023ff"  # watches, hourglasses
    "\U00002b00-\U00002bff"  # stars, arrows used as emoji
    "\U0001f1e6-\U0001f1ff"  # flags
    "\U0000fe0e\U0000fe0f\U0000200d\U000020e3"  # variation selectors, joiner, keycap
    "]+"
)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_REPEATED_COMMAS = re.compile(r"(?:,\s*){2,}")
_ALNUM = re.compile(r"\w")
_LEADING_JUNK = re.compile(r"^[\s,.;:!?)\]}\-" + _DASHES + "]+")

# A sentence end: terminal punctuation (and closing quotes/brackets) followed by white space.
_BOUNDARY = re.compile(r"[.!?\u2026]+[" + re.escape(_CLOSERS) + r"]*(?=\s)|\n")
_TRAILING_END = re.compile(r"[.!?]+$")


def clean_for_speech(text: str) -> str:
    """Remove what a voice cannot say: markdown, emoji, URLs, HTML; tidy the spaces."""
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    text = _HTML.sub("", text)
    text = _RULE.sub("", text)
    text = _LINE_MARKUP.sub("", text)
    text = _UNDERSCORE.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    text = _EMOJI.sub("", text)
    text = _TABLE.sub(", ", text)
    text = text.replace("\n", " ")
    text = _SPACES.sub(" ", text)
    text = _REPEATED_COMMAS.sub(", ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _LEADING_JUNK.sub("", text).strip().rstrip(",;")
    if not _ALNUM.search(text):
        return ""
    if text[-1] not in ".!?\u2026:" + _CLOSERS:
        text += "."  # a pause for the voice where a line or list item ended
    return text


def _last_word(text: str) -> str:
    parts = text.rstrip(".!?\u2026" + _CLOSERS).split()
    return parts[-1] if parts else ""


def _is_sentence_end(candidate: str, at_buffer_end: bool) -> bool:
    """Whether `candidate` (raw text up to a boundary) is a whole sentence."""
    if candidate.endswith("\n"):
        return True
    stripped = candidate.rstrip(_CLOSERS)
    word = _last_word(candidate).lstrip(_OPENERS).lower()
    if stripped.endswith("."):
        if word in _ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)*[a-z]", word):  # "Dr.", "J. R.", "U.S."
            return False
        if re.fullmatch(r"\d{1,3}", word) and not candidate.strip()[:-1].strip(" 0123456789"):
            return False  # a list number "1." on its own
    if at_buffer_end:
        # No white space seen after it yet: only end here when nothing could continue the word
        # ("3." may be "3.5", "example." may be "example.com").
        if not stripped.endswith(("!", "?")) and not re.fullmatch(r"[^\W\d_]{2,}", word.rstrip(".")):
            return False
        if word.startswith("www") or re.search(r"[:/@=&%#~]", word):
            return False  # inside a URL or an address, which the cleaning removes whole
        if candidate.count("(") > candidate.count(")") or candidate.count("[") > candidate.count("]"):
            return False
        if candidate.count("`") % 2:
            return False
    return True


class SentenceStream:
    """Feed tokens, get complete cleaned sentences; `flush()` at the end for the rest."""

    def __init__(self) -> None:
        self._raw = ""
        # The closing marker of the hidden block (code, reasoning) being skipped, if any.
        self._closing: str | None = None
        self.sentences: list[str] = []

    @property
    def text(self) -> str:
        """Everything said so far, as one string."""
        return " ".join(self.sentences)

    def feed(self, token: str) -> list[str]:
        self._raw += token
        out: list[str] = []
        while True:
            if self._closing is not None:
                end = self._raw.find(self._closing)
                if end < 0:
                    # Never spoken; keep only what could be the start of the closing marker.
                    self._raw = self._raw[-(len(self._closing) - 1) :]
                    return self._emit(out)
                self._raw = self._raw[end + len(self._closing) :]
                self._closing = None
                continue
            found = [(self._raw.find(o), o, c) for o, c in HIDDEN if o in self._raw]
            if not found:
                break
            start, opener, closer = min(found)
            before, self._raw = self._raw[:start], self._raw[start + len(opener) :]
            out += _split(before, final=True)[0]
            self._closing = closer
        # Hold back what may be the start of a hidden block ("`", "``", "<thi").
        held = max(
            (n for opener, _ in HIDDEN for n in range(1, len(opener)) if self._raw.endswith(opener[:n])),
            default=0,
        )
        ready, kept = (self._raw[:-held], self._raw[-held:]) if held else (self._raw, "")
        sentences, leftover = _split(ready, final=False)
        self._raw = leftover + kept
        return self._emit(out + sentences)

    def flush(self) -> list[str]:
        rest = "" if self._closing is not None else self._raw
        self._raw, self._closing = "", None
        return self._emit(_split(rest, final=True)[0])

    def _emit(self, sentences: list[str]) -> list[str]:
        self.sentences += sentences
        return sentences


def _split(text: str, *, final: bool) -> tuple[list[str], str]:
    """Cut the complete sentences off `text`: (cleaned sentences, raw rest)."""
    out: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start : match.end()]
        if _is_sentence_end(candidate, at_buffer_end=False):
            _add(out, candidate)
            start = match.end()
    tail = text[start:]
    if final or (_TRAILING_END.search(tail) and _is_sentence_end(tail, at_buffer_end=True)):
        _add(out, tail)
        tail = ""
    return out, tail


def _add(out: list[str], raw: str) -> None:
    cleaned = clean_for_speech(raw)
    if cleaned:
        out.append(cleaned)
