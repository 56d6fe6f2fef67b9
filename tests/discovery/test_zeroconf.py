"""Advertise, browse, describe and disappear with the real zeroconf library between processes.

Everything is on 127.0.0.1 (multicast on the loopback interface carries between processes
here); each test's instance names carry a random token so services other tests or other
people run on this machine do not get in the way.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from discovery.browse import Browser, FoundService
from tests.support.services import ROOT, ServiceProcess
from wyoming_core.advertise import Advertiser, default_instance_name

LOOPBACK = ["127.0.0.1"]
pytestmark = pytest.mark.timeout(180)


def fake(token: str, kind: str, reply: str = "hello", **env: str) -> ServiceProcess:
    return ServiceProcess(
        "tests.discovery.fake_service",
        "--zeroconf",
        f"{kind}-{token}",
        "--kind",
        kind,
        "--reply",
        reply,
        "--language",
        "en",
        env=env,
    ).start()


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def fakes(token: str) -> Iterator[dict[str, ServiceProcess]]:
    started = {kind: fake(token, kind) for kind in ("tts", "handle", "asr")}
    try:
        for service in started.values():
            service.wait_listening()
        yield started
    finally:
        for service in started.values():
            service.stop()


def mine(token: str, services: list[FoundService]) -> list[FoundService]:
    return [s for s in services if token in s.name]


async def test_browse_describes_and_sorts_what_is_advertised(
    token: str, fakes: dict[str, ServiceProcess]
) -> None:
    async with Browser(LOOPBACK, recheck_interval=0) as browser:
        found = await browser.wait_for(
            lambda services: len([s for s in mine(token, services) if s.answering]) == 3, timeout=30
        )
        ours = mine(token, found)
        assert [s.name for s in ours] == [f"asr-{token}", f"tts-{token}", f"handle-{token}"]
        by_kind = {s.kinds[0]: s for s in ours}
        assert by_kind["asr"].port == fakes["asr"].port
        assert by_kind["asr"].host == "127.0.0.1"  # the bound address, never 0.0.0.0
        assert by_kind["tts"].offers[0].items == ("fake-model",)
        assert by_kind["handle"].offers[0].languages == ("en",)
        assert [s.name for s in browser.of_kind("asr") if token in s.name] == [f"asr-{token}"]


async def test_the_table_command_lists_them(token: str, fakes: dict[str, ServiceProcess]) -> None:
    # The first thing a user runs: `python -m discovery`.
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "discovery", "--interface", "127.0.0.1", "--timeout", "3", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    table = await asyncio.to_thread(run)
    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if token in line]
    assert [line.split()[0] for line in lines] == [f"asr-{token}", f"tts-{token}", f"handle-{token}"]
    assert f"127.0.0.1:{fakes['tts'].port}" in lines[1] and "fake-model" in lines[1]

    listed = json.loads((await asyncio.to_thread(run, "--json", "--kind", "tts")).stdout)
    assert [entry["name"] for entry in listed if token in entry["name"]] == [f"tts-{token}"]


async def test_a_service_that_stops_disappears(token: str, fakes: dict[str, ServiceProcess]) -> None:
    async with Browser(LOOPBACK, recheck_interval=1.0) as browser:
        await browser.wait_for(lambda s: len([x for x in mine(token, s) if x.answering]) == 3, timeout=30)
        changes: list[int] = []
        browser.subscribe(lambda services: changes.append(len(mine(token, services))))

        # A clean stop sends the zeroconf goodbye: the entry goes at once.
        fakes["tts"].stop()
        await browser.wait_for(lambda s: f"tts-{token}" not in {x.name for x in s}, timeout=30)

        # A crash sends nothing: the periodic describe marks it as not answering.
        assert fakes["handle"].proc is not None
        fakes["handle"].proc.send_signal(signal.SIGKILL)
        found = await browser.wait_for(
            lambda s: any(x.name == f"handle-{token}" and x.error for x in s), timeout=30
        )
        assert [x.name for x in mine(token, found) if x.answering] == [f"asr-{token}"]
        assert browser.of_kind("handle", answering_only=False)
        assert not [x for x in browser.of_kind("handle") if token in x.name]
        assert changes  # listeners heard about it


async def test_the_advertiser_follows_an_address_change(token: str) -> None:
    addresses = ["127.0.0.1"]
    advertiser = Advertiser(
        f"moving-{token}",
        port=12345,
        bind_host=None,
        service_name="test",
        recheck_interval=0.2,
        address_source=lambda: addresses[0],
    )
    async with Browser(LOOPBACK, recheck_interval=0) as browser:
        await advertiser.start()
        try:
            await browser.wait_for(lambda s: any(x.name == f"moving-{token}" for x in s), timeout=30)
            addresses[0] = "127.0.0.2"  # still the loopback interface, so it carries
            await browser.wait_for(
                lambda s: any(x.name == f"moving-{token}" and x.host == "127.0.0.2" for x in s), timeout=30
            )
        finally:
            await advertiser.stop()
        await browser.wait_for(lambda s: all(x.name != f"moving-{token}" for x in s), timeout=30)


def test_default_names_are_stable_and_valid() -> None:
    name = default_instance_name("wyoming-stt", 10300)
    assert name == default_instance_name("wyoming-stt", 10300)
    assert name.startswith("wyoming-stt-") and name.endswith("-10300")
    assert len(default_instance_name("x" * 80)) <= 63
