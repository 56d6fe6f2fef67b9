"""STT benchmark: entity names heard right with Home Assistant's names (`--ha-url`) and without.

A real headless Home Assistant (tests/ha/harness.py, the test home plus 20 devices with
unusual names in unusual rooms, exposed to Assist, its MCP server and a token) and two STT
services on the same model: one started with `--ha-url`/`--ha-token-file`, one without.
Each command is spoken by piper (the bundled joe voice) and by espeak-ng, and the same audio
goes to both services in the same run. Entity-name WER counts the words of the bracketed
names and rooms only (tests/support/names.py: the transcript aligned with the command;
case, accents and apostrophes ignored); the WER of everyday sentences (no names) shows
whether the names hurt other speech, and the time per transcription (audio sent at once:
the VAD's work and the final decode) what the longer prompt costs.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Figure, parser, report
from tests.ha.harness import Home, HomeAssistant, ha_ready
from tests.support.names import name_errors, spoken
from tests.support.services import ServiceProcess
from tests.support.speech import espeak_speech, piper_speech, silence
from tests.support.wer import wer
from wyoming_core.audio import AudioFormat, to_stt_format
from wyoming_core.client import describe, transcribe

HA_VERSION = "2026.2.3"
STT_FORMAT = AudioFormat(16000, 2, 1)

# (name, room, domain): what the user called them in Home Assistant.
DEVICES = [
    ("Zigbee Ikea Tradfri Lamp", "Ottilie's Room", "light"),
    ("Lumière du Salon", "Salon", "light"),
    ("Hue Go", "Ottilie's Room", "light"),
    ("Nanoleaf Shapes", "Study", "light"),
    ("Govee Strip", "Mezzanine", "light"),
    ("Shelly Plug", "Orangery", "switch"),
    ("Dyson Purifier", "Ottilie's Room", "fan"),
    ("Sonoff Basic", "Conservatory", "switch"),
    ("Aqara Heater", "Bjorn's Office", "switch"),
    ("Moccamaster", "Kitchenette", "switch"),
    ("Philodendron Grow Light", "Orangery", "light"),
    ("Tasmota Fan", "Attic", "fan"),
    ("Yeelight Ceiling", "Siobhan's Room", "light"),
    ("Xiaomi Humidifier", "Nursery", "switch"),
    ("Eve Energy Plug", "Study", "switch"),
    ("Wiz Bulb", "Siobhan's Room", "light"),
    ("Sengled Spot", "Mezzanine", "light"),
    ("Meross Kettle", "Kitchenette", "switch"),
    ("Lidl Livarno Lamp", "Bjorn's Office", "light"),
    ("Tuya Blinds", "Conservatory", "cover"),
]
# Names and rooms in brackets: the words the name WER counts.
COMMANDS = [
    "Turn on the [Zigbee Ikea Tradfri lamp].",
    "Switch off [Lumière du salon].",
    "Dim the [Hue Go] in [Ottilie's room].",
    "Turn off the [Nanoleaf shapes].",
    "Set the [Govee strip] to fifty percent.",
    "Turn on the [Shelly plug] in the [orangery].",
    "Is the [Dyson purifier] on?",
    "Turn off the [Sonoff basic] in the [conservatory].",
    "Switch on the [Aqara heater] in [Bjorn's office].",
    "Turn on the [Moccamaster] in the [kitchenette].",
    "Turn off the [Philodendron grow light].",
    "Turn on the [Tasmota fan] in the [attic].",
    "Dim the [Yeelight ceiling] in [Siobhan's room].",
    "Turn on the [Xiaomi humidifier] in the [nursery].",
    "Switch off the [Eve Energy plug].",
    "Turn off all the lights in [Ottilie's room].",
    "Turn on the lights in the [mezzanine].",
    "Is [Lumière du salon] on?",
    "Set the [Zigbee Ikea Tradfri lamp] to twenty percent.",
    "Turn off the [Hue Go].",
    "Turn on the [Sengled spot] in the [mezzanine].",
    "Switch on the [Meross kettle].",
    "Turn off the [Lidl Livarno lamp] in [Bjorn's office].",
    "Open the [Tuya blinds] in the [conservatory].",
]
# Everyday speech without names: the names must not leak into it.
SENTENCES = [
    "What time is it?",
    "Set a timer for ten minutes.",
    "What is the weather like tomorrow?",
    "Remind me to call my mother at six in the evening.",
    "Play some relaxing music.",
    "How many days are there until Christmas?",
]
VOICES: dict[str, Callable[[str], tuple[bytes, AudioFormat]]] = {
    "piper": piper_speech,
    "espeak-ng": espeak_speech,
}


@dataclass
class Tally:
    # Per voice: [errors on name words, name words].
    names: dict[str, list[int]] = field(default_factory=dict)
    sentence_wer: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def count(self, voice: str, errors: int, words: int) -> None:
        counts = self.names.setdefault(voice, [0, 0])
        counts[0] += errors
        counts[1] += words

    def name_wer(self, voice: str | None = None) -> float:
        counts = [c for v, c in self.names.items() if voice in (None, v)]
        words = sum(c[1] for c in counts)
        return sum(c[0] for c in counts) / words if words else 0.0

    def by_voice(self) -> str:
        return ", ".join(f"{voice} {self.name_wer(voice) * 100:.1f} %" for voice in self.names)


def speech(voice: str, text: str) -> bytes:
    pcm, fmt = VOICES[voice](text)
    return silence(0.3, STT_FORMAT) + to_stt_format(pcm, fmt) + silence(1.0, STT_FORMAT)


async def heard(uri: str, audio: bytes, tally: Tally) -> str:
    started = time.monotonic()
    result = await transcribe(uri, audio, STT_FORMAT, language="en", timeout=120)
    tally.seconds.append(time.monotonic() - started)
    return result.text


async def wait_names(service: ServiceProcess, at_least: int, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        description = (await describe(service.uri, timeout=10)).asr[0].description or ""
        if "names from Home Assistant" in description:
            count = int(description.rsplit("listening for ", 1)[1].split()[0])
            if count >= at_least:
                return description
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the STT never listened for Home Assistant's names:\n{service.log()}")


def start_stt(data_dir: str, *extra: str) -> ServiceProcess:
    service = ServiceProcess(
        "wyoming_stt", "--data-dir", data_dir, "--model", "base", "--language", "en", *extra
    ).start()
    service.wait_listening()
    return service


async def measure(version: str, verbose: bool) -> tuple[Tally, Tally, int]:
    if not ha_ready(version):
        raise SystemExit(f"Home Assistant {version} is not set up: run scripts/setup-ha.sh")
    ha = await HomeAssistant(version).start()
    services: list[ServiceProcess] = []
    try:
        home = await Home.setup(ha)
        devices = [{"name": n, "area": a, "domain": d} for n, a, d in DEVICES]
        await ha.call("add_named_devices", devices=devices)
        with tempfile.TemporaryDirectory() as tmp:
            token = Path(tmp) / "ha-token"
            token.write_text(home.token)
            plain = start_stt(tmp)
            services.append(plain)
            await plain.wait_ready()  # assembles the model once; the second service reuses it
            biased = start_stt(tmp, "--ha-url", home.url, "--ha-token-file", str(token))
            services.append(biased)
            await biased.wait_ready()
            rooms = {area for _name, area, _domain in DEVICES}
            description = await wait_names(biased, at_least=len(DEVICES) + len(rooms))
            names = int(description.rsplit("listening for ", 1)[1].split()[0])
            without, with_ha = Tally(), Tally()
            warm = speech("piper", "Hello.")
            for uri in (plain.uri, biased.uri):
                await transcribe(uri, warm, STT_FORMAT, language="en")
            both = ((plain.uri, without, "without"), (biased.uri, with_ha, "with HA"))
            for voice in VOICES:
                for command in COMMANDS:
                    audio = speech(voice, spoken(command))
                    for uri, tally, label in both:
                        text = await heard(uri, audio, tally)
                        errors, words = name_errors(command, text)
                        tally.count(voice, errors, words)
                        if verbose:
                            print(f"  {voice:9} {label:8} {errors}/{words}  {text}")
                for sentence in SENTENCES:
                    audio = speech(voice, sentence)
                    for uri, tally, _label in both:
                        tally.sentence_wer.append(wer(sentence, await heard(uri, audio, tally)))
            return without, with_ha, names
    finally:
        for service in services:
            service.stop()
        await ha.stop()


async def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--ha-version", default=HA_VERSION, help="Home Assistant version (from .venv-ha)")
    args.add_argument("--verbose", action="store_true", help="Print every transcript")
    ns = args.parse_args()
    without, with_ha, names = await measure(ns.ha_version, ns.verbose)
    med = statistics.median
    utterances = len(COMMANDS) * len(VOICES)
    figures = [
        Figure(
            "entity-name WER with Home Assistant's names",
            with_ha.name_wer() * 100,
            "%",
            target=round(without.name_wer() * 100, 1),
            note=f"{utterances} commands, {names} names; {with_ha.by_voice()}",
        ),
        Figure("entity-name WER without them", without.name_wer() * 100, "%", note=without.by_voice()),
        Figure(
            "everyday sentences WER with Home Assistant's names",
            statistics.mean(with_ha.sentence_wer) * 100,
            "%",
            target=round(statistics.mean(without.sentence_wer) * 100, 1),
            note=f"{len(SENTENCES) * len(VOICES)} sentences without names",
        ),
        Figure("everyday sentences WER without them", statistics.mean(without.sentence_wer) * 100, "%"),
        Figure("time per transcription with the names (median)", med(with_ha.seconds) * 1000, "ms"),
        Figure("time per transcription without them (median)", med(without.seconds) * 1000, "ms"),
    ]
    report(figures, f"STT names (whisper base, Home Assistant {ns.ha_version})", ns.json)


if __name__ == "__main__":
    asyncio.run(main())
