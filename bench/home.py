"""Home control benchmark: from the transcript to Home Assistant's state change.

A real Home Assistant 2026.2.3 (the test venv, tests/ha/harness.py) with 50 exposed devices and
its MCP server; our conversation service connected to it with a long-lived token; a fake Ollama
(in this process) that calls HA's tools the way a small model does, after a prompt time and at
a CPU model's token rate. Measured on the wall clock both processes share:

- local path: `transcript` sent -> the light's `last_changed` in HA (the sentence templates
  match it; no model involved);
- model path: the same, for a phrasing no template covers, minus the model's own time (request
  received by the fake -> its tool call sent);
- the prompt the service sends with 50 exposed devices (system prompt, history, tool
  definitions), in tokens estimated at four characters a token.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Figure, ms, parser, report
from tests.ha.harness import Home as TestHome
from tests.ha.harness import HomeAssistant, ha_ready
from tests.support.fake_ollama import FakeOllama, ReplyValue, ToolCall, prompt_tokens
from tests.support.services import ServiceProcess
from wyoming_core.client import converse, describe

VERSION = "2026.2.3"
DEVICES = 50


def model(messages: list[dict[str, Any]]) -> ReplyValue:
    """Calls HassTurnOn/Off for "cosy"/"dark", then confirms from the tool's result."""
    last = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    text = str(messages[last].get("content", "")).lower()
    if not any(m.get("role") == "tool" for m in messages[last + 1 :]):
        tool = "HassTurnOn" if "cosy" in text else "HassTurnOff"
        return [ToolCall(tool, {"name": "Bedroom Lamp"})]
    return "Done."


async def changed_at(home: TestHome, entity_id: str, state: str) -> float:
    """The wall-clock time HA changed the entity to `state`."""
    await home.assert_state(entity_id, state)
    result = await home.ha.call("entity_state", entity_id=entity_id)
    return datetime.fromisoformat(result["last_changed"]).timestamp()


async def local_path(uri: str, home: TestHome, repeat: int) -> list[float]:
    entity = home.entity_id("Kitchen Lights")
    samples = []
    for n in range(repeat):
        state = "on" if n % 2 == 0 else "off"
        started = time.time()
        reply = await converse(uri, f"Turn {state} the kitchen lights.", f"local-{n}", timeout=30)
        if not reply.handled:
            raise RuntimeError(f"local command not handled: {reply.text}")
        samples.append(await changed_at(home, entity, state) - started)
    return samples


async def model_path(
    uri: str, home: TestHome, fake: FakeOllama, repeat: int
) -> tuple[list[float], list[float]]:
    entity = home.entity_id("Bedroom Lamp")
    totals, model_times = [], []
    for n in range(repeat):
        state = "on" if n % 2 == 0 else "off"
        before = len(fake.chats)
        started = time.time()
        phrase = "Make the bedroom cosy." if state == "on" else "Make the bedroom dark."
        reply = await converse(uri, phrase, f"model-{n}", timeout=60)
        if not reply.handled:
            raise RuntimeError(f"model command not handled: {reply.text}")
        totals.append(await changed_at(home, entity, state) - started)
        call = fake.chats[before]
        if call.finished_at is None or not call.tool_calls:
            raise RuntimeError("the fake model made no tool call")
        model_times.append(call.finished_at - call.received_at)
    return totals, model_times


async def main() -> None:
    cli = parser(__doc__ or "")
    cli.add_argument("--repeat", type=int, default=20, help="Commands per path")
    cli.add_argument("--first-token-delay", type=float, default=0.3, help="The fake model's prompt time")
    cli.add_argument("--tokens-per-second", type=float, default=20.0, help="The fake model's speed")
    args = cli.parse_args()
    if not ha_ready(VERSION):
        raise SystemExit(f"Home Assistant {VERSION} is not set up: run scripts/setup-ha.sh")
    ha = await HomeAssistant(VERSION).start()
    try:
        home = await TestHome.setup(ha, extra_lights=DEVICES - 4)
        async with FakeOllama(
            reply=model, first_token_delay=args.first_token_delay, tokens_per_second=args.tokens_per_second
        ) as fake:
            with tempfile.TemporaryDirectory(prefix="bench-home-") as tmp:
                token = Path(tmp) / "token"
                token.write_text(home.token)
                token.chmod(0o600)
                service = ServiceProcess(
                    "wyoming_llm",
                    *("--ollama-url", fake.url, "--data-dir", tmp, "--no-warm-up"),
                    *("--ha-url", home.url, "--ha-token-file", str(token)),
                ).start()
                try:
                    service.wait_listening()
                    deadline = time.monotonic() + 60
                    while not (await describe(service.uri)).handle[0].supports_home_control:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"never connected to HA:\n{service.log()}")
                        await asyncio.sleep(0.2)
                    await home.reset()
                    await local_path(service.uri, home, 2)  # warm: entity list, sentences loaded
                    local = await local_path(service.uri, home, args.repeat)
                    totals, model_times = await model_path(service.uri, home, fake, args.repeat)
                    first = next(c for c in fake.chats if c.tools)
                    tokens = prompt_tokens(first.body)
                    tool_count = len(first.tools)
                finally:
                    service.stop()
    finally:
        await ha.stop()
    overheads = [t - m for t, m in zip(totals, model_times, strict=True)]
    rate = f"fake model: first token {args.first_token_delay:g} s, {args.tokens_per_second:g} tokens/s"
    figures = [
        Figure("transcript -> HA state changed, local path (median)", ms(local), "ms", 150),
        Figure("transcript -> HA state changed, local path (max)", max(local) * 1000, "ms"),
        Figure("transcript -> HA state changed, model path (median)", ms(totals), "ms"),
        Figure("model's own time to its tool call (median)", ms(model_times), "ms"),
        Figure("model path minus the model's own time (median)", ms(overheads), "ms", 100),
        Figure(
            f"prompt sent to Ollama with {DEVICES} exposed devices",
            tokens,
            "tokens",
            2000,
            note=f"{tool_count} tools; 4 characters a token",
        ),
    ]
    report(figures, f"Home control (HA {VERSION}, {DEVICES} devices; {rate})", args.json)


if __name__ == "__main__":
    asyncio.run(main())
