"""Settings for the conversation service, built once from argparse/env."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from wyoming_core.cli import EnvArgs, server_settings
from wyoming_core.ha import HomeSettings, add_home_args, home_settings
from wyoming_core.logs import LOG_TRANSCRIPTS_HELP
from wyoming_core.models import default_data_dir
from wyoming_core.server import ServerSettings

from .prompt import DEFAULT_SYSTEM_PROMPT

# Languages llama3.2 (the default model) officially speaks; `--language` replaces the list.
DEFAULT_LANGUAGES = ("en", "de", "fr", "it", "pt", "hi", "es", "th")


@dataclass(frozen=True)
class LlmSettings:
    server: ServerSettings
    ollama_url: str
    model: str
    system_prompt: str
    languages: tuple[str, ...]
    temperature: float | None
    keep_alive: str
    max_history_turns: int
    history_idle_seconds: float
    # Longest wait for the first token (and between two tokens) before giving up.
    first_token_timeout: float
    # Longest a whole answer may take.
    answer_timeout: float
    # How long transient errors (connection refused, 5xx) are retried before the first token.
    retry_seconds: float
    max_transcript_chars: int
    data_dir: Path
    warm_up: bool
    debug: bool
    # Home Assistant (MCP server) to act on the home through; None: talk only.
    home: HomeSettings | None = None
    # Questions and answers in the log at INFO (otherwise DEBUG).
    log_transcripts: bool = False


def build_parser() -> EnvArgs:
    args = EnvArgs("wyoming_llm", "Wyoming conversation service on Ollama", "LLM_")
    args.add_server_args("tcp://0.0.0.0:10400")
    args.add("--ollama-url", default="http://localhost:11434", help="Where Ollama's HTTP API is")
    args.add("--model", default="llama3.2", help="Ollama model name (pull it first: ollama pull NAME)")
    args.add(
        "--system-prompt", default=None, help="Instructions for the model (default: short spoken answers)"
    )
    args.add("--system-prompt-file", default=None, help="Read the system prompt from this file")
    args.add(
        "--language",
        action="append",
        help=f"A language the service answers in (repeatable; default: {','.join(DEFAULT_LANGUAGES)})",
    )
    args.add("--temperature", type=float, default=None, help="Sampling temperature (default: the model's)")
    args.add("--keep-alive", default="30m", help="How long Ollama keeps the model loaded after a request")
    args.add("--max-history-turns", type=int, default=10, help="Exchanges remembered per conversation")
    args.add(
        "--history-idle-minutes",
        type=float,
        default=5.0,
        help="Forget a conversation after this many idle minutes",
    )
    args.add(
        "--first-token-timeout",
        type=float,
        default=15.0,
        help="Seconds to wait for the model's first word before apologising",
    )
    args.add("--answer-timeout", type=float, default=60.0, help="Longest a whole answer may take (seconds)")
    args.add(
        "--retry-seconds",
        type=float,
        default=2.0,
        help="How long to retry when Ollama is unreachable or busy before answering",
    )
    args.add("--max-transcript-chars", type=int, default=2000, help="Longer transcripts are cut to this")
    args.add(
        "--data-dir",
        default=None,
        help="Where the conversation history is kept",
        shown_default=str(default_data_dir("llm")),
    )
    args.add("--no-warm-up", action="store_true", help="Do not load the model at start-up")
    add_home_args(args, "to control the home")
    args.add("--log-transcripts", action="store_true", help=LOG_TRANSCRIPTS_HELP)
    return args


def _system_prompt(ns: argparse.Namespace) -> str:
    if ns.system_prompt and ns.system_prompt_file:
        raise SystemExit("Give --system-prompt or --system-prompt-file, not both")
    if ns.system_prompt_file:
        try:
            text = Path(ns.system_prompt_file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise SystemExit(f"Cannot read --system-prompt-file {ns.system_prompt_file}: {err}") from None
        if not text:
            raise SystemExit(f"--system-prompt-file {ns.system_prompt_file} is empty")
        return text
    return (ns.system_prompt or "").strip() or DEFAULT_SYSTEM_PROMPT


def settings_from_args(ns: argparse.Namespace) -> LlmSettings:
    if ns.max_history_turns < 0 or ns.history_idle_minutes <= 0:
        raise SystemExit("--max-history-turns must be 0 or more and --history-idle-minutes above 0")
    if ns.first_token_timeout <= 0 or ns.answer_timeout <= 0 or ns.retry_seconds < 0:
        raise SystemExit(
            "--first-token-timeout and --answer-timeout must be above 0, --retry-seconds 0 or more"
        )
    if ns.max_transcript_chars < 1:
        raise SystemExit("--max-transcript-chars must be at least 1")
    if ns.temperature is not None and not 0.0 <= ns.temperature <= 2.0:
        raise SystemExit("--temperature must be between 0 and 2")
    codes = (code.strip() for code in (ns.language or DEFAULT_LANGUAGES))
    languages = tuple(dict.fromkeys(code for code in codes if code))
    return LlmSettings(
        server=server_settings(ns),
        ollama_url=ns.ollama_url.rstrip("/"),
        model=ns.model,
        system_prompt=_system_prompt(ns),
        languages=languages or DEFAULT_LANGUAGES,
        temperature=ns.temperature,
        keep_alive=ns.keep_alive,
        max_history_turns=ns.max_history_turns,
        history_idle_seconds=ns.history_idle_minutes * 60.0,
        first_token_timeout=ns.first_token_timeout,
        answer_timeout=ns.answer_timeout,
        retry_seconds=ns.retry_seconds,
        max_transcript_chars=ns.max_transcript_chars,
        data_dir=Path(ns.data_dir) if ns.data_dir else default_data_dir("llm"),
        warm_up=not ns.no_warm_up,
        debug=ns.debug,
        home=home_settings(ns),
        log_transcripts=ns.log_transcripts,
    )
