"""Were the names in a command heard right? Words compared as a listener would hear them.

A command marks its names in brackets: "Dim the [Hue Go] in [Ottilie's room]." Case,
punctuation, accents ("Lumiere" = "Lumière") and apostrophes ("Ottilies" = "Ottilie's") are
ignored; a misheard, missing or extra word inside a name counts as an error.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

_NAME = re.compile(r"\[([^\]]+)\]")


def words(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = plain.replace("-", " ").replace("'", "").replace("\u2019", "")
    return re.findall(r"[a-z0-9]+", plain)


def spoken(command: str) -> str:
    """The command as said: brackets dropped."""
    return command.replace("[", "").replace("]", "")


def names_in(command: str) -> list[str]:
    return _NAME.findall(command)


def heard(name: str, transcript: str) -> bool:
    """The name's words, in order and next to each other, in the transcript."""
    want, got = words(name), words(transcript)
    target = " ".join(want)
    # A one-letter spelling slip of a name ("Otilie's" for "Ottilie's") still counts as heard.
    return any(
        difflib.SequenceMatcher(None, " ".join(got[i : i + len(want)]), target).ratio() >= 0.9
        for i in range(len(got) - len(want) + 1)
    )


def _reference(command: str) -> list[tuple[str, bool]]:
    """(word, inside a name) for each word of the command."""
    out: list[tuple[str, bool]] = []
    for part in re.split(r"(\[[^\]]+\])", command):
        out += [(word, part.startswith("[")) for word in words(part.strip("[]"))]
    return out


def name_errors(command: str, transcript: str) -> tuple[int, int]:
    """(errors on name words, name words) after aligning the transcript with the whole
    command (Levenshtein): substitutions and deletions of name words, and words inserted
    between two words of one name."""
    ref, hyp = _reference(command), words(transcript)
    rows, cols = len(ref), len(hyp)
    cost = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(rows + 1):
        cost[i][0] = i
    for j in range(cols + 1):
        cost[0][j] = j
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (ref[i - 1][0] != hyp[j - 1])
            )
    errors, i, j = 0, rows, cols
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1][0] != hyp[j - 1]):
            errors += ref[i - 1][1] and ref[i - 1][0] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            errors += ref[i - 1][1]
            i -= 1
        else:
            errors += 0 < i < rows and ref[i - 1][1] and ref[i][1]
            j -= 1
    return errors, sum(1 for _word, in_name in ref if in_name)
