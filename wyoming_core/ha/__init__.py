"""Home Assistant over its MCP server: the connection, and what it says about the home.

Used by the conversation service (tools, the local fast path) and the STT (entity names to
listen for). The `mcp` client library is imported only when a connection is made, so the
satellite and other users of `wyoming_core` do not need it.
"""

from .entities import ExposedEntity, parse_live_context
from .link import HomeError, HomeLink
from .settings import HomeSettings, add_home_args, home_settings

__all__ = [
    "ExposedEntity",
    "HomeError",
    "HomeLink",
    "HomeSettings",
    "add_home_args",
    "home_settings",
    "parse_live_context",
]
