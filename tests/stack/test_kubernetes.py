"""deploy/kubernetes: every manifest, and every kustomization rendered, validates against the
Kubernetes schemas (kubernetes-validate ships them: no cluster, no network), the pieces fit
together (probes on their own port, Services that select real pods, the image's commands,
requests within limits, locked-down pods), and the settings the pods get really start the
services, under a read-only root filesystem where this machine can make one."""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import ROOT, free_port

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (pip install -e '.[dev]')"
)

KUBE = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes the manifests are meant for, and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
OURS = ("stt", "tts", "llm")
WORKLOADS = ("Deployment", "StatefulSet")
# Rendered here besides the shipped kustomizations: the overlay README tells a user to write
# (in deploy/kubernetes/overlays/house), with its commented NodePort component added.
README_OVERLAY_HOME = KUBE / "overlays" / "house"
README_OVERLAY = "readme-overlay"

Doc = dict[str, Any]


# --- the repository's own facts: compose.yaml, the Dockerfile, the image's entry point ---------


@functools.cache
def _compose() -> Doc:
    return dict(yaml.safe_load((ROOT / "compose.yaml").read_text()))


def _port(name: str) -> int:
    """The service's port, as compose.yaml runs it (`--uri tcp://0.0.0.0:PORT`)."""
    command = _compose()["services"][name]["command"]
    return int(command[command.index("--uri") + 1].rsplit(":", 1)[1])


def _entry_words() -> set[str]:
    """The first arguments the image's entry point knows (`stt) exec python -m wyoming_stt`)."""
    script = (ROOT / "deploy" / "docker-entrypoint.sh").read_text()
    return set(re.findall(r"^\s*(\w+)\) exec ", script, re.M))


def _entry_module(word: str) -> str:
    script = (ROOT / "deploy" / "docker-entrypoint.sh").read_text()
    match = re.search(rf"^\s*{word}\) exec python -m (\S+) ", script, re.M)
    assert match, word
    return match.group(1)


@functools.cache
def _dockerfile_final_stage() -> list[str]:
    """The instructions of the Dockerfile's last stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[last_from:]


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _dockerfile_final_stage():
        if line.startswith("ENV "):
            for item in shlex.split(line.removeprefix("ENV ")):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _image_user() -> int:
    users = [line.split()[1] for line in _dockerfile_final_stage() if line.startswith("USER ")]
    return int(users[-1].split(":")[0])


# --- rendering and reading manifests ---------------------------------------------------------


def _kustomizations() -> list[Path]:
    found = []
    for path in sorted(KUBE.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind") != "Component":
            found.append(path.parent)
    return found


def _renderer() -> list[str]:
    """`kubectl kustomize` (kustomize is built into kubectl), or a standalone `kustomize build`."""
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    pytest.skip("neither kubectl nor kustomize is installed: the kustomizations cannot be rendered")


@functools.cache
def _render(directory: Path) -> tuple[Doc, ...]:
    result = subprocess.run(
        [*_renderer(), str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _readme_overlay() -> Doc:
    section = (ROOT / "README.md").read_text().split("### Running on Kubernetes", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    return dict(yaml.safe_load(block))


@pytest.fixture(scope="module")
def readme_overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("kustomization")
    spec = _readme_overlay()
    spec["components"] = ["../../components/nodeport"]
    # Its paths are meant from overlays/house; kustomize takes only relative ones.
    for key in ("resources", "components"):
        spec[key] = [
            os.path.relpath((README_OVERLAY_HOME / entry).resolve(), directory) for entry in spec[key]
        ]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return directory


RENDERED = [*(str(p.relative_to(KUBE)) for p in _kustomizations()), README_OVERLAY]


@pytest.fixture(params=RENDERED)
def rendered(request: pytest.FixtureRequest, readme_overlay: Path) -> tuple[Doc, ...]:
    name = request.param
    return _render(readme_overlay if name == README_OVERLAY else KUBE / name)


def _one(docs: tuple[Doc, ...], kind: str | tuple[str, ...], name: str) -> Doc:
    kinds = (kind,) if isinstance(kind, str) else kind
    found = [d for d in docs if d["kind"] in kinds and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kinds} {name}: {len(found)} found"
    return found[0]


def _workloads(docs: tuple[Doc, ...]) -> list[Doc]:
    return [d for d in docs if d["kind"] in WORKLOADS]


def _pod(workload: Doc) -> Doc:
    return dict(workload["spec"]["template"]["spec"])


def _container(workload: Doc) -> Doc:
    containers = _pod(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    return dict(containers[0])


def _settings(docs: tuple[Doc, ...]) -> Doc:
    """The generated ConfigMap (its name ends in a hash of its content)."""
    found = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("voice-settings")
    ]
    assert len(found) == 1
    return found[0]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _quantity(value: str | int | float) -> float:
    """A Kubernetes quantity (500m, 2, 384Mi, 1Gi) as a plain number."""
    text = str(value)
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * suffixes[suffix]
    return float(text)


def _validate(doc: Doc, where: str) -> None:
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{where}: {doc['kind']} {doc['metadata'].get('name')} (Kubernetes {version}): {err}")


# --- the schemas --------------------------------------------------------------------------------


def _resource_files() -> list[Path]:
    files = []
    for directory in _kustomizations():
        for entry in yaml.safe_load((directory / "kustomization.yaml").read_text()).get("resources", []):
            if (directory / entry).is_file():
                files.append(directory / entry)
    return files


@pytest.mark.parametrize("path", _resource_files(), ids=lambda p: str(p.relative_to(KUBE)))
def test_each_manifest_file_validates(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs
    for doc in docs:
        _validate(doc, str(path.relative_to(ROOT)))


def test_every_file_is_used() -> None:
    """Every file under deploy/kubernetes is a kustomization, or named by one."""
    named: set[Path] = set()
    for path in KUBE.rglob("kustomization.yaml"):
        spec = yaml.safe_load(path.read_text())
        named.add(path)
        entries = [*spec.get("resources", []), *(p["path"] for p in spec.get("patches", []) if "path" in p)]
        entries += [env for gen in spec.get("configMapGenerator", []) for env in gen.get("envs", [])]
        named.update((path.parent / entry).resolve() for entry in entries)
    files = {p.resolve() for p in KUBE.rglob("*") if p.is_file()}
    assert files - named == set()


def test_rendered_kustomizations_validate(rendered: tuple[Doc, ...]) -> None:
    assert {d["kind"] for d in rendered} >= {"Namespace", "ConfigMap", "Service", "StatefulSet", "Deployment"}
    for doc in rendered:
        _validate(doc, "rendered")
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "wyoming-voice"


def test_the_validator_catches_a_mistake() -> None:
    """The schemas are strict and really consulted: a misspelt field is refused, offline."""
    stt = dict(_one(_render(KUBE / "base"), "StatefulSet", "stt"))
    spelled = yaml.safe_load(yaml.safe_dump(stt).replace("readinessProbe", "readynessProbe"))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(spelled, VERSIONS[-1], strict=True)


# --- the pieces fit together --------------------------------------------------------------------


def test_workloads_run_the_image_with_its_commands(rendered: tuple[Doc, ...]) -> None:
    # One image for all three, the one the Dockerfile builds (an overlay may move it to a registry).
    images = {_container(w)["image"] for w in _workloads(rendered) if w["metadata"]["name"] in OURS}
    assert len(images) == 1
    assert next(iter(images)).rsplit("/", 1)[-1].split(":")[0] == "wyoming-local-voice"
    for name in OURS:
        workload = _one(rendered, WORKLOADS, name)
        container = _container(workload)
        args = container["args"]
        port = _port(name)
        # The entry point's word for the service, as compose.yaml runs it; no zeroconf.
        assert args[0] == name and name in _entry_words()
        assert args[:3] == [name, "--uri", f"tcp://0.0.0.0:{port}"] and "--zeroconf" not in args
        assert [p["containerPort"] for p in container["ports"]] == [port]
        # Probes: compose.yaml's healthcheck (a describe) on the container's own port.
        probe = _compose()["services"][name]["healthcheck"]["test"][1:]
        assert probe[-1] == f"tcp://127.0.0.1:{port}"
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[kind]["exec"]["command"] == probe, (name, kind)
            # The probe starts a Python process: a second for it and one for the answer.
            assert container[kind]["timeoutSeconds"] >= 2
        assert container["envFrom"] == [{"configMapRef": {"name": _settings(rendered)["metadata"]["name"]}}]


def test_services_select_pods_that_exist(rendered: tuple[Doc, ...]) -> None:
    pods = [(w["spec"]["template"]["metadata"]["labels"], _container(w)) for w in _workloads(rendered)]
    for service in (d for d in rendered if d["kind"] == "Service"):
        selected = [c for labels, c in pods if _matches(service["spec"]["selector"], labels)]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            for container in selected:
                named = {p["name"]: p["containerPort"] for p in container["ports"]}
                assert port["targetPort"] in named or port["targetPort"] in named.values()
                assert named.get(port["targetPort"], port["targetPort"]) == port["port"]
    for name in OURS:
        # Satellites outside the cluster connect to these addresses (no zeroconf across it).
        service = _one(rendered, "Service", name)
        assert service["spec"]["type"] in ("LoadBalancer", "NodePort")
        assert service["spec"]["externalTrafficPolicy"] == "Local"
        if service["spec"]["type"] == "NodePort":
            assert all(30000 <= p["nodePort"] <= 32767 for p in service["spec"]["ports"])
    assert _one(rendered, "Service", "ollama")["spec"]["type"] == "ClusterIP"
    # The conversation service finds Ollama by its Service's name and port.
    ollama = _one(rendered, "Service", "ollama")
    url = _settings(rendered)["data"]["LLM_OLLAMA_URL"]
    assert url == f"http://{ollama['metadata']['name']}:{ollama['spec']['ports'][0]['port']}"
    for workload in _workloads(rendered):
        for service_name in filter(None, [workload["spec"].get("serviceName")]):
            assert _one(rendered, "Service", service_name)["spec"]["clusterIP"] == "None"


def test_requests_and_limits(rendered: tuple[Doc, ...]) -> None:
    for workload in _workloads(rendered):
        resources = _container(workload)["resources"]
        for resource in ("cpu", "memory"):
            request = _quantity(resources["requests"][resource])
            limit = _quantity(resources["limits"][resource])
            assert 0 < request <= limit, (workload["metadata"]["name"], resource, request, limit)
        # What was measured (README): a limit below it would kill the service under load.
        minimum = {"stt": 768 * 2**20, "tts": 512 * 2**20, "llm": 256 * 2**20}
        name = workload["metadata"]["name"]
        if name in minimum:
            assert _quantity(resources["limits"]["memory"]) >= minimum[name]


def test_pods_are_locked_down(rendered: tuple[Doc, ...]) -> None:
    for workload in _workloads(rendered):
        pod, container = _pod(workload), _container(workload)
        name = workload["metadata"]["name"]
        # Service links would put STT_PORT, LLM_SERVICE_HOST... beside the services' settings.
        assert pod["enableServiceLinks"] is False and pod["automountServiceAccountToken"] is False
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        seccomp = security.get("seccompProfile") or pod["securityContext"]["seccompProfile"]
        assert seccomp == {"type": "RuntimeDefault"}
        if name not in OURS:
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == _image_user()
        assert security["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]]


def test_volumes_hold_models_and_history(rendered: tuple[Doc, ...]) -> None:
    claims = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "PersistentVolumeClaim"}
    image_env = _image_env()
    for workload in _workloads(rendered):
        pod, container = _pod(workload), _container(workload)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        templates = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        for mount_name in mounts.values():
            assert mount_name in volumes or mount_name in templates
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        name = workload["metadata"]["name"]
        if name in OURS:
            # The service's data dir (the image's STT_DATA_DIR...) is a persistent volume.
            data_dir = image_env[f"{name.upper()}_DATA_DIR"]
            volume = mounts[data_dir]
            assert volume in templates or "persistentVolumeClaim" in volumes[volume]
    # Models: one volume per STT/TTS replica; Ollama's models and the history on a claim each.
    for name in ("stt", "tts"):
        assert _one(rendered, "StatefulSet", name)["spec"]["volumeClaimTemplates"]
    ollama = _container(_one(rendered, "Deployment", "ollama"))
    assert any(m["mountPath"] == "/root/.ollama" for m in ollama["volumeMounts"])
    # The history is one SQLite file: never two writers.
    llm = _one(rendered, "Deployment", "llm")
    assert llm["spec"]["replicas"] == 1 and llm["spec"]["strategy"] == {"type": "Recreate"}
    assert _one(rendered, "Deployment", "ollama")["spec"]["strategy"] == {"type": "Recreate"}
    # Home Assistant's token: a Secret the pod starts without (then the assistant only talks).
    (home,) = [v for v in _pod(llm)["volumes"] if "secret" in v]
    assert home["secret"]["secretName"] == "home-assistant" and home["secret"]["optional"] is True
    mounted = {m["name"]: m["mountPath"] for m in _container(llm)["volumeMounts"]}
    token_file = _settings(rendered)["data"]["LLM_HA_TOKEN_FILE"]
    assert token_file in ("", f"{mounted[home['name']]}/token")


def test_scaling_and_disruption_budgets(rendered: tuple[Doc, ...]) -> None:
    scalers = {
        d["spec"]["scaleTargetRef"]["name"]: d for d in rendered if d["kind"] == "HorizontalPodAutoscaler"
    }
    assert set(scalers) == {"stt", "tts"}
    minimum: dict[str, int] = {}
    for name, hpa in scalers.items():
        target = _one(rendered, hpa["spec"]["scaleTargetRef"]["kind"], name)
        assert "replicas" not in target["spec"], "the autoscaler owns the replica count"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
        # Utilisation is measured against the request: there must be one.
        assert _quantity(_container(target)["resources"]["requests"]["cpu"]) > 0
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        minimum[name] = hpa["spec"]["minReplicas"]
    minimum["llm"] = _one(rendered, "Deployment", "llm")["spec"]["replicas"]
    budgets = [d for d in rendered if d["kind"] == "PodDisruptionBudget"]
    for name in OURS:
        labels = _one(rendered, WORKLOADS, name)["spec"]["template"]["metadata"]["labels"]
        (budget,) = [b for b in budgets if _matches(b["spec"]["selector"]["matchLabels"], labels)]
        # A budget that can never be met would block every node drain.
        assert budget["spec"].get("minAvailable", 0) < minimum[name], name
        assert "minAvailable" in budget["spec"] or budget["spec"]["maxUnavailable"] >= 1


def test_overlays_gpu_and_small() -> None:
    ollama = _pod(_one(_render(KUBE / "overlays" / "gpu"), "Deployment", "ollama"))
    assert ollama["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert ollama["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in ollama["tolerations"])
    assert "nodeSelector" not in _pod(_one(_render(KUBE / "base"), "Deployment", "ollama"))
    # The small overlay fits a 4-core, 8 GB server at its minimum replicas, with room left for
    # the system.
    small = _render(KUBE / "overlays" / "small")
    cpu = memory = 0.0
    for workload in _workloads(small):
        name = workload["metadata"]["name"]
        hpa = [d for d in small if d["kind"] == "HorizontalPodAutoscaler" and d["metadata"]["name"] == name]
        replicas = hpa[0]["spec"]["minReplicas"] if hpa else workload["spec"]["replicas"]
        requests = _container(workload)["resources"]["requests"]
        cpu += replicas * _quantity(requests["cpu"])
        memory += replicas * _quantity(requests["memory"])
    assert cpu <= 3 and memory <= 6 * 2**30, (cpu, memory)


def test_readme_tells_how() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "### Running on Kubernetes" in readme
    section = readme.split("### Running on Kubernetes", 1)[1].split("\n## ", 1)[0]
    for shipped in ("overlays/gpu", "overlays/small", "components/nodeport"):
        assert f"deploy/kubernetes/{shipped}" in section, shipped
    assert "kubectl apply -k deploy/kubernetes/overlays/" in section
    assert "create secret generic home-assistant" in section and "bench/capacity.py" in section


# --- the pods' settings start the real services -------------------------------------------------


@functools.cache
def _readonly_root() -> bool:
    """Whether a mount namespace with a read-only / (and a fresh /tmp) can be made here."""
    if (
        shutil.which("unshare") is None
        # The fresh /tmp would hide a checkout that lives under /tmp (the image's files with it).
        or Path(__file__).resolve().is_relative_to("/tmp")
        or not os.path.ismount("/dev/shm")
        or not os.access("/dev/shm", os.W_OK)
    ):
        return False
    probe = subprocess.run([*_readonly_prefix(), "true"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def _readonly_prefix() -> list[str]:
    # As readOnlyRootFilesystem with an emptyDir on /tmp: only the volumes (under /dev/shm here,
    # a mount of its own) are writable.
    script = 'mount -o remount,bind,ro / && mount -t tmpfs -o size=64m tmpfs /tmp && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


@pytest.fixture
def volumes_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="k8s-volumes-", dir="/dev/shm" if _readonly_root() else None))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    ("name", "source"), [("stt", "base"), ("tts", "base"), ("llm", "base"), ("llm", "readme-overlay")]
)
def test_the_pods_settings_start_the_service(
    name: str, source: str, volumes_dir: Path, readme_overlay: Path
) -> None:
    """The container as the manifests describe it, run here: the image's environment, the
    ConfigMap, the container's own variables, its arguments through the image's entry point, its
    volumes (under a read-only root when possible); then its probe must pass."""
    if not _readonly_root():
        pytest.skip(
            "needs a mount namespace with a read-only root (root, unshare, /dev/shm) "
            "and a checkout outside /tmp"
        )
    docs = _render(readme_overlay if source == "readme-overlay" else KUBE / "base")
    workload = _one(docs, WORKLOADS, name)
    container = _container(workload)
    # Each volume mount becomes a directory of its own (the secret holds the token).
    mounts: dict[str, Path] = {}
    for mount in container["volumeMounts"]:
        mounts[mount["mountPath"]] = volumes_dir / mount["name"]
        mounts[mount["mountPath"]].mkdir()
    if "/run/secrets/home-assistant" in mounts:
        (mounts["/run/secrets/home-assistant"] / "token").write_text("a-long-lived-token\n")

    port = free_port()
    inside = f"tcp://0.0.0.0:{_port(name)}"
    prefix = _readonly_prefix() if _readonly_root() else []
    if prefix:
        del mounts["/tmp"]  # the namespace's own fresh /tmp

    def here(value: str) -> str:
        for path, directory in mounts.items():
            if value == path or value.startswith(f"{path}/"):
                value = str(directory) + value.removeprefix(path)
        return value.replace(inside, f"tcp://127.0.0.1:{port}").replace(
            f"tcp://127.0.0.1:{_port(name)}", f"tcp://127.0.0.1:{port}"
        )

    env = {**_image_env(), **_settings(docs)["data"], **{e["name"]: e["value"] for e in container["env"]}}
    env = {key: here(value) for key, value in env.items()}
    # The venv in place of the image's /opt/venv; nothing answers for Ollama or Home Assistant,
    # which the service must live with.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env["LLM_OLLAMA_URL"] = f"http://127.0.0.1:{free_port()}"
    # README's overlay connects Home Assistant: the token file is in the mounted Secret.
    assert bool(env.get("LLM_HA_URL")) == (source == "readme-overlay")
    if env.get("LLM_HA_URL"):
        env["LLM_HA_URL"] = f"http://127.0.0.1:{free_port()}"
        assert Path(env["LLM_HA_TOKEN_FILE"]).is_file()
    assert _entry_module(name) == f"wyoming_{name}"
    entry = [*prefix, "sh", str(ROOT / "deploy" / "docker-entrypoint.sh")]
    args = [here(arg) for arg in container["args"]]
    log = volumes_dir / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*entry, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        probe = [*prefix, *(here(arg) for arg in container["readinessProbe"]["exec"]["command"])]
        deadline = time.monotonic() + 240
        while True:
            health = subprocess.run(probe, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
            if health.returncode == 0:
                break
            assert proc.poll() is None, f"the service exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the probe never passed:\n{log.read_text()}"
            time.sleep(1)
        if name == "stt":
            # The bundled model is assembled into the data volume.
            assert any(mounts[_image_env()["STT_DATA_DIR"]].iterdir())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    output = log.read_text()
    assert "is shutting down" in output, output
    # Nothing tried to write outside the volumes (onnxruntime says "Failed to persist" then).
    assert "Read-only file system" not in output and "Failed to persist" not in output, output
