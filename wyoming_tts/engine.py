"""Loaded piper voices: a bounded LRU cache, loading off the event loop, synthesis in the worker pool.

There is no lock around synthesis: an onnxruntime session may run from several threads at
once, so connections synthesize in parallel (up to the pool size) even with the same voice.
A synthesis can be interrupted from the event loop (its client has gone): onnxruntime's own
terminate flag ends the model run at once instead of after the whole sentence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from wyoming_core.metrics import timed
from wyoming_core.workers import Priority, PriorityPool, Ticket

from . import conv2d
from .metrics import TtsMetrics
from .voices import VoiceEntry

_LOGGER = logging.getLogger(__name__)

# Synthesized once at load: warms onnxruntime up and measures the voice's loudness.
_WARM_UP_TEXT = "Hello, this is a test of the voice."
# Then a sentence as long as a long reply's: onnxruntime sizes its buffers on the largest run
# so far, so the first long reply after start is not slower than the next ones (about 10 %).
_LONG_WARM_UP_TEXT = (
    "When you get home tonight after the long meeting with the team, please remember to turn off "
    "all the lights in the kitchen and lock the back door."
)
# Output is scaled by one gain per voice (not per sentence, as piper does by default), so clause
# parts of one sentence keep the same loudness and no seam is heard between them.
_TARGET_PEAK = 0.9
_MAX_GAIN = 4.0


class VoiceLoadError(Exception):
    """A voice that is listed but could not be loaded (corrupt or incompatible files)."""


class SynthesisInterrupted(Exception):
    """The synthesis was stopped from outside (its client has gone)."""


class Interrupt:
    """Set once from the event loop; a synthesis in a worker thread stops at its next step.

    Holds one onnxruntime RunOptions, created in the worker thread (importing onnxruntime on the
    event loop would stall it): setting its `terminate` ends a model run already under way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._options: Any = None

    def set(self) -> None:
        with self._lock:
            self._set = True
            if self._options is not None:
                self._options.terminate = True

    @property
    def is_set(self) -> bool:
        return self._set

    def run_options(self) -> Any:
        """Worker thread only: the RunOptions to pass to every model run of this synthesis."""
        with self._lock:
            if self._options is None:
                import onnxruntime

                self._options = onnxruntime.RunOptions()
                self._options.terminate = self._set
            return self._options


class _InterruptibleSession:
    """What piper sees as its onnxruntime session: every run gets this thread's RunOptions."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, output_names: Any, feed: Any) -> Any:
        return self._session.run(output_names, feed, getattr(self._local, "options", None))

    def using(self, options: Any) -> None:
        self._local.options = options


@dataclass(frozen=True)
class SynthesisOptions:
    speaker_id: int | None = None
    length_scale: float | None = None
    noise_scale: float | None = None
    noise_w_scale: float | None = None


def _session(onnxruntime: Any, entry: VoiceEntry, options: Any) -> Any:
    """The voice's session, on the model with 2-D convolutions where it can be made (less CPU
    for the same audio: wyoming_tts/conv2d.py), else on the model file as it is."""
    providers = ["CPUExecutionProvider"]
    try:
        with conv2d.rewritten_model(entry.model_path) as model:
            if model is not None:
                return onnxruntime.InferenceSession(str(model), sess_options=options, providers=providers)
    except Exception as err:  # the voice still works, only with a little more CPU
        _LOGGER.warning("Voice %s runs without the faster convolutions: %s", entry.name, err)
    return onnxruntime.InferenceSession(str(entry.model_path), sess_options=options, providers=providers)


class LoadedVoice:
    """A piper voice with its own onnxruntime session (threads set for the worker pool)."""

    def __init__(self, entry: VoiceEntry, threads: int) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        self.entry = entry
        config = PiperConfig.from_dict(json.loads(entry.config_path.read_text(encoding="utf-8")))
        options = onnxruntime.SessionOptions()
        # One synthesis per worker thread; more intra-op threads would fight over the same cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # With --threads-per-worker > 1: threads wait for work asleep, not spinning on cores
        # that the other workers' syntheses need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = _session(onnxruntime, entry, options)
        self._session = _InterruptibleSession(session)
        self.piper = PiperVoice(config=config, session=self._session)
        self.sample_rate = config.sample_rate
        self.gain = 1.0
        peak = float(np.abs(self._raw(_WARM_UP_TEXT, SynthesisOptions())).max(initial=0.0))
        if peak > 0.05:
            self.gain = min(_MAX_GAIN, _TARGET_PEAK / peak)
        self._raw(_LONG_WARM_UP_TEXT, SynthesisOptions())

    def _raw(self, text: str, options: SynthesisOptions, interrupt: Interrupt | None = None) -> np.ndarray:
        from piper import SynthesisConfig

        config = SynthesisConfig(
            speaker_id=options.speaker_id,
            length_scale=options.length_scale,
            noise_scale=options.noise_scale,
            noise_w_scale=options.noise_w_scale,
            normalize_audio=False,
        )
        pieces = []
        self._session.using(interrupt.run_options() if interrupt is not None else None)
        try:
            for phonemes in self.piper.phonemize(text):
                if interrupt is not None and interrupt.is_set:
                    raise SynthesisInterrupted
                if not phonemes:
                    continue
                try:
                    audio = self.piper.phoneme_ids_to_audio(self.piper.phonemes_to_ids(phonemes), config)
                except Exception:
                    if interrupt is not None and interrupt.is_set:  # onnxruntime's "terminated"
                        raise SynthesisInterrupted from None
                    raise
                pieces.append(np.asarray(audio, dtype=np.float32).reshape(-1))
        finally:
            self._session.using(None)
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def synthesize(self, text: str, options: SynthesisOptions, interrupt: Interrupt | None = None) -> bytes:
        """Blocking: 16-bit mono PCM at `sample_rate` for `text` (b'' if there is nothing to say).

        Raises SynthesisInterrupted soon after `interrupt` is set."""
        audio = self._raw(text, options, interrupt)
        if not audio.size:
            return b""
        return (np.clip(audio * self.gain, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class VoiceCache:
    """At most `capacity` voices loaded; the least recently used one is dropped first.

    Each voice loads once (concurrent requests for it share the load) in its own thread, so
    loading a voice never holds up synthesis with voices already loaded.
    """

    def __init__(
        self, capacity: int, threads_per_worker: int, pool: PriorityPool, metrics: TtsMetrics | None = None
    ) -> None:
        self.capacity = capacity
        self.threads = threads_per_worker
        self.pool = pool
        self.metrics = metrics
        self._voices: OrderedDict[str, asyncio.Task[LoadedVoice]] = OrderedDict()

    def _key(self, entry: VoiceEntry) -> str:
        return f"{entry.name}@{entry.model_path}"

    def _load(self, entry: VoiceEntry) -> LoadedVoice:
        started = time.monotonic()
        try:
            voice = LoadedVoice(entry, self.threads)
        except Exception as err:
            raise VoiceLoadError(f"Could not load voice {entry.name!r} ({entry.model_path}): {err}") from err
        seconds = time.monotonic() - started
        _LOGGER.info("Voice %s is ready (loaded from %s in %.1f s)", entry.name, entry.source, seconds)
        if self.metrics is not None:
            self.metrics.voice_loaded(entry.name, seconds)
        return voice

    async def get(self, entry: VoiceEntry) -> LoadedVoice:
        key = self._key(entry)
        task = self._voices.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            _LOGGER.info("Loading voice %s", entry.name)
            task = asyncio.ensure_future(asyncio.to_thread(self._load, entry))
            self._voices[key] = task
            self._evict()
        self._voices.move_to_end(key)
        # shield: a client that goes away mid-load must not cancel the load for everyone else.
        return await asyncio.shield(task)

    def _evict(self) -> None:
        for key in list(self._voices):
            if len(self._voices) <= self.capacity:
                return
            task = self._voices[key]
            if task.done():  # loads in progress are never dropped
                del self._voices[key]
                _LOGGER.info("Unloaded voice %s (least recently used)", key.split("@", 1)[0])

    def loaded(self) -> list[str]:
        return [key.split("@", 1)[0] for key, task in self._voices.items() if task.done()]

    def loading(self) -> list[str]:
        """Voices being loaded right now (describe says so: wyoming_core.readiness)."""
        return [key.split("@", 1)[0] for key, task in self._voices.items() if not task.done()]

    def failed(self) -> list[str]:
        """Voices whose last load failed (the next request for one tries again)."""
        return [
            key.split("@", 1)[0]
            for key, task in self._voices.items()
            if task.done() and not task.cancelled() and task.exception() is not None
        ]

    def has(self, name: str) -> bool:
        """Whether the voice `name` is loaded (not loading, not failed)."""
        return any(
            key.split("@", 1)[0] == name and task.done() and not task.cancelled() and task.exception() is None
            for key, task in self._voices.items()
        )

    async def synthesize(
        self,
        voice: LoadedVoice,
        text: str,
        options: SynthesisOptions,
        interrupt: Interrupt | None = None,
        priority: Priority = Priority.URGENT,
    ) -> bytes:
        """`text` synthesized in the pool when its turn comes: URGENT (a reply's first audio)
        before LIKELY (the later parts of replies already speaking), in order of arrival within
        each."""
        ticket = Ticket(priority, "first part" if priority == Priority.URGENT else "later part")
        pcm, seconds = await self.pool.run(timed(voice.synthesize), text, options, interrupt, ticket=ticket)
        if self.metrics is not None:
            self.metrics.synthesized(seconds, len(pcm) / (2 * voice.sample_rate))
        return pcm
