"""Logging set-up shared by every program."""

from __future__ import annotations

import logging


def setup_logging(debug: bool, name: str) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        # Third-party chatter (zeroconf, httpx, faster_whisper) only at --debug.
        for noisy in ("httpx", "httpcore", "zeroconf", "faster_whisper", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
