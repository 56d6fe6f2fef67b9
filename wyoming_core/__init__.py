"""Shared plumbing for every service in this stack.

One place for: hardened event reading (`protocol`), server start-up (`server`),
audio conversion (`audio`), model lookup (`models`), CLI/env settings (`cli`),
logging (`logs`) and the client API (`client`).
"""

__version__ = "0.1.0"
