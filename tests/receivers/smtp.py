"""A mail server on loopback (aiosmtpd) with STARTTLS or implicit TLS on a throw-away
certificate, AUTH, and a check of every message it accepts: RFC 5322 headers,
``multipart/alternative`` with a text and an HTML part, threading headers well formed.

It runs on the test's own event loop. ``fail_next(451)`` answers the next transaction
with a transient reply (421 and 451 are transient, 550 permanent) at the stage asked
for; ``delay_s`` holds the answer to DATA that long.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
import warnings
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.natsserver import free_port

Tls = Literal["starttls", "ssl", "none"]
Stage = Literal["MAIL", "RCPT", "DATA"]
MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
REPLIES = {
    421: "421 4.3.2 Service not available, closing transmission channel",
    450: "450 4.2.1 Mailbox busy",
    451: "451 4.3.0 Local error in processing, try again later",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Mailbox unavailable",
    552: "552 5.3.4 Message too big",
    554: "554 5.7.1 Transaction failed",
}


def self_signed_certificate(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate for ``name``, 127.0.0.1 and ::1, valid for a day; (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(name),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    user: str | None

    def header(self, name: str) -> str:
        return str(self.message[name] or "")

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                return str(part.get_content())
        raise KeyError(content_type)

    @property
    def text(self) -> str:
        return self.part("text/plain")

    @property
    def html(self) -> str:
        return self.part("text/html")


def check_message(message: EmailMessage) -> None:
    """What every message must be; raises ValueError naming the fault."""
    for name in ("From", "To", "Subject", "Date", "Message-ID"):
        if not message[name]:
            raise ValueError(f"no {name} header")
        if len(message.get_all(name) or []) != 1:
            raise ValueError(f"{name} appears more than once")
    for name in ("Message-ID", "In-Reply-To"):
        if message[name] and not MESSAGE_ID.match(str(message[name]).strip()):
            raise ValueError(f"{name} is not a msg-id: {message[name]!r}")
    for ref in str(message["References"] or "").split():
        if not MESSAGE_ID.match(ref):
            raise ValueError(f"References holds {ref!r}, not a msg-id")
    if message.get_content_type() != "multipart/alternative":
        raise ValueError(f"not multipart/alternative but {message.get_content_type()}")
    parts = [p.get_content_type() for p in message.iter_parts()]
    if parts != ["text/plain", "text/html"]:
        raise ValueError(f"parts are {parts}, not text then HTML")


@dataclass
class _Failure:
    code: int
    stage: Stage


@dataclass
class SmtpReceiver:
    """``async with SmtpReceiver(tmp_path, tls="starttls", username="u", password="p")``."""

    cert_dir: Path
    tls: Tls = "starttls"
    username: str | None = None
    password: str | None = None
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    delay_s: float = 0.0
    received: list[Mail] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    auth_failures: int = 0
    transactions: int = 0
    _failures: list[_Failure] = field(default_factory=list)
    _server: asyncio.AbstractServer | None = None

    def __post_init__(self) -> None:
        self.cert_file, self.key_file = self_signed_certificate(self.cert_dir)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def fail_next(self, code: int = 451, times: int = 1, stage: Stage = "DATA") -> None:
        self._failures.extend(_Failure(code, stage) for _ in range(times))

    async def wait_for(self, count: int = 1, within_s: float = 10.0) -> list[Mail]:
        deadline = asyncio.get_running_loop().time() + within_s
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{count} mails not received within {within_s}s; got "
                    f"{len(self.received)}, rejected {self.rejected}"
                )
            await asyncio.sleep(0.02)
        return list(self.received)

    # --- aiosmtpd handler hooks ---------------------------------------------------

    def _failure_at(self, stage: Stage) -> str | None:
        if self._failures and self._failures[0].stage == stage:
            return REPLIES[self._failures.pop(0).code]
        return None

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.transactions += 1
        if reply := self._failure_at("MAIL"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if reply := self._failure_at("RCPT"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if reply := self._failure_at("DATA"):
            return reply
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        try:
            check_message(message)
        except ValueError as exc:
            self.rejected.append(str(exc))
            return "554 5.6.0 " + str(exc).replace("\n", " ")[:200]
        login = session.auth_data if session.authenticated else None
        user = login.login.decode() if isinstance(login, LoginPassword) else None
        self.received.append(
            Mail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,
                tls=session.ssl is not None
                or (
                    server.transport is not None
                    and server.transport.get_extra_info("sslcontext") is not None
                ),
                user=user,
            )
        )
        return "250 2.0.0 Message accepted"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        ):
            return AuthResult(success=True, auth_data=data)
        self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    # --- lifecycle ------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def _protocol(self) -> SMTP:
        auth = self.username is not None
        with warnings.catch_warnings():  # AUTH without STARTTLS is what a test asks for
            warnings.simplefilter("ignore", UserWarning)
            return self._smtp(auth)

    def _smtp(self, auth: bool) -> SMTP:
        return SMTP(
            self,
            hostname="mail.test",
            decode_data=False,
            tls_context=self._tls_context() if self.tls == "starttls" else None,
            require_starttls=self.tls == "starttls",
            authenticator=self._authenticate if auth else None,
            auth_required=auth,
            # aiosmtpd knows of STARTTLS only; implicit TLS is TLS from the first byte
            auth_require_tls=self.tls == "starttls",
        )

    async def start(self) -> Self:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol,
            self.host,
            self.port,
            ssl=self._tls_context() if self.tls == "ssl" else None,
        )
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
