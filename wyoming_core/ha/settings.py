"""`--ha-url`, `--ha-token`, `--ha-token-file`: the same flags on every service that talks to HA."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from wyoming_core.cli import EnvArgs

MCP_PATH = "/api/mcp"
SSE_PATH = "/mcp_server/sse"


@dataclass(frozen=True)
class HomeSettings:
    # Home Assistant's base URL (http://homeassistant.local:8123); /api/mcp is added.
    url: str
    # Never logged or shown: repr=False keeps it out of reprs of settings objects too.
    token: str = field(repr=False)

    @property
    def base_url(self) -> str:
        base = self.url.rstrip("/")
        return base.removesuffix(MCP_PATH).removesuffix(SSE_PATH)

    @property
    def mcp_url(self) -> str:
        return self.base_url + MCP_PATH

    @property
    def sse_url(self) -> str:
        return self.base_url + SSE_PATH


def add_home_args(args: EnvArgs, what: str) -> None:
    """The connection flags; `what` says in --help what the service uses Home Assistant for."""
    args.add(
        "--ha-url",
        default=None,
        help=f"Home Assistant's URL, e.g. http://homeassistant.local:8123 ({what}; "
        "needs HA's 'Model Context Protocol Server' integration)",
    )
    args.add("--ha-token", default=None, help="A long-lived access token of a Home Assistant user")
    args.add("--ha-token-file", default=None, help="Read the long-lived access token from this file")


def home_settings(ns: argparse.Namespace) -> HomeSettings | None:
    """None when no URL is given; SystemExit with a plain message for half a configuration."""
    url = (ns.ha_url or "").strip()
    if ns.ha_token and ns.ha_token_file:
        raise SystemExit("Give --ha-token or --ha-token-file, not both")
    token = (ns.ha_token or "").strip()
    if ns.ha_token_file:
        try:
            token = Path(ns.ha_token_file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise SystemExit(f"Cannot read --ha-token-file {ns.ha_token_file}: {err.strerror}") from None
        if not token:
            raise SystemExit(f"--ha-token-file {ns.ha_token_file} is empty")
    if not url:
        if token:
            raise SystemExit("A Home Assistant token was given without --ha-url")
        return None
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SystemExit(f"--ha-url must look like http://homeassistant.local:8123, not {url!r}")
    if not token:
        raise SystemExit(
            "--ha-url needs a long-lived access token (--ha-token or --ha-token-file): "
            "create one in Home Assistant under your profile -> Security"
        )
    return HomeSettings(url=url.rstrip("/"), token=token)
