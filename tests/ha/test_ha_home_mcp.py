"""The test home in a real Home Assistant, driven through its MCP server with the official
`mcp` client: what our conversation service relies on (tools, their results, live context,
token checks), proven before our own client is put on top of it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.ha.conftest import _missing
from tests.ha.harness import HA_VERSIONS, Home, HomeAssistant, ha_ready

pytestmark = pytest.mark.ha

HOME = {
    # name: (domain, area)
    "Kitchen Lights": ("light", "Kitchen"),
    "Bedroom Lamp": ("light", "Bedroom"),
    "Living Room Lights": ("light", "Living Room"),
    "Coffee Maker": ("switch", "Kitchen"),
}


async def call_tool(home: Home, name: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    """(is_error, text) of one tool call in a fresh MCP session."""
    async with home.mcp_session() as session:
        result = await session.call_tool(name, arguments)
    assert len(result.content) == 1 and result.content[0].type == "text", result
    return bool(result.isError), str(result.content[0].text)


def live_context(text: str) -> dict[str, dict[str, str]]:
    """GetLiveContext's result: a JSON object whose `result` is a title line, then a YAML
    list of devices (names, domain, state, areas, attributes), as a dict by name."""
    reply = json.loads(text)
    assert reply["success"] is True, reply
    title, _, listing = reply["result"].partition("\n")
    assert title == "Live Context: An overview of the areas and the devices in this smart home:", reply
    devices: dict[str, dict[str, str]] = {}
    for block in ("\n" + listing).split("\n- ")[1:]:
        # "names: X", then "  key: value" lines; "  attributes:" nests its own, deeper.
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.strip().partition(": ")
            if not line.startswith("    ") and value:
                fields[key] = value.strip("'")
        devices[fields["names"]] = fields
    return devices


async def test_home_is_set_up_and_exposed(ha_home: Home) -> None:
    assert {e.name: (e.domain, e.area) for e in ha_home.entities} == HOME
    assert ha_home.entity_id("Kitchen Lights") == "light.kitchen_lights"
    assert ha_home.entity("Kitchen Lights").dimmable
    assert ha_home.token and ha_home.url.startswith("http://127.0.0.1:")
    await ha_home.reset()
    for entity in ha_home.entities:
        assert (await ha_home.state(entity.entity_id)).state == "off"
    assert (await ha_home.state("light.no_such_light")).state is None
    # A state that never comes: the wait ends at its deadline and says so.
    missed = await ha_home.wait_state(ha_home.entity_id("Bedroom Lamp"), "on", timeout=0.5)
    assert not missed.reached and missed.state == "off", missed


async def test_mcp_lists_the_assist_tools(ha_home: Home) -> None:
    async with ha_home.mcp_session() as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert {"HassTurnOn", "HassTurnOff", "HassLightSet", "GetLiveContext"} <= set(tools), list(tools)
    for name in ("HassTurnOn", "HassTurnOff", "HassLightSet"):
        assert {"name", "area", "domain"} <= set(tools[name].inputSchema["properties"]), tools[name]
    brightness = tools["HassLightSet"].inputSchema["properties"]["brightness"]
    assert (brightness["type"], brightness["minimum"], brightness["maximum"]) == ("integer", 0, 100)
    assert tools["GetLiveContext"].inputSchema["properties"] == {}


async def test_turn_on_by_name_changes_the_state_in_ha(ha_home: Home) -> None:
    await ha_home.reset()
    is_error, text = await call_tool(ha_home, "HassTurnOn", {"name": "Kitchen Lights"})
    assert not is_error, text
    reply = json.loads(text)
    assert reply["response_type"] == "action_done", reply
    assert reply["data"]["success"] == [
        {"name": "Kitchen Lights", "type": "entity", "id": "light.kitchen_lights"}
    ]
    assert reply["data"]["failed"] == [], reply
    await ha_home.assert_state("light.kitchen_lights", "on")

    # A switch, and off again, by name (HA's matching ignores case).
    await ha_home.set_on("Coffee Maker", True)
    is_error, text = await call_tool(ha_home, "HassTurnOff", {"name": "coffee maker"})
    assert not is_error, text
    await ha_home.assert_state("switch.coffee_maker", "off")
    assert (await ha_home.state("light.kitchen_lights")).state == "on"


async def test_light_set_brightness_and_area_off(ha_home: Home) -> None:
    await ha_home.reset()
    is_error, text = await call_tool(ha_home, "HassLightSet", {"name": "Kitchen Lights", "brightness": 50})
    assert not is_error, text
    # 50 % of 255, as HA rounds it.
    await ha_home.assert_state("light.kitchen_lights", "on", attributes={"brightness": 128})

    await ha_home.set_on("Bedroom Lamp", True)
    is_error, text = await call_tool(ha_home, "HassTurnOff", {"area": "Bedroom"})
    assert not is_error, text
    assert {"name": "Bedroom Lamp", "type": "entity", "id": "light.bedroom_lamp"} in json.loads(text)["data"][
        "success"
    ]
    await ha_home.assert_state("light.bedroom_lamp", "off")


async def test_unknown_name_is_an_error_and_changes_nothing(ha_home: Home) -> None:
    await ha_home.reset()
    is_error, text = await call_tool(ha_home, "HassTurnOn", {"name": "Garage Door"})
    assert is_error, text
    # Not JSON: HA's exception as text, naming the reason (NAME) and the name asked for.
    assert text.startswith("Error calling tool: <MatchFailedError"), text
    assert "MatchFailedReason.NAME" in text and "name='Garage Door'" in text, text

    is_error, text = await call_tool(ha_home, "NoSuchTool", {})
    assert is_error and text == 'Error calling tool: Tool "NoSuchTool" not found', text
    for entity in ha_home.entities:
        assert (await ha_home.state(entity.entity_id)).state == "off", entity


async def test_live_context_lists_names_areas_and_states(ha_home: Home) -> None:
    await ha_home.reset()
    await ha_home.set_on("Bedroom Lamp", True)
    is_error, text = await call_tool(ha_home, "GetLiveContext", {})
    assert not is_error, text
    devices = live_context(text)
    # Only the exposed devices: not the helpers behind them.
    assert set(devices) == set(HOME), devices
    for name, (domain, area) in HOME.items():
        expected = "on" if name == "Bedroom Lamp" else "off"
        assert devices[name] == {"names": name, "domain": domain, "state": expected, "areas": area}, devices[
            name
        ]


async def test_wrong_or_missing_token_is_refused(ha_home: Home) -> None:
    # The official client raises the HTTP error inside an ExceptionGroup (its task group).
    with pytest.raises(BaseException) as refused:
        async with ha_home.mcp_session(token="not-a-token"):
            pass
    errors = refused.value.exceptions if isinstance(refused.value, BaseExceptionGroup) else (refused.value,)
    assert any(isinstance(e, httpx.HTTPStatusError) and e.response.status_code == 401 for e in errors), errors

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(ha_home.mcp_sse_url, headers={"Authorization": "Bearer not-a-token"})
        assert response.status_code == 401, response.text
        response = await client.get(ha_home.mcp_sse_url)
        assert response.status_code == 401, response.text
        if ha_home.mcp_url:
            response = await client.post(
                ha_home.mcp_url,
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Accept": "application/json, text/event-stream"},
            )
            assert response.status_code == 401, response.text


async def test_streamable_http_where_ha_has_it(ha_home: Home) -> None:
    """2026.2.3 serves MCP over streamable HTTP at /api/mcp; 2025.4.4's mcp_server only
    over SSE (/mcp_server/sse), so a client must fall back to SSE there."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{ha_home.url}/api/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={
                "Accept": "application/json, text/event-stream",
                "Authorization": f"Bearer {ha_home.token}",
            },
        )
    if ha_home.version == "2025.4.4":
        assert ha_home.mcp_url is None
        assert response.status_code == 404, response.text
    else:
        assert ha_home.mcp_url == f"{ha_home.url}/api/mcp"
        assert response.status_code == 200 and response.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}


async def test_a_bigger_home_for_prompt_size() -> None:
    """extra_lights: 46 more exposed lights, 50 devices in all (bench/home.py's home), in
    an HA of its own (the session's home stays small); the newest version is enough."""
    version = HA_VERSIONS[-1]
    if not ha_ready(version):
        _missing(version)
    own = await HomeAssistant(version).start()
    try:
        home = await Home.setup(own, extra_lights=46)
        assert len(home.entities) == 50 and len({e.name for e in home.entities}) == 50
        assert home.entity("Hallway Ceiling Light").area == "Hallway"
        is_error, text = await call_tool(home, "GetLiveContext", {})
        assert not is_error and len(live_context(text)) == 50, text
        is_error, text = await call_tool(home, "HassTurnOn", {"name": "Office Lamp"})
        assert not is_error, text
        await home.assert_state(home.entity_id("Office Lamp"), "on")
    finally:
        await own.stop()
