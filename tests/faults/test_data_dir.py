"""Fault drill: the data dir is read-only or full. A clear error, and nothing corrupted or half-written.

Read-only and full file systems are real ones: small tmpfs mounts (needs root with mount
rights, as on CI; skipped with the reason otherwise). chmod would prove nothing as root.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.robustness.targets import BUILDERS
from tests.support.services import ROOT, ServiceProcess
from wyoming_core.client import converse

Mount = Callable[..., Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """`tmpfs(size="1m", ro=False)` mounts a fresh tmpfs and returns its path; unmounted at teardown."""
    mounted: list[Path] = []

    def mount(size: str = "1m", ro: bool = False) -> Path:
        target = tmp_path / f"fs-{len(mounted)}"
        target.mkdir()
        options = f"size={size}" + (",ro" if ro else "")
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, check=False
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.decode().strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def run_stt_expecting_exit(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """STT on the bundled base model, which has to be assembled into the data dir first."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "wyoming_stt", "--uri", "tcp://127.0.0.1:0", "--model", "base"),
            *("--data-dir", str(data_dir), "--local-files-only"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_nothing_half_written(data_dir: Path) -> None:
    # No model under its final name, no temporary build dir; at most the empty lock file.
    left = {p.name: p for p in data_dir.iterdir()}
    assert set(left) <= {".base.lock"}, sorted(left)
    if ".base.lock" in left:
        assert left[".base.lock"].stat().st_size == 0


def test_stt_with_a_read_only_data_dir_exits_with_a_clear_message(tmpfs: Mount) -> None:
    data_dir = tmpfs(ro=True)
    result = run_stt_expecting_exit(data_dir)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Read-only file system" in output and str(data_dir) in output, output
    assert "--data-dir" in output, output  # says what to do about it
    assert not any(data_dir.iterdir())


def test_stt_with_a_full_data_dir_exits_with_a_clear_message_and_leaves_nothing(tmpfs: Mount) -> None:
    data_dir = tmpfs(size="1m")  # the assembled base model is ~140 MB
    result = run_stt_expecting_exit(data_dir)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "No space left on device" in output and str(data_dir) in output, output
    assert_nothing_half_written(data_dir)


def fill_up(path: Path) -> None:
    """Fill the file system `path` is on to the last byte."""
    with open(path, "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def _llm(fake_url: str, data_dir: Path) -> ServiceProcess:
    return ServiceProcess("wyoming_llm", "--ollama-url", fake_url, "--data-dir", str(data_dir)).start()


@pytest.fixture
def llm_missing() -> None:
    reason = BUILDERS["llm"].missing()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.usefixtures("llm_missing")
async def test_llm_with_a_read_only_data_dir_still_answers_and_says_why_it_forgets(tmpfs: Mount) -> None:
    from tests.support.fake_ollama import FakeOllama, echo_reply

    data_dir = tmpfs(ro=True)
    async with FakeOllama(reply=echo_reply) as fake:
        service = _llm(fake.url, data_dir)
        try:
            service.wait_listening()
            await service.wait_ready(marker="is loaded and warm")
            first = await converse(service.uri, "Remember the blue box.", "ro", timeout=60)
            second = await converse(service.uri, "What did I say?", "ro", timeout=60)
            assert first.handled and second.handled
            # It still remembers while running, in memory.
            assert fake.chats[-1].user_texts == ["Remember the blue box.", "What did I say?"]
            log = service.log()
            # One clear line: which file, and the consequence (SQLite's own reason is vaguer).
            assert "history.sqlite3" in log and "keeping it in memory only" in log, log
            assert log.count("keeping it in memory only") == 1, "said once, not per request"
        finally:
            service.stop()
    assert not any(data_dir.iterdir())


@pytest.mark.usefixtures("llm_missing")
async def test_llm_when_the_disk_fills_up_answers_on_and_keeps_its_history_intact(tmpfs: Mount) -> None:
    from tests.support.fake_ollama import FakeOllama

    data_dir = tmpfs(size="512k")
    async with FakeOllama(reply="Noted.") as fake:
        service = _llm(fake.url, data_dir)
        try:
            service.wait_listening()
            await service.wait_ready(marker="is loaded and warm")
            assert (await converse(service.uri, "Before the disk filled up.", "full", timeout=60)).handled
            fill_up(data_dir / "filler")
            for n in range(5):
                long_text = f"Turn {n} after the disk filled up. " + uuid.uuid4().hex * 50
                assert (await converse(service.uri, long_text, "full", timeout=60)).handled
            log = service.log()
            assert "keeping it in memory only" in log, log
        finally:
            service.stop()
    # The history on disk is the state before the disk filled up: whole, readable.
    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        users = [row[0] for row in db.execute("SELECT user_text FROM turns WHERE conversation LIKE '%full%'")]
    assert users[:1] == ["Before the disk filled up."], users


async def test_tts_with_a_read_only_data_dir_still_speaks(tmpfs: Mount) -> None:
    reason = BUILDERS["tts"].missing()
    if reason is not None:
        pytest.skip(reason)
    from tests.robustness.targets import tts_work

    data_dir = tmpfs(ro=True)  # voices are only read from it; the bundled voice needs nothing
    service = ServiceProcess("wyoming_tts", "--data-dir", str(data_dir)).start()
    try:
        service.wait_listening()
        await service.wait_ready()
        await tts_work(service.uri)
    finally:
        service.stop()
