"""What the satellite tells `describe`: itself (name, area, active wake words), its wake word
models with their phrases (so HA can tell when two satellites heard the same word), mic and speaker."""

from __future__ import annotations

from wyoming.info import Attribution, Info, MicProgram, Satellite, SndProgram, WakeModel, WakeProgram
from wyoming.info import AudioFormat as InfoAudioFormat

from wyoming_core import PROJECT_ATTRIBUTION
from wyoming_core.audio import AudioFormat

from .settings import MIC_FORMAT, SatelliteSettings
from .wake import WakeModelInfo

_ATTRIBUTION = PROJECT_ATTRIBUTION
_ENGINE_URLS = {
    "microWakeWord": "https://github.com/kahrendt/microWakeWord",
    "openWakeWord": "https://github.com/dscripka/openWakeWord",
    "remote": "https://github.com/rhasspy/wyoming",
}


def satellite_info(settings: SatelliteSettings, models: list[WakeModelInfo], snd: AudioFormat) -> Info:
    engines: dict[str, list[WakeModelInfo]] = {}
    for model in models:
        engines.setdefault(model.engine, []).append(model)
    wake = [
        WakeProgram(
            name=engine,
            attribution=Attribution(name=engine, url=_ENGINE_URLS.get(engine, _ATTRIBUTION.url)),
            installed=True,
            description=f"{engine} wake word detection (in the satellite)",
            version=None,
            models=[
                WakeModel(
                    name=m.id,
                    attribution=Attribution(name=engine, url=_ENGINE_URLS.get(engine, _ATTRIBUTION.url)),
                    installed=True,
                    description=m.phrase,
                    version=None,
                    languages=list(m.languages),
                    phrase=m.phrase,
                )
                for m in items
            ],
        )
        for engine, items in engines.items()
    ]
    return Info(
        satellite=Satellite(
            name=settings.name,
            attribution=_ATTRIBUTION,
            installed=True,
            description="Room satellite (wake word, VAD, barge-in)",
            version=None,
            area=settings.area,
            has_vad=True,
            active_wake_words=[m.id for m in models],
            max_active_wake_words=len(models),
            supports_trigger=False,
        ),
        wake=wake,
        mic=[
            MicProgram(
                name="mic",
                attribution=_ATTRIBUTION,
                installed=True,
                description="Satellite microphone",
                version=None,
                mic_format=InfoAudioFormat(MIC_FORMAT.rate, MIC_FORMAT.width, MIC_FORMAT.channels),
            )
        ],
        snd=[
            SndProgram(
                name="snd",
                attribution=_ATTRIBUTION,
                installed=True,
                description="Satellite speaker",
                version=None,
                snd_format=InfoAudioFormat(snd.rate, snd.width, snd.channels),
            )
        ],
    )
