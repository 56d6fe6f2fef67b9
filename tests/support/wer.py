"""Word error rate, on normalised words.

Case and punctuation are ignored, and so are differences of spelling that a listener would
not hear: contractions ("Today's" = "Today is"), ordinals ("22nd" = "22"), number words
("seven" = "7"). Misheard or missing words still count.
"""

from __future__ import annotations

import re

_NUMBERS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}

# Whole words first (their stems are not words), then the regular endings.
_CONTRACTED_WORDS = {"can't": "can not", "won't": "will not", "cannot": "can not", "ain't": "is not"}
_ENDINGS = (
    ("n't", " not"),
    ("'re", " are"),
    ("'m", " am"),
    ("'ll", " will"),
    ("'ve", " have"),
    ("'d", " would"),
)
# "'s" is also a possessive ("John's"): expanded only after words where it means "is".
_IS = re.compile(r"^(it|that|what|there|here|he|she|who|where|how|today|tomorrow|now)'s$")


def _expand(token: str) -> list[str]:
    token = token.strip("'")
    if token in _CONTRACTED_WORDS:
        return _CONTRACTED_WORDS[token].split()
    if _IS.match(token):
        return [token[:-2], "is"]
    for ending, full in _ENDINGS:
        if token.endswith(ending) and len(token) > len(ending):
            return [token[: -len(ending)], *full.split()]
    ordinal = re.fullmatch(r"(\d+)(st|nd|rd|th)", token)
    if ordinal:
        return [ordinal.group(1)]
    return [_NUMBERS.get(token, token)] if token else []


def words(text: str) -> list[str]:
    tokens = re.findall(r"[a-z0-9']+", text.lower().replace("-", " ").replace("\u2019", "'"))
    return [word for token in tokens for word in _expand(token)]


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)
