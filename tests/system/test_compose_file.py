"""compose.yaml and the Dockerfile agree with the code: commands, settings, ports, health."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from nats.errors import Error as NatsError
from pydantic import AliasChoices

from services.cli import SERVICES, parser
from shared import natsauth
from shared.config import load_config
from shared.natsserver import MAX_PAYLOAD, EmbeddedNats, free_port, nats_server_binary
from shared.runtime import ServiceRuntime
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
DOCKERFILE = ROOT / "Dockerfile"
HEARTBEAT_CHECK = ROOT / "deploy" / "heartbeat_check.py"


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = COMPOSE["services"]
    return services


def vigil_containers() -> dict[str, dict[str, Any]]:
    """Containers running the image built from the Dockerfile."""
    return {
        name: spec
        for name, spec in compose_services().items()
        if "build" in spec or str(spec.get("image", "")).startswith("vigil")
    }


def settings_env_names() -> set[str]:
    """Every environment variable shared.settings.Settings reads."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def cli_accepts(arguments: list[str]) -> str:
    """'' if the vigil CLI parses ``arguments``, else its complaint."""
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint):
            parser().parse_args(arguments)
    except SystemExit:
        return complaint.getvalue().strip() or "rejected"
    return ""


def size_in_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)\s*([KMG]?)B?", text.strip(), re.IGNORECASE)
    assert match, f"unreadable size {text!r}"
    return int(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2).upper()]


def test_dockerfile_installs_the_pinned_project_with_vigil_as_entrypoint() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.MULTILINE)
    assert "pip install -c constraints.txt ." in text
    assert (ROOT / "constraints.txt").exists()
    entrypoint = re.search(r"^ENTRYPOINT\s+(.+)$", text, re.MULTILINE)
    assert entrypoint is not None
    assert json.loads(entrypoint.group(1)) == ["vigil"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["vigil"] == "services.cli:main"


def test_every_vigil_command_is_one_the_cli_accepts() -> None:
    containers = vigil_containers()
    assert containers, "compose.yaml runs no vigil container"
    for name, spec in containers.items():
        command = spec.get("command")
        assert isinstance(command, list), f"{name}: command must be a list of arguments"
        assert cli_accepts(command) == "", f"{name}: vigil {' '.join(command)}"


def test_one_container_runs_each_service() -> None:
    run = [
        spec["command"][1] for spec in vigil_containers().values() if spec["command"][:1] == ["run"]
    ]
    assert sorted(run) == sorted(SERVICES)
    for service in SERVICES:
        assert compose_services()[service]["command"] == ["run", service]


def test_agent_posts_to_the_gateway_and_is_optional() -> None:
    agent = compose_services()["agent"]
    assert agent["command"][:3] == ["agent", "--gateway", "http://gateway:8080"]
    assert agent.get("profiles"), "the agent must be opt-in"


def test_environment_holds_only_variables_settings_reads() -> None:
    known = settings_env_names()
    assert {"NATS_URL", "DATABASE_URL", "VIGIL_PORT", "VIGIL_HOST"} <= known
    for name, spec in vigil_containers().items():
        environment = spec.get("environment") or {}
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
        unknown = sorted(set(environment) - known)
        assert unknown == [], f"{name} sets variables Settings ignores: {unknown}"
    for service in SERVICES:
        environment = compose_services()[service]["environment"]
        assert environment["NATS_URL"].startswith("nats://nats:")
        assert environment["DATABASE_URL"].startswith("postgresql://")


def test_gateway_settings_from_compose_match_the_published_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = compose_services()["gateway"]
    for key in list(os.environ):
        if key in settings_env_names():
            monkeypatch.delenv(key)
    for key, value in gateway["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.host == "0.0.0.0"
    published = [str(p).rsplit(":", 1) for p in gateway["ports"]]
    assert [container for _, container in published] == [str(settings.port)]
    assert settings.nats_url == "nats://nats:4222"
    assert settings.config is not None
    mounted = {v.split(":")[1]: v.split(":")[0] for v in gateway["volumes"]}
    config_file = ROOT / mounted[str(settings.config)]
    assert load_config(config_file).rules, "the mounted config must load"


ONE_SHOT = {"nats-streams"}  # jobs that run once and exit


def test_depends_on_names_defined_services_that_have_health_checks() -> None:
    services = compose_services()
    for name, spec in services.items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on undefined {dependency}"
            if dependency in ONE_SHOT:
                assert condition == {"condition": "service_completed_successfully"}
                assert services[dependency].get("restart") == "no"
                continue
            assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    for service in SERVICES:
        assert "healthcheck" in services[service], f"{service} has no healthcheck"
        assert {"nats", "postgres", "nats-streams"} <= set(services[service]["depends_on"])


def test_committed_nats_config_is_the_generated_permission_table() -> None:
    """deploy/nats-server.conf is rendered from shared/natsauth.py: `vigil nats config`."""
    nats_service = compose_services()["nats"]
    command = nats_service["command"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nats_service["volumes"]}
    committed = (ROOT / mounts[command[command.index("-c") + 1]]).read_text()
    assert committed == natsauth.compose_server_config(), (
        "run: vigil nats config --output deploy/nats-server.conf"
    )


def test_each_service_logs_in_to_nats_as_itself() -> None:
    services = compose_services()
    nats_env = services["nats"]["environment"]
    for user in natsauth.USERS:
        variable = natsauth.password_variable(user)
        assert nats_env[variable].startswith(f"${{{variable}:?"), "required, from .env"
    for service in SERVICES:
        environment = services[service]["environment"]
        assert environment["VIGIL_NATS_USER"] == service
        variable = natsauth.password_variable(service)
        assert environment["VIGIL_NATS_PASSWORD"].startswith(f"${{{variable}:?")
    streams = services["nats-streams"]
    assert streams["command"] == ["nats", "streams"]
    assert streams["environment"]["VIGIL_NATS_USER"] == natsauth.CLI_USER
    assert "NATS" not in str(services["agent"].get("environment")), "the agent posts over HTTP"


@pytest.fixture
def compose_nats(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """nats-server run as compose runs it: the committed config, passwords from the env."""
    passwords = dict(line.split("=", 1) for line in natsauth.env_file_lines())
    port = free_port()
    argv = [nats_server_binary(), "-c", str(ROOT / "deploy" / "nats-server.conf")]
    argv += ["-js", "-sd", str(tmp_path / "js"), "-p", str(port), "-a", "127.0.0.1"]
    process = subprocess.Popen(
        argv, env={**os.environ, **passwords}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}", passwords
    finally:
        process.terminate()
        process.wait(10)


async def test_compose_nats_takes_each_user_with_its_password_from_env(
    compose_nats: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, passwords = compose_nats
    with pytest.raises(NatsError):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0)
    # `vigil nats streams` as the CLI user, then a service with its env credentials
    env = {
        **os.environ,
        "NATS_URL": url,
        "VIGIL_NATS_USER": "cli",
        "VIGIL_NATS_PASSWORD": passwords[natsauth.password_variable("cli")],
        "VIGIL_DATA_DIR": str(tmp_path),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "nats", "streams"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    settings = Settings(
        nats_url=url,
        data_dir=tmp_path,
        nats_user="metrics",
        nats_password=passwords[natsauth.password_variable("metrics")],  # type: ignore[arg-type]
    )
    runtime = ServiceRuntime("metrics", settings)
    await runtime.start()
    try:
        beat_env = {
            "VIGIL_NATS_USER": "metrics",
            "VIGIL_NATS_PASSWORD": passwords[natsauth.password_variable("metrics")],
        }
        assert await heartbeat_check(url, "metrics", 5.0, beat_env) == 0
        assert await heartbeat_check(url, "metrics", 2.0) == 1, "no credentials, no beat"
    finally:
        await runtime.stop()


def test_service_health_checks_listen_for_their_own_heartbeat() -> None:
    assert "COPY deploy ./deploy" in DOCKERFILE.read_text()
    for service in SERVICES:
        if service == "gateway":
            continue
        test = compose_services()[service]["healthcheck"]["test"]
        assert test == ["CMD", "python", "/app/deploy/heartbeat_check.py", service]


def test_nats_runs_jetstream_on_a_volume_with_room_for_a_full_batch() -> None:
    nats = compose_services()["nats"]
    command = nats["command"]
    assert "-js" in command
    assert command[command.index("-sd") + 1] == "/data"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in nats["volumes"]}
    assert mounts["/data"] in COMPOSE["volumes"]
    config = (ROOT / mounts[command[command.index("-c") + 1]]).read_text()
    payload = re.search(r"^max_payload:\s*(\S+)", config, re.MULTILINE)
    assert payload is not None
    assert size_in_bytes(payload.group(1)) >= MAX_PAYLOAD
    assert str(compose_services()["postgres"]["image"]).startswith("postgres:16")


def test_the_metrics_store_keeps_its_file_on_a_volume() -> None:
    metrics = compose_services()["metrics"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in metrics["volumes"]}
    data_dir = re.search(r"^ENV VIGIL_DATA_DIR=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert data_dir is not None
    assert mounts[data_dir.group(1)] in COMPOSE["volumes"]


def test_bind_mounted_files_exist() -> None:
    for name, spec in compose_services().items():
        for volume in spec.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


async def heartbeat_check(
    nats_url: str, service: str, within_s: float, env: dict[str, str] | None = None
) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEARTBEAT_CHECK),
        service,
        "--within",
        str(within_s),
        # this checkout's code, as in the image (the script's own dir comes first on the path)
        env={**os.environ, "NATS_URL": nats_url, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    return await asyncio.wait_for(process.wait(), within_s + 15)


async def test_heartbeat_check_passes_for_a_beating_service_only(
    nats_server: EmbeddedNats, settings: Settings
) -> None:
    runtime = ServiceRuntime("metrics", settings)
    await runtime.start()
    try:
        assert await heartbeat_check(nats_server.url, "metrics", 5.0) == 0
        assert await heartbeat_check(nats_server.url, "alerts", 0.5) == 1
    finally:
        await runtime.stop()
    assert await heartbeat_check("nats://127.0.0.1:1", "metrics", 0.5) == 1
