"""What was said stays out of the STT log unless asked for (--log-transcripts; issue 13, item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.robustness.targets import stt_clip
from tests.support.services import ServiceProcess
from tests.support.waiting import until
from wyoming_core.client import transcribe


@pytest.mark.parametrize("opted_in", [False, True], ids=["default", "log-transcripts"])
async def test_transcripts_are_logged_only_when_asked_for(
    opted_in: bool, service_factory: list[ServiceProcess], stt_data_dir: Path
) -> None:
    flags = ["--log-transcripts"] if opted_in else []
    # tiny.en: bundled, loads in a second; no --debug, as a service runs.
    stt = ServiceProcess(
        "wyoming_stt", "--model", "tiny.en", "--data-dir", str(stt_data_dir), "--language", "en", *flags
    ).start()
    service_factory.append(stt)
    stt.wait_listening()
    await stt.wait_ready()
    pcm, fmt = stt_clip()
    result = await transcribe(stt.uri, pcm, fmt, language="en", timeout=120)
    assert "light" in result.text.lower(), result.text
    # The service logs the request's end after sending the transcript: wait for that line.
    await until(lambda: "Transcribed" in stt.log(), 30, stt.log)
    if opted_in:
        await until(lambda: f"Transcript: '{result.text}'" in stt.log(), 30, stt.log)
    else:
        assert "light" not in stt.log().lower(), stt.log()
