"""Fault drill: a service found over zeroconf vanishes; the satellite fails over to another instance.

Two real conversation services advertise themselves (`--zeroconf`); the satellite finds the
handle service over zeroconf (`--service-filter`). After the first turn the instance it
uses is killed (no zeroconf goodbye: a crash or a pulled plug). At most the turn that meets
the dead instance fails; the next one is answered by the other instance.
(tests/discovery/test_failover.py covers ServicePool's failover between two STT instances.)
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path

import pytest

from tests.robustness.targets import BUILDERS, Target
from tests.support.services import ServiceProcess
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(300)


async def test_satellite_fails_over_when_a_zeroconf_service_vanishes(tmp_path: Path) -> None:
    for name in ("stt", "llm", "satellite"):
        reason = BUILDERS[name].missing()
        if reason is not None:
            pytest.skip(reason)
    from tests.satellite.fake_services import FakeService
    from tests.satellite.helpers import WAKE_REQUEST, SatelliteRun, mic_wav, snd_file_pcm, times_played
    from tests.support.fake_ollama import FakeOllama

    token = uuid.uuid4().hex[:8]
    processes: list[ServiceProcess] = []
    stt: Target | None = None
    sat: SatelliteRun | None = None
    async with contextlib.AsyncExitStack() as stack:
        try:
            # Each instance on its own fake model, whose answer says which instance it is.
            handles: dict[str, ServiceProcess] = {}
            replies: dict[str, str] = {}
            for name in ("a", "b"):
                instance = f"drill-handle-{name}-{token}"
                replies[instance] = f"Instance {name} answers."
                fake = await stack.enter_async_context(FakeOllama(reply=replies[instance]))
                handles[instance] = ServiceProcess(
                    "wyoming_llm",
                    "--ollama-url",
                    fake.url,
                    "--data-dir",
                    str(tmp_path / name),
                    "--zeroconf",
                    instance,
                ).start()
            processes += handles.values()
            tts = FakeService(tmp_path / "tts.jsonl", "tts")
            processes.append(tts.start())
            stt = await BUILDERS["stt"].start(tmp_path / "stt")
            for process in processes:
                process.wait_listening()
            for handle in handles.values():
                await handle.wait_ready(marker="is loaded and warm")

            def answered_by() -> list[str]:
                """Which instance answered each turn that was answered, in order."""
                instance_of = {reply: instance for instance, reply in replies.items()}
                return [instance_of.get(text.strip(), text) for text in tts.texts("synthesize-chunk")]

            mic = mic_wav(
                tmp_path / "mic.wav", 1.0, WAKE_REQUEST, 12.0, WAKE_REQUEST, 12.0, WAKE_REQUEST, 3.0
            )
            out = tmp_path / "out.wav"
            sat = await SatelliteRun(
                "--mic-file",
                str(mic),
                "--snd-file",
                str(out),
                "--wake-word",
                "hey_jarvis",
                "--stt-uri",
                stt.uri,
                "--tts-uri",
                tts.uri,
                "--service-filter",
                token,
                "--follow-up",
                "0",
                "--exit-after-turns",
                "3",
            ).start()
            # The first turn is answered (by the instance found first); that one then dies.
            await until(lambda: len(tts.records("synthesize-stop")) >= 1, 90, sat.log)
            dead = answered_by()[0]
            alive = next(name for name in handles if name != dead)
            victim = handles[dead].proc
            assert victim is not None
            victim.kill()  # no goodbye: it stays advertised until its record expires
            victim.wait()

            assert await sat.wait_exit(150) == 0, sat.log()
            answers = answered_by()
            # At most the turn that met the dead instance failed (with the error sound and a
            # message naming the service); the last turn was answered by the other instance.
            assert len(answers) >= 2 and answers[0] == dead, answers
            assert answers[1:] == [alive] * (len(answers) - 1), answers
            failed = times_played(snd_file_pcm(out), "error")
            assert failed == 3 - len(answers), (failed, answers)
            if failed:
                assert re.search(r"handle service at tcp://\S+ failed", sat.log()), sat.log()
        finally:
            if sat is not None:
                await sat.stop()
            if stt is not None:
                await stt.stop()
            for process in processes:
                process.stop()
