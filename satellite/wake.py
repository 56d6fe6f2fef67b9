"""Wake word detection: microWakeWord / openWakeWord models in-process, or a remote Wyoming wake service.

`process(audio)` takes 16 kHz 16-bit mono audio and returns the id of a detected wake word.
The in-process detectors are blocking (tflite) and run in the listener's worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wyoming.audio import AudioChunk, AudioStart
from wyoming.wake import Detect, Detection, NotDetected

from wyoming_core.client import Connection, VoiceError

from .settings import MIC_FORMAT, WakeSettings

_LOGGER = logging.getLogger(__name__)

_SAMPLES_PER_SECOND = MIC_FORMAT.rate
_FMT = MIC_FORMAT
OWW_DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class WakeModelInfo:
    id: str
    phrase: str
    engine: str  # "microWakeWord" | "openWakeWord" | "remote"
    languages: tuple[str, ...] = ("en",)


class Detector(Protocol):
    models: list[WakeModelInfo]
    blocking: bool  # must not run on the event loop as a whole (tflite)
    cheap: bool  # ... but is fast enough per chunk that a thread hop costs more

    def process(self, audio: bytes) -> str | None: ...

    def reset(self) -> None: ...


class _MicroEngine:
    def __init__(self, specs: list[str], threshold: float | None) -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self.models: list[Any] = []
        self.infos: list[WakeModelInfo] = []
        for spec in specs:
            if spec.endswith(".json"):
                model = MicroWakeWord.from_config(Path(spec))
                config = json.loads(Path(spec).read_text())
                languages = tuple(config.get("trained_languages") or ("en",))
            else:
                model = MicroWakeWord.from_builtin(Model(spec))
                languages = tuple(model.trained_languages or ("en",))
            if threshold is not None:
                model.probability_cutoff = threshold
            self.models.append(model)
            self.infos.append(WakeModelInfo(model.id, model.wake_word, "microWakeWord", languages))
        self.features = MicroWakeWordFeatures()

    def process(self, audio: bytes) -> list[str]:
        hits: list[str] = []
        for features in self.features.process_streaming(audio):
            for model, info in zip(self.models, self.infos, strict=True):
                if model.process_streaming(features):
                    hits.append(info.id)
        return hits


class _OpenEngine:
    def __init__(self, specs: list[str], threshold: float | None) -> None:
        from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures

        self.models: list[Any] = []
        self.infos: list[WakeModelInfo] = []
        for spec in specs:
            model = (
                OpenWakeWord.from_model(Path(spec))
                if spec.endswith(".tflite")
                else OpenWakeWord.from_builtin(Model(spec))
            )
            self.models.append(model)
            phrase = model.id.replace("_", " ").title()
            self.infos.append(WakeModelInfo(model.id, phrase, "openWakeWord"))
        self.threshold = threshold if threshold is not None else OWW_DEFAULT_THRESHOLD
        self.features = OpenWakeWordFeatures.from_builtin()

    def process(self, audio: bytes) -> list[str]:
        hits: list[str] = []
        for embedding in self.features.process_streaming(audio):
            for model, info in zip(self.models, self.infos, strict=True):
                if any(prob > self.threshold for prob in model.process_streaming(embedding)):
                    hits.append(info.id)
        return hits


def _split_specs(names: tuple[str, ...]) -> tuple[list[str], list[str]]:
    from pymicro_wakeword import Model as MicroModel
    from pyopen_wakeword import Model as OpenModel

    micro_names = {m.value for m in MicroModel}
    open_names = {m.value for m in OpenModel}
    micro: list[str] = []
    oww: list[str] = []
    for raw in names:
        name = raw.strip()
        if name.startswith("oww:"):
            oww.append(name[4:])
        elif name.endswith(".json") or name in micro_names:
            micro.append(name)
        elif name.endswith(".tflite") or name in open_names:
            oww.append(name)
        else:
            known = ", ".join(sorted(micro_names | {f"oww:{n}" for n in open_names}))
            raise SystemExit(f"Unknown wake word {name!r}; use one of {known} or a model path")
    for name in oww:
        if not name.endswith(".tflite") and name not in open_names:
            raise SystemExit(
                f"Unknown openWakeWord model {name!r}; use one of {', '.join(sorted(open_names))}"
            )
    return micro, oww


class LocalWake:
    """Several wake word models at once, with a refractory period counted in audio time."""

    blocking = True
    cheap = False

    def __init__(self, settings: WakeSettings) -> None:
        micro, oww = _split_specs(settings.names)
        self._engines: list[_MicroEngine | _OpenEngine] = []
        if micro:
            self._engines.append(_MicroEngine(micro, settings.threshold))
        if oww:
            self._engines.append(_OpenEngine(oww, settings.threshold))
        self.models = [info for engine in self._engines for info in engine.infos]
        # microWakeWord costs ~0.1 ms per 20 ms chunk: cheaper on the loop than a thread hop.
        # openWakeWord (~5 ms per 80 ms) runs in the listener's thread.
        self.cheap = not oww
        self._refractory = int(settings.refractory * _SAMPLES_PER_SECOND)
        self._samples = 0
        self._quiet_until = 0

    def process(self, audio: bytes) -> str | None:
        self._samples += len(audio) // 2
        found: str | None = None
        for engine in self._engines:
            for hit in engine.process(audio):
                found = found or hit
        if found is None or self._samples < self._quiet_until:
            return None
        self._quiet_until = self._samples + self._refractory
        return found

    def reset(self) -> None:
        self._quiet_until = self._samples + self._refractory


class RemoteWake:
    """Streams the mic to a Wyoming wake service and picks up its `detection` events."""

    blocking = False
    cheap = True

    def __init__(self, settings: WakeSettings) -> None:
        self.uri = settings.uri or ""
        self.names = list(settings.names) if settings.names else None
        self.models = [WakeModelInfo(n, n.replace("_", " ").title(), "remote") for n in settings.names]
        self._audio: asyncio.Queue[bytes] = asyncio.Queue(maxsize=200)
        self._detections: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._refractory = settings.refractory
        self._last: float = -1e9

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="remote-wake")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def process(self, audio: bytes) -> str | None:
        with contextlib.suppress(asyncio.QueueFull):
            self._audio.put_nowait(audio)
        if not self._detections:
            return None
        name = self._detections.pop(0)
        now = asyncio.get_running_loop().time()
        if now - self._last < self._refractory:
            return None
        self._last = now
        return name

    def reset(self) -> None:
        self._last = asyncio.get_running_loop().time()

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._session()
                delay = 1.0
            except VoiceError as err:
                _LOGGER.warning(
                    "Wake service at %s is unavailable: %s; retrying in %.0f s", self.uri, err, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _session(self) -> None:
        async with Connection(self.uri, timeout=3600) as conn:
            _LOGGER.info("Streaming the mic to the wake service at %s", self.uri)
            while True:
                await conn.send(Detect(names=self.names))
                await conn.send(AudioStart(rate=_FMT.rate, width=_FMT.width, channels=_FMT.channels))

                async def sender() -> None:
                    while True:
                        chunk = await self._audio.get()
                        await conn.send(
                            AudioChunk(rate=_FMT.rate, width=_FMT.width, channels=_FMT.channels, audio=chunk)
                        )

                send_task = asyncio.create_task(sender())
                try:
                    while True:
                        event = await conn.receive(timeout=3600)
                        if Detection.is_type(event.type):
                            # The service keeps listening on the same stream after a detection.
                            self._detections.append(Detection.from_event(event).name or "remote")
                        if NotDetected.is_type(event.type):
                            break
                finally:
                    send_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await send_task


def make_detector(settings: WakeSettings) -> LocalWake | RemoteWake:
    return RemoteWake(settings) if settings.uri else LocalWake(settings)
