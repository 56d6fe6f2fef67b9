"""Where loopback multicast does not carry, the zeroconf tests run in a network namespace."""

from __future__ import annotations

import pytest

from tests.discovery.conftest import NETWORK_MODULES, _carries
from tests.discovery.multicast import can_make_netns, run_in_netns

pytestmark = pytest.mark.timeout(960)


def test_zeroconf_tests_in_a_namespace() -> None:
    if _carries():
        pytest.skip("multicast carries on loopback: the zeroconf tests ran directly")
    if not can_make_netns():
        pytest.fail("no multicast on loopback, and no network namespace can be made (needs root and ip)")
    result = run_in_netns([f"tests/discovery/{module}" for module in NETWORK_MODULES])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
