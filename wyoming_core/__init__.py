"""Shared plumbing for every service in this stack.

One place for: hardened event reading (`protocol`), server start-up (`server`),
audio conversion (`audio`), model lookup (`models`), CLI/env settings (`cli`),
logging (`logs`) and the client API (`client`).
"""

from wyoming.info import Attribution

__version__ = "0.1.0"

# Who made the programs this stack advertises in `info` (models carry their own attribution).
PROJECT_ATTRIBUTION = Attribution(name="wyoming-local-voice", url="https://github.com/wyoming-local-voice")
