"""Data dirs are made for their owner only, parents included (issue 13, item 8)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from wyoming_core.models import build_atomically, make_private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_dirs_are_made_0700_and_existing_ones_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    make_private_dir(shared / "a" / "b" / "c")
    assert [mode(shared / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    assert mode(shared) == 0o755
    make_private_dir(shared / "a" / "b" / "c")  # again: fine
    (shared / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        make_private_dir(shared / "file")


def test_a_model_assembled_into_a_new_data_dir_leaves_it_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "wyoming-local-voice" / "stt"

    def build(tmp: Path) -> None:
        (tmp / "weights").write_text("w")

    build_atomically(data_dir / "model", build)
    assert mode(data_dir) == 0o700 and mode(data_dir.parent) == 0o700
