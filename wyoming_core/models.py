"""Model lookup helpers: data dirs, models shipped inside PyPI packages, atomic assembly."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

_LOGGER = logging.getLogger(__name__)


class ModelNotFoundError(Exception):
    """A model that is nowhere to be found; the message says where we looked."""

    def __init__(self, what: str, name: str, looked_in: list[str], hint: str) -> None:
        places = "\n  - ".join(looked_in) if looked_in else "(nowhere)"
        super().__init__(f"Could not find {what} {name!r}. Looked in:\n  - {places}\n{hint}")
        self.name = name
        self.looked_in = looked_in


def default_data_dir(service: str) -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wyoming-local-voice" / service


# Data dirs hold what people said (the conversation history): for their owner only, as the
# XDG base directory spec asks of ~/.local/share too.
PRIVATE_DIR_MODE = 0o700


def make_private_dir(path: Path) -> None:
    """Create `path` and every missing parent with mode 0700 (mkdir -p would make the parents
    0755). Directories that exist are left as their owner set them."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current.parent != current:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            pass  # made by another process meanwhile
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def package_path(package: str, *parts: str) -> Path | None:
    """Directory/file inside an installed package, or None if it is not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.exists() else None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Inter-process lock, so two services starting at once do not build the same model."""
    make_private_dir(path.parent)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _unfinished_builds(target: Path) -> list[Path]:
    """Temp dirs of builds of `target`: mkdtemp's `.NAME.` + 8 characters, nothing else (so not
    those of a target whose name starts the same, e.g. `base.en` for `base`)."""
    if not target.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}")
    return [path for path in target.parent.iterdir() if pattern.fullmatch(path.name) and path.is_dir()]


def build_atomically(
    target: Path,
    build: Callable[[Path], None],
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Create directory `target` by building into a temp dir and renaming.

    A crash mid-build never leaves a half-written model under the final name, and the temp dir
    a killed build leaves behind is removed the next time. `verify` (e.g. loading the model)
    runs before the rename.
    """
    if target.exists() and not _unfinished_builds(target):
        return target
    make_private_dir(target.parent)
    with file_lock(target.parent / f".{target.name}.lock"):
        # Under the lock no other process is building this target: these were left by a kill.
        for stale in _unfinished_builds(target):
            _LOGGER.info("Removing %s, left by an interrupted model assembly", stale)
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the model is for every user
        try:
            build(tmp)
            if verify is not None:
                verify(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _LOGGER.info("Prepared model in %s", target)
    return target
