"""Does multicast on the loopback interface carry here? If not, the zeroconf tests run again
inside a network namespace of their own, where we may switch loopback multicast on."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import uuid
from pathlib import Path

# Not mDNS's group and port: the probe must not reach anybody's mDNS listener.
_PROBE_GROUP = "239.255.77.77"
IN_NETNS_ENV = "WYOMING_TESTS_IN_NETNS"
ROOT = Path(__file__).resolve().parents[2]


def loopback_multicast_carries(timeout: float = 1.0) -> bool:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rx.bind(("", 0))
        port = rx.getsockname()[1]
        try:
            rx.setsockopt(
                socket.IPPROTO_IP,
                socket.IP_ADD_MEMBERSHIP,
                socket.inet_aton(_PROBE_GROUP) + socket.inet_aton("127.0.0.1"),
            )
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
            token = uuid.uuid4().bytes
            tx.sendto(token, (_PROBE_GROUP, port))
            rx.settimeout(timeout)
            return rx.recv(64) == token
        except OSError:
            return False


def can_make_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None and not os.environ.get(IN_NETNS_ENV)


def run_in_netns(test_paths: list[str]) -> subprocess.CompletedProcess[str]:
    """Run pytest on `test_paths` in a fresh namespace whose loopback carries multicast."""
    name = f"wyoming-tests-{os.getpid()}"
    ip = shutil.which("ip") or "ip"
    subprocess.run([ip, "netns", "add", name], check=True)
    try:
        subprocess.run([ip, "-n", name, "link", "set", "lo", "up", "multicast", "on"], check=True)
        pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *test_paths]
        return subprocess.run(
            [ip, "netns", "exec", name, *pytest_cmd],
            cwd=ROOT,
            env={**os.environ, IN_NETNS_ENV: "1"},
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        subprocess.run([ip, "netns", "delete", name], check=False)
