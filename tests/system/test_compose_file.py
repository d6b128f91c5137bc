"""compose.yaml and the Dockerfile agree with the code: commands, settings, ports, health."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from services.cli import SERVICES, parser
from shared.config import load_config
from shared.natsserver import MAX_PAYLOAD, EmbeddedNats
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


def test_depends_on_names_defined_services_that_have_health_checks() -> None:
    services = compose_services()
    for name, spec in services.items():
        for dependency, condition in (spec.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on undefined {dependency}"
            assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    for service in SERVICES:
        assert "healthcheck" in services[service], f"{service} has no healthcheck"
        assert {"nats", "postgres"} <= set(services[service]["depends_on"])


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


def test_bind_mounted_files_exist() -> None:
    for name, spec in compose_services().items():
        for volume in spec.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


async def heartbeat_check(nats_url: str, service: str, within_s: float) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HEARTBEAT_CHECK),
        service,
        "--within",
        str(within_s),
        env={**os.environ, "NATS_URL": nats_url},
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
