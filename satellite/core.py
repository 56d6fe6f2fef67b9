"""The satellite's mic loop: every chunk is analysed, then handled by the current state's handler.

`Satellite` is also the `backend.Core` its backend talks to: the state, named state changes,
feedback sounds, the end of a turn and the player; nothing else of it is a backend's business.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from .audio_in import MicChunk, MicSource, mic_chunks
from .audio_out import Player
from .backend import Backend
from .bargein import BargeIn
from .endpointing import TurnSegmenter, segmenter_factory
from .events import Events
from .listen import Analysis, Listener, Preroll
from .recording import TurnRecorder
from .report import TurnReport, TurnResult
from .settings import SatelliteSettings
from .sounds import Sounds
from .state import State, StateMachine
from .vad import Segment, seconds_of

_LOGGER = logging.getLogger(__name__)

# Wake words heard this soon after one of our own sounds ends are ignored (speaker -> mic echo).
_OWN_SOUND_TAIL = 0.3

Handler = Callable[[MicChunk, Analysis], Awaitable[None]]


class Satellite:
    def __init__(
        self,
        settings: SatelliteSettings,
        mic: MicSource,
        player: Player,
        listener: Listener,
        sounds: Sounds,
        backend: Backend,
    ) -> None:
        self.settings = settings
        self.mic = mic
        self.player = player
        self.listener = listener
        self.sounds = sounds
        self.backend = backend
        self.sm = StateMachine(State.PAUSED if settings.ha_mode else State.WAITING)
        self.barge_in = BargeIn(settings.barge_in, player)
        self.preroll = Preroll(settings.vad.preroll)
        self.recorder = TurnRecorder(settings.debug_recording_dir)
        self.events = Events()  # watched by the status page (satellite/web.py)
        self.muted = False  # the status page's mute: the satellite hears silence
        self.report = TurnReport(settings.turn_report)
        self.turns = 0
        self.finished = asyncio.Event()
        self._segmenter: TurnSegmenter | None = None
        # Each request's end: silence, the STT's word (standalone) or a local turn detector.
        self._new_segmenter, self.local_turn = segmenter_factory(
            settings.vad, lambda: backend.service_ends_turns
        )
        self._own_sound_until = 0.0
        self._finish_task: asyncio.Task[None] | None = None
        self._handlers: dict[State, Handler] = {
            State.WAITING: self._while_waiting,
            State.LISTENING: self._while_listening,
            State.FOLLOW_UP: self._while_follow_up,
            State.THINKING: self._while_answering,
            State.SPEAKING: self._while_answering,
            State.PAUSED: self._while_paused,
        }
        backend.attach(self)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        delay = 1.0
        while True:
            async for chunk in mic_chunks(self.mic, self.settings.audio.chunk_seconds):
                delay = 1.0
                try:
                    await self.on_chunk(chunk)
                except Exception:
                    # A bug in one turn must not take the satellite down: log it, start over.
                    _LOGGER.exception("Error while handling mic audio; back to waiting")
                    await self._recover()
                if self.finished.is_set():
                    return
            # The mic command died (e.g. the USB mic was unplugged): reopen it, with backoff.
            _LOGGER.error("Microphone stream ended; reopening it in %.0f s", delay)
            await self.mic.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            try:
                await self.mic.open()
            except OSError as err:
                _LOGGER.error("Cannot reopen the microphone: %s", err)

    async def _recover(self) -> None:
        self._segmenter = None
        self.player.stop()
        try:
            await self.backend.abandon_turn("error")
        except Exception:
            _LOGGER.exception("The backend could not abandon the turn")
        if not self.sm.is_(State.PAUSED, State.WAITING):
            self.sm.go(State.WAITING, "recovered from an error")

    async def on_chunk(self, chunk: MicChunk) -> None:
        if self.muted:
            chunk = replace(chunk, audio=bytes(len(chunk.audio)))
        state = self.sm.state
        want_vad = state in (State.LISTENING, State.FOLLOW_UP) or (
            state in (State.THINKING, State.SPEAKING) and self.barge_in.wants_vad()
        )
        want_wake = state is not State.PAUSED
        analysis = await self.listener.analyse(chunk.audio, want_wake, want_vad)
        self.preroll.add(chunk.audio)
        if self.events.watched:
            self.events.publish("mic", audio=chunk.audio)
        self.recorder.add(chunk.audio)
        if analysis.wake and analysis.detected_at < self._own_sound_until:
            _LOGGER.info("Ignoring wake word %r during our own sound", analysis.wake)
            analysis = Analysis(None, analysis.probs, analysis.level, analysis.detected_at)
        await self._handlers[self.sm.state](chunk, analysis)

    # -- state handlers -----------------------------------------------------------------------

    async def _while_waiting(self, chunk: MicChunk, analysis: Analysis) -> None:
        if analysis.wake is None:
            return
        if not self.backend.can_start_turn():
            _LOGGER.info("Heard wake word %r, but nobody asked for audio (run-satellite)", analysis.wake)
            return
        await self.wake_up(analysis.wake)

    async def _while_listening(self, chunk: MicChunk, analysis: Analysis) -> None:
        await self.backend.audio(chunk.audio)
        if self._segmenter is None or not self.sm.is_(State.LISTENING):
            return
        segment = self._segmenter.feed(seconds_of(chunk.audio), analysis.probs, chunk.audio)
        if segment in (Segment.ENDED, Segment.TOO_LONG):
            ended_at = time.monotonic()
            self._segmenter = None
            self.thinking("end of speech" if segment is Segment.ENDED else "request too long")
            await self.backend.end_of_speech(ended_at)
        elif segment is Segment.NO_SPEECH:
            self._segmenter = None
            await self.backend.abandon_turn("nobody spoke")
            await self.end_turn(label="no-speech")

    async def _while_follow_up(self, chunk: MicChunk, analysis: Analysis) -> None:
        if analysis.wake is not None:
            await self.wake_up(analysis.wake)
            return
        if self._segmenter is None:
            return
        segment = self._segmenter.feed(seconds_of(chunk.audio), analysis.probs, chunk.audio)
        if segment is Segment.SPEAKING:
            # The user answers: the pre-roll holds the start of what they said.
            await self._begin(None, "follow-up speech", keep_segmenter=True)
        elif segment is Segment.NO_SPEECH:
            self._segmenter = None
            self.sm.go(State.WAITING, "no follow-up")

    async def _while_answering(self, chunk: MicChunk, analysis: Analysis) -> None:
        if not self.settings.barge_in.enabled:
            return
        if analysis.wake is not None:
            await self.interrupt(f"wake word {analysis.wake!r}", analysis.detected_at, analysis.wake)
        elif self.barge_in.triggered_by_voice(analysis.probs, analysis.level, self.settings.vad.threshold):
            await self.interrupt("voice", analysis.detected_at, None)

    async def _while_paused(self, chunk: MicChunk, analysis: Analysis) -> None:
        return

    # -- what a backend may use (backend.Core) -----------------------------------------------

    @property
    def state(self) -> State:
        return self.sm.state

    def thinking(self, why: str) -> None:
        self.sm.go(State.THINKING, why)

    def speaking(self, why: str) -> None:
        self.sm.go(State.SPEAKING, why)

    def idle(self, why: str) -> None:
        self.sm.go(State.WAITING if self.backend.can_start_turn() else State.PAUSED, why)

    async def speech_over(self, why: str) -> None:
        if self._segmenter is not None and self.sm.is_(State.LISTENING):
            self._segmenter = None
            self.thinking(why)
            await self.backend.end_of_speech(time.monotonic())

    def tell(self, kind: str, **data: object) -> None:
        self.events.publish(kind, **data)

    # -- actions ------------------------------------------------------------------------------

    async def wake_up(self, wake_word: str) -> None:
        self.play_sound("wake")
        await self._begin(wake_word, f"wake word {wake_word!r}", keep_segmenter=False)

    async def _begin(self, wake_word: str | None, why: str, keep_segmenter: bool) -> None:
        preroll = self.preroll.take()
        if not keep_segmenter or self._segmenter is None:
            self.listener.reset_vad()
            self._segmenter = self._new_segmenter(None)
        self.recorder.begin(preroll)
        self.sm.go(State.LISTENING, why)
        await self.backend.begin_turn(wake_word, preroll)

    async def interrupt(self, trigger: str, detected_at: float, wake_word: str | None) -> None:
        """Barge-in: silence the reply first, then cancel its work, then listen to the user."""
        self.barge_in.stop_playback(trigger, detected_at)
        self.tell("barge-in", trigger=trigger)
        await self.backend.barge_in()
        await self.recorder.finish("interrupted")
        self.turns += 1
        await self.report.add(TurnResult(self.turns, "interrupted"))
        if wake_word is not None:
            await self.wake_up(wake_word)
        else:
            await self._begin(None, "voice barge-in", keep_segmenter=False)

    def play_sound(self, kind: str) -> None:
        pcm = self.sounds.get(kind)
        if not pcm:
            return
        _LOGGER.info("Playing the %s sound", kind)
        starts = self.player.enqueue(pcm)
        if starts is not None:
            end = starts + len(pcm) / self.player.format.bytes_per_second + _OWN_SOUND_TAIL
            self._own_sound_until = max(self._own_sound_until, end)

    async def end_turn(
        self,
        *,
        error: bool = False,
        follow_up: bool = False,
        transcript: str | None = None,
        reply: str | None = None,
        problem: str | None = None,
        label: str = "turn",
    ) -> None:
        """Called by the backend (or the VAD timeout) when a turn is over, whatever happened."""
        self._segmenter = None
        self.play_sound("error" if error else "done")
        await self.recorder.finish("error" if error else label)
        self.turns += 1
        if self.settings.ha_mode and not self.backend.can_start_turn():
            self.sm.go(State.PAUSED, "turn over")
        elif follow_up and self.settings.turn.follow_up > 0:
            self.listener.reset_vad()
            self._segmenter = self._new_segmenter(self.settings.turn.follow_up)
            self.sm.go(State.FOLLOW_UP, "the answer was a question")
        else:
            self.sm.go(State.WAITING, "turn over" if not error else "turn failed")
        outcome = "failed" if error else "no-speech" if label == "no-speech" else "answered"
        await self.report.add(TurnResult(self.turns, outcome, transcript, reply, problem))
        limit = self.settings.exit_after_turns
        if limit and self.turns >= limit and self._finish_task is None:
            self._finish_task = asyncio.create_task(self._finish())

    async def _finish(self) -> None:
        try:
            await self.player.wait_done(timeout=30)
        except TimeoutError:
            pass
        _LOGGER.info("Exiting after %d turn(s)", self.turns)
        self.finished.set()
