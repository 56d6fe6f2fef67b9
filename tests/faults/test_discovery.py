"""Fault drill: a service found over zeroconf vanishes; the satellite fails over to another instance.

Two real conversation services advertise themselves (`--zeroconf`); the satellite finds the
handle service over zeroconf (`--service-filter`). After the first turn the instance it
uses is killed (no zeroconf goodbye: a crash or a pulled plug). At most the turn that meets
the dead instance fails; the next one is answered by the other instance.
(tests/discovery/test_failover.py covers ServicePool's failover between two STT instances.)
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.robustness.targets import BUILDERS, Target
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.timeout(300)


async def test_satellite_fails_over_when_a_zeroconf_service_vanishes(tmp_path: Path) -> None:
    for name in ("stt", "llm", "satellite"):
        reason = BUILDERS[name].missing()
        if reason is not None:
            pytest.skip(reason)
    from tests.satellite.helpers import WAKE_REQUEST, SatelliteRun, mic_wav
    from tests.support.fake_ollama import FakeOllama

    token = uuid.uuid4().hex[:8]
    processes: list[ServiceProcess] = []
    stt: Target | None = None
    sat: SatelliteRun | None = None
    async with FakeOllama(reply="It is noon.") as fake:
        try:
            handles = {}
            for name in ("a", "b"):
                instance = f"drill-handle-{name}-{token}"
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
            tts = ServiceProcess("tests.satellite.fake_services", "tts").start()
            processes.append(tts)
            stt = await BUILDERS["stt"].start(tmp_path / "stt")
            for process in processes:
                process.wait_listening()
            for handle in handles.values():
                await handle.wait_ready(marker="is loaded and warm")

            mic = mic_wav(
                tmp_path / "mic.wav", 1.0, WAKE_REQUEST, 12.0, WAKE_REQUEST, 12.0, WAKE_REQUEST, 3.0
            )
            sat = await SatelliteRun(
                "--mic-file",
                str(mic),
                "--snd-file",
                str(tmp_path / "out.wav"),
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
            log = await sat.wait_for(r"waiting for the wake word \(turn over\)", timeout=90)
            used = re.findall(r"Using handle service '([^']+)'", log)
            assert used and used[0] in handles, log
            dead, alive = used[0], next(name for name in handles if name != used[0])
            victim = handles[dead].proc
            assert victim is not None
            victim.kill()  # no goodbye: it stays advertised until its record expires
            victim.wait()

            assert await sat.wait_exit(150) == 0, sat.log()
            log = sat.log()
            turns = re.findall(r"waiting for the wake word \((turn over|turn failed)\)", log)
            assert len(turns) == 3, log
            assert turns.count("turn failed") <= 1, log
            assert turns[-1] == "turn over", log  # recovered by the next turn at the latest
            assert f"Using handle service '{alive}'" in log, log
            if "turn failed" in turns:  # the turn that met the dead instance says which one
                assert re.search(r"handle service at tcp://\S+ failed", log), log
        finally:
            if sat is not None:
                await sat.stop()
            if stt is not None:
                await stt.stop()
            for process in processes:
                process.stop()
