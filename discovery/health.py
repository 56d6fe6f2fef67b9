"""`python -m discovery.health URI`: exit 0 when the service answers `describe` in time.

For container healthchecks and systemd: no zeroconf, one connection, a short timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from wyoming_core.cli import version_text
from wyoming_core.client import VoiceError, describe

from .catalog import offers


async def check(uri: str, timeout: float) -> str:
    """What the service offers, e.g. `asr faster-whisper`; raises VoiceError when it does not answer."""
    info = await describe(uri, timeout=timeout)
    return ", ".join(f"{o.kind} {o.program}" for o in offers(info)) or "nothing"


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m discovery.health", description=__doc__)
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("uri", help="tcp://HOST:PORT of the service")
    parser.add_argument("--timeout", type=float, default=1.0, help="Seconds to wait for the answer")
    parser.add_argument("--quiet", action="store_true", help="Print nothing, only set the exit code")
    args = parser.parse_args(argv)
    try:
        summary = asyncio.run(check(args.uri, args.timeout))
    except VoiceError as err:
        if not args.quiet:
            print(f"unhealthy: {err}", file=sys.stderr)
        sys.exit(1)
    if not args.quiet:
        print(f"healthy: {args.uri} offers {summary}")


if __name__ == "__main__":
    run()
