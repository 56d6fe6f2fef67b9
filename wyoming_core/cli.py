"""Argparse with every flag also read from an environment variable.

`EnvArgs.add("--model", env="STT_MODEL", default="base")` makes the help text
say `(env: STT_MODEL)` and takes the default from the environment, so a
container sets options without rewriting the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from . import __version__
from .admission import AdmissionSettings, parse_allow
from .logs import setup_logging
from .models import ModelNotFoundError
from .protocol import Limits
from .server import EXIT_ADDRESS_IN_USE, HttpAddress, ListenError, ServerSettings

_LOGGER = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(value: str, env: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SystemExit(f"Environment variable {env}={value!r} must be true/false")


def version_text() -> str:
    """What `--version` prints (argparse fills in %(prog)s)."""
    return f"%(prog)s {__version__} (wyoming-local-voice)"


def _shown(default: Any) -> str:
    """A default as a user would type it (an AudioFormat as RATE:WIDTH:CHANNELS, lists joined)."""
    if all(hasattr(default, field) for field in ("rate", "width", "channels")):
        return f"{default.rate}:{default.width}:{default.channels}"
    if isinstance(default, list | tuple):
        return ",".join(map(str, default))
    return str(default)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows the real defaults: none for "not set" or off switches, the computed one where given."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "(default" in text or "%(default)" in text or not action.option_strings:
            return text
        if action.default in (None, False, [], (), argparse.SUPPRESS):
            return text
        return f"{text} (default: {_shown(action.default).replace('%', '%%')})"


class EnvArgs:
    """Thin wrapper over ArgumentParser that wires env vars into defaults."""

    def __init__(self, prog: str, description: str, env_prefix: str) -> None:
        self.parser = argparse.ArgumentParser(
            prog=prog, description=description, formatter_class=_HelpFormatter
        )
        self.parser.add_argument("--version", action="version", version=version_text())
        self.prefix = env_prefix

    def env_name(self, flag: str) -> str:
        return self.prefix + flag.lstrip("-").upper().replace("-", "_")

    def add(
        self, *flags: str, env: str | None = None, shown_default: str | None = None, **kwargs: Any
    ) -> None:
        """`shown_default`: what --help says when the default is worked out later (a data dir)."""
        env = env or self.env_name(flags[0])
        raw = os.environ.get(env)
        action = kwargs.get("action")
        if shown_default is not None and raw is None:
            shown = shown_default.replace("%", "%%")
            kwargs["help"] = f"{kwargs.get('help', '')} (default: {shown})".strip()
        if raw is not None:
            if action == "store_true":
                kwargs["default"] = env_bool(raw, env)
            elif action == "append":
                kwargs["default"] = [part for part in raw.split(",") if part.strip()]
            elif "type" in kwargs and kwargs["type"] is not None:
                try:
                    kwargs["default"] = kwargs["type"](raw)
                except (TypeError, ValueError) as err:
                    raise SystemExit(f"Environment variable {env}={raw!r} is invalid: {err}") from None
            else:
                kwargs["default"] = raw
        kwargs["help"] = f"{kwargs.get('help', '')} (env: {env})".strip()
        self.parser.add_argument(*flags, **kwargs)

    def add_server_args(self, default_uri: str) -> None:
        """Flags every service shares."""
        self.add(
            "--uri", default=default_uri, help="Where to listen: tcp://HOST:PORT, unix://PATH or stdio://"
        )
        self.add(
            "--zeroconf",
            nargs="?",
            const="",
            default=None,
            help="Advertise over mDNS as _wyoming._tcp (optionally under NAME)",
        )
        self.add("--debug", action="store_true", help="Log debug messages")
        self.add(
            "--max-event-bytes",
            type=int,
            default=Limits.max_payload_bytes,
            help="Largest event payload (e.g. an audio chunk) a client may send",
        )
        self.add(
            "--idle-timeout",
            type=float,
            default=Limits.idle_timeout,
            help="Close a connection after this many seconds without an event (0: never)",
        )
        self.add(
            "--write-timeout",
            type=float,
            default=Limits.write_timeout,
            help="Close a connection whose client has not read what was sent for this many seconds "
            "(0: never)",
        )
        self.add(
            "--allow",
            action="append",
            metavar="CIDR[,CIDR...]",
            help="Accept connections only from these addresses or networks (e.g. 192.168.1.0/24,"
            "127.0.0.1); others are closed at once (not given: anyone who can reach the port)",
        )
        self.add(
            "--max-connections",
            type=int,
            default=AdmissionSettings.max_connections,
            help="Connections open at once, from all clients; more get an 'overloaded' error",
        )
        self.add(
            "--max-connections-per-address",
            type=int,
            default=AdmissionSettings.max_per_address,
            help="Connections open at once from one address; more get a 'too-many-connections' error",
        )
        self.add(
            "--max-buffered-bytes",
            type=int,
            default=AdmissionSettings.max_buffered_bytes,
            help="Bytes of large events (over 64 KiB) all clients together may be sending at once; "
            "an event that does not fit gets an 'overloaded' error",
        )
        self.add(
            "--http",
            metavar="HOST:PORT",
            default=None,
            help="Serve /metrics (Prometheus) and /healthz (JSON) over HTTP here; a bare PORT means "
            "127.0.0.1:PORT (off unless given)",
        )

    def parse(self, argv: list[str] | None = None) -> argparse.Namespace:
        return self.parser.parse_args(argv)


def server_settings(args: argparse.Namespace) -> ServerSettings:
    limits = Limits(
        max_payload_bytes=args.max_event_bytes,
        idle_timeout=args.idle_timeout or None,
        write_timeout=args.write_timeout or None,
    )
    if args.max_connections < 1 or args.max_connections_per_address < 1:
        raise SystemExit("--max-connections and --max-connections-per-address must be at least 1")
    if args.max_buffered_bytes < args.max_event_bytes:
        raise SystemExit(
            f"--max-buffered-bytes ({args.max_buffered_bytes}) must be at least --max-event-bytes "
            f"({args.max_event_bytes}), or no large event could ever be received"
        )
    try:
        allow = parse_allow(args.allow or [])
    except ValueError as err:
        raise SystemExit(f"--allow: {err}") from None
    admission = AdmissionSettings(
        max_connections=args.max_connections,
        max_per_address=args.max_connections_per_address,
        max_buffered_bytes=args.max_buffered_bytes,
        allow=allow,
    )
    return ServerSettings(
        uri=args.uri,
        limits=limits,
        zeroconf_name=args.zeroconf,
        admission=admission,
        http=http_address(args.http),
    )


def http_address(text: str | None) -> HttpAddress | None:
    """`--http`: HOST:PORT, [IPv6]:PORT, or a bare PORT (on 127.0.0.1); None/"" is off."""
    if not text or not text.strip():
        return None
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]") if sep else ""
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise SystemExit(f"--http {text!r}: give HOST:PORT (e.g. 127.0.0.1:9100) or a port number")
    return HttpAddress(host or "127.0.0.1", number)


class StartupError(Exception):
    """The service cannot do its job at all (e.g. its model cannot be loaded): exit, don't linger."""

    def __init__(self, message: str, exit_code: int = 3) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_service(main: Callable[[], Awaitable[None]], *, name: str, debug: bool) -> None:
    """Run a service's main coroutine with logging set up; known start-up failures become one
    clear log line and an exit code instead of a traceback (2: model not found, 3: cannot start,
    4: its port is taken)."""
    setup_logging(debug, name)

    async def _main() -> None:
        await main()

    try:
        asyncio.run(_main())
    except ModelNotFoundError as err:
        _LOGGER.error("%s", err)
        sys.exit(2)
    except (StartupError, ListenError) as err:
        _LOGGER.error("%s", err)
        sys.exit(err.exit_code)
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        _LOGGER.error("%s", address_in_use(err))
        sys.exit(EXIT_ADDRESS_IN_USE)
    except KeyboardInterrupt:
        pass


def address_in_use(err: OSError) -> str:
    """One line for "address already in use": which port, and how to choose another."""
    # asyncio says: "error while attempting to bind on address ('127.0.0.1', 10300): ..."
    found = re.search(r"address \('?([^',]*)'?, (\d+)", str(err))
    where = f"port {found.group(2)} on {found.group(1) or 'every interface'}" if found else "the port"
    return (
        f"Cannot listen: {where} is already in use by another program (another copy of this "
        "service?). Stop that program, or choose another port with --uri tcp://HOST:PORT"
    )
