"""Home Assistant mode: the satellite is a Wyoming satellite server that HA drives.

HA connects, sends `run-satellite` and pings every 2 s. On a wake word the satellite sends
`detection`, `run-pipeline` (asr -> tts) and streams the mic; HA answers with `transcript`,
`synthesize` and the reply audio, which is played and acknowledged with `played`.

Wyoming has no authentication, so the satellite guards itself: only the peer that sent
`run-satellite` gets mic audio and is listened to (events from other connections are ignored,
bar `describe` and `ping`); a new `run-satellite` replaces it only from the same address (HA
reconnecting) or once the peer has gone quiet (HA pings every 2 s). `--allow` decides who may
connect at all. Audio formats are checked, and at most `--max-playback-seconds` of HA's audio
is queued; when the peer leaves, its audio stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Info
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.snd import Played
from wyoming.timer import TimerCancelled, TimerFinished, TimerStarted, TimerUpdated
from wyoming.tts import Synthesize
from wyoming.wake import Detection

from wyoming_core.admission import peer_address
from wyoming_core.audio import AudioFormat, AudioFormatError, StreamConverter, check_format
from wyoming_core.errors import AUDIO_TOO_LONG as TOO_LONG
from wyoming_core.errors import SATELLITE_IN_USE
from wyoming_core.errors import UNSUPPORTED_AUDIO_FORMAT as BAD_AUDIO
from wyoming_core.handler import ConnectionHandler, RequestError, Route
from wyoming_core.logs import transcript_level
from wyoming_core.protocol import Limits

from .backend import Backend
from .info import satellite_info
from .settings import MIC_FORMAT, SatelliteSettings
from .state import State
from .wake import WakeModelInfo

_LOGGER = logging.getLogger(__name__)
_HIGH_WATER = 1024 * 1024  # bytes buffered towards HA before writes wait (~30 s of mic audio)
# HA pings a satellite 2 s after each pong and gives up after 5 s without an answer: a peer
# silent this long is gone (a power cut leaves no close), and another address may take over.
PEER_QUIET_SECONDS = 10.0
# Events any connection may send; everything else counts only from the active peer.
_ANYONE = frozenset({"run-satellite", "ping"})


class HaConnection(ConnectionHandler):
    """One connection from Home Assistant (or anything speaking the satellite protocol)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits, backend: HaBackend
    ) -> None:
        self.backend = backend
        super().__init__(reader, writer, limits)
        self.address = peer_address(writer.get_extra_info("peername"))
        self.last_heard = time.monotonic()  # last event from this client
        # The mic loop writes audio here: with a roomy buffer a slow reader never stalls it
        # (drain only waits above the high-water mark); `backlog` lets audio be dropped instead.
        with contextlib.suppress(AttributeError, NotImplementedError):
            writer.transport.set_write_buffer_limits(high=_HIGH_WATER)
        _LOGGER.info("Connection from %s", self.peer)

    @property
    def backlog(self) -> int:
        try:
            return int(self.writer.transport.get_write_buffer_size())
        except (AttributeError, NotImplementedError):
            return 0

    def info(self) -> Info:
        return self.backend.info()

    def routes(self) -> Mapping[str, Route]:
        b = self.backend
        table: dict[str, Callable[[HaConnection, Event], Any]] = {
            "run-satellite": b.on_run_satellite,
            "pause-satellite": b.on_pause,
            "ping": b.on_ping,
            "audio-start": b.on_audio_start,
            "audio-chunk": b.on_audio_chunk,
            "audio-stop": b.on_audio_stop,
            "transcript": b.on_transcript,
            "voice-stopped": b.on_voice_stopped,
            "synthesize": b.on_synthesize,
            "error": b.on_error,
            "timer-started": b.on_timer_started,
            "timer-updated": b.on_timer_updated,
            "timer-cancelled": b.on_timer_cancelled,
            "timer-finished": b.on_timer_finished,
        }
        return {name: self._bind(name, func) for name, func in table.items()}

    def _bind(self, name: str, func: Callable[[HaConnection, Event], Any]) -> Route:
        anyone = name in _ANYONE

        async def route(event: Event) -> bool:
            self.last_heard = time.monotonic()
            if not anyone and self is not self.backend.peer:
                # A stranger's timer, error or audio must not ring, end a turn or play.
                _LOGGER.debug("Ignoring %s from %s: it has not sent run-satellite", name, self.peer)
                return True
            await func(self, event)
            return True

        return route

    async def on_unknown(self, event: Event) -> bool:
        self.last_heard = time.monotonic()
        return await super().on_unknown(event)

    def quiet_for(self) -> float:
        return time.monotonic() - self.last_heard

    async def send(self, event: Event) -> None:
        try:
            await self.write_event(event)
        except (ConnectionError, RuntimeError, OSError) as err:
            _LOGGER.debug("Cannot send %s to %s: %s", event.type, self.peer, err)

    async def disconnect(self) -> None:
        await self.backend.on_disconnect(self)


class HaBackend(Backend):
    def __init__(self, settings: SatelliteSettings, models: list[WakeModelInfo]) -> None:
        self.settings = settings
        self.models = models
        self.peer: HaConnection | None = None
        self.paused = False
        self._streaming = False  # mic audio goes to the peer
        self._turn = 0  # increases per pipeline run; stale `played` waits check it
        self._in_turn = False
        self._reply_text = ""
        self._transcript: str | None = None  # what HA heard in this turn, for the turn report
        self._tts_open = False  # between audio-start and audio-stop from HA
        self._discard = False  # drop the rest of an interrupted reply stream
        self._refused = False  # the rest of this reply stream is dropped (bad format, too long)
        self._stream_seconds = 0.0  # audio accepted from this reply stream so far
        self._converter: StreamConverter | None = None
        self._source_format = MIC_FORMAT
        self._generation = 0
        self._timers: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.TimerHandle | None = None

    def info(self) -> Info:
        return satellite_info(self.settings, self.models, self.core.player.format)

    def factory(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits
    ) -> HaConnection:
        return HaConnection(reader, writer, limits, self)

    def can_start_turn(self) -> bool:
        return self.peer is not None and not self.paused

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, event: Event) -> None:
        if self.peer is not None:
            await self.peer.send(event)

    # -- satellite -> HA ----------------------------------------------------------------------

    async def begin_turn(self, wake_word: str | None, preroll: bytes) -> None:
        self._turn += 1
        self._in_turn = True
        self._reply_text = ""
        self._transcript = None
        if wake_word is not None:
            # HA looks up the phrase of this name in our info.wake (to tell two satellites apart).
            await self._send(Detection(name=wake_word).event())
        await self._send(
            RunPipeline(
                start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS, wake_word_name=wake_word
            ).event()
        )
        fmt = MIC_FORMAT
        await self._send(AudioStart(rate=fmt.rate, width=fmt.width, channels=fmt.channels).event())
        self._streaming = True
        if preroll:
            await self.audio(preroll)
        self._arm_watchdog(self.settings.vad.max_speech + self.settings.turn.stt_timeout)

    async def audio(self, chunk: bytes) -> None:
        if self._streaming and self.peer is not None and self.peer.backlog > _HIGH_WATER // 2:
            _LOGGER.warning("Home Assistant is not reading the mic audio; dropping a chunk")
            return
        if self._streaming:
            fmt = MIC_FORMAT
            await self._send(
                AudioChunk(rate=fmt.rate, width=fmt.width, channels=fmt.channels, audio=chunk).event()
            )

    async def _stop_streaming(self) -> None:
        if self._streaming:
            self._streaming = False
            await self._send(AudioStop().event())

    async def end_of_speech(self, at: float) -> None:
        await self._stop_streaming()
        self._arm_watchdog(self.settings.turn.stt_timeout + self.settings.turn.handle_timeout)

    async def abandon_turn(self, reason: str) -> None:
        await self._stop_streaming()
        self._in_turn = False
        self._disarm_watchdog()

    async def barge_in(self) -> None:
        # Tell HA the old turn is over (audio-stop); the core then starts a new run-pipeline.
        self._streaming = True  # force an audio-stop even if we were not streaming
        await self._stop_streaming()
        self._discard = self._tts_open
        self._in_turn = False
        self._disarm_watchdog()

    # Never stuck after a wake: if HA goes quiet mid-turn, give up after a while.
    def _arm_watchdog(self, seconds: float) -> None:
        self._disarm_watchdog()
        turn = self._turn
        self._watchdog = asyncio.get_running_loop().call_later(
            seconds, lambda: self._spawn(self._give_up(turn))
        )

    def _disarm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _give_up(self, turn: int) -> None:
        if turn == self._turn and self._in_turn:
            _LOGGER.error("Home Assistant did not finish the pipeline in time; giving up on this turn")
            await self._finish_turn(error=True, problem="Home Assistant did not finish the pipeline in time")

    async def _finish_turn(
        self, *, error: bool = False, follow_up: bool = False, problem: str | None = None
    ) -> None:
        await self._stop_streaming()
        self._disarm_watchdog()
        if self._in_turn:
            self._in_turn = False
            await self.core.end_turn(
                error=error,
                follow_up=follow_up,
                transcript=self._transcript,
                reply=self._reply_text or None,
                problem=problem,
            )

    # -- HA -> satellite ----------------------------------------------------------------------

    async def on_run_satellite(self, conn: HaConnection, _event: Event) -> None:
        old = self.peer
        if old is not None and old is not conn and not old.closed:
            # Anyone who can reach the port may send run-satellite: a live Home Assistant keeps
            # the satellite unless the newcomer is at its address (HA reconnecting).
            if conn.address != old.address and old.quiet_for() < PEER_QUIET_SECONDS:
                raise RequestError(
                    SATELLITE_IN_USE,
                    "This satellite is in use by another Home Assistant, which is still connected",
                )
            _LOGGER.info("Home Assistant at %s replaces %s", conn.peer, old.peer)
        self.peer = conn
        self.paused = False
        if old is not None and old is not conn:
            await self._release("replaced by a new connection")
            await old.close()
        _LOGGER.info("Home Assistant at %s asked for audio (run-satellite)", conn.peer)
        if self.core.state is State.PAUSED:
            self.core.idle("run-satellite")

    async def on_pause(self, conn: HaConnection, _event: Event) -> None:
        self.paused = True
        await self._abort_turn("paused by Home Assistant")
        if self.core.state not in (State.SPEAKING, State.THINKING):
            self.core.idle("pause-satellite")

    async def on_disconnect(self, conn: HaConnection) -> None:
        _LOGGER.info("Connection from %s closed", conn.peer)
        if conn is not self.peer:
            return
        self.peer = None
        await self._release("Home Assistant disconnected")

    async def _release(self, why: str) -> None:
        """The active peer is gone: its audio stops, its turn ends, its reply stream is dropped."""
        self._tts_open = self._discard = self._refused = False
        self._converter = None
        if self.core.state is State.SPEAKING:
            flushed = self.core.player.stop().flushed_seconds
            if flushed > 0:
                _LOGGER.info("Stopped %.1f s of audio from Home Assistant: %s", flushed, why)
        self._streaming = False
        self._disarm_watchdog()
        if self._in_turn:
            _LOGGER.info("Ending the turn: %s", why)
            self._in_turn = False
            await self.core.end_turn(error=True, transcript=self._transcript, problem=why)
        else:
            self.core.idle(why)

    async def _abort_turn(self, why: str) -> None:
        if self._in_turn and self.core.state is State.LISTENING:
            _LOGGER.info("Ending the turn: %s", why)
            self._streaming = False
            self._in_turn = False
            self._disarm_watchdog()
            self.core.idle(why)

    async def on_ping(self, conn: HaConnection, event: Event) -> None:
        await conn.send(Pong(text=Ping.from_event(event).text).event())

    async def on_voice_stopped(self, conn: HaConnection, _event: Event) -> None:
        await self._ha_ended_speech(conn, "Home Assistant heard the end of speech")

    async def on_transcript(self, conn: HaConnection, event: Event) -> None:
        text = Transcript.from_event(event).text
        # What was said is private: at INFO only with --log-transcripts.
        _LOGGER.log(transcript_level(self.settings.turn.log_transcripts), "Transcript: %r", text)
        if self._in_turn:
            self._transcript = text
        self.core.tell("transcript", text=Transcript.from_event(event).text)  # the status page
        await self._ha_ended_speech(conn, "transcript")

    async def _ha_ended_speech(self, conn: HaConnection, why: str) -> None:
        if self._in_turn and self.core.state is State.LISTENING:
            self.core.thinking(why)
            await self.end_of_speech(time.monotonic())

    async def on_synthesize(self, conn: HaConnection, event: Event) -> None:
        if self._in_turn:
            self._reply_text = Synthesize.from_event(event).text
            _LOGGER.log(transcript_level(self.settings.turn.log_transcripts), "Reply: %r", self._reply_text)
        if self._in_turn:
            self.core.tell("sentence", text=self._reply_text)  # the status page

    async def on_audio_start(self, conn: HaConnection, event: Event) -> None:
        self._tts_open = True
        self._refused = False
        self._stream_seconds = 0.0
        self._converter = None
        if self._streaming and not self._discard:
            # A reply cannot start while the request is still being streamed: this is the
            # answer to a turn that a barge-in ended.
            _LOGGER.info("Dropping reply audio of an interrupted turn")
            self._discard = True
        if self._discard:
            return
        self._source_format = self._checked_format(event)
        self._converter = self.core.player.converter()
        self._generation = self.core.player.generation
        if not self._in_turn:
            _LOGGER.info("Announcement from Home Assistant")

    def _checked_format(self, event: Event) -> AudioFormat:
        data = event.data
        try:
            return check_format(data.get("rate"), data.get("width"), data.get("channels"))
        except AudioFormatError as err:
            self._refuse_stream()
            raise RequestError(BAD_AUDIO, f"Cannot play this audio: {err}", close=False) from None

    def _refuse_stream(self) -> None:
        """Drop the rest of this reply stream; its audio-stop still gets `played` (for what fitted)."""
        self._refused = True
        self._converter = None

    async def on_audio_chunk(self, conn: HaConnection, event: Event) -> None:
        if self._discard or self._converter is None:
            return
        fmt = self._checked_format(event)
        audio = event.payload or b""
        player = self.core.player
        # Checked before converting: a small chunk at a low rate can be hours of audio. Both the
        # queue and the whole stream are bounded (a stream paced in real time never fills the queue).
        seconds = len(audio) / fmt.bytes_per_second
        if seconds > min(player.room_seconds, player.max_queued_seconds - self._stream_seconds):
            self._refuse_stream()
            what = "reply" if self._in_turn else "announcement"
            raise RequestError(
                TOO_LONG,
                f"More than {player.max_queued_seconds:g} s of audio to play "
                f"(--max-playback-seconds); the rest of this {what} is dropped",
                close=False,
            )
        self._stream_seconds += seconds
        pcm = self._converter.convert(audio, fmt)
        if player.enqueue(pcm, self._generation) is not None and self.core.state is not State.SPEAKING:
            if self.core.state is State.LISTENING:
                await self._stop_streaming()
            self.core.speaking("reply audio" if self._in_turn else "announcement")

    async def on_audio_stop(self, conn: HaConnection, _event: Event) -> None:
        self._tts_open = False
        if self._discard:
            self._discard = False
            return
        cut, self._refused = self._refused, False
        self._converter = None
        self._disarm_watchdog()
        self._spawn(self._played(conn, self._turn, self._in_turn, self.core.player.generation, cut))

    async def _played(
        self, conn: HaConnection, turn: int, in_turn: bool, generation: int, cut: bool = False
    ) -> None:
        with contextlib.suppress(TimeoutError):
            await self.core.player.wait_done(timeout=600)
        if generation != self.core.player.generation:
            return  # interrupted by a barge-in: the new turn owns the state
        await conn.send(Played().event())
        if in_turn and turn == self._turn:
            follow_up = not cut and self._reply_text.rstrip().endswith("?")
            problem = "the reply audio could not all be played" if cut else None
            await self._finish_turn(error=cut, follow_up=follow_up, problem=problem)
        elif not in_turn and self.core.state is State.SPEAKING:
            self.core.idle("announcement played")

    async def on_error(self, conn: HaConnection, event: Event) -> None:
        error = Error.from_event(event)
        _LOGGER.error("Home Assistant reports an error: %s (%s)", error.text, error.code)
        if self._in_turn:
            await self._finish_turn(error=True, problem=f"Home Assistant: {error.text} ({error.code})")

    async def on_timer_started(self, conn: HaConnection, event: Event) -> None:
        started = TimerStarted.from_event(event)
        self._timers[started.id] = started.total_seconds
        name = started.name or "no name"
        _LOGGER.info("Timer %s started: %d s (%s)", started.id, started.total_seconds, name)

    async def on_timer_updated(self, conn: HaConnection, event: Event) -> None:
        updated = TimerUpdated.from_event(event)
        self._timers[updated.id] = updated.total_seconds
        state = "running" if updated.is_active else "paused"
        _LOGGER.info("Timer %s updated: %d s left, %s", updated.id, updated.total_seconds, state)

    async def on_timer_cancelled(self, conn: HaConnection, event: Event) -> None:
        timer_id = TimerCancelled.from_event(event).id
        self._timers.pop(timer_id, None)
        _LOGGER.info("Timer %s cancelled", timer_id)

    async def on_timer_finished(self, conn: HaConnection, event: Event) -> None:
        timer_id = TimerFinished.from_event(event).id
        self._timers.pop(timer_id, None)
        _LOGGER.info("Timer %s finished", timer_id)
        self.core.play_sound("timer")

    async def stop(self) -> None:
        self._disarm_watchdog()
        for task in list(self._tasks):
            task.cancel()
