"""Zeroconf (mDNS) advertising and browsing of Wyoming services (`_wyoming._tcp.local.`)."""

SERVICE_TYPE = "_wyoming._tcp.local."
