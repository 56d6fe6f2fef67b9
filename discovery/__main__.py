"""`python -m discovery`: list the Wyoming services found on the network, as a table.

The first thing to run when a service is not found: it shows every `_wyoming._tcp.local.`
service, what it offers (asr, tts, handle, wake, satellite), its models or voices and its
languages — or why it does not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from urllib.parse import urlparse

from wyoming_core.cli import version_text

from .browse import Browser, FoundService, browse, describe_service
from .catalog import normalise_kind, short_list

HEADERS = ("NAME", "ADDRESS", "KIND", "MODELS/VOICES", "LANGUAGES")


def rows(services: Sequence[FoundService]) -> list[tuple[str, ...]]:
    """One row per program a service offers; a service that does not answer gets one row saying so."""
    table: list[tuple[str, ...]] = []
    for service in services:
        address = f"{service.host}:{service.port}"
        if service.error is not None:
            table.append((service.name, address, "?", f"not answering: {service.error}", "-"))
            continue
        if not service.offers:
            table.append((service.name, address, "-", "offers nothing", "-"))
        for offer in service.offers:
            items = short_list(offer.items, 4)
            if offer.program and offer.program not in offer.items:
                items = f"{offer.program}: {items}"
            table.append((service.name, address, offer.kind, items, short_list(offer.languages)))
    return table


def format_table(services: Sequence[FoundService]) -> str:
    body = rows(services)
    if not body:
        return (
            "No Wyoming services found. Are they started with --zeroconf, on this network, "
            "and is UDP port 5353 (mDNS) open?"
        )
    widths = [max(len(r[i]) for r in [HEADERS, *body]) for i in range(len(HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [HEADERS, *body]]
    return "\n".join(line.rstrip() for line in lines)


def as_json(services: Sequence[FoundService]) -> str:
    return json.dumps(
        [
            {
                "name": s.name,
                "uri": s.uri,
                "error": s.error,
                "offers": [asdict(o) for o in s.offers],
            }
            for s in services
        ],
        indent=2,
    )


async def _describe_given(uris: Sequence[str], timeout: float) -> list[FoundService]:
    found = []
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme != "tcp" or parsed.hostname is None or parsed.port is None:
            raise SystemExit(f"--uri takes tcp://HOST:PORT, not {uri!r}")
        found.append(await describe_service(uri, parsed.hostname, parsed.port, timeout))
    return sorted(found, key=lambda s: s.sort_key)


async def _watch(args: argparse.Namespace, output: Callable[[Sequence[FoundService]], None]) -> None:
    async with Browser(args.interface or None, describe_timeout=args.describe_timeout) as browser:
        browser.subscribe(lambda services: output(_filter(services, args.kind)))
        await asyncio.Event().wait()


def _filter(services: Sequence[FoundService], kind: str | None) -> list[FoundService]:
    return [s for s in services if kind is None or s.offers_kind(kind)]


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m discovery", description="List the Wyoming services found over zeroconf."
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("--timeout", type=float, default=3.0, help="Seconds to browse before printing")
    parser.add_argument("--describe-timeout", type=float, default=2.0, help="Seconds to wait for describe")
    parser.add_argument("--kind", help="Only this kind: asr (stt), tts, handle (llm), wake, satellite")
    parser.add_argument(
        "--interface", action="append", default=[], help="Browse on this interface address only (repeatable)"
    )
    parser.add_argument("--uri", action="append", default=[], help="Describe this URI instead of browsing")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table")
    parser.add_argument("--watch", action="store_true", help="Keep browsing; print the table on every change")
    args = parser.parse_args(argv)
    if args.kind:
        try:
            args.kind = normalise_kind(args.kind)
        except ValueError as err:
            parser.error(str(err))

    def output(services: Sequence[FoundService]) -> None:
        print(as_json(services) if args.json else format_table(services), flush=True)
        if args.watch:
            print(flush=True)

    try:
        if args.watch:
            asyncio.run(_watch(args, output))
            return
        if args.uri:
            services = asyncio.run(_describe_given(args.uri, args.describe_timeout))
        else:
            services = asyncio.run(browse(args.timeout, args.interface or None, args.describe_timeout))
    except KeyboardInterrupt:
        return
    services = _filter(services, args.kind)
    output(services)
    if not services:
        sys.exit(1)


if __name__ == "__main__":
    run()
