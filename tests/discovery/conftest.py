"""Zeroconf tests need multicast between processes on 127.0.0.1 (see multicast.py)."""

from __future__ import annotations

import functools
import os

import pytest

from tests.discovery.multicast import IN_NETNS_ENV, loopback_multicast_carries

NETWORK_MODULES = ("test_zeroconf.py", "test_failover.py")


@functools.cache
def _carries() -> bool:
    # WYOMING_TESTS_FORCE_NETNS=1 tries the namespace path on a machine where loopback works.
    forced = os.environ.get("WYOMING_TESTS_FORCE_NETNS") == "1" and not os.environ.get(IN_NETNS_ENV)
    return not forced and loopback_multicast_carries()


@pytest.fixture(autouse=True)
def _needs_loopback_multicast(request: pytest.FixtureRequest) -> None:
    if request.node.path.name in NETWORK_MODULES and not _carries():
        pytest.skip("no multicast on loopback here: test_netns_fallback runs this in a namespace")
