"""Consistency of the deployment files with the code: Dockerfile, compose, Kubernetes.

Every check runs without Docker or a cluster. The Kubernetes manifests are rendered twice
when ``kubectl`` is installed (its built-in kustomize and the small renderer below) and
once otherwise; only the optional JSON-schema validation is skipped when
``kubernetes-validate`` is not installed.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from streams.settings import Settings, env_documentation

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
PYPROJECT = ROOT / "pyproject.toml"
DEPLOY_README = ROOT / "deploy" / "README.md"
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
OBSERVABILITY = ROOT / "deploy" / "observability"

DEFAULTS = Settings()
KNOWN_VARIABLES = {name for name, _ in env_documentation()}
TOKENBOARD_VARIABLE = re.compile(r"\bTOKENBOARD_[A-Z0-9_]+")

# component -> port of its HTTP server (healthz, readyz, metrics)
COMPONENT_PORTS = {
    "worker": DEFAULTS.worker_web_port,
    "ingest": DEFAULTS.ingest_port,
    "api": DEFAULTS.api_port,
}
TOKENBOARD_SERVICES = {"topics", "worker", "ingest", "api", "simulator"}
MONITORING_SERVICES = {"prometheus", "grafana"}
IMAGE_REPOSITORY = "tokenboard"
RUNTIME_UID = 10001
NAMESPACE = "tokenboard"
STRIMZI_API = "kafka.strimzi.io/v1beta2"
STRIMZI_CLUSTER = "tokenboard-kafka"
DAY_MS = 86_400_000
# Kinds without a built-in Kubernetes schema (custom resources).
CUSTOM_KINDS = {"KafkaTopic"}
# Keys that must only ever come from the Secret.
SECRET_KEYS = {
    "TOKENBOARD_KAFKA_SASL_USERNAME",
    "TOKENBOARD_KAFKA_SASL_PASSWORD",
    "TOKENBOARD_REDIS_URL",
    "TOKENBOARD_API_KEYS",
}
# Partitions each overlay must end up with (and the base).
EXPECTED_PARTITIONS = {"base": 8, "example": 16}
# ConfigMaps of the monitoring component (deploy/observability) -> key -> file.
MONITORING_CONFIGMAPS = {
    "tokenboard-prometheus-rules": {
        "tokenboard.rules.yml": OBSERVABILITY / "prometheus" / "rules" / "tokenboard.rules.yml"
    },
    "tokenboard-prometheus-config": {
        "prometheus.yml": OBSERVABILITY / "prometheus" / "prometheus-kubernetes.yml"
    },
    "tokenboard-grafana-dashboard": {
        "tokenboard.json": OBSERVABILITY / "grafana" / "dashboards" / "tokenboard.json"
    },
}
# kubectl apply keeps the whole object in an annotation, limited to 256 KiB.
LAST_APPLIED_LIMIT = 262_144


# --- loading ------------------------------------------------------------------------------


def load_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def load_one(path: Path) -> dict[str, Any]:
    """The single YAML document of a file."""
    docs = load_docs(path)
    assert len(docs) == 1, f"{path} should hold one document, found {len(docs)}"
    return docs[0]


def k8s_yaml_files() -> list[Path]:
    """Every YAML file under deploy/kubernetes."""
    return sorted(p for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml"})


def split_image(reference: str) -> tuple[str, str]:
    """("repo/name", "tag") of an image reference; the tag is "" when absent."""
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = reference.rpartition(":")
        return name, tag
    return reference, ""


# --- a small kustomize: resources, components, ConfigMap generators, patches (strategic
# merge, JSON 6902), namespace, labels, images. Enough for these manifests; kubectl's
# kustomize is used as well when installed.


def _strategic_merge(target: Any, patch: Any) -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = _strategic_merge(target[key], value) if key in target else value
        return copy.deepcopy(merged)
    if (
        isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in target + patch)
    ):
        by_name = {item["name"]: item for item in target}
        merged_list = [
            _strategic_merge(by_name[item["name"]], item) if item["name"] in by_name else item
            for item in patch
        ]
        patched = {item["name"] for item in patch}
        return copy.deepcopy([item for item in target if item["name"] not in patched] + merged_list)
    return copy.deepcopy(patch)


def _json_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> None:
    for operation in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        *parents, last = parts
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = operation["op"]
        if kind in {"add", "replace"}:
            value = copy.deepcopy(operation["value"])
            if isinstance(node, list):
                if last == "-":
                    node.append(value)
                elif kind == "add":
                    node.insert(int(last), value)
                else:
                    node[int(last)] = value
            else:
                assert kind == "add" or last in node, f"replace of missing {operation['path']}"
                node[last] = value
        elif kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:  # pragma: no cover - not used by these manifests
            raise NotImplementedError(kind)


def _matches(resource: dict[str, Any], target: dict[str, Any]) -> bool:
    api_version = resource.get("apiVersion", "")
    group = api_version.rpartition("/")[0]
    metadata = resource.get("metadata", {})
    labels = metadata.get("labels", {})
    checks = {
        "group": group,
        "version": api_version.rpartition("/")[2],
        "kind": resource.get("kind"),
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
    }
    if any(key in target and target[key] != value for key, value in checks.items()):
        return False
    selector = target.get("labelSelector", "")
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _pod_specs(resource: dict[str, Any]) -> list[dict[str, Any]]:
    template = resource.get("spec", {}).get("template", {})
    return [template["spec"]] if "spec" in template else []


def generated_configmaps(directory: Path, kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """The ConfigMaps of a kustomization's ``configMapGenerator`` (files and literals; names
    without the hash suffix, which these manifests turn off)."""
    options = kustomization.get("generatorOptions", {})
    configmaps = []
    for generator in kustomization.get("configMapGenerator", []):
        own = generator.get("options", {})
        assert options.get("disableNameSuffixHash") or own.get("disableNameSuffixHash"), (
            "name hash suffixes are not rendered here"
        )
        data: dict[str, str] = {}
        for entry in generator.get("files", []):
            key, _, source = entry.rpartition("=")
            data[key or Path(source).name] = (directory / source).read_text(encoding="utf-8")
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        metadata: dict[str, Any] = {"name": generator["name"]}
        labels = {**options.get("labels", {}), **own.get("labels", {})}
        if labels:
            metadata["labels"] = labels
        configmaps.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        )
    return configmaps


def builtin_kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization folder with the subset of kustomize these manifests use."""
    kustomization = load_one(directory / "kustomization.yaml")
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += builtin_kustomize(path) if path.is_dir() else load_docs(path)
    for entry in kustomization.get("components", []):
        component = (directory / entry).resolve()
        # Components here only add resources; patches in one would apply to all so far.
        assert load_one(component / "kustomization.yaml")["kind"] == "Component", component
        assert "patches" not in load_one(component / "kustomization.yaml"), component
        resources += builtin_kustomize(component)
    resources += generated_configmaps(directory, kustomization)
    resources = copy.deepcopy(resources)

    for patch in kustomization.get("patches", []):
        if "path" in patch:
            body = load_one(directory / patch["path"])
        else:
            body = yaml.safe_load(patch["patch"])
        target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
        hits = [i for i, resource in enumerate(resources) if _matches(resource, target)]
        assert hits, f"patch {patch} matches no resource"
        for i in hits:
            if isinstance(body, list):
                _json_patch(resources[i], body)
            else:
                strategic = {k: v for k, v in body.items() if k not in {"apiVersion", "kind"}}
                strategic["metadata"] = {
                    k: v for k, v in body.get("metadata", {}).items() if k != "name"
                }
                resources[i] = _strategic_merge(resources[i], strategic)

    namespace = kustomization.get("namespace")
    for resource in resources:
        metadata = resource.setdefault("metadata", {})
        if namespace and resource["kind"] != "Namespace":
            metadata["namespace"] = namespace
        for label in kustomization.get("labels", []):
            metadata.setdefault("labels", {}).update(label["pairs"])
            assert not label.get("includeSelectors"), "selector labels are not rendered here"
            template = resource.get("spec", {}).get("template")
            if label.get("includeTemplates") and template is not None:
                template.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
        for spec in _pod_specs(resource):
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                name, tag = split_image(container["image"])
                for image in kustomization.get("images", []):
                    if image["name"] == name:
                        new_name = image.get("newName", name)
                        new_tag = image.get("newTag", tag)
                        container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name
    return resources


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization folder with ``kubectl kustomize``."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


RENDERERS = ["builtin", *(["kubectl"] if shutil.which("kubectl") else [])]
VARIANTS = {"base": BASE, "example": OVERLAY}


@pytest.fixture(scope="module", params=[(v, r) for v in VARIANTS for r in RENDERERS])
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    """(variant name, rendered resources) for base and overlay, with each renderer."""
    variant, renderer = request.param
    render = kubectl_kustomize if renderer == "kubectl" else builtin_kustomize
    return variant, render(VARIANTS[variant])


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one resource of that kind and name."""
    hits = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind}/{name}, found {len(hits)}"
    return hits[0]


def of_kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Every resource of a kind."""
    return [r for r in resources if r["kind"] == kind]


def effective_env(resources: list[dict[str, Any]]) -> dict[str, str]:
    """The TOKENBOARD_* environment of the pods: ConfigMap data plus Secret stringData."""
    config = find(resources, "ConfigMap", "tokenboard-config")["data"]
    secret = find(resources, "Secret", "tokenboard-secrets").get("stringData", {})
    return {**config, **secret}


def deployment(resources: list[dict[str, Any]], component: str) -> dict[str, Any]:
    """The Deployment of a tokenboard component."""
    return find(resources, "Deployment", f"tokenboard-{component}")


def main_container(resource: dict[str, Any]) -> dict[str, Any]:
    """The tokenboard container of a Deployment."""
    containers = resource["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by container port name."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    assert port in named, f"no container port named {port!r}"
    return named[port]


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """True if every selector label is on the pod."""
    return all(labels.get(k) == v for k, v in selector.items())


# --- compose --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed (anchors and merge keys resolved)."""
    return load_one(COMPOSE)


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as a dict."""
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: str(v) for k, v in environment.items()}


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of a compose service's short-syntax port mappings."""
    pairs = []
    for entry in service.get("ports", []):
        parts = str(entry).split("/")[0].split(":")
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def healthcheck_text(service: dict[str, Any]) -> str:
    """A compose healthcheck's command as one string."""
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    """Compose defines Kafka, Redis, the topics job and every tokenboard process."""
    assert (
        set(compose["services"]) == {"kafka", "redis"} | TOKENBOARD_SERVICES | MONITORING_SERVICES
    )
    assert set(compose["volumes"]) >= {"kafka-data", "redis-data"}


def test_compose_tokenboard_services_share_image_and_env(compose: dict[str, Any]) -> None:
    """Every tokenboard service builds the Dockerfile as tokenboard:latest with one env block."""
    services = compose["services"]
    envs = [compose_env(services[name]) for name in sorted(TOKENBOARD_SERVICES)]
    assert all(env == envs[0] for env in envs)
    for name in TOKENBOARD_SERVICES:
        service = services[name]
        assert service["image"] == f"{IMAGE_REPOSITORY}:latest"
        assert service["build"]["context"] == "."
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]) == DOCKERFILE
    env = envs[0]
    assert env["TOKENBOARD_KAFKA_BOOTSTRAP"] == "kafka:19092"
    assert env["TOKENBOARD_REDIS_URL"] == "redis://redis:6379/0"
    settings = Settings.from_env(env)  # every value coerces to its field type
    assert settings.partitions == DEFAULTS.partitions


def test_compose_ports_match_settings(compose: dict[str, Any]) -> None:
    """Published ports and listeners equal the Settings defaults of the local stack."""
    services = compose["services"]
    kafka_env = compose_env(services["kafka"])
    assert published_ports(services["kafka"]) == [(DEFAULTS.kafka_port, DEFAULTS.kafka_port)]
    assert published_ports(services["redis"]) == [(DEFAULTS.redis_port, DEFAULTS.redis_port)]
    assert urlsplit(DEFAULTS.redis_url).port == DEFAULTS.redis_port
    assert published_ports(services["api"]) == [(DEFAULTS.api_port, DEFAULTS.api_port)]
    assert published_ports(services["ingest"]) == [(DEFAULTS.ingest_port, DEFAULTS.ingest_port)]
    assert [int(p) for p in services["worker"]["expose"]] == [DEFAULTS.worker_web_port]
    # Host clients with the default bootstrap reach the advertised host listener.
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"PLAINTEXT_HOST://{DEFAULTS.kafka_bootstrap}" in advertised
    # Compose services reach the internal listener named in the shared env block.
    internal = compose_env(services["worker"])["TOKENBOARD_KAFKA_BOOTSTRAP"]
    assert f"PLAINTEXT://{internal}" in advertised
    listeners = kafka_env["KAFKA_LISTENERS"].split(",")
    assert f"CONTROLLER://0.0.0.0:{DEFAULTS.kafka_controller_port}" in listeners
    assert f"PLAINTEXT_HOST://0.0.0.0:{DEFAULTS.kafka_port}" in listeners
    redis_url = urlsplit(compose_env(services["worker"])["TOKENBOARD_REDIS_URL"])
    assert (redis_url.hostname, redis_url.port) == ("redis", DEFAULTS.redis_port)
    env = compose_env(services["worker"])
    assert int(env["TOKENBOARD_WORKER_WEB_PORT"]) == DEFAULTS.worker_web_port
    assert int(env["TOKENBOARD_API_PORT"]) == DEFAULTS.api_port
    assert int(env["TOKENBOARD_INGEST_PORT"]) == DEFAULTS.ingest_port


def test_compose_kafka_is_single_node_kraft(compose: dict[str, Any]) -> None:
    """Kafka runs the pinned apache/kafka image as one KRaft broker+controller."""
    kafka = compose["services"]["kafka"]
    env = compose_env(kafka)
    assert kafka["image"] == f"apache/kafka:{DEFAULTS.kafka_version}"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        f"{env['KAFKA_NODE_ID']}@kafka:{DEFAULTS.kafka_controller_port}"
    )
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert f"-Xmx{DEFAULTS.kafka_heap}" in env["KAFKA_HEAP_OPTS"]
    assert "kafka-data:/var/lib/kafka/data" in kafka["volumes"]
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    check = healthcheck_text(kafka)
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in check
    assert f"localhost:{DEFAULTS.kafka_port}" in check


def test_compose_redis_is_persistent(compose: dict[str, Any]) -> None:
    """Redis 7 keeps an append-only file in a named volume and is health-checked."""
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7-alpine"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "redis-data:/data" in redis["volumes"]
    assert healthcheck_text(redis) == "CMD redis-cli ping"


def test_compose_start_order(compose: dict[str, Any]) -> None:
    """Topics wait for Kafka; workers wait for the topics job and Redis."""
    services = compose["services"]
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["worker"]["depends_on"] == {
        "topics": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["ingest"]["depends_on"]["topics"] == {
        "condition": "service_completed_successfully"
    }
    assert services["api"]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_compose_workers_and_simulator(compose: dict[str, Any]) -> None:
    """Two workers within the partition count; the simulator only under its profile."""
    services = compose["services"]
    worker = services["worker"]
    partitions = int(compose_env(worker)["TOKENBOARD_PARTITIONS"])
    assert worker["command"] == ["worker"]
    assert worker["deploy"]["replicas"] == 2 <= partitions
    assert worker["stop_grace_period"] == "60s"
    simulator = services["simulator"]
    assert simulator["profiles"] == ["simulate"]
    assert simulator["command"] == ["simulate", "--rate", "5000", "--duration", "0"]
    unprofiled = [name for name, s in services.items() if "profiles" not in s]
    assert "simulator" not in unprofiled
    assert not MONITORING_SERVICES & set(unprofiled)


@pytest.mark.parametrize("component", sorted(COMPONENT_PORTS))
def test_compose_healthchecks_hit_healthz(compose: dict[str, Any], component: str) -> None:
    """Worker, ingest and api are health-checked with urllib on their own /healthz."""
    service = compose["services"][component]
    assert service["command"] == [component]
    check = healthcheck_text(service)
    assert "urllib.request" in check
    assert f"http://127.0.0.1:{COMPONENT_PORTS[component]}/healthz" in check


# --- every deployment file --------------------------------------------------------------------


def deployment_files() -> list[Path]:
    """Every file whose TOKENBOARD_* names must exist in streams.settings."""
    monitoring = sorted(
        p for p in OBSERVABILITY.rglob("*") if p.suffix in {".yml", ".yaml", ".json"}
    )
    return [DOCKERFILE, COMPOSE, DEPLOY_README, *k8s_yaml_files(), *monitoring]


@pytest.mark.parametrize("path", deployment_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_tokenboard_variable_is_a_setting(path: Path) -> None:
    """Each TOKENBOARD_* name in a deployment file is a field of streams.settings."""
    used = set(TOKENBOARD_VARIABLE.findall(path.read_text(encoding="utf-8")))
    assert used <= KNOWN_VARIABLES, f"unknown settings: {sorted(used - KNOWN_VARIABLES)}"


# --- Dockerfile and packaging -------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    instructions = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    """Builder and runtime stages on python:3.11-slim; the runtime runs as uid 10001."""
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    stages = [a for k, a in instructions if k == "FROM"]
    assert len(stages) >= 2
    images = [args.get(s.split()[0].strip("${}"), s.split()[0]) for s in stages]
    assert all(image == "python:3.11-slim" for image in images)
    assert stages[0].lower().endswith("as builder")
    runtime_at = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    runtime = instructions[runtime_at:]
    assert any("from=builder" in a for k, a in runtime if k in {"COPY", "RUN"})
    users = [a for k, a in runtime if k == "USER"]
    assert users, "the runtime stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid == str(RUNTIME_UID)
    assert any(f"--uid {RUNTIME_UID}" in a for k, a in runtime if k == "RUN")


def test_dockerfile_entrypoint_ports_and_healthcheck() -> None:
    """ENTRYPOINT tokenboard, CMD worker, the three server ports, a urllib /healthz check."""
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["tokenboard"]
    assert json.loads(instructions["CMD"]) == ["worker"]
    assert {int(p) for p in instructions["EXPOSE"].split()} == set(COMPONENT_PORTS.values())
    assert "HEALTHCHECK" in instructions
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "urllib.request" in text and "/healthz" in text
    for component, port in COMPONENT_PORTS.items():
        variable = {"worker": "WORKER_WEB", "ingest": "INGEST", "api": "API"}[component]
        assert f'"TOKENBOARD_{variable}_PORT": "{port}"' in text
    assert "curl" not in instructions["HEALTHCHECK"]


def top_level_packages(project: dict[str, Any]) -> list[str]:
    """Top-level packages named by the setuptools ``packages.find`` include patterns."""
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    return [p.rstrip("*") for p in patterns]


def test_dockerfile_copies_what_the_wheel_needs() -> None:
    """The builder copies pyproject, its readme and every package; .dockerignore keeps them."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    needed = [
        "pyproject.toml",
        project["project"]["readme"],
        *top_level_packages(project),
    ]
    copied = " ".join(a for k, a in dockerfile_instructions() if k == "COPY")
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for item in needed:
        assert item in copied, f"the Dockerfile does not copy {item}"
        assert item not in ignored, f".dockerignore drops {item}"
    assert {".git", ".venv"} <= ignored


def test_console_script_exists() -> None:
    """pyproject.toml installs the `tokenboard` console script the image runs."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    target = project["project"]["scripts"]["tokenboard"]
    module, _, function = target.partition(":")
    assert module.split(".")[0] in top_level_packages(project)
    assert function
    assert project["project"]["requires-python"] == ">=3.11"


def test_commands_are_cli_commands(compose: dict[str, Any]) -> None:
    """Every command run by compose and Kubernetes parses with the tokenboard CLI."""
    from streams.cli.main import build_parser

    commands = [s["command"] for n, s in compose["services"].items() if n in TOKENBOARD_SERVICES]
    resources = builtin_kustomize(BASE)
    commands += [main_container(deployment(resources, c))["args"] for c in COMPONENT_PORTS]
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"`tokenboard {' '.join(argv)}` is not a valid command")


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", k8s_yaml_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_k8s_yaml_parses(path: Path) -> None:
    """Every Kubernetes YAML parses and each document names its apiVersion and kind."""
    docs = load_docs(path)
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: {doc}"


def test_base_kustomization_lists_every_file() -> None:
    """The base kustomization names every other file of the base folder, and only those."""
    listed = load_one(BASE / "kustomization.yaml")["resources"]
    present = {p.name for p in BASE.iterdir() if p.is_file() and p.name != "kustomization.yaml"}
    assert len(listed) == len(set(listed))
    assert set(listed) == present


def test_overlay_references_existing_files() -> None:
    """The example overlay builds on the base and uses every patch file in its folder."""
    kustomization = load_one(OVERLAY / "kustomization.yaml")
    assert kustomization["resources"] == ["../../base"]
    assert [(OVERLAY / c).resolve() for c in kustomization["components"]] == [OBSERVABILITY]
    paths = {p["path"] for p in kustomization["patches"] if "path" in p}
    present = {p.name for p in OVERLAY.iterdir() if p.is_file() and p.name != "kustomization.yaml"}
    assert paths == present


def test_secret_and_config_are_split() -> None:
    """Credentials only in the example Secret (CHANGE_ME values), the rest in the ConfigMap."""
    config = load_one(BASE / "configmap.yaml")["data"]
    secret = load_one(BASE / "secret.yaml")
    assert set(secret["stringData"]) == SECRET_KEYS
    assert all("CHANGE_ME" in value for value in secret["stringData"].values())
    assert not set(config) & SECRET_KEYS
    assert set(config) <= KNOWN_VARIABLES
    assert all(isinstance(value, str) for value in config.values())


def test_rendered_settings(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """ConfigMap + Secret build valid Settings whose ports are the defaults."""
    variant, resources = rendered
    env = effective_env(resources)
    settings = Settings.from_env(env)
    assert settings.partitions == EXPECTED_PARTITIONS[variant]
    assert settings.worker_web_port == DEFAULTS.worker_web_port
    assert settings.api_port == DEFAULTS.api_port
    assert settings.ingest_port == DEFAULTS.ingest_port
    assert urlsplit(settings.redis_url).port == DEFAULTS.redis_port
    bootstrap_port = int(settings.kafka_bootstrap.rsplit(":", 1)[1])
    if variant == "base":
        assert settings.kafka_security_protocol == "PLAINTEXT"
        assert bootstrap_port == DEFAULTS.kafka_port
    else:
        assert settings.kafka_security_protocol == "SASL_SSL"
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka_ssl_cafile


def test_rendered_namespace(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Everything lands in the tokenboard namespace, which is part of the manifests."""
    _, resources = rendered
    assert find(resources, "Namespace", NAMESPACE)
    for resource in resources:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == NAMESPACE, resource["metadata"]["name"]


def test_rendered_monitoring_configmaps(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """The example overlay carries the alert rules, the Kubernetes Prometheus configuration and
    the Grafana dashboard (labelled for Grafana's sidecar) as ConfigMaps holding the files of
    deploy/observability unchanged; the base has no monitoring."""
    variant, resources = rendered
    names = {r["metadata"]["name"] for r in of_kind(resources, "ConfigMap")}
    if variant == "base":
        assert not names & set(MONITORING_CONFIGMAPS)
        return
    for name, files in MONITORING_CONFIGMAPS.items():
        configmap = find(resources, "ConfigMap", name)
        assert configmap["data"] == {
            key: path.read_text(encoding="utf-8") for key, path in files.items()
        }
        labels = configmap["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "monitoring"
        assert labels["app.kubernetes.io/part-of"] == "tokenboard"
        assert (labels.get("grafana_dashboard") == "1") == (name == "tokenboard-grafana-dashboard")
        assert len(json.dumps(configmap)) < LAST_APPLIED_LIMIT, name


def test_monitoring_component_uses_every_file() -> None:
    """The monitoring component generates a ConfigMap from each file the ConfigMaps should
    hold, and those files exist."""
    component = load_one(OBSERVABILITY / "kustomization.yaml")
    assert component["kind"] == "Component"
    generated = {c["metadata"]["name"]: c for c in generated_configmaps(OBSERVABILITY, component)}
    assert set(generated) == set(MONITORING_CONFIGMAPS)
    for name, files in MONITORING_CONFIGMAPS.items():
        assert set(generated[name]["data"]) == set(files)
        assert all(path.is_file() for path in files.values())


@pytest.mark.parametrize("component", sorted(COMPONENT_PORTS))
def test_rendered_deployment_ports_and_probes(
    rendered: tuple[str, list[dict[str, Any]]], component: str
) -> None:
    """Each Deployment serves /healthz (liveness) and /readyz (readiness) on its Settings port."""
    _, resources = rendered
    resource = deployment(resources, component)
    container = main_container(resource)
    port = COMPONENT_PORTS[component]
    assert container["args"] == [component]
    assert [p["containerPort"] for p in container["ports"]] == [port]
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert readiness["path"] == "/readyz"
    assert resolve_port(container, liveness["port"]) == port
    assert resolve_port(container, readiness["port"]) == port
    if "startupProbe" in container:
        startup = container["startupProbe"]["httpGet"]
        assert startup["path"] == "/healthz"
        assert resolve_port(container, startup["port"]) == port
    annotations = resource["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("component", sorted(COMPONENT_PORTS))
def test_rendered_deployment_hardening(
    rendered: tuple[str, list[dict[str, Any]]], component: str
) -> None:
    """Non-root uid 10001, read-only root with emptyDir /tmp, config and secret as env."""
    _, resources = rendered
    resource = deployment(resources, component)
    pod = resource["spec"]["template"]["spec"]
    container = main_container(resource)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == RUNTIME_UID
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    sources = {
        next(iter(source)): next(iter(source.values()))["name"] for source in container["envFrom"]
    }
    assert sources == {"configMapRef": "tokenboard-config", "secretRef": "tokenboard-secrets"}
    find(resources, "ConfigMap", sources["configMapRef"])
    find(resources, "Secret", sources["secretRef"])
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"


def test_rendered_worker_shutdown_and_resources(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    """Workers get 60 s to commit on SIGTERM and the design-target resources."""
    _, resources = rendered
    worker = deployment(resources, "worker")
    pod = worker["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 60
    sleep = int(main_container(worker)["lifecycle"]["preStop"]["exec"]["command"][1])
    assert sleep + 30 < pod["terminationGracePeriodSeconds"]
    assert main_container(worker)["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    for component in ("ingest", "api"):
        requests = main_container(deployment(resources, component))["resources"]["requests"]
        assert requests == {"cpu": "250m", "memory": "256Mi"}


def test_rendered_worker_replicas_within_partitions(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    """Worker replicas (and a rolling-update surge) never exceed TOKENBOARD_PARTITIONS."""
    variant, resources = rendered
    partitions = int(effective_env(resources)["TOKENBOARD_PARTITIONS"])
    worker = deployment(resources, "worker")
    replicas = worker["spec"]["replicas"]
    surge = worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert replicas == {"base": 2, "example": 4}[variant]
    assert replicas + int(surge) <= partitions


def test_rendered_worker_pdb(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """The PodDisruptionBudget allows one worker down at a time and selects the workers."""
    _, resources = rendered
    pdb = find(resources, "PodDisruptionBudget", "tokenboard-worker")
    assert pdb["spec"]["maxUnavailable"] == 1
    labels = deployment(resources, "worker")["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(pdb["spec"]["selector"]["matchLabels"], labels)
    for component in ("ingest", "api"):
        other = deployment(resources, component)["spec"]["template"]["metadata"]["labels"]
        assert not selector_matches(pdb["spec"]["selector"]["matchLabels"], other)


@pytest.mark.parametrize("component", ["ingest", "api"])
def test_rendered_services(rendered: tuple[str, list[dict[str, Any]]], component: str) -> None:
    """The ingest and api Services select their pods on the Settings port."""
    _, resources = rendered
    service = find(resources, "Service", f"tokenboard-{component}")
    resource = deployment(resources, component)
    labels = resource["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(service["spec"]["selector"], labels)
    for other in set(COMPONENT_PORTS) - {component}:
        other_labels = deployment(resources, other)["spec"]["template"]["metadata"]["labels"]
        assert not selector_matches(service["spec"]["selector"], other_labels)
    (port,) = service["spec"]["ports"]
    assert port["port"] == COMPONENT_PORTS[component]
    assert resolve_port(main_container(resource), port["targetPort"]) == COMPONENT_PORTS[component]


def test_rendered_images_agree(
    rendered: tuple[str, list[dict[str, Any]]], compose: dict[str, Any]
) -> None:
    """All pods run the tokenboard image that compose builds (the overlay only re-tags it)."""
    variant, resources = rendered
    compose_name, _ = split_image(compose["services"]["worker"]["image"])
    assert compose_name == IMAGE_REPOSITORY
    for component in COMPONENT_PORTS:
        name, tag = split_image(main_container(deployment(resources, component))["image"])
        assert tag
        if variant == "base":
            assert name == compose_name
        else:
            assert name.rsplit("/", 1)[-1] == compose_name


def kafka_topics(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """KafkaTopic resources by Kafka topic name (spec.topicName, else metadata.name)."""
    return {
        t["spec"].get("topicName", t["metadata"]["name"]): t
        for t in of_kind(resources, "KafkaTopic")
    }


def test_rendered_topics_cover_settings(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """A KafkaTopic per Settings topic, the compacted changelogs and Faust's leader topic."""
    variant, resources = rendered
    settings = Settings.from_env(effective_env(resources))
    topics = kafka_topics(resources)
    week = 7 * DAY_MS
    month = 30 * DAY_MS
    expected_retention = {
        settings.usage_topic: week,
        settings.partials_topic: week,
        settings.dedup_topic: settings.dedup_horizon_seconds * 1000 + DAY_MS,
        settings.dead_letter_topic: month,
        settings.rankings_topic: month,
        settings.alerts_topic: month,
        settings.notify_dead_letter_topic: month,
    }
    changelog = f"{settings.app_id}-weekly-changelog"
    progress = f"{settings.app_id}-progress-changelog"
    leader = f"{settings.app_id}-__assignor-__leader"
    ranker_state = settings.ranker_state_topic
    assert set(topics) == {*expected_retention, changelog, progress, leader, ranker_state}
    for name, topic in topics.items():
        assert topic["apiVersion"] == STRIMZI_API
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == STRIMZI_CLUSTER
        spec = topic["spec"]
        single = name in (leader, ranker_state)
        expected_partitions = 1 if single else EXPECTED_PARTITIONS[variant]
        assert spec["partitions"] == expected_partitions, name
        # The overlays must leave the single-partition topics alone.
        partitioned = topic["metadata"]["labels"]["tokenboard/partitioned"]
        assert partitioned == ("false" if single else "true"), name
        assert spec["replicas"] == 3
        config = spec["config"]
        assert int(config["min.insync.replicas"]) == 2
        if name in (changelog, progress, ranker_state):
            # Latest value per key: the ranker's state must never expire by age.
            assert config["cleanup.policy"] == "compact"
            assert "retention.ms" not in config
        else:
            assert config["cleanup.policy"] == "delete"
        if name in expected_retention:
            assert spec["partitions"] == settings.partitions
            assert int(config["retention.ms"]) == expected_retention[name], name


def test_rendered_topics_match_topics_create(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """The KafkaTopics agree with what `tokenboard topics create` would create."""
    from streams.topics import topic_specs

    _, resources = rendered
    settings = Settings.from_env(effective_env(resources))
    topics = kafka_topics(resources)
    for spec in topic_specs(settings):
        assert spec.name in topics, spec.name
        declared = topics[spec.name]["spec"]
        assert declared["partitions"] == spec.partitions, spec.name
        for key, value in spec.config.items():
            assert str(declared["config"][key]) == value, (spec.name, key)
        assert declared["config"]["cleanup.policy"] == spec.config.get("cleanup.policy", "delete")


def test_readme_sizing_matches_manifests() -> None:
    """deploy/README.md states the requests in the manifests and where they come from."""
    text = DEPLOY_README.read_text(encoding="utf-8")
    for figure in ("500m", "512Mi", "1Gi", "250m", "256Mi", "50,000 events/s", "bench/RESULTS.md"):
        assert figure in text, figure
    assert "kubectl apply -k deploy/kubernetes/overlays/example" in text


def test_readme_metrics_exist() -> None:
    """Every tokenboard_* metric named in deploy/README.md is defined in streams/metrics.py."""
    defined = set(
        re.findall(r'"(tokenboard_[a-z_]+)"', (ROOT / "streams" / "metrics.py").read_text())
    )
    named = set(re.findall(r"\btokenboard_[a-z_]+\b", DEPLOY_README.read_text(encoding="utf-8")))
    assert named, "the README names no metric"
    assert named <= defined, f"unknown metrics: {sorted(named - defined)}"


def test_rendered_resources_match_kubernetes_schemas(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    """Built-in kinds validate (strict) against the Kubernetes JSON schemas, when installed."""
    validator = pytest.importorskip("kubernetes_validate")
    _, resources = rendered
    checked = 0
    for resource in resources:
        if resource["kind"] in CUSTOM_KINDS:
            continue
        validator.validate(resource, "1.30.0", strict=True)
        checked += 1
    assert checked >= 9
