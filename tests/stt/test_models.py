"""Model lookup: data dir, bundled packages, clear failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import ROOT
from wyoming_core.models import ModelNotFoundError
from wyoming_stt.models import resolve_model


def test_bundled_tiny_en_resolves_to_its_package(tmp_path: Path) -> None:
    resolved = resolve_model("tiny.en", (tmp_path,), local_files_only=True)
    assert resolved.source == "package"
    path = Path(resolved.prepare())
    assert (path / "model.bin").is_file()


def test_model_dir_in_data_dir_wins(tmp_path: Path) -> None:
    model = tmp_path / "custom"
    model.mkdir()
    (model / "model.bin").write_bytes(b"x")
    (model / "config.json").write_text("{}")
    resolved = resolve_model("custom", (tmp_path,), local_files_only=True)
    assert resolved.source == "data-dir" and resolved.prepare() == str(model)


def test_missing_model_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        resolve_model("large-v9", (tmp_path,), local_files_only=True)
    message = str(caught.value)
    assert str(tmp_path / "large-v9") in message
    assert "pip install" in message


def test_hub_is_only_a_fallback(tmp_path: Path) -> None:
    resolved = resolve_model("large-v9", (tmp_path,), local_files_only=False)
    assert resolved.source == "hub"


def test_cli_exits_with_clear_message_for_missing_model(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wyoming_stt",
            "--model",
            "nope",
            "--local-files-only",
            "--data-dir",
            str(tmp_path),
            "--uri",
            "tcp://127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Could not find Whisper model 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
