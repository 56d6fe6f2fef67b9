"""The standalone satellite with two real STT instances (`--stt-uri A,B`): turns spread over
both, and when one goes away the user hardly notices.

- One killed between turns: the next turns all succeed (the turn that tries it first moves on
  to the other within the turn: nothing was sent yet).
- One hung (SIGSTOP: it still accepts connections): no turn is lost. The pool asks both how
  busy they are before each turn (balance) and the hung one, not answering, is asked last.

Asserted on what can be seen from outside: the feedback sounds in the speaker output (found
sample for sample), the questions the fake handle service received, and the exit code.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.satellite.fake_services import FakeService
from tests.satellite.helpers import (
    WAKE_REQUEST,
    GatedMic,
    SatelliteRun,
    silence,
    snd_file_pcm,
    speech,
    times_played,
)
from tests.support.services import ServiceProcess
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(600)

# Generous: the machine is shared.
TURN_WITHIN = 120.0


@dataclass
class Rig:
    stt: list[ServiceProcess]
    handle: FakeService
    tts: FakeService
    folder: Path

    def questions(self) -> list[str]:
        return self.handle.texts("transcript")


@pytest.fixture
async def rig(tmp_path: Path, service_factory: list[ServiceProcess]) -> AsyncIterator[Rig]:
    data_dir = tmp_path / "stt-data"
    stt = [
        ServiceProcess(
            "wyoming_stt",
            *("--model", "tiny.en", "--language", "en", "--data-dir", str(data_dir)),
            *("--cpu-threads", "1"),
        ).start()
        for _ in range(2)
    ]
    service_factory.extend(stt)
    handle = FakeService(tmp_path / "handle.jsonl", "handle")
    tts = FakeService(tmp_path / "tts.jsonl", "tts")
    service_factory.extend([handle.start(), tts.start()])
    for service in [*stt, handle, tts]:
        service.wait_listening(60)
    for service in stt:
        await service.wait_ready(240)
    try:
        yield Rig(stt, handle, tts, tmp_path)
    finally:
        for service in stt:  # a stopped process must run again to stop cleanly
            if service.proc is not None and service.proc.poll() is None:
                service.proc.send_signal(signal.SIGCONT)


@dataclass
class Turns:
    """Each turn's outcome, read from the speaker: the done sound (answered) or the error sound."""

    out: Path
    done: int = 0
    errors: int = 0

    def counts(self) -> tuple[int, int]:
        pcm = snd_file_pcm(self.out)
        return times_played(pcm, "done"), times_played(pcm, "error")

    async def next(self, sat: SatelliteRun) -> str:
        """Wait for the next turn to end: "ok" or "error"."""
        await until(lambda: sum(self.counts()) > self.done + self.errors, TURN_WITHIN, sat.log)
        done, errors = self.counts()
        assert done + errors == self.done + self.errors + 1, (done, errors, sat.log())
        outcome = "error" if errors > self.errors else "ok"
        self.done, self.errors = done, errors
        return outcome


async def _satellite(rig: Rig, turns: int, *extra: str) -> tuple[SatelliteRun, GatedMic, Turns]:
    """The satellite on both STT instances; the mic says the request once per turn, each turn
    after the first when the test opens its gate (`mic.open(n)`)."""
    request = speech(WAKE_REQUEST) + silence(1.0)
    mic = GatedMic(rig.folder / "mic", silence(1.0) + request, *[request] * (turns - 1))
    out = rig.folder / "out.wav"
    a, b = rig.stt
    sat = await SatelliteRun(
        *("--mic-command", mic.command(), "--snd-file", str(out)),
        *("--wake-word", "hey_jarvis", "--follow-up", "0", "--exit-after-turns", str(turns)),
        *("--stt-uri", f"{a.uri},{b.uri}", "--tts-uri", rig.tts.uri, "--handle-uri", rig.handle.uri),
        *extra,
    ).start()
    return sat, mic, Turns(out)


async def test_an_instance_killed_between_turns_costs_no_turn(rig: Rig) -> None:
    sat, mic, turns = await _satellite(rig, 3)
    try:
        assert await turns.next(sat) == "ok", sat.log()
        victim = rig.stt[0].proc
        assert victim is not None
        victim.kill()
        victim.wait()
        # Round-robin: of the next two turns one starts at the dead instance, and moves on.
        outcomes = []
        for turn in (1, 2):
            mic.open(turn)
            outcomes.append(await turns.next(sat))
        assert outcomes == ["ok", "ok"], sat.log()
        assert await sat.wait_exit(60) == 0, sat.log()
    finally:
        await sat.stop()
    questions = rig.questions()
    assert len(questions) == 3 and all("time" in q.lower() for q in questions), questions


async def test_a_hung_instance_is_passed_over_without_losing_a_turn(rig: Rig) -> None:
    sat, mic, turns = await _satellite(rig, 5, "--stt-timeout", "5")
    hung = rig.stt[0].proc
    assert hung is not None
    try:
        assert await turns.next(sat) == "ok", sat.log()
        hung.send_signal(signal.SIGSTOP)
        outcomes = []
        for turn in range(1, 5):
            mic.open(turn)
            outcomes.append(await turns.next(sat))
        # Before each turn the pool asks the instances how busy they are (balance): the hung
        # one does not answer, so it is asked last and no turn meets it.
        assert outcomes == ["ok"] * 4, (outcomes, sat.log())
        assert await sat.wait_exit(60) == 0, sat.log()
    finally:
        hung.send_signal(signal.SIGCONT)
        await sat.stop()
    questions = rig.questions()
    assert len(questions) == 5 and all("time" in q.lower() for q in questions), questions
