"""Drive a real, headless Home Assistant against our Wyoming services.

Runs in the HA venv (Python 3.13, `homeassistant` installed), never in the main venv:

    .venv-ha/<version>/bin/python tests/ha/ha_driver.py CONFIG_DIR

It boots Home Assistant in CONFIG_DIR with only the integrations a voice stack needs
(wyoming, assist_pipeline, assist_satellite, conversation, stt, tts, ffmpeg, http), prints
one JSON line `{"ready": true, "version": ...}` and then answers one JSON command per stdin
line with one JSON line on stdout: `{"id": N, "ok": true, "result": {...}}` or
`{"id": N, "ok": false, "error": "..."}`. Everything HA logs goes to stderr.

Commands (`op`): add_entry, stt, tts, tts_stream, converse, set_pipeline, pipeline,
satellite_watch, satellite_result, states, stop. They call the same APIs HA's own websocket
commands and the wyoming integration call, so what passes here passes in a real HA.

The home-control ops: home_setup (template lights and a switch over helpers, in areas,
exposed to Assist; the `mcp_server` integration through its config flow; a user with a
long-lived access token), entity_state, call_service, wait_state. For satellites also
start_timer (a timer on a satellite's device, as if asked for by voice there) and
set_internal_url (so that announcements' audio can be fetched).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import sys
import time
import traceback
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant import bootstrap, loader
from homeassistant.auth.const import GROUP_ID_ADMIN
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
from homeassistant.components import assist_pipeline, conversation, stt, tts
from homeassistant.components.assist_pipeline.pipeline import async_update_pipeline
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.tts.helper import get_engine_instance
from homeassistant.config_entries import ConfigEntries
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import Context, Event, HomeAssistant, State, callback
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.helpers import area_registry as ar
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import slugify

_LOGGER = logging.getLogger("ha_driver")

# The wire to the test process: a private dup of stdout, so that nothing HA or a library
# prints can corrupt the protocol.
_OUT = os.fdopen(os.dup(1), "w", buffering=1)
sys.stdout = sys.stderr

SAMPLE_RATE = 16000
CHUNK_BYTES = 2048  # 64 ms of 16 kHz 16-bit mono, about what a satellite sends


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_pcm16k(path: str) -> bytes:
    """16 kHz 16-bit mono PCM from a WAV file (the test prepares it in that format)."""
    with wave.open(path, "rb") as wav:
        if (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) != (SAMPLE_RATE, 2, 1):
            raise ValueError(f"{path}: need 16 kHz 16-bit mono WAV")
        return wav.readframes(wav.getnframes())


async def _pcm_stream(pcm: bytes, realtime: bool) -> AsyncIterator[bytes]:
    for start in range(0, len(pcm), CHUNK_BYTES):
        yield pcm[start : start + CHUNK_BYTES]
        # The pipeline's VAD expects audio at about the speed a microphone gives it.
        await asyncio.sleep(CHUNK_BYTES / (SAMPLE_RATE * 2) if realtime else 0)


def _v(value: Any) -> Any:
    """An enum's plain value (HA's enums differ in how str() prints them)."""
    return getattr(value, "value", value)


def _wav_pcm(data: bytes) -> tuple[int, int, int, bytes]:
    """(rate, width, channels, PCM) of a WAV. A streamed WAV (HA 2026.2.3) says 0
    frames in its header (the length is unknown when it is sent): take all after `data`."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        pcm = wav.readframes(wav.getnframes())
    if not pcm:
        pcm = data[data.index(b"data") + 8 :]
    return rate, width, channels, pcm


# The home of the home-control tests: (name, area, dimmable). Lights are template lights
# over an input_boolean (on/off) and, if dimmable, an input_number (brightness 0-255).
HOME_LIGHTS = (
    ("Kitchen Lights", "Kitchen", True),
    ("Bedroom Lamp", "Bedroom", False),
    ("Living Room Lights", "Living Room", True),
)
HOME_SWITCHES = (("Coffee Maker", "Kitchen"),)
# Extra lights for prompt-size measurements: plausible names, in plausible areas.
EXTRA_AREAS = (
    "Hallway",
    "Office",
    "Dining Room",
    "Garage",
    "Bathroom",
    "Guest Room",
    "Porch",
    "Basement",
    "Laundry Room",
    "Nursery",
)
EXTRA_FIXTURES = ("Ceiling Light", "Lamp", "Spotlights", "Light Strip", "Wall Sconce")


def _extra_lights(count: int) -> list[tuple[str, str, bool]]:
    names = [(f"{area} {fixture}", area) for fixture in EXTRA_FIXTURES for area in EXTRA_AREAS]
    out = []
    for i in range(count):
        name, area = names[i % len(names)]
        out.append((name if i < len(names) else f"{name} {i // len(names) + 1}", area, False))
    return out


def _state_json(state: State | None) -> dict[str, Any]:
    if state is None:
        return {"state": None, "name": None, "attributes": {}}
    return {
        "state": state.state,
        "name": state.name,
        "attributes": dict(state.attributes),
        "last_changed": state.last_changed.isoformat(),
    }


class Driver:
    def __init__(self, hass: HomeAssistant, out_dir: Path, http_port: int) -> None:
        self.hass = hass
        self.out_dir = out_dir
        self.http_port = http_port
        self.satellite_states: list[tuple[float, str]] = []
        self._n = 0
        self._home: dict[str, Any] | None = None

    def _out_path(self, suffix: str) -> Path:
        self._n += 1
        return self.out_dir / f"out-{self._n}{suffix}"

    def _entities(self, entry_id: str) -> list[dict[str, Any]]:
        registry = er.async_get(self.hass)
        result = []
        for ent in er.async_entries_for_config_entry(registry, entry_id):
            state = self.hass.states.get(ent.entity_id)
            result.append(
                {
                    "entity_id": ent.entity_id,
                    "domain": ent.domain,
                    "state": state.state if state else None,
                    "name": state.name if state else None,
                    "attributes": dict(state.attributes) if state else {},
                }
            )
        return result

    async def op_add_entry(self, host: str, port: int) -> dict[str, Any]:
        """The config flow a user runs in the UI: Add integration -> Wyoming -> host, port."""
        flow = self.hass.config_entries.flow
        result = await flow.async_init("wyoming", context={"source": "user"})
        form_step = result.get("step_id")
        result = await flow.async_configure(result["flow_id"], {"host": host, "port": port})
        out: dict[str, Any] = {"form_step": form_step, "type": _v(result["type"])}
        if "errors" in result:
            out["errors"] = result.get("errors")
        if "reason" in result:
            out["reason"] = result.get("reason")
        if entry := result.get("result"):
            await self.hass.async_block_till_done()
            out.update(
                title=entry.title,
                entry_id=entry.entry_id,
                entry_state=_v(entry.state),
                entities=self._entities(entry.entry_id),
            )
        return out

    async def op_remove_entry(self, entry_id: str) -> dict[str, Any]:
        result = await self.hass.config_entries.async_remove(entry_id)
        await self.hass.async_block_till_done()
        return dict(result)

    async def op_states(self, entry_id: str) -> dict[str, Any]:
        return {"entities": self._entities(entry_id)}

    async def op_stt(self, entity_id: str, wav: str, language: str = "en") -> dict[str, Any]:
        entity = stt.async_get_speech_to_text_entity(self.hass, entity_id)
        if entity is None:
            raise ValueError(f"no STT entity {entity_id}")
        metadata = stt.SpeechMetadata(
            language=language,
            format=stt.AudioFormats.WAV,
            codec=stt.AudioCodecs.PCM,
            bit_rate=stt.AudioBitRates.BITRATE_16,
            sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
            channel=stt.AudioChannels.CHANNEL_MONO,
        )
        started = time.monotonic()
        result = await entity.internal_async_process_audio_stream(
            metadata, _pcm_stream(_read_pcm16k(wav), realtime=False)
        )
        return {
            "text": result.text,
            "result": _v(result.result),
            "seconds": time.monotonic() - started,
            "supported_languages": entity.supported_languages,
        }

    async def op_tts(
        self, entity_id: str, message: str, language: str | None = None, options: dict | None = None
    ) -> dict[str, Any]:
        """TTS the way a media player or the pipeline gets it: through the TTS manager."""
        stream = tts.async_create_stream(self.hass, entity_id, language, options)
        stream.async_set_message(message)
        data = b"".join([chunk async for chunk in stream.async_stream_result()])
        return self._save_audio(stream.extension, data)

    async def op_tts_stream(
        self,
        entity_id: str,
        chunks: list[str],
        language: str | None = None,
        options: dict | None = None,
        delay: float = 0.2,
    ) -> dict[str, Any]:
        """TTS with streamed text input, as an LLM agent feeds it (HA 2026.2.3, not 2025.4.4)."""
        stream = tts.async_create_stream(self.hass, entity_id, language, options)
        sent: list[float] = []

        async def text() -> AsyncIterator[str]:
            for chunk in chunks:
                sent.append(time.monotonic())
                yield chunk
                await asyncio.sleep(delay)

        stream.async_set_message_stream(text())
        data = bytearray()
        first_audio: float | None = None
        async for chunk in stream.async_stream_result():
            # The first chunk of a streamed WAV is its header alone.
            if first_audio is None and len(data) >= 44:
                first_audio = time.monotonic()
            data += chunk
        result = self._save_audio(stream.extension, bytes(data))
        result["supports_streaming_input"] = getattr(stream, "supports_streaming_input", None)
        # Audio before the last text chunk was sent proves the text really streamed in.
        result["audio_before_last_text"] = first_audio is not None and first_audio < sent[-1]
        return result

    def _save_audio(self, extension: str, data: bytes) -> dict[str, Any]:
        path = self._out_path(f".{extension}")
        result: dict[str, Any] = {"extension": extension, "path": str(path), "bytes": len(data)}
        if extension == "wav" and data:
            rate, width, channels, pcm = _wav_pcm(data)
            seconds = len(pcm) / (rate * width * channels)
            result.update(rate=rate, width=width, channels=channels, seconds=seconds)
            # Saved with a complete header, so that any WAV reader takes it.
            with wave.open(str(path), "wb") as wav:
                wav.setframerate(rate)
                wav.setsampwidth(width)
                wav.setnchannels(channels)
                wav.writeframes(pcm)
        else:
            path.write_bytes(data)
        return result

    async def op_converse(
        self, agent_id: str, text: str, conversation_id: str | None = None, language: str = "en"
    ) -> dict[str, Any]:
        result = await conversation.async_converse(
            self.hass, text, conversation_id, Context(), language=language, agent_id=agent_id
        )
        response = result.response
        return {
            "speech": response.speech.get("plain", {}).get("speech", ""),
            "response_type": _v(response.response_type),
            "error_code": _v(response.error_code),
            "conversation_id": result.conversation_id,
        }

    async def op_set_pipeline(self, stt_engine: str, conversation_engine: str, tts_engine: str) -> dict:
        """Point the preferred pipeline (the one satellites use) at our services."""
        # As a user picks in the UI: the TTS voice's own language tag (en_US), not bare "en".
        tts_languages = list(get_engine_instance(self.hass, tts_engine).supported_languages)
        tts_language = next((lang for lang in sorted(tts_languages) if lang.startswith("en")), "en")
        pipeline = assist_pipeline.async_get_pipeline(self.hass)
        await async_update_pipeline(
            self.hass,
            pipeline,
            name="Local voice",
            language="en",
            stt_engine=stt_engine,
            stt_language="en",
            conversation_engine=conversation_engine,
            conversation_language="en",
            tts_engine=tts_engine,
            tts_language=tts_language,
            tts_voice=None,
        )
        return {"pipeline": assist_pipeline.async_get_pipeline(self.hass).to_json()}

    async def op_pipeline(
        self, wav: str, conversation_id: str | None = None, tts_format: str = "wav"
    ) -> dict[str, Any]:
        """One assist pipeline run STT -> conversation -> TTS on an audio stream."""
        events: list[dict[str, Any]] = []

        def on_event(event: Any) -> None:
            events.append({"type": _v(event.type), "data": event.data})

        await assist_pipeline.async_pipeline_from_audio_stream(
            self.hass,
            context=Context(),
            event_callback=on_event,
            stt_metadata=stt.SpeechMetadata(
                language="",  # the pipeline fills in its STT language
                format=stt.AudioFormats.WAV,
                codec=stt.AudioCodecs.PCM,
                bit_rate=stt.AudioBitRates.BITRATE_16,
                sample_rate=stt.AudioSampleRates.SAMPLERATE_16000,
                channel=stt.AudioChannels.CHANNEL_MONO,
            ),
            stt_stream=_pcm_stream(_read_pcm16k(wav), realtime=True),
            conversation_id=conversation_id,
            tts_audio_output=tts_format,
        )
        result: dict[str, Any] = {"events": events}
        for event in events:
            data = event["data"] or {}
            if event["type"] == "stt-end":
                result["stt_text"] = data["stt_output"]["text"]
            elif event["type"] == "intent-end":
                response = data["intent_output"]["response"]
                result["speech"] = response["speech"].get("plain", {}).get("speech", "")
                result["conversation_id"] = data["intent_output"].get("conversation_id")
            elif event["type"] == "tts-end" and (output := data.get("tts_output")):
                result["tts"] = await self._pipeline_audio(output)
            elif event["type"] == "error":
                result["error"] = data
        return result

    async def _pipeline_audio(self, output: dict[str, Any]) -> dict[str, Any]:
        """The answer's audio, fetched as a satellite or the frontend does."""
        if (token := output.get("token")) and (stream := tts.async_get_stream(self.hass, token)):
            # The result stream the pipeline made (what HA's own wyoming satellite reads).
            data = b"".join([chunk async for chunk in stream.async_stream_result()])
            return self._save_audio(stream.extension, data)
        extension, data = await tts.async_get_media_source_audio(self.hass, output["media_id"])
        return self._save_audio(extension, data)

    async def op_satellite_watch(self, entity_id: str) -> dict[str, Any]:
        """Record every state the assist_satellite entity goes through from now on."""
        self.satellite_states.clear()

        def on_change(event: Event) -> None:
            if event.data["entity_id"] == entity_id and (new := event.data.get("new_state")):
                self.satellite_states.append((time.monotonic(), new.state))

        if not getattr(self, "_watching", False):
            self.hass.bus.async_listen("state_changed", on_change)
            self._watching = True
        state = self.hass.states.get(entity_id)
        return {"state": state.state if state else None}

    async def op_satellite_wait(self, entity_id: str, sequence: list[str], wait_seconds: float) -> dict:
        """Wait until the satellite's states contain `sequence` in order."""
        deadline = time.monotonic() + wait_seconds
        while True:
            seen = [s for _, s in self.satellite_states]
            it = iter(seen)
            if all(any(s == want for s in it) for want in sequence):
                return {"states": seen, "complete": True}
            if time.monotonic() > deadline:
                return {"states": seen, "complete": False}
            await asyncio.sleep(0.2)

    async def op_home_setup(self, extra_lights: int = 0) -> dict[str, Any]:
        """A small home controlled through Assist, set up as a user would in the UI: helpers,
        template lights and a switch over them, areas, entities exposed to Assist, the MCP
        server integration, and a user with a long-lived access token."""
        if self._home is not None:
            if self._home["extra_lights"] != extra_lights:
                raise ValueError("home_setup already ran with other extra_lights")
            return self._home
        started = time.monotonic()
        hass = self.hass
        lights = list(HOME_LIGHTS) + _extra_lights(extra_lights)
        booleans: dict[str, Any] = {}
        numbers: dict[str, Any] = {}
        template_lights: list[dict[str, Any]] = []
        template_switches: list[dict[str, Any]] = []
        planned: list[dict[str, Any]] = []  # (what we made, before HA names the entity ids)

        def power(slug: str, name: str) -> str:
            booleans[f"{slug}_power"] = {"name": f"{name} power"}
            return f"input_boolean.{slug}_power"

        for name, area, dimmable in lights:
            slug = slugify(name)
            on_off = power(slug, name)
            light: dict[str, Any] = {
                "name": name,
                "unique_id": f"home_{slug}",
                "state": f"{{{{ is_state('{on_off}', 'on') }}}}",
                "turn_on": [{"action": "input_boolean.turn_on", "target": {"entity_id": on_off}}],
                "turn_off": [{"action": "input_boolean.turn_off", "target": {"entity_id": on_off}}],
            }
            level = None
            if dimmable:
                level = f"input_number.{slug}_level"
                numbers[f"{slug}_level"] = {
                    "name": f"{name} level",
                    "min": 0,
                    "max": 255,
                    "step": 1,
                    "initial": 255,
                }
                light["level"] = f"{{{{ states('{level}') | int(0) }}}}"
                light["set_level"] = [
                    {
                        "action": "input_number.set_value",
                        "target": {"entity_id": level},
                        "data": {"value": "{{ brightness }}"},
                    },
                    {"action": "input_boolean.turn_on", "target": {"entity_id": on_off}},
                ]
            template_lights.append(light)
            planned.append(
                {
                    "domain": "light",
                    "unique_id": light["unique_id"],
                    "name": name,
                    "area": area,
                    "power": on_off,
                    "level": level,
                    "dimmable": dimmable,
                }
            )
        for name, area in HOME_SWITCHES:
            slug = slugify(name)
            on_off = power(slug, name)
            template_switches.append(
                {
                    "name": name,
                    "unique_id": f"home_{slug}",
                    "state": f"{{{{ is_state('{on_off}', 'on') }}}}",
                    "turn_on": [{"action": "input_boolean.turn_on", "target": {"entity_id": on_off}}],
                    "turn_off": [{"action": "input_boolean.turn_off", "target": {"entity_id": on_off}}],
                }
            )
            planned.append(
                {
                    "domain": "switch",
                    "unique_id": f"home_{slug}",
                    "name": name,
                    "area": area,
                    "power": on_off,
                    "level": None,
                    "dimmable": False,
                }
            )

        for domain, config in (
            ("intent", {}),
            ("input_boolean", {"input_boolean": booleans}),
            ("input_number", {"input_number": numbers}),
            ("template", {"template": [{"light": template_lights, "switch": template_switches}]}),
        ):
            if not await async_setup_component(hass, domain, config):
                raise RuntimeError(f"integration {domain} failed to set up (see log)")
        await hass.async_block_till_done()

        entities = er.async_get(hass)
        areas = ar.async_get(hass)
        home: list[dict[str, Any]] = []
        for item in planned:
            entity_id = entities.async_get_entity_id(item["domain"], "template", item["unique_id"])
            if entity_id is None:
                raise RuntimeError(f"template {item['domain']} {item['name']!r} was not created (see log)")
            area = areas.async_get_or_create(item["area"])
            entities.async_update_entity(entity_id, area_id=area.id)
            # Exposed as a user ticks "Expose" in Settings > Voice assistants; the helpers
            # behind them are not (an assistant should see one "Kitchen Lights", not three).
            async_expose_entity(hass, conversation.DOMAIN, entity_id, True)
            for helper in (item["power"], item["level"]):
                if helper:
                    async_expose_entity(hass, conversation.DOMAIN, helper, False)
            home.append(
                {
                    "entity_id": entity_id,
                    "domain": item["domain"],
                    "name": item["name"],
                    "area": item["area"],
                    "area_id": area.id,
                    "dimmable": item["dimmable"],
                    "power_entity_id": item["power"],
                    "level_entity_id": item["level"],
                }
            )

        mcp = await self._mcp_server_entry()
        token = await self._long_lived_token()
        url = f"http://127.0.0.1:{self.http_port}"
        self._home = {
            "version": HA_VERSION,
            "url": url,
            # Streamable HTTP: not in 2025.4.4, whose mcp_server serves only the SSE transport.
            "mcp_url": f"{url}{mcp['streamable_path']}" if mcp["streamable_path"] else None,
            "mcp_sse_url": f"{url}{mcp['sse_path']}",
            "mcp_entry": mcp["entry"],
            "token": token,
            "entities": home,
            "extra_lights": extra_lights,
            "seconds": time.monotonic() - started,
        }
        return self._home

    async def _mcp_server_entry(self) -> dict[str, Any]:
        """The "Model Context Protocol Server" integration added in the UI, with the form's
        default LLM API (Assist): a single id on 2025.4.4, a list since the multi-select."""
        from homeassistant.components.mcp_server import http as mcp_http

        flow = self.hass.config_entries.flow
        result = await flow.async_init("mcp_server", context={"source": "user"})
        if _v(result["type"]) != "form":
            raise RuntimeError(f"mcp_server config flow: {result}")
        defaults = {
            str(key): key.default()
            for key in result["data_schema"].schema
            if callable(getattr(key, "default", None))
        }
        user_input = {"llm_hass_api": defaults["llm_hass_api"]}
        result = await flow.async_configure(result["flow_id"], user_input)
        if _v(result["type"]) != "create_entry":
            raise RuntimeError(f"mcp_server config flow: {result}")
        await self.hass.async_block_till_done()
        entry = result["result"]
        return {
            "entry": {
                "title": entry.title,
                "entry_id": entry.entry_id,
                "state": _v(entry.state),
                "data": dict(entry.data),
            },
            "streamable_path": getattr(mcp_http, "STREAMABLE_API", None),
            "sse_path": mcp_http.SSE_API,
        }

    async def _long_lived_token(self) -> str:
        """Profile > Security > Long-lived access tokens > Create token, for a new admin."""
        auth = self.hass.auth
        user = await auth.async_create_user("Voice assistant", group_ids=[GROUP_ID_ADMIN])
        refresh_token = await auth.async_create_refresh_token(
            user,
            client_name="wyoming-local-voice tests",
            token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
            access_token_expiration=timedelta(days=3650),
        )
        return auth.async_create_access_token(refresh_token)

    async def op_entity_state(self, entity_id: str) -> dict[str, Any]:
        """An entity's state and attributes now ({"state": null} if it does not exist)."""
        return {"entity_id": entity_id, **_state_json(self.hass.states.get(entity_id))}

    async def op_call_service(self, domain: str, service: str, data: dict[str, Any] | None = None) -> dict:
        """Call a service and wait until it is done (as the UI's buttons do)."""
        await self.hass.services.async_call(domain, service, data or {}, blocking=True, context=Context())
        await self.hass.async_block_till_done()
        return {}

    async def op_wait_state(
        self,
        entity_id: str,
        state: str,
        wait_seconds: float = 30.0,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Wait until an entity has `state` (and these attribute values); `reached` says
        whether it did before the deadline, with the state it has then."""
        want = attributes or {}

        def matches(current: State | None) -> bool:
            return (
                current is not None
                and current.state == state
                and all(current.attributes.get(key) == value for key, value in want.items())
            )

        changed = asyncio.Event()

        @callback
        def on_change(event: Event) -> None:
            if event.data.get("entity_id") == entity_id:
                changed.set()

        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        unsubscribe = self.hass.bus.async_listen(EVENT_STATE_CHANGED, on_change)
        try:
            while True:
                changed.clear()
                current = self.hass.states.get(entity_id)
                remaining = deadline - loop.time()
                if matches(current) or remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            unsubscribe()
        return {"entity_id": entity_id, "reached": matches(current), **_state_json(current)}

    async def op_start_timer(self, entity_id: str, seconds: int, name: str = "test") -> dict[str, Any]:
        """Start a timer on the device behind `entity_id` (a satellite), as "set a timer for
        N seconds" said to that satellite does (HassStartTimer): HA then sends the device's
        timer events (the wyoming integration forwards them to the satellite)."""
        from homeassistant.helpers import intent

        entry = er.async_get(self.hass).async_get(entity_id)
        if entry is None or entry.device_id is None:
            raise ValueError(f"{entity_id} has no device")
        response = await intent.async_handle(
            self.hass,
            "ha_driver",
            intent.INTENT_START_TIMER,
            {"seconds": {"value": seconds}, "name": {"value": name}},
            device_id=entry.device_id,
        )
        return {"response_type": _v(response.response_type), "speech": response.speech}

    async def op_set_internal_url(self, local: bool = True) -> dict[str, Any]:
        """HA's internal URL: this HA's own HTTP server (which listens on 127.0.0.1 only), or
        unset again. HA hands URLs under it to ffmpeg for an announcement's audio; unset, HA
        guesses the machine's network address, where nothing answers."""
        url = f"http://127.0.0.1:{self.http_port}" if local else None
        await self.hass.config.async_update(internal_url=url)
        return {"internal_url": url}

    async def op_add_named_devices(self, devices: list[dict[str, Any]]) -> dict[str, Any]:
        """More exposed devices, for what is said about them: each `{"name", "area", "domain",
        "aliases"}` gets an entity registry entry (name, aliases, area, created if new), a
        state ("off") and is exposed to Assist, so HA's MCP server lists it like any device.
        No integration stands behind them (turning one on does nothing): enough for tests of
        names heard. `remove_named_devices` takes them out again."""
        entities = er.async_get(self.hass)
        areas = ar.async_get(self.hass)
        made: list[dict[str, Any]] = []
        new_areas: list[str] = []
        for device in devices:
            name, domain = device["name"], device.get("domain", "light")
            entry = entities.async_get_or_create(
                domain, "ha_driver", f"named_{slugify(name)}", suggested_object_id=slugify(name)
            )
            area_id = None
            if device.get("area"):
                area = areas.async_get_area_by_name(device["area"])
                if area is None:
                    area = areas.async_create(device["area"])
                    new_areas.append(area.id)
                area_id = area.id
            entities.async_update_entity(
                entry.entity_id, name=name, aliases=set(device.get("aliases", ())), area_id=area_id
            )
            self.hass.states.async_set(entry.entity_id, "off", {"friendly_name": name})
            async_expose_entity(self.hass, conversation.DOMAIN, entry.entity_id, True)
            made.append({"entity_id": entry.entity_id, "name": name, "area": device.get("area")})
        await self.hass.async_block_till_done()
        return {"devices": made, "new_area_ids": new_areas}

    async def op_remove_named_devices(self, entity_ids: list[str], area_ids: list[str]) -> dict[str, Any]:
        """Undo `add_named_devices`: the entities, their states and the areas it created."""
        entities = er.async_get(self.hass)
        for entity_id in entity_ids:
            self.hass.states.async_remove(entity_id)
            if entities.async_get(entity_id) is not None:
                entities.async_remove(entity_id)
        areas = ar.async_get(self.hass)
        for area_id in area_ids:
            if areas.async_get_area(area_id) is not None:
                areas.async_delete(area_id)
        await self.hass.async_block_till_done()
        return {}


async def _boot(config_dir: Path, ffmpeg_bin: str | None, http_port: int) -> HomeAssistant:
    """Bring up HA's core and the voice integrations, as bootstrap does but without the
    default integrations (frontend, cloud, ...) a voice test does not need."""
    hass = HomeAssistant(str(config_dir))
    loader.async_setup(hass)
    hass.config.skip_pip = True  # only the requirements installed by scripts/setup-ha.sh
    hass.config_entries = ConfigEntries(hass, {})
    await bootstrap.async_load_base_functionality(hass)
    for domain in ("homeassistant", "persistent_notification"):
        if not await async_setup_component(hass, domain, {}):
            raise RuntimeError(f"HA core integration {domain} failed")
    await async_process_ha_core_config(
        hass,
        {
            "name": "Voice test",
            "latitude": 0,
            "longitude": 0,
            "elevation": 0,
            "unit_system": "metric",
            "time_zone": "UTC",
            "language": "en",
            "country": "US",
        },
    )
    config: dict[str, Any] = {
        "http": {"server_host": ["127.0.0.1"], "server_port": http_port},
        "ffmpeg": {"ffmpeg_bin": ffmpeg_bin} if ffmpeg_bin else {},
    }
    for domain in (
        "http",
        "ffmpeg",
        "stt",
        "tts",
        "conversation",
        "assist_pipeline",
        "assist_satellite",
        "wyoming",
    ):
        if not await async_setup_component(hass, domain, config):
            raise RuntimeError(f"integration {domain} failed to set up (see log)")
    await hass.async_start()
    await hass.async_block_till_done()
    return hass


async def _serve(driver: Driver) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        req_id, op, timeout = request.pop("id"), request.pop("op"), request.pop("timeout", 300)
        if op == "stop":
            _OUT.write(json.dumps({"id": req_id, "ok": True, "result": {}}) + "\n")
            return
        handler: Callable[..., Awaitable[dict[str, Any]]] | None = getattr(driver, f"op_{op}", None)
        try:
            if handler is None:
                raise ValueError(f"unknown op {op!r}")
            _LOGGER.info("op %s %s", op, request)
            result = await asyncio.wait_for(handler(**request), timeout)
            reply = {"id": req_id, "ok": True, "result": result}
        except Exception as err:  # report every failure to the test, keep serving
            _LOGGER.exception("op %s failed", op)
            reply = {"id": req_id, "ok": False, "error": f"{type(err).__name__}: {err}"}
            reply["traceback"] = traceback.format_exc()
        _OUT.write(json.dumps(reply, default=str) + "\n")


async def _main(config_dir: Path) -> None:
    ffmpeg_bin = None
    try:
        import imageio_ffmpeg  # a static ffmpeg from PyPI, so no apt ffmpeg is needed

        ffmpeg_bin = imageio_ffmpeg.get_ffmpeg_exe()
    except ImportError:
        pass
    started = time.monotonic()
    http_port = _free_port()
    hass = await _boot(config_dir, ffmpeg_bin, http_port)
    out_dir = config_dir / "driver-out"
    out_dir.mkdir(exist_ok=True)
    _OUT.write(
        json.dumps({"ready": True, "version": HA_VERSION, "boot_seconds": time.monotonic() - started}) + "\n"
    )
    try:
        await _serve(Driver(hass, out_dir, http_port))
    finally:
        await hass.async_stop()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("homeassistant.components.wyoming", "homeassistant.components.assist_pipeline", "ha_driver"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    config_dir = Path(sys.argv[1])
    config_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_main(config_dir))


if __name__ == "__main__":
    main()
