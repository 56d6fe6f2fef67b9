"""Logging set-up shared by every program, and `clip` for values a client sent."""

from __future__ import annotations

import logging

# About one line's worth: enough to recognise a value, too little to flood a log.
CLIP_CHARS = 200
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clip(value: object, limit: int = CLIP_CHARS) -> str:
    """`value` (anything a client or a remote service sent) made safe for one log line.

    Control and other unprintable characters are escaped (no forged log lines, no terminal
    escapes), and the text is cut to `limit` characters with a note of what was left out.
    Cheap on huge values: only the first `limit` characters are looked at.
    """
    text = value if isinstance(value, str) else str(value)
    pieces: list[str] = []
    size = 0
    for char in text[:limit]:
        piece = char if char.isprintable() else _ESCAPES.get(char) or repr(char)[1:-1]
        if size + len(piece) > limit:
            break
        pieces.append(piece)
        size += len(piece)
    rest = len(text) - len(pieces)
    return "".join(pieces) + (f"… ({rest} more characters)" if rest > 0 else "")


# What every command says about --log-transcripts (and its environment variable).
LOG_TRANSCRIPTS_HELP = (
    "Log what was heard and answered at INFO; without it such lines are DEBUG (only with "
    "--debug): what people say at home stays out of the logs"
)


def transcript_level(log_transcripts: bool) -> int:
    """The level for a line with what someone said or was told: INFO only when asked for."""
    return logging.INFO if log_transcripts else logging.DEBUG


def setup_logging(debug: bool, name: str) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        # Third-party chatter (zeroconf, httpx, faster_whisper) only at --debug.
        for noisy in ("httpx", "httpcore", "zeroconf", "faster_whisper", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
