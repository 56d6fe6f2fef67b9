"""Reference servers from PyPI (wyoming-piper, wyoming-faster-whisper) for same-run comparisons.

Each peer lives in its own venv under ~/.cache/wyoming-local-voice/peers/<name> (or
$WYOMING_PEERS_DIR/<name>), never in the project's .venv, so its pins cannot change ours. The
install is idempotent and taken under an exclusive lock (flock on <name>.lock), so benchmarks
started at the same time (bench/tts.py, bench/stt.py, bench/capacity.py) install it once and
never use a half-built venv. A venv whose marker names another version is rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import ServiceProcess


@dataclass(frozen=True)
class Peer:
    name: str  # the PyPI distribution
    version: str  # pinned: figures must be comparable between runs
    module: str  # `python -m MODULE` starts the server

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


WYOMING_PIPER = Peer("wyoming-piper", "2.5.2", "wyoming_piper")
WYOMING_FASTER_WHISPER = Peer("wyoming-faster-whisper", "3.8.1", "wyoming_faster_whisper")


def peers_dir() -> Path:
    default = Path.home() / ".cache" / "wyoming-local-voice" / "peers"
    return Path(os.environ.get("WYOMING_PEERS_DIR") or default)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def install(peer: Peer) -> Path:
    """The peer's venv python, installing the pinned version first if it is not there yet."""
    venv = peers_dir() / peer.name
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    with _locked(peers_dir() / f"{peer.name}.lock"):
        if marker.is_file() and marker.read_text().strip() == peer.spec and python.exists():
            return python
        print(f"Installing {peer.spec} into {venv} (once)", file=sys.stderr, flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        # The base interpreter of the running one (a venv's python makes a venv of its base).
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
        subprocess.run([*pip, peer.spec], check=True)
        marker.write_text(peer.spec + "\n")  # last: a venv without it is half-built
    return python


class PeerProcess(ServiceProcess):
    """A peer server started from its own venv: `VENV/bin/python -m MODULE --uri ... ARGS`."""

    def __init__(self, peer: Peer, *args: str) -> None:
        super().__init__(peer.module, *args)
        self.python = install(peer)

    def start(self) -> PeerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [str(self.python), "-m", self.module, "--uri", self.uri, *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.python.parents[1],  # not the repository: nothing of ours on its path
            env=self.env,
        )
        return self


def main() -> None:
    """`python -m bench.peers`: install every peer (what the benchmarks would do on first use)."""
    for peer in (WYOMING_PIPER, WYOMING_FASTER_WHISPER):
        print(peer.spec, install(peer))


if __name__ == "__main__":
    main()
