"""Zeroconf (mDNS) advertising and browsing of Wyoming services (`_wyoming._tcp.local.`)."""

from wyoming_core.advertise import SERVICE_TYPE

__all__ = ["SERVICE_TYPE"]
