"""The stack passes --log-transcripts on (issue 13, item 8); without it no child logs what was
said, the satellite of --via-satellite included (its turn comes back through --turn-report)."""

from __future__ import annotations

from stack.__main__ import satellite_program, service_programs, settings_from_args


def _flagged(argv: tuple[str, ...]) -> bool:
    return "--log-transcripts" in argv


def test_transcripts_stay_out_of_the_childrens_logs_by_default() -> None:
    settings = settings_from_args([])
    assert not any(_flagged(p.argv) for p in service_programs(settings))
    assert not _flagged(satellite_program(settings).argv)


def test_log_transcripts_reaches_stt_the_conversation_service_and_the_satellite() -> None:
    settings = settings_from_args(["--log-transcripts"])
    flagged = {p.label: _flagged(p.argv) for p in service_programs(settings)}
    assert flagged == {"stt": True, "tts": False, "llm": True}  # TTS logs no texts
    assert _flagged(satellite_program(settings).argv)
