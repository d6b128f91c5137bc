"""A gateway with its HTTP surface installed, served by uvicorn on a free port, and
certificates made on the spot for its TLS tests."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import Body, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import surface
from services.gateway.app import Gateway, build_gateway
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

PROBE = "/_probe"


@dataclass(frozen=True)
class Answered:
    method: str
    path: str
    status: int


class AnswerLog:
    """Outermost ASGI layer: every answer the server gave, as the client got it."""

    def __init__(self, app: ASGIApp, answers: list[Answered]):
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.answers.append(Answered(scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, noted)


@dataclass
class Served:
    gateway: Gateway
    settings: Settings
    answers: list[Answered] = field(default_factory=list)

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls_enabled else "http"
        return f"{scheme}://127.0.0.1:{self.settings.port}"


def add_probes(gateway: Gateway) -> None:
    """Routes that show what the surface made of a request, and accept what they declare."""
    app = gateway.app

    @app.get(f"{PROBE}/client")
    async def client(request: Request) -> dict[str, Any]:
        return {
            "client": surface.client_address(request),
            "secure": surface.request_is_secure(request),
            "peer": request.client.host if request.client else None,
            "scheme": request.url.scheme,
        }

    @app.post(f"{PROBE}/json")
    async def json_body(body: dict[str, Any] = Body()) -> dict[str, Any]:
        return {"received": body}

    @app.post(f"{PROBE}/bodyless")
    async def bodyless() -> dict[str, bool]:
        return {"ran": True}

    @app.post(
        f"{PROBE}/proto",
        openapi_extra={
            "requestBody": {"content": {"application/x-protobuf": {"schema": {"type": "string"}}}}
        },
    )
    async def proto(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}


async def serve(settings: Settings, start_service: RuntimeFactory) -> Served:
    gateway = build_gateway(settings)
    add_probes(gateway)
    surface.install(gateway.app, gateway.state)
    served = Served(gateway, settings)
    gateway.app.add_middleware(AnswerLog, answers=served.answers)
    await start_service(gateway.runtime)
    await eventually(lambda: gateway.http.started, what="the HTTP server to listen")
    return served


def self_signed(
    directory: Path, names: tuple[str, ...] = ("localhost",), loopback: bool = True
) -> tuple[Path, Path]:
    """A fresh key and a self-signed certificate for ``names`` (and 127.0.0.1 unless
    ``loopback`` is false), as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    alternatives: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    if loopback:
        alternatives.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file
