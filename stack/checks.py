"""What the stack checks before and after starting its children, each failure said in one line.

- Before: every port is free (another Wyoming service often holds 10200/10300), and the
  satellite has a microphone and a speaker (or was told to use something else).
- After the services answer: the answers come from our own children (their program names in
  `describe`), and every child is still running.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass

from wyoming.info import Info

from wyoming_core.client import VoiceError, describe


@dataclass(frozen=True)
class Service:
    label: str  # the child's name in the stack's log
    title: str  # what a user calls it
    flag: str  # the stack's flag for its port
    kind: str  # the Info field listing its programs
    program: str  # its program name in `describe`


SERVICES = (
    Service("stt", "speech-to-text (STT)", "--stt-port", "asr", "wyoming-stt"),
    Service("tts", "text-to-speech (TTS)", "--tts-port", "tts", "wyoming-tts"),
    Service("llm", "conversation", "--llm-port", "handle", "wyoming-llm"),
)


def port_problem(service: Service, host: str, port: int) -> str | None:
    """Why the service could not listen on host:port, or None if it can."""
    try:
        # As asyncio's server binds (SO_REUSEADDR): a port in TIME_WAIT is not "taken".
        with socket.create_server((host, port)):
            return None
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return (
                f"Port {port} is already in use by another program (another Wyoming service?), so "
                f"the stack's {service.title} cannot listen there: stop that program, or choose "
                f"another port with {service.flag} PORT"
            )
        return (
            f"The stack's {service.title} cannot listen on {host}:{port} ({err.strerror}): "
            f"see {service.flag} and --host"
        )


async def identity_problem(service: Service, uri: str) -> str | None:
    """None if `uri` is answered by our own service; else what answers there instead."""
    try:
        info: Info = await describe(uri, timeout=10.0)
    except VoiceError as err:
        return f"The stack's {service.title} stopped answering at {uri}: {err}"
    programs = [program.name for program in getattr(info, service.kind, None) or []]
    if service.program in programs:
        return None
    kinds = ("asr", "tts", "handle", "wake", "intent")
    others = [program.name for kind in kinds for program in getattr(info, kind, None) or []]
    found = ", ".join(others) or "no such service"
    return (
        f"Something else answers at {uri} ({found}), not the stack's {service.title}: another "
        f"program holds the port; stop it, or choose another port with {service.flag} PORT"
    )


# The satellite options and environment variables that give it other sound than a card.
_MIC_ARGS = ("--mic-command", "--mic-file", "--mic-device")
_SND_ARGS = ("--snd-command", "--snd-file", "--snd-device")


def _given(args: tuple[str, ...], names: tuple[str, ...]) -> bool:
    for name in names:
        env = "SATELLITE_" + name.lstrip("-").upper().replace("-", "_")
        if os.environ.get(env) or any(arg == name or arg.startswith(name + "=") for arg in args):
            return True
    return False


NO_MIC = (
    "No microphone here, so the satellite cannot listen. Answer a question from a file with "
    "--wav QUESTION.wav, record with another program with "
    "--satellite-arg=--mic-command='arecord -q -r 16000 -c 1 -f S16_LE -t raw', "
    "or run only the services with --no-satellite"
)
NO_SPEAKER = (
    "No speaker here, so the satellite cannot answer aloud. Play through another program with "
    "--satellite-arg=--snd-command='aplay -q -r 22050 -c 1 -f S16_LE -t raw', keep the answers "
    "with --satellite-arg=--snd-file=ANSWERS.wav, or run only the services with --no-satellite"
)


def sound_problem(satellite_args: tuple[str, ...]) -> str | None:
    """NO_MIC or NO_SPEAKER if the satellite would need a sound card that is not there."""
    need_mic = not _given(satellite_args, _MIC_ARGS)
    need_speaker = not _given(satellite_args, _SND_ARGS)
    if not (need_mic or need_speaker):
        return None
    from satellite.soundcard import portaudio

    try:
        pa = portaudio()
    except SystemExit as err:  # pyaudio is not installed
        return f"{err}. {NO_MIC if need_mic else NO_SPEAKER}"
    try:
        devices = [pa.get_device_info_by_index(i) for i in range(pa.get_device_count())]
    finally:
        pa.terminate()
    if need_mic and not any(d.get("maxInputChannels", 0) > 0 for d in devices):
        return NO_MIC
    if need_speaker and not any(d.get("maxOutputChannels", 0) > 0 for d in devices):
        return NO_SPEAKER
    return None
