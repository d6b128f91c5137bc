"""``vigil up`` with its embedded NATS requiring credentials: the system runs, intruders do not.

The issue this guards against: anyone who reached the NATS port published a forged
sample batch that fired a critical alert, and purged the ALERTS stream.
"""

from __future__ import annotations

import asyncio
import re
import stat
import time
from typing import Any

import nats
import psutil
import pytest
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout

from shared import natsauth, subjects
from shared.events import SamplesIngested, new_id
from shared.streams import ALERTS
from tests.system.conftest import VigilProcess, WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SERVICE_USERS = ("gateway", "metrics", "alerts", "incidents", "synthetic", "notifier")


def nats_url(vigil: VigilProcess) -> str:
    for line in vigil.lines:
        found = re.search(r"vigil nats ready \((nats://[^)]+)\)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"no NATS URL printed: {vigil.lines}")


async def login(vigil: VigilProcess, user: str, errors: list[str]) -> Any:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    credentials = natsauth.client_credentials(vigil.data_dir, user)
    assert credentials is not None, "vigil up generates credentials in the data dir"
    return await nats.connect(
        nats_url(vigil),
        name=f"intruder-as-{user}",
        allow_reconnect=False,
        error_cb=on_error,
        **credentials.connect_options(),
    )


def forged_batch() -> bytes:
    event = SamplesIngested(
        id=new_id(),
        aggregate_id="api",
        samples=[{"name": "checkout_latency_ms", "value": 99_999.0, "labels": {"forged": "yes"}}],
        received_at=time.time(),
    )
    return event.encode()


def service_violations(vigil: VigilProcess) -> list[str]:
    """Permission violations the server logged for Vigil's own services."""
    log = (vigil.data_dir / "nats" / "nats-server.log").read_text(errors="replace")
    # a line reads: … - "v2.16.0:python3:vigil-alerts" - "$G/user:alerts" - … Violation …
    return [line for line in log.splitlines() if "Violation" in line and ":vigil-" in line]


async def test_the_system_runs_with_credentials_and_refuses_intruders(
    vigil_up: VigilProcess, webhook_receiver: WebhookReceiver
) -> None:
    url = nats_url(vigil_up)

    # no credentials, no connection
    with pytest.raises(NatsError, match=r"[Aa]uthorization"):
        await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0)

    # a stolen service password still cannot forge samples or erase history
    errors: list[str] = []
    intruder = await login(vigil_up, "synthetic", errors)
    try:
        js = intruder.jetstream(timeout=1.0)
        with pytest.raises((NatsTimeout, TimeoutError)):
            await js.publish(subjects.samples("api"), forged_batch(), timeout=1.0)
        with pytest.raises((NatsTimeout, TimeoutError)):
            await js.purge_stream(ALERTS.name)
    finally:
        await intruder.close()
    assert len([e for e in errors if "iolation" in e]) == 2, errors

    gateway_errors: list[str] = []
    as_gateway = await login(vigil_up, "gateway", gateway_errors)
    try:
        with pytest.raises((NatsTimeout, TimeoutError)):
            await as_gateway.jetstream(timeout=1.0).purge_stream(ALERTS.name)
        with pytest.raises((NatsTimeout, TimeoutError)):
            await as_gateway.jetstream(timeout=1.0).delete_stream(ALERTS.name)
    finally:
        await as_gateway.close()
    assert len([e for e in gateway_errors if "iolation" in e]) == 2, gateway_errors

    # and the system itself works: a sample through the API pages and is acknowledged
    async with vigil_up.client() as client:
        response = await client.post(
            "/api/monitoring/metrics",
            json=[{"name": "checkout_latency_ms", "value": 1500.0, "labels": {"host": "w1"}}],
        )
        assert response.status_code == 202, response.text
        await webhook_receiver.wait_for(lambda: webhook_receiver.of_type("AlertFired"))
        fired = webhook_receiver.of_type("AlertFired")
        assert [p["alert"]["labels"] for p in fired if p["alert"]["rule"] == "CheckoutLatency"] == [
            {"host": "w1"}
        ], "the forged batch fired nothing"
        alert_id = next(p["alert"]["id"] for p in fired if p["alert"]["rule"] == "CheckoutLatency")
        acked = await client.post(f"/api/monitoring/alerts/{alert_id}/ack", json={})
        assert acked.status_code in (200, 202), acked.text
        health = await _eventually_all_up(client)
        assert set(health["services"]) == set(SERVICE_USERS)

    # the CLI user, the operator's, sees history intact
    cli = await login(vigil_up, natsauth.CLI_USER, [])
    try:
        info = await cli.jetstream().stream_info(ALERTS.name)
        assert info.state.messages >= 2  # fired, acknowledged
    finally:
        await cli.close()
    assert service_violations(vigil_up) == [], "a service lacks a permission it needs"


async def _eventually_all_up(client: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        response = await client.get("/api/monitoring/health/system")
        body: dict[str, Any] = response.json()
        services = body.get("services", {})
        if services and all(s["status"] == "up" for s in services.values()):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"services not all up: {body}")
        await asyncio.sleep(0.2)


def test_passwords_stay_in_private_files(vigil_up: VigilProcess) -> None:
    """Never in argv, the environment, the console or the logs; the files are 0600."""
    passwords = natsauth.read_passwords(vigil_up.data_dir)
    assert passwords is not None and set(passwords) == set(natsauth.USERS)
    for path in (
        natsauth.credentials_path(vigil_up.data_dir),
        vigil_up.data_dir / "nats" / "nats-server.conf",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    users: dict[str, str] = {}
    for process in vigil_up.tree():
        try:
            argv = " ".join(process.cmdline())
            environ = process.environ()
        except psutil.Error:
            continue
        for password in passwords.values():
            assert password not in argv
            assert password not in "\n".join(environ.values()), argv
        if argv.split()[-2:-1] == ["run"]:
            users[argv.split()[-1]] = environ.get("VIGIL_NATS_USER", "")
    assert users == {service: service for service in SERVICE_USERS}, "each service as itself"
    written = "\n".join(vigil_up.lines)
    for log in (vigil_up.data_dir / "logs").glob("*.log"):
        written += log.read_text(errors="replace")
    written += (vigil_up.data_dir / "nats" / "nats-server.log").read_text(errors="replace")
    for password in passwords.values():
        assert password not in written
