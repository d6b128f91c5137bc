"""The gateway serving HTTPS itself: a real TLS handshake with a certificate made here,
the agent trusting exactly that certificate, and a wrong pair stopping the start."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import nats.js.errors
import pytest

from services.gateway.app import build_gateway
from services.metrics.agent import GatewaySink, HostBatch, host_batch
from shared.errors import TransientDeliveryError
from shared.events import Sample
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN_KEY
from tests.gateway.surface_server import PROBE, Served, self_signed, serve


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@pytest.fixture
async def tls_served(
    gateway_settings: Settings, start_service: RuntimeFactory, tmp_path: Path
) -> tuple[Served, Path]:
    cert, key = self_signed(tmp_path / "tls")
    settings = gateway_settings.model_copy(update={"tls_cert": cert, "tls_key": key})
    return await serve(settings, start_service), cert


async def test_the_gateway_serves_https_with_its_certificate(
    tls_served: tuple[Served, Path],
) -> None:
    served, cert = tls_served
    assert served.url.startswith("https://127.0.0.1:")
    async with httpx.AsyncClient(base_url=served.url, verify=trusting(cert)) as http:
        health = await http.get("/health")
        assert health.status_code == 200
        stream = health.extensions["network_stream"]
        assert stream.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
        seen = (await http.get(f"{PROBE}/client")).json()
    assert seen["scheme"] == "https" and seen["secure"] is True


async def test_a_client_that_does_not_trust_the_certificate_is_refused(
    tls_served: tuple[Served, Path],
) -> None:
    served, _ = tls_served
    async with httpx.AsyncClient(base_url=served.url) as http:  # the system's CAs only
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get("/health")


async def test_plain_http_gets_no_answer_on_the_https_port(
    tls_served: tuple[Served, Path],
) -> None:
    served, _ = tls_served
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.HTTPError):
            response = await http.get(f"http://127.0.0.1:{served.settings.port}/health")
            assert response.status_code != 200  # never an answer to plain HTTP


def batch() -> HostBatch:
    return host_batch("tls-test", [Sample(name="system_cpu_percent", value=12.5)])


async def test_the_agent_trusts_exactly_the_gateways_certificate(
    gateway_settings: Settings, start_service: RuntimeFactory, tmp_path: Path
) -> None:
    """Even one naming another host than 127.0.0.1: the certificate is pinned."""
    cert, key = self_signed(tmp_path / "tls", names=("vigil.example.com",), loopback=False)
    settings = gateway_settings.model_copy(update={"tls_cert": cert, "tls_key": key})
    served = await serve(settings, start_service)
    await GatewaySink(served.url, ca_file=str(cert), key=ADMIN_KEY).send(batch())
    await served.gateway.state.bus().js.get_last_msg("METRICS", "metrics.samples.api")

    other, _ = self_signed(tmp_path / "other", names=("vigil.example.com",), loopback=False)
    with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        await GatewaySink(served.url, ca_file=str(other), key=ADMIN_KEY).send(batch())


async def test_the_agent_refuses_an_unknown_certificate_without_one_to_trust(
    tls_served: tuple[Served, Path],
) -> None:
    served, _ = tls_served
    with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        await GatewaySink(served.url).send(batch())
    with pytest.raises(nats.js.errors.NotFoundError):
        await served.gateway.state.bus().js.get_last_msg("METRICS", "metrics.samples.api")


def test_a_certificate_and_key_that_do_not_belong_together_stop_the_start(
    gateway_settings: Settings, tmp_path: Path
) -> None:
    cert, _ = self_signed(tmp_path / "one")
    _, key = self_signed(tmp_path / "two")
    settings = gateway_settings.model_copy(update={"tls_cert": cert, "tls_key": key})
    with pytest.raises(RuntimeError, match=r"VIGIL_TLS_CERT=.*cannot be loaded"):
        build_gateway(settings)
