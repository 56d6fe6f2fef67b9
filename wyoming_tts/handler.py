"""Per-connection handler: plain `synthesize` and streaming `synthesize-start/-chunk/-stop`."""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wyoming.event import Event
from wyoming.info import Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeVoice

from wyoming_core import PROJECT_ATTRIBUTION
from wyoming_core.errors import (
    BAD_REQUEST,
    OUT_OF_ORDER,
    OVERLOADED,
    SPEAKER_NOT_FOUND,
    TEXT_TOO_LONG,
    TOO_MANY_REQUESTS,
    UNSUPPORTED_LANGUAGE,
    VOICE_NOT_FOUND,
)
from wyoming_core.handler import ConnectionHandler, RequestError, Route
from wyoming_core.protocol import Limits
from wyoming_core.readiness import described
from wyoming_core.workers import Priority

from . import __version__
from .download import Downloader, DownloadError
from .engine import SynthesisOptions, VoiceCache
from .metrics import ReplyTimer, TtsMetrics
from .speech import JobSettings, SpeechJob, SpeechRequest
from .text import SentenceSplitter, split_sentences
from .voices import VoiceCatalogue, VoiceEntry

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


_PIPER_VOICES = Attribution(name="rhasspy/piper-voices", url="https://huggingface.co/rhasspy/piper-voices")


@functools.cache
def _piper_version() -> str | None:
    # From the package metadata: importing piper (and onnxruntime) could take a second.
    try:
        return importlib.metadata.version("piper-tts")
    except importlib.metadata.PackageNotFoundError:
        return None


def build_info(
    voices: Mapping[str, VoiceEntry], loading: Collection[str] = (), failed: Collection[str] = ()
) -> Info:
    """Built from the catalogue (files only), never from a loaded model: describe is instant."""
    piper_version = _piper_version()
    return Info(
        tts=[
            TtsProgram(
                name="wyoming-tts",
                description="piper text-to-speech with streaming, every voice under one name",
                attribution=PROJECT_ATTRIBUTION,
                installed=True,
                version=__version__,
                voices=[
                    TtsVoice(
                        name=voice.name,
                        # A voice being loaded, or that failed to, says so (wyoming_core.readiness).
                        description=described(
                            voice.description,
                            loading=voice.name in loading,
                            failed=voice.name in failed and voice.name not in loading,
                        ),
                        attribution=_PIPER_VOICES,
                        installed=True,
                        version=voice.piper_version or piper_version,
                        languages=list(voice.languages),
                        speakers=[TtsVoiceSpeaker(name=s) for s in voice.speakers] or None,
                    )
                    for voice in sorted(voices.values(), key=lambda v: v.name)
                ],
                supports_synthesize_streaming=True,
            )
        ]
    )


def _parse(parse: Callable[[Event], T], event: Event) -> T:
    try:
        return parse(event)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise RequestError(BAD_REQUEST, f"Malformed {event.type} event: {err!r}") from None


def _text(value: object) -> str | None:
    """A voice field as sent by the client: numbers become text, blanks mean 'not given'."""
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class TtsContext:
    """What every connection shares: settings, the catalogue, loaded voices."""

    default_voice: str
    default_speaker: str | None
    defaults: SynthesisOptions
    max_text_chars: int
    job: JobSettings
    catalogue: VoiceCatalogue
    cache: VoiceCache
    downloader: Downloader | None = None
    # Replies one connection may have queued or under way; one more ends the connection.
    max_queued_requests: int = 8
    # A new reply whose first audio would wait longer for a worker is refused (0: never).
    max_queue_wait: float = 10.0
    metrics: TtsMetrics = field(default_factory=TtsMetrics)


@dataclass
class _Stream:
    job: SpeechJob
    splitter: SentenceSplitter
    timer: ReplyTimer
    chars: int = 0
    # Until the first sentence is complete, its first clause may be spoken ahead.
    early_clause: bool = True
    # The full text of a `synthesize` sent inside the stream: spoken only if no chunk came.
    full_text: str = ""


class TtsHandler(ConnectionHandler):
    metrics: TtsMetrics

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: Limits,
        context: TtsContext,
    ) -> None:
        self.context = context
        self.metrics = context.metrics
        self._stream: _Stream | None = None
        self._last: SpeechJob | None = None
        # Every reply not finished yet (they run one after another, in order).
        self._jobs: set[SpeechJob] = set()
        super().__init__(reader, writer, limits)

    def info(self) -> Info:
        cache = self.context.cache
        return build_info(self.context.catalogue.voices(), cache.loading(), cache.failed())

    def load(self) -> dict[str, Any]:
        """The synthesis queue (workers, running, queued, expected wait of a reply's first
        audio in seconds, ...) and the replies under way on every connection."""
        pool = self.context.cache.pool
        return {**pool.snapshot(), "expected_wait": round(pool.expected_wait(Priority.URGENT), 3)}

    def busy(self) -> bool:
        # A reply queued behind others or being synthesized keeps the idle timeout away.
        return super().busy() or any(job.working for job in self._jobs)

    def routes(self) -> Mapping[str, Route]:
        return {
            "synthesize": self._on_synthesize,
            "synthesize-start": self._on_start,
            "synthesize-chunk": self._on_chunk,
            "synthesize-stop": self._on_stop,
        }

    # ---- requests -------------------------------------------------------

    async def _on_synthesize(self, event: Event) -> bool:
        request = _parse(Synthesize.from_event, event)
        text = request.text
        if not isinstance(text, str):
            raise RequestError(BAD_REQUEST, "synthesize needs 'text' as a string")
        self._check_length(len(text))
        if self._stream is not None:
            # Home Assistant repeats the full text inside a stream for older servers: not spoken
            # again, unless the stream brought no chunks at all (then it is all there is).
            self._stream.full_text = text
            return True
        self._check_queue()
        self._admit()
        await self._download_if_missing(request.voice)
        job, timer = self._start_job(self._select(request.voice), streaming=False)
        timer.text_came()
        job.add(split_sentences(text))
        job.finish()
        return True

    async def _on_start(self, event: Event) -> bool:
        if self._stream is not None:
            raise RequestError(OUT_OF_ORDER, "synthesize-start received while a stream is already open")
        request = _parse(SynthesizeStart.from_event, event)
        self._check_queue()
        self._admit()
        await self._download_if_missing(request.voice)
        job, timer = self._start_job(self._select(request.voice), streaming=True)
        self._stream = _Stream(job, SentenceSplitter(), timer)
        return True

    async def _on_chunk(self, event: Event) -> bool:
        stream = self._stream
        if stream is None:
            raise RequestError(OUT_OF_ORDER, "synthesize-chunk received without synthesize-start")
        text = _parse(SynthesizeChunk.from_event, event).text
        if not isinstance(text, str):
            raise RequestError(BAD_REQUEST, "synthesize-chunk needs 'text' as a string")
        stream.chars += len(text)
        self._check_length(stream.chars)
        sentences = stream.splitter.add(text)
        if sentences:
            stream.early_clause = False
        elif stream.early_clause and self.context.job.clause_split:
            clause = stream.splitter.take_clause()
            if clause is not None:
                stream.timer.text_came()
                stream.job.add_clause(clause)
                stream.early_clause = False
        if sentences:
            stream.timer.text_came()
        stream.job.add(sentences)
        return True

    async def _on_stop(self, _event: Event) -> bool:
        if self._stream is None:
            raise RequestError(OUT_OF_ORDER, "synthesize-stop received without synthesize-start")
        stream, self._stream = self._stream, None
        stream.timer.text_came()  # the last words may be the reply's first
        stream.job.add(stream.splitter.finish() if stream.chars else split_sentences(stream.full_text))
        stream.job.finish()
        return True

    # ---- helpers --------------------------------------------------------

    def _check_queue(self) -> None:
        """A client that keeps sending requests without reading the answers is cut off."""
        limit = self.context.max_queued_requests
        if len(self._jobs) >= limit:
            raise RequestError(
                TOO_MANY_REQUESTS,
                f"{len(self._jobs)} replies are already queued on this connection, the limit; "
                "wait for their audio before sending more",
            )

    def _admit(self) -> None:
        """Refuse a new reply at once while its first audio would wait too long for a worker:
        the client (or its pool) can try another instance instead of waiting without bound."""
        limit = self.context.max_queue_wait
        if not limit:
            return
        wait = self.context.cache.pool.expected_wait(Priority.URGENT)
        if wait > limit:
            raise RequestError(
                OVERLOADED,
                f"The service is overloaded: the reply's first audio would wait about {wait:.1f} s "
                f"for a free worker (limit: --max-queue-wait {limit:g} s); try another instance or "
                "again later",
            )

    def _check_length(self, chars: int) -> None:
        limit = self.context.max_text_chars
        if chars > limit:
            raise RequestError(TEXT_TOO_LONG, f"Text of {chars} characters is over the limit of {limit}")

    def _start_job(
        self, selected: tuple[VoiceEntry, SynthesisOptions], streaming: bool
    ) -> tuple[SpeechJob, ReplyTimer]:
        voice, options = selected
        timer = self.metrics.reply(streaming, self.write_event)
        after = self._last.task if self._last is not None and not self._last.task.done() else None
        job = SpeechJob(
            SpeechRequest(voice, options, streaming),
            self.context.cache,
            self.context.job,
            timer.send,
            self._fail,
            self.peer,
            after,
        )
        self._last = job
        self._jobs.add(job)
        job.task.add_done_callback(lambda _task: self._jobs.discard(job))
        return job, timer

    async def _fail(self, code: str, text: str) -> None:
        """An error found during synthesis: tell the client and end the connection."""
        await self.send_error(code, text)
        self.writer.close()

    async def _download_if_missing(self, requested: SynthesizeVoice | None) -> None:
        """With --download, fetch a named (or the default) voice that is not installed yet."""
        downloader = self.context.downloader
        name = _text(requested.name) if requested is not None else None
        if requested is None or not (name or _text(requested.language)):
            name = self.context.default_voice
        if downloader is None or name is None or self.context.catalogue.find(name) is not None:
            return
        try:
            await downloader.fetch(name)
        except DownloadError as err:
            available = ", ".join(sorted(self.context.catalogue.voices())) or "none"
            raise RequestError(VOICE_NOT_FOUND, f"{err}; installed: {available}") from None
        self.context.catalogue.voices(fresh=True)

    def _select(self, requested: SynthesizeVoice | None) -> tuple[VoiceEntry, SynthesisOptions]:
        """The voice and options a request asks for; a clear error if it cannot be had."""
        catalogue = self.context.catalogue
        name = _text(requested.name) if requested is not None else None
        language = _text(requested.language) if requested is not None else None
        speaker = _text(requested.speaker) if requested is not None else None
        if name:
            voice = catalogue.find(name)
            if voice is None:
                available = ", ".join(sorted(catalogue.voices())) or "none"
                text = f"Voice {name!r} is not installed; available: {available}"
                raise RequestError(VOICE_NOT_FOUND, text)
        elif language:
            voice = catalogue.for_language(language, preferred=self.context.default_voice)
            if voice is None:
                offered = sorted({lang for v in catalogue.voices().values() for lang in v.languages})
                raise RequestError(
                    UNSUPPORTED_LANGUAGE,
                    f"No installed voice speaks {language!r}; languages: {', '.join(offered) or 'none'}",
                )
        else:
            voice = catalogue.find(self.context.default_voice)
            if voice is None:
                text = f"The default voice {self.context.default_voice!r} is no longer installed"
                raise RequestError(VOICE_NOT_FOUND, text)
        if speaker is None and voice.name == self.context.default_voice:
            speaker = self.context.default_speaker
        speaker_id = None
        if speaker is not None:
            speaker_id = voice.speaker_id(speaker)
            if speaker_id is None:
                speakers = ", ".join(voice.speakers) or "none (single-speaker voice)"
                text = f"Voice {voice.name!r} has no speaker {speaker!r}; speakers: {speakers}"
                raise RequestError(SPEAKER_NOT_FOUND, text)
        defaults = self.context.defaults
        return voice, SynthesisOptions(
            speaker_id, defaults.length_scale, defaults.noise_scale, defaults.noise_w_scale
        )

    async def disconnect(self) -> None:
        # The client is gone: stop its synthesis between two parts.
        for job in list(self._jobs):
            job.cancel()
        self._stream = None
