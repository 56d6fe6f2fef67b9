"""Fast checks of the satellite's parts: player, segmenter, pre-roll, settings, info, sounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from satellite.audio_in import CommandMic, mic_chunks
from satellite.audio_out import CommandSink, FileSink, Player
from satellite.bargein import BargeIn
from satellite.info import satellite_info
from satellite.listen import Preroll
from satellite.settings import BargeInSettings, SoundSettings, VadSettings, build_parser, settings_from_args
from satellite.sounds import load_sounds
from satellite.state import State, StateMachine
from satellite.vad import Segment, Segmenter
from satellite.wake import LocalWake
from tests.support.waiting import until
from wyoming_core.audio import AudioFormat, read_wav

SND = AudioFormat(22050, 2, 1)


async def test_player_plays_in_order_and_stop_flushes(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    player = Player(FileSink(path, SND), lead=0.06)
    await player.start()
    try:
        one_second = b"\x10\x00" * SND.rate
        ten_seconds = one_second * 10  # long enough to be still playing on a busy machine
        starts = player.enqueue(ten_seconds)
        assert starts is not None
        await until(lambda: player.queued_seconds <= 9.8)  # some of it went to the speaker
        assert player.busy
        generation = player.generation
        report = player.stop()
        # Only what was already handed to the sink (the lead) can still sound.
        assert report.audible_until - report.stopped_at <= player.lead + 0.05
        assert report.flushed_seconds > 5
        assert player.enqueue(one_second, generation) is None  # late audio of the old reply
        await player.wait_done(timeout=5)
    finally:
        await player.close()
    audio, fmt = read_wav(path)
    assert fmt == SND
    played = audio.count(b"\x10\x00") / SND.rate
    assert 0.1 < played < 5  # what was out before the stop, not the rest of the ten seconds


def test_segmenter_ends_after_silence_and_times_out() -> None:
    settings = VadSettings(end_silence=0.5, no_speech_timeout=2.0)
    seg = Segmenter(settings)
    window = 0.032
    assert seg.feed(window * 10, [0.9] * 10) is Segment.SPEAKING
    assert seg.feed(window * 10, [0.1] * 10) is Segment.SPEAKING
    assert seg.feed(window * 10, [0.1] * 10) is Segment.ENDED
    quiet = Segmenter(settings)
    for _ in range(70):
        state = quiet.feed(window, [0.0])
    assert state is Segment.NO_SPEECH
    # A click (one window) does not count as speech.
    click = Segmenter(settings)
    assert click.feed(window, [0.9]) is Segment.WAITING


def test_preroll_keeps_the_last_seconds() -> None:
    preroll = Preroll(0.1)  # 3200 bytes
    for value in range(10):
        preroll.add(bytes([value]) * 640)
    data = preroll.take()
    assert len(data) == 3200 and data.endswith(bytes([9]) * 640)
    assert preroll.take() == b""


def test_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATELLITE_END_SILENCE", "0.9")
    monkeypatch.setenv("SATELLITE_WAKE_WORD", "hey_jarvis,alexa")
    args = build_parser().parse(
        ["--area", "Kitchen", "--uri", "tcp://127.0.0.1:10700", "--snd-format", "16000:2:1"]
    )
    settings = settings_from_args(args)
    assert settings.vad.end_silence == 0.9
    assert settings.wake.names == ("hey_jarvis", "alexa")
    assert settings.ha_mode and settings.area == "Kitchen"
    assert settings.audio.snd_format == AudioFormat(16000, 2, 1)
    with pytest.raises(AttributeError):
        settings.area = "x"  # type: ignore[misc]
    assert not settings_from_args(build_parser().parse([])).ha_mode


def test_info_lists_wake_words_with_phrases() -> None:
    settings = settings_from_args(
        build_parser().parse(
            [
                "--name",
                "kitchen",
                "--area",
                "Kitchen",
                "--wake-word",
                "hey_jarvis",
                "--wake-word",
                "oww:alexa",
            ]
        )
    )
    wake = LocalWake(settings.wake)
    info = satellite_info(settings, wake.models, SND)
    assert (
        info.satellite is not None and info.satellite.name == "kitchen" and info.satellite.area == "Kitchen"
    )
    assert info.satellite.active_wake_words == ["hey_jarvis", "alexa"]
    phrases = {m.name: m.phrase for program in info.wake for m in program.models}
    assert phrases == {"hey_jarvis": "Hey Jarvis", "alexa": "Alexa"}
    for program in info.wake:
        assert program.installed and program.attribution.name
        assert all(m.languages and m.installed and m.attribution for m in program.models)
    event = info.event()
    assert event.data["satellite"]["name"] == "kitchen"


def test_unknown_wake_word_is_a_clear_error() -> None:
    settings = settings_from_args(build_parser().parse(["--wake-word", "hey_computer"]))
    with pytest.raises(SystemExit, match="Unknown wake word 'hey_computer'"):
        LocalWake(settings.wake)


def test_sounds_are_generated_and_can_be_turned_off() -> None:
    sounds = load_sounds(SoundSettings(), SND)
    assert all(len(sounds.get(kind)) > SND.rate // 10 for kind in ("wake", "done", "error", "timer"))
    assert load_sounds(SoundSettings(enabled=False), SND).wake == b""
    assert load_sounds(SoundSettings(error="none"), SND).error == b""


def test_state_changes_are_logged_in_words(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="satellite.state")
    machine = StateMachine()
    changes: list[tuple[State, State]] = []
    machine.on_change(lambda old, new: changes.append((old, new)))
    machine.go(State.LISTENING, "wake word 'okay_nabu'")
    assert "waiting for the wake word -> listening to the request (wake word 'okay_nabu')" in caplog.text
    machine.go(State.THINKING)
    machine.go(State.THINKING)  # no change: nobody is told, nothing logged
    assert machine.is_(State.THINKING)
    assert changes == [(State.WAITING, State.LISTENING), (State.LISTENING, State.THINKING)]
    assert caplog.text.count("-> waiting for the answer") == 1


async def test_mic_and_speaker_commands(tmp_path: Path) -> None:
    raw = tmp_path / "mic.raw"
    raw.write_bytes(b"\x01\x00" * 22050)  # 1 s at 22.05 kHz: converted to 16 kHz chunks
    mic = CommandMic(f"cat {raw}", AudioFormat(22050, 2, 1))
    await mic.open()
    chunks = [chunk async for chunk in mic_chunks(mic, 0.02)]
    await mic.close()
    assert all(len(c.audio) == 640 for c in chunks)
    assert 45 <= len(chunks) <= 50

    out = tmp_path / "snd.raw"
    sink = CommandSink(f"sh -c 'cat > {out}'", SND)
    player = Player(sink, lead=0.06)
    await player.start()
    player.enqueue(b"\x22\x00" * (SND.rate // 4))
    await player.wait_done(timeout=5)
    await player.close()
    assert out.read_bytes().count(b"\x22\x00") == SND.rate // 4


async def test_voice_barge_in_needs_loud_speech(tmp_path: Path) -> None:
    player = Player(FileSink(tmp_path / "out.wav", SND))
    off = BargeIn(BargeInSettings(), player)
    assert not off.triggered_by_voice([0.9], level=-10.0, threshold=0.5)  # off by default
    on = BargeIn(BargeInSettings(vad=True, vad_level=-30.0), player)
    assert on.triggered_by_voice([0.9], level=-20.0, threshold=0.5)
    assert not on.triggered_by_voice([0.9], level=-45.0, threshold=0.5)  # our own reply, quietly
    assert not on.triggered_by_voice([0.2], level=-10.0, threshold=0.5)  # loud, but not speech


def test_segmenter_counts_silence_in_real_time_with_20ms_chunks() -> None:
    """20 ms chunks give 0 or 1 silero windows (32 ms) each; silence must still be counted right."""
    seg = Segmenter(VadSettings(end_silence=0.6))
    buffered = 0

    def feed(speaking: bool) -> Segment:
        nonlocal buffered
        buffered += 320
        windows, buffered = divmod(buffered, 512)
        return seg.feed(0.02, [0.9 if speaking else 0.05] * windows)

    for _ in range(50):
        feed(True)
    silent = 0
    while feed(False) is not Segment.ENDED:
        silent += 1
    assert 0.55 <= silent * 0.02 <= 0.7
