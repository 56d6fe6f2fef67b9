"""Adverts and describes that cannot be trusted (issue 13, item 3).

- `describe` has an overall deadline: a service that streams other events instead of `info`
  (or a huge event) cannot stall a browser, and is never read past the describe limits.
- An advert from another host that points at 127.0.0.1 or a link-local address is refused and
  never contacted; a service on this host advertised on loopback is still found. "Another
  host" is a second network namespace joined by a veth pair (needs root and `ip`); everything
  stays inside the two namespaces made for the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from wyoming.event import Event, async_write_event

from discovery.browse import Browser, FoundService, describe_service
from tests.support.services import ROOT
from wyoming_core.client import CLIENT_LIMITS, ServiceTimeout, VoiceError, describe
from wyoming_core.protocol import read_event

MIB = 1024 * 1024
# Generous: the machine is shared. Without the deadline these never return at all.
RETURNS_WITHIN = 30.0


class Stalling:
    """Answers `describe` with something else: endless small events, or one huge one."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sent = 0
        self.connections = 0
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, OSError):
            if await read_event(reader, CLIENT_LIMITS) is None:
                return
            if self.mode == "endless":
                while self.sent < 10_000:  # bounded: 10,000 pings over more than half an hour
                    await async_write_event(Event("ping", {"text": "not info"}), writer)
                    self.sent += 1
                    await asyncio.sleep(0.2)
            else:  # one `info` with a 60 MiB payload, sent slowly
                header = json.dumps({"type": "info", "payload_length": 60 * MIB}).encode() + b"\n"
                writer.write(header)
                chunk = b"\0" * MIB
                for _ in range(60):
                    writer.write(chunk)
                    await writer.drain()
                    self.sent += len(chunk)
                    await asyncio.sleep(0.1)
        writer.close()

    async def __aenter__(self) -> Stalling:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def test_describe_has_an_overall_deadline() -> None:
    async with Stalling("endless") as stalling:
        uri = f"tcp://127.0.0.1:{stalling.port}"
        started = time.monotonic()
        with pytest.raises(ServiceTimeout):
            await asyncio.wait_for(describe(uri, timeout=2.0), RETURNS_WITHIN)
        assert time.monotonic() - started < RETURNS_WITHIN
        # The browser's describe of an advert, and its periodic re-check, finish too.
        found = await asyncio.wait_for(
            describe_service("stalling", "127.0.0.1", stalling.port, 2.0), RETURNS_WITHIN
        )
        assert not found.answering and found.error


async def test_browser_recheck_is_not_stalled_by_one_service() -> None:
    async with Stalling("endless") as stalling:
        browser = Browser(describe_timeout=2.0, recheck_interval=0)
        # A service the browser knows about (as if found over zeroconf earlier).
        browser._services["stalling._wyoming._tcp.local."] = FoundService(
            "stalling", "127.0.0.1", stalling.port
        )
        await asyncio.wait_for(browser.recheck(), RETURNS_WITHIN)
        assert not browser.services[0].answering


async def test_a_huge_describe_reply_is_not_read() -> None:
    async with Stalling("huge") as stalling:
        uri = f"tcp://127.0.0.1:{stalling.port}"
        with pytest.raises(VoiceError):
            await asyncio.wait_for(describe(uri, timeout=10.0), RETURNS_WITHIN)
        # Refused from its header: the rest was never read (at most what sat in socket buffers).
        await asyncio.sleep(1.0)
        assert stalling.sent < 30 * MIB, stalling.sent


# ---- adverts from another host, in two network namespaces -----------------------------------------

VICTIM_PORT = 47001
GOOD_PORT = 47002
LINK_LOCAL = "169.254.7.7"

_VICTIM = """
import socket, sys
path = sys.argv[1]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[2]))); srv.listen(16)
open(path, "w").close()
while True:
    conn, peer = srv.accept()
    with open(path, "a") as log:
        log.write(f"{peer[0]}\\n")
    conn.close()
"""

_ATTACKER = """
import asyncio, socket, sys
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf
token, own, port, link_local = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
TYPE = "_wyoming._tcp.local."

async def main():
    zc = AsyncZeroconf(interfaces=[own], ip_version=IPVersion.V4Only)
    for name, address in ((f"evil-lo-{token}", "127.0.0.1"), (f"evil-ll-{token}", link_local)):
        info = AsyncServiceInfo(TYPE, f"{name}.{TYPE}", addresses=[socket.inet_aton(address)],
                                port=port, server=f"{name}.local.")
        await (await zc.async_register_service(info))
    print("advertised", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def _two_hosts() -> Iterator[tuple[str, str]]:
    """Namespaces `here` and `there`, joined by a veth pair with multicast on; loopback too."""
    tag = f"{os.getpid() % 100000}"
    here, there = f"t13h{tag}", f"t13t{tag}"
    made: list[str] = []
    try:
        for ns in (here, there):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip(
            "link",
            "add",
            f"v13h{tag}",
            "netns",
            here,
            "type",
            "veth",
            "peer",
            "name",
            f"v13t{tag}",
            "netns",
            there,
        )
        _ip("-n", here, "addr", "add", "10.213.0.1/24", "dev", f"v13h{tag}")
        _ip("-n", here, "addr", "add", f"{LINK_LOCAL}/16", "dev", f"v13h{tag}")
        _ip("-n", there, "addr", "add", "10.213.0.2/24", "dev", f"v13t{tag}")
        for ns, dev in ((here, f"v13h{tag}"), (there, f"v13t{tag}")):
            _ip("-n", ns, "link", "set", dev, "up", "multicast", "on")
            _ip("-n", ns, "link", "set", "lo", "up", "multicast", "on")
    except (subprocess.CalledProcessError, OSError) as err:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        pytest.skip(f"cannot make network namespaces here: {err}")
    try:
        yield here, there
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


class _InNamespace:
    """Processes started inside a namespace; all stopped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, ns: str, *argv: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and `ip` for network namespaces")
    with _two_hosts() as pair:
        yield pair


@pytest.fixture
async def in_namespace() -> AsyncIterator[_InNamespace]:
    procs = _InNamespace()
    yield procs
    procs.stop()


def _browse(ns: str, timeout: float) -> list[dict[str, object]]:
    result = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "discovery", "--json", "--timeout", str(timeout)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(result.stdout) if result.stdout.strip() else []


async def test_loopback_and_link_local_adverts_from_another_host_are_refused(
    tmp_path: Path, namespaces: tuple[str, str], in_namespace: _InNamespace
) -> None:
    here, there = namespaces
    token = uuid.uuid4().hex[:8]
    # Here: a port that must never be contacted (on loopback and on the link-local address)...
    hits = tmp_path / "victim.log"
    in_namespace.start(here, "-c", textwrap.dedent(_VICTIM), str(hits), str(VICTIM_PORT))
    # ...and a genuine service of this host, advertised on loopback: it must still be found.
    in_namespace.start(
        here,
        "-m",
        "tests.satellite.fake_services",
        "--uri",
        f"tcp://127.0.0.1:{GOOD_PORT}",
        "--zeroconf",
        f"good-{token}",
        "tts",
    )
    # There: a stranger advertising both addresses, pointing at the victim's port.
    attacker = in_namespace.start(
        there, "-c", textwrap.dedent(_ATTACKER), token, "10.213.0.2", str(VICTIM_PORT), LINK_LOCAL
    )
    assert attacker.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(attacker.stdout.readline), 60)
    assert line.strip() == "advertised", line

    names = {f"good-{token}", f"evil-lo-{token}", f"evil-ll-{token}"}
    seen: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + 120
    while not names <= seen.keys():  # browse until every advert has been received
        assert time.monotonic() < deadline, f"adverts not all seen: {sorted(seen)}"
        found = await asyncio.to_thread(_browse, here, 4.0)
        seen.update({str(s["name"]): s for s in found if s["name"] in names})

    good = seen[f"good-{token}"]
    assert good["error"] is None and good["offers"], good
    for name in (f"evil-lo-{token}", f"evil-ll-{token}"):
        assert seen[name]["error"], seen[name]  # listed, with why it is not used
        assert not seen[name]["offers"], seen[name]
    assert hits.read_text() == "", f"the stranger's advert made us connect: {hits.read_text()}"
