"""Flags and their environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from wyoming_llm.prompt import DEFAULT_SYSTEM_PROMPT
from wyoming_llm.settings import build_parser, settings_from_args


def test_environment_variables_set_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLM_MODEL", "qwen2.5:3b")
    monkeypatch.setenv("LLM_OLLAMA_URL", "http://ollama.lan:11434/")
    monkeypatch.setenv("LLM_MAX_HISTORY_TURNS", "4")
    monkeypatch.setenv("LLM_LANGUAGE", "de,en")
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    settings = settings_from_args(build_parser().parse([]))
    assert settings.model == "qwen2.5:3b" and settings.ollama_url == "http://ollama.lan:11434"
    assert settings.max_history_turns == 4 and settings.languages == ("de", "en")
    assert settings.data_dir == tmp_path and settings.system_prompt == DEFAULT_SYSTEM_PROMPT


def test_system_prompt_file(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Answer like a pirate.\n")
    settings = settings_from_args(build_parser().parse(["--system-prompt-file", str(prompt)]))
    assert settings.system_prompt == "Answer like a pirate."


@pytest.mark.parametrize(
    "argv",
    [
        ["--system-prompt", "a", "--system-prompt-file", "b"],
        ["--system-prompt-file", "/nonexistent/prompt.txt"],
        ["--first-token-timeout", "0"],
        ["--history-idle-minutes", "-1"],
        ["--temperature", "7"],
    ],
)
def test_bad_options_say_what_is_wrong(argv: list[str]) -> None:
    with pytest.raises(SystemExit, match="--"):
        settings_from_args(build_parser().parse(argv))
