"""Print the pip requirements of the HA integrations the HA tests load, one per line.

Runs in a Home Assistant venv (scripts/setup-ha.sh). HA installs these at run time from
each integration's manifest; we install them up front, and only these, instead of the
hundreds that `default_config` would pull in.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

# What ha_driver.py sets up, plus what those depend on (found by walking the manifests).
# The voice integrations, then the home the home-control tests drive (op home_setup):
# lights and a switch as templates over input_booleans (input_numbers hold brightness),
# exposed to Assist through `mcp_server` (mcp, aiohttp_sse, anyio: pinned per version).
LOADED = (
    "wyoming",
    "assist_pipeline",
    "assist_satellite",
    "conversation",
    "stt",
    "tts",
    "ffmpeg",
    "http",
    "homeassistant",
    "intent",
    "input_boolean",
    "input_number",
    "template",
    "light",
    "switch",
    "mcp_server",
)


def requirements() -> list[str]:
    spec = importlib.util.find_spec("homeassistant.components")
    assert spec is not None and spec.submodule_search_locations, "homeassistant is not installed"
    components = Path(next(iter(spec.submodule_search_locations)))
    seen: set[str] = set()
    found: set[str] = set()
    todo = list(LOADED)
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = json.loads((components / domain / "manifest.json").read_text())
        found.update(manifest.get("requirements", []))
        # after_dependencies load only when configured, but their code may be imported.
        todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
    return sorted(found)


if __name__ == "__main__":
    sys.stdout.write("".join(f"{req}\n" for req in requirements()))
