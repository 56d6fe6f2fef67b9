"""compose.yaml, the Dockerfile and the systemd units: validated, linted, and the units' settings
actually start the services (no Docker engine or systemd needed)."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.discovery.conftest import _carries
from tests.discovery.multicast import can_make_netns, run_in_netns
from tests.support.services import ROOT, free_port

UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
ENTRY_WORDS = {"stt", "tts", "llm", "satellite", "discovery", "health"}
PORTS = {"stt": 10300, "tts": 10200, "llm": 10400}


def _run(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, **kwargs)


def _tool(name: str) -> str:
    # Installed with the dev extra into the venv next to this Python.
    path = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def test_compose_matches_the_compose_spec() -> None:
    result = _run(_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_healthchecks_and_networking() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"stt", "tts", "llm", "ollama", "satellite"}
    assert services["ollama"]["image"].startswith("ollama/ollama")
    for name, port in PORTS.items():
        service = services[name]
        command = service["command"]
        assert command[0] == name and command[0] in ENTRY_WORDS
        assert f"tcp://0.0.0.0:{port}" in command and "--zeroconf" in command
        # zeroconf needs the host's network; the healthcheck is a describe on the same port.
        assert service["network_mode"] == "host"
        test = service["healthcheck"]["test"]
        assert (
            test[:4] == ["CMD", "python", "-m", "discovery.health"] and test[-1] == f"tcp://127.0.0.1:{port}"
        )
        assert any(v.endswith(f":/data/{name}") for v in service["volumes"])
    satellite = services["satellite"]
    assert satellite["profiles"] == ["satellite"]
    assert "/dev/snd:/dev/snd" in satellite["devices"] and satellite["command"][0] == "satellite"
    assert "http://127.0.0.1:11434" in services["llm"]["command"]


def test_dockerfile_lints_clean_and_runs_as_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    # Every package the image installs from is copied in.
    for package in ("wyoming_core", "wyoming_stt", "wyoming_tts", "wyoming_llm", "satellite", "discovery"):
        assert f"COPY {package} " in dockerfile
    result = _run(_tool("hadolint"), "--no-color", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_entrypoint_picks_the_service() -> None:
    entry = ROOT / "deploy" / "docker-entrypoint.sh"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    assert "usage:" in _run("sh", str(entry), env=env).stdout
    health = _run("sh", str(entry), "health", "--timeout", "0.5", f"tcp://127.0.0.1:{free_port()}", env=env)
    assert health.returncode == 1 and "unhealthy" in health.stderr


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def _environment(path: Path) -> dict[str, str]:
    """Every Environment= assignment of a unit (configparser keeps only the last line of a key)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("Environment="):
            for item in shlex.split(line.removeprefix("Environment=")):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def test_systemd_units_verify() -> None:
    assert {u.name for u in UNITS} == {f"wyoming-{n}.service" for n in ("stt", "tts", "llm", "satellite")}
    for unit in UNITS:
        parser = _unit(unit)
        assert parser["Service"]["ExecStart"].startswith("/opt/wyoming-local-voice/.venv/bin/python -m ")
        assert parser["Service"]["User"] == "wyoming"
        assert parser["Install"]["WantedBy"] == "multi-user.target"
    satellite = _unit(ROOT / "deploy/systemd/wyoming-satellite.service")
    assert "audio" in satellite["Service"]["SupplementaryGroups"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = _run(analyze, "verify", *map(str, UNITS))
    # The venv is not installed at /opt here; anything else is a real mistake.
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "is not executable" not in line
    ]
    assert not problems, problems


# `systemd-analyze security` exposure, 0 (locked down) to 10 (exposed): a network service needs
# no capability, device or namespace; the satellite needs the sound card too.
MAX_EXPOSURE = {"stt": 3.0, "tts": 3.0, "llm": 3.0, "satellite": 4.5}


@pytest.mark.parametrize("name", sorted(MAX_EXPOSURE))
def test_systemd_units_are_locked_down(name: str) -> None:
    unit = ROOT / "deploy" / "systemd" / f"wyoming-{name}.service"
    service = _unit(unit)["Service"]
    # Not part of the score, but what keeps the history private.
    assert service["UMask"] == "0077" and service["StateDirectoryMode"] == "0700"
    assert service["CapabilityBoundingSet"] == "" and service["NoNewPrivileges"] == "true"
    assert service.get("MemoryMax") and service.get("TasksMax")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    result = _run(analyze, "security", "--offline=yes", "--no-pager", str(unit))
    output = result.stdout + result.stderr
    if "--offline" in output and "unrecognized" in output:
        pytest.skip("this systemd-analyze has no --offline (systemd >= 252)")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert found, output[-3000:]
    exposure = float(found.group(1))
    assert exposure <= MAX_EXPOSURE[name], f"exposure {exposure} > {MAX_EXPOSURE[name]}:\n{output}"


def test_compose_services_run_with_least_privilege() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in ("stt", "tts", "llm", "satellite"):
        service = services[name]
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["read_only"] is True and any(t.startswith("/tmp") for t in service["tmpfs"]), name
        assert service["mem_limit"] and service["pids_limit"] > 0, name
    ollama = services["ollama"]
    assert ollama["cap_drop"] == ["ALL"] and "no-new-privileges:true" in ollama["security_opt"]
    assert ollama["pids_limit"] > 0


def _locked() -> dict[str, tuple[str, list[str]]]:
    """deploy/requirements.lock: name -> (version, hashes)."""
    text = (ROOT / "deploy" / "requirements.lock").read_text().replace("\\\n", " ")
    locked: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = re.match(r"([A-Za-z0-9_.-]+)==(\S+)\s+(.*)$", line)
        assert found, f"not pinned with ==: {line}"
        name = re.sub(r"[-_.]+", "-", found.group(1)).lower()
        locked[name] = (found.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", found.group(3)))
    return locked


def test_the_image_is_built_from_pinned_inputs() -> None:
    """The base image by digest (the tag kept for readers), every Python dependency by version
    and hash (installed with --require-hashes), and the project itself without dependencies."""
    from packaging.requirements import Requirement

    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert bases and all(
        re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base) for base in bases
    ), bases
    assert "pip install --require-hashes --no-deps -r deploy/requirements.lock" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    assert "COPY deploy/requirements.lock" in dockerfile
    locked = _locked()
    assert all(hashes for _version, hashes in locked.values()), "a pin without a hash"
    # Everything the image's extras and the build backend ask for is locked, at a version they accept.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    wanted = [
        *project["project"]["dependencies"],
        *(spec for extra in ("stt", "tts", "llm", "satellite") for spec in extras[extra]),
        *project["build-system"]["requires"],
    ]
    for spec in map(Requirement, wanted):
        name = re.sub(r"[-_.]+", "-", spec.name).lower()
        assert name in locked, f"{spec} is not in deploy/requirements.lock: run scripts/lock-image.sh"
        version = locked[name][0]
        assert spec.specifier.contains(version, prereleases=True), f"{spec} does not accept {version}"


@pytest.mark.parametrize("name", sorted(PORTS))
def test_the_units_settings_start_the_service(name: str, tmp_path: Path) -> None:
    if not _carries():
        # The zeroconf advert is browsed on loopback: where multicast does not carry there,
        # run this test again in a network namespace of its own (as the discovery tests do).
        if not can_make_netns():
            pytest.fail("no multicast on loopback, and no network namespace can be made (needs root and ip)")
        result = run_in_netns(
            [f"tests/stack/test_deploy.py::test_the_units_settings_start_the_service[{name}]"]
        )
        assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
        return
    # What systemd would run, with the state directory and port moved somewhere harmless.
    unit = ROOT / "deploy" / "systemd" / f"wyoming-{name}.service"
    port = free_port()
    env = {
        key: value.replace("/var/lib/wyoming", str(tmp_path)).replace(
            f"tcp://0.0.0.0:{PORTS[name]}", f"tcp://127.0.0.1:{port}"
        )
        for key, value in _environment(unit).items()
    }
    env[f"{name.upper()}_ZEROCONF"] = ""
    if name == "llm":
        env["LLM_OLLAMA_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing there: fine
    module = _unit(unit)["Service"]["ExecStart"].split(" -m ", 1)[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(120):
            health = _run(
                sys.executable, "-m", "discovery.health", "--timeout", "1", f"tcp://127.0.0.1:{port}"
            )
            if health.returncode == 0 or proc.poll() is not None:
                break
            time.sleep(0.5)
        assert health.returncode == 0, health.stderr
        assert "healthy" in health.stdout
        # ..._ZEROCONF= (empty) advertises it under the default name, which ends in the port.
        # Browsed until it shows up (the advert may follow the health answer on a busy machine).
        browse = ("--interface", "127.0.0.1", "--timeout", "4", "--json")
        for _ in range(10):
            listed = _run(sys.executable, "-m", "discovery", *browse)
            names = [entry["name"] for entry in json.loads(listed.stdout or "[]")]
            if any(n.endswith(f"-{port}") for n in names):
                break
        assert any(n.endswith(f"-{port}") for n in names), listed.stdout + listed.stderr
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "is shutting down" in output, output
