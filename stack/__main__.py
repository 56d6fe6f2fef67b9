"""`python -m stack`: STT, TTS, the conversation service and a satellite, with one command.

Live (default): the services and a standalone satellite on the microphone, until Ctrl-C.
With `--wav IN`: the services answer the question in IN — transcript, answer and the spoken
reply (written to `--reply-wav`) — and everything stops. By default that turn goes through the
client API without a wake word; `--via-satellite` plays IN to the satellite as its microphone
instead (IN must then start with the wake word).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from discovery.voice import VoiceClient
from satellite.report import read_turns
from satellite.soundcard import EXIT_NO_AUDIO_DEVICE
from wyoming_core.audio import duration, read_wav, write_wav
from wyoming_core.cli import EnvArgs
from wyoming_core.logs import LOG_TRANSCRIPTS_HELP, setup_logging

from .checks import SERVICES, Service, identity_problem, port_problem, sound_problem
from .processes import ProcessGroup, Program

_LOGGER = logging.getLogger("stack")


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wyoming-local-voice"


@dataclass(frozen=True)
class StackSettings:
    host: str
    stt_port: int
    tts_port: int
    llm_port: int
    stt_model: str
    language: str
    ollama_url: str | None
    llm_model: str | None
    data_dir: Path
    zeroconf: bool
    wav: Path | None
    reply_wav: Path | None
    conversation_id: str
    satellite: bool
    via_satellite: bool
    satellite_args: tuple[str, ...]
    ready_timeout: float
    turn_timeout: float
    debug: bool
    # Home Assistant for home control (conversation) and entity names (STT); None: none.
    ha_url: str | None = None
    ha_token_file: Path | None = None
    # Passed on to STT, the conversation service and the satellite.
    log_transcripts: bool = False

    def uri(self, port: int, *, client: bool = False) -> str:
        host = "127.0.0.1" if client and self.host in ("0.0.0.0", "") else self.host
        return f"tcp://{host}:{port}"


def build_parser() -> EnvArgs:
    args = EnvArgs("python -m stack", __doc__ or "", "STACK_")
    add = args.add
    add("--host", default="127.0.0.1", help="Where the services listen (0.0.0.0: the whole network)")
    add("--stt-port", type=int, default=10300, help="STT service port")
    add("--tts-port", type=int, default=10200, help="TTS service port")
    add("--llm-port", type=int, default=10400, help="Conversation service port")
    add("--stt-model", default="base", help="Whisper model (base and tiny.en are bundled)")
    add("--language", default="en", help="Language of the speech")
    add("--ollama-url", default=None, help="Ollama's HTTP API (default: the conversation service's own)")
    add("--llm-model", default=None, help="Ollama model (default: the conversation service's own)")
    add("--data-dir", type=Path, default=_default_data_dir(), help="Models and history are kept here")
    add("--zeroconf", action="store_true", help="Advertise every service over mDNS for Home Assistant")
    add("--wav", type=Path, default=None, help="Answer the question in this WAV, then stop")
    add("--reply-wav", type=Path, default=None, help="Where the spoken reply goes (default: IN-reply.wav)")
    add("--conversation-id", default="stack", help="Conversation the WAV turn belongs to")
    add("--no-satellite", action="store_true", help="Run only the services (live mode)")
    add("--via-satellite", action="store_true", help="With --wav: play it to the satellite as its mic")
    add(
        "--satellite-arg",
        action="append",
        default=[],
        help="Extra satellite argument, e.g. --satellite-arg=--mic-command='arecord -r 16000 -f S16_LE'",
    )
    add("--ready-timeout", type=float, default=600.0, help="Seconds for the services to come up")
    add("--turn-timeout", type=float, default=300.0, help="Seconds for the WAV turn")
    add(
        "--ha-url",
        default=None,
        help="Home Assistant's URL: the conversation service controls the home through its MCP "
        "server, and the STT listens for the names of its devices",
    )
    add("--ha-token-file", type=Path, default=None, help="File with a Home Assistant long-lived access token")
    add("--debug", action="store_true", help="Debug logs from every service")
    add("--log-transcripts", action="store_true", help=LOG_TRANSCRIPTS_HELP)
    return args


def settings_from_args(argv: list[str] | None = None) -> StackSettings:
    ns = build_parser().parse(argv)
    wav = ns.wav
    reply = ns.reply_wav
    if wav is not None and reply is None:
        reply = wav.with_name(f"{wav.stem}-reply.wav")
    return StackSettings(
        host=ns.host,
        stt_port=ns.stt_port,
        tts_port=ns.tts_port,
        llm_port=ns.llm_port,
        stt_model=ns.stt_model,
        language=ns.language,
        ollama_url=ns.ollama_url,
        llm_model=ns.llm_model,
        data_dir=ns.data_dir,
        zeroconf=ns.zeroconf,
        wav=wav,
        reply_wav=reply,
        conversation_id=ns.conversation_id,
        satellite=not ns.no_satellite,
        via_satellite=ns.via_satellite,
        satellite_args=tuple(ns.satellite_arg),
        ready_timeout=ns.ready_timeout,
        turn_timeout=ns.turn_timeout,
        debug=ns.debug,
        ha_url=ns.ha_url or None,
        ha_token_file=ns.ha_token_file,
        log_transcripts=ns.log_transcripts,
    )


def service_programs(settings: StackSettings) -> list[Program]:
    py = sys.executable
    common = (["--debug"] if settings.debug else []) + (["--zeroconf"] if settings.zeroconf else [])
    private = ["--log-transcripts"] if settings.log_transcripts else []
    stt = [
        *(py, "-m", "wyoming_stt", "--uri", settings.uri(settings.stt_port)),
        *("--model", settings.stt_model, "--language", settings.language),
        *("--data-dir", str(settings.data_dir / "stt")),
    ]
    tts = [py, "-m", "wyoming_tts", "--uri", settings.uri(settings.tts_port)]
    llm = [
        *(py, "-m", "wyoming_llm", "--uri", settings.uri(settings.llm_port)),
        *("--data-dir", str(settings.data_dir / "llm")),
    ]
    if settings.ollama_url:
        llm += ["--ollama-url", settings.ollama_url]
    if settings.llm_model:
        llm += ["--model", settings.llm_model]
    if settings.ha_url:
        # Home control (conversation) and the names to listen for (STT). The token goes by
        # file: a command line is visible to every user of the machine.
        home = ["--ha-url", settings.ha_url]
        if settings.ha_token_file is not None:
            home += ["--ha-token-file", str(settings.ha_token_file)]
        llm += home
        stt += home
    return [
        Program("stt", (*stt, *common, *private)),
        Program("tts", (*tts, *common)),
        Program("llm", (*llm, *common, *private)),
    ]


def satellite_program(settings: StackSettings, extra: tuple[str, ...] = ()) -> Program:
    argv = [
        *(sys.executable, "-m", "satellite"),
        *("--stt-uri", settings.uri(settings.stt_port, client=True)),
        *("--tts-uri", settings.uri(settings.tts_port, client=True)),
        *("--handle-uri", settings.uri(settings.llm_port, client=True)),
        *("--language", settings.language),
    ]
    if settings.debug:
        argv.append("--debug")
    if settings.log_transcripts:
        argv.append("--log-transcripts")
    return Program("satellite", (*argv, *extra, *settings.satellite_args))


# The satellite's status page (and its /metrics) in live mode: this machine only.
STATUS_PAGE_PORT = 10780


def status_page_args(settings: StackSettings) -> tuple[str, ...]:
    """`--http 127.0.0.1:10780` for the live satellite, its URL logged; nothing when the user
    gave the satellite an --http of their own, or when the port is taken (the page is a nicety:
    a busy port must not stop the satellite)."""
    if any(arg.startswith("--http") for arg in settings.satellite_args):
        return ()
    try:
        with socket.create_server(("127.0.0.1", STATUS_PAGE_PORT)):
            pass
    except OSError as err:
        _LOGGER.warning("No satellite status page: 127.0.0.1:%d is not free (%s)", STATUS_PAGE_PORT, err)
        return ()
    _LOGGER.info("Satellite status page: http://127.0.0.1:%d/", STATUS_PAGE_PORT)
    return ("--http", f"127.0.0.1:{STATUS_PAGE_PORT}")


def voice_client(settings: StackSettings) -> VoiceClient:
    return VoiceClient(
        settings.uri(settings.stt_port, client=True),
        settings.uri(settings.tts_port, client=True),
        settings.uri(settings.llm_port, client=True),
        language=settings.language,
        timeout=settings.turn_timeout,
    )


def _report(transcript: str, answer: str, reply_wav: Path | None, seconds: float) -> None:
    print(f"Transcript: {transcript}", flush=True)
    print(f"Answer: {answer}", flush=True)
    if reply_wav is not None:
        print(f"Reply: {reply_wav} ({seconds:.1f} s)", flush=True)


async def wav_turn(settings: StackSettings) -> int:
    """The WAV's question through STT, conversation and TTS with the client API (no wake word)."""
    assert settings.wav is not None and settings.reply_wav is not None
    async with voice_client(settings) as voice:
        turn = await voice.turn(settings.wav, conversation_id=settings.conversation_id)
    if turn.speech is None:
        _report(turn.transcript, turn.answer, None, 0.0)
        _LOGGER.warning("Nothing was heard in %s, so there is no reply", settings.wav)
        return 1
    write_wav(settings.reply_wav, turn.speech.audio, turn.speech.format)
    _report(turn.transcript, turn.answer, settings.reply_wav, turn.speech.seconds)
    return 0


async def satellite_wav_turn(settings: StackSettings, group: ProcessGroup) -> int:
    """The WAV as the satellite's microphone, one turn; what it heard and answered comes back as
    data (its `--turn-report`, a JSON line), not from its log."""
    assert settings.wav is not None and settings.reply_wav is not None
    # A private directory: the report holds what was said.
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="stack-turn-"))
    try:
        report = folder / "turn.jsonl"
        extra = ("--mic-file", str(settings.wav), "--snd-file", str(settings.reply_wav))
        once = ("--no-sounds", "--follow-up", "0", "--exit-after-turns", "1", "--turn-report", str(report))
        await group.start(satellite_program(settings, (*extra, *once)))
        code = await group.wait("satellite")
        turns = await asyncio.to_thread(read_turns, report)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    seconds = 0.0
    if settings.reply_wav.exists():
        seconds = duration(*await asyncio.to_thread(read_wav, settings.reply_wav))
    if not turns:
        _LOGGER.error("The satellite ended without a turn (exit code %s); its lines above say why", code)
        return code or 1
    turn = turns[-1]
    _report(turn.transcript or "", turn.reply or "", settings.reply_wav, seconds)
    if turn.outcome != "answered":
        _LOGGER.error("The satellite's turn did not go through (%s): %s", turn.outcome, turn.error or "-")
        return 1
    return code


async def main(settings: StackSettings) -> int:
    group = ProcessGroup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stop_task = asyncio.ensure_future(stop.wait())
    problems = await before_start(settings)
    for problem in problems:
        _LOGGER.error("%s", problem)
    if problems:
        stop_task.cancel()
        return 1
    try:
        for program in service_programs(settings):
            await group.start(program)
        died = asyncio.ensure_future(group.first_exit())
        ready = asyncio.ensure_future(voice_client(settings).wait_ready(settings.ready_timeout))
        await asyncio.wait({ready, died, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            if died.done():
                label, code = died.result()
                _LOGGER.error("%s exited (code %s) before the stack was up", label, code)
                return 1
            return 130
        if ready.exception() is not None:
            _LOGGER.error("The services did not come up within %g s", settings.ready_timeout)
            return 1
        not_ours = await our_children_answer(settings, group)
        if not_ours is not None:
            _LOGGER.error("%s", not_ours)
            return 1
        _LOGGER.info("STT, TTS and conversation are answering, their models loaded")

        if settings.wav is not None:
            via = settings.via_satellite
            turn = satellite_wav_turn(settings, group) if via else wav_turn(settings)
            job: asyncio.Future[int] | None = asyncio.ensure_future(
                asyncio.wait_for(turn, settings.turn_timeout)
            )
            watched = ["stt", "tts", "llm"]
        else:
            if settings.satellite:
                await group.start(satellite_program(settings, status_page_args(settings)))
            _LOGGER.info("The stack is running; Ctrl-C stops it")
            job = None
            watched = ["stt", "tts", "llm", "satellite"]
        died.cancel()
        died = asyncio.ensure_future(group.first_exit(watched))
        waits: set[asyncio.Future[object]] = {died, stop_task}  # type: ignore[arg-type]
        if job is not None:
            waits.add(job)  # type: ignore[arg-type]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if job is not None and job.done():
            return job.result()
        if died.done():
            label, code = died.result()
            if label == "satellite" and code == EXIT_NO_AUDIO_DEVICE:
                _LOGGER.error("%s", NO_SOUND_DEVICE)
            else:
                _LOGGER.error("%s exited (code %s); stopping everything", label, code)
            return 1
        return 0
    except TimeoutError:
        what = "the satellite heard no wake word" if settings.via_satellite else "no answer came"
        _LOGGER.error("Giving up: %s within %g s (--turn-timeout)", what, settings.turn_timeout)
        return 1
    except Exception as err:
        _LOGGER.error("%s", err)
        return 1
    finally:
        for task in [stop_task]:
            task.cancel()
        _LOGGER.info("Stopping the stack")
        await group.stop()


NO_SOUND_DEVICE = (
    "The satellite could not open its microphone or speaker (its line above says which). "
    "Answer a question from a file with --wav QUESTION.wav, give the satellite other sound with "
    "--satellite-arg=--mic-command=... / --satellite-arg=--snd-command=..., or run only the "
    "services with --no-satellite"
)


def _port(settings: StackSettings, service: Service) -> int:
    return {"stt": settings.stt_port, "tts": settings.tts_port, "llm": settings.llm_port}[service.label]


async def before_start(settings: StackSettings) -> list[str]:
    """Taken ports and a missing sound card, found before anything starts (one line each)."""
    problems = [
        problem
        for service in SERVICES
        if (problem := port_problem(service, settings.host, _port(settings, service))) is not None
    ]
    if settings.wav is None and settings.satellite:  # live: the satellite needs sound
        sound = await asyncio.to_thread(sound_problem, settings.satellite_args)
        if sound is not None:
            problems.append(sound)
    return problems


async def our_children_answer(settings: StackSettings, group: ProcessGroup) -> str | None:
    """After the services answer: they are our children, all still running (another program may
    have taken a port after the check, and a child that failed may leave the answering to it)."""
    for service in SERVICES:
        code = group.returncode(service.label)
        if code is not None:
            return f"The stack's {service.title} exited (code {code}); its lines above say why"
        uri = settings.uri(_port(settings, service), client=True)
        problem = await identity_problem(service, uri)
        if problem is not None:
            return problem
    return None


def run(argv: list[str] | None = None) -> None:
    settings = settings_from_args(argv)
    setup_logging(settings.debug, "stack")
    if settings.ha_url and settings.ha_token_file is None:
        raise SystemExit("--ha-url needs --ha-token-file (a file with a long-lived access token)")
    if settings.wav is not None and not settings.wav.is_file():
        raise SystemExit(f"No such WAV file: {settings.wav}")
    code = 1
    with contextlib.suppress(KeyboardInterrupt):
        code = asyncio.run(main(settings))
    sys.exit(code)


if __name__ == "__main__":
    run()
