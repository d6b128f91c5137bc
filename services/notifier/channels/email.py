"""Email channel: SMTP with STARTTLS, implicit TLS or neither, optional AUTH, and one
``multipart/alternative`` message (text and HTML) per notification.

Threading: the message that opens an alert or incident (``AlertFired``,
``IncidentOpened``) carries a root Message-ID derived from the alert's id and the
channel; every later message about it replies to that root (``In-Reply-To`` and
``References``). The root is derived, not stored, so updates thread even when the
opener's receipt was lost; ``notification.thread`` (what the opener's delivery
returned) wins when present. Every other Message-ID derives from the delivery id, so a
redelivered message has the id of the first attempt and mail systems can drop it.

The server's address is vetted by the outbound guard before connecting, and the
connection goes to the vetted address itself (TLS still verifies the configured name).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import logging
import re
import socket
import ssl
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from functools import lru_cache
from typing import Any

import aiohttp
import aiosmtplib

from services.notifier import templates
from services.notifier.channels.transport import Receipt
from services.notifier.domain import Notification
from shared import outbound
from shared.channelconfig import EmailChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError

log = logging.getLogger(__name__)

MESSAGE_DOMAIN = "vigil"
OPENING_EVENTS = frozenset({"AlertFired", "IncidentOpened"})
MAX_SUBJECT_CHARS = 200
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


# --- the message -------------------------------------------------------------------


def _msg_id(local: str) -> str:
    return f"<{_ID_UNSAFE.sub('_', local)}@{MESSAGE_DOMAIN}>"


def _subject(payload: dict[str, Any]) -> tuple[str, str] | None:
    for kind in ("alert", "incident"):
        body = payload.get(kind)
        if isinstance(body, dict) and body.get("id"):
            return kind, str(body["id"])
    return None


def thread_root(channel_name: str, notification: Notification) -> str | None:
    """The Message-ID that an alert's (or incident's) messages to this channel thread
    under: the stored one, else derived from the alert id and the channel, so two
    channels delivering to one mailbox do not send two messages with one id."""
    if notification.thread:
        return notification.thread
    subject = _subject(notification.payload)
    if subject is None:
        return None
    kind, ident = subject
    salt = hashlib.sha256(channel_name.encode()).hexdigest()[:8]
    return _msg_id(f"{kind}-{ident}.{salt}")


def message_id(channel_name: str, notification: Notification) -> str:
    root = thread_root(channel_name, notification)
    if root is not None and notification.event_type in OPENING_EVENTS:
        return root
    return _msg_id(notification.delivery_id)


def recipients(channel: EmailChannel, notification: Notification) -> list[str]:
    return [notification.recipient] if notification.recipient else list(channel.to)


def subject_line(channel: EmailChannel, notification: Notification) -> str:
    if channel.template and channel.template.title:
        title = templates.title_for(channel, notification)
    else:
        title = str(notification.payload.get("summary") or templates.headline(notification.payload))
    return templates.clip(" ".join(title.split()), MAX_SUBJECT_CHARS)


def _sections(channel: EmailChannel, notification: Notification) -> dict[str, Any]:
    payload = notification.payload
    return {
        "text": templates.text_for(channel, notification),
        "fields": templates.fields_of(payload),
        "dashboard": templates.dashboard_url(payload),
        "runbook": templates.runbook_url(payload),
        "digest": templates.digest_lines(notification),
    }


def plain_body(parts: dict[str, Any]) -> str:
    lines = [parts["text"], ""]
    lines += [f"{name}: {value}" for name, value in parts["fields"]]
    lines += ["", f"Open in Vigil: {parts['dashboard']}"]
    if parts["runbook"]:
        lines.append(f"Runbook: {parts['runbook']}")
    if parts["digest"]:
        lines += ["", *parts["digest"]]
    return "\n".join(lines).strip() + "\n"


def html_body(parts: dict[str, Any]) -> str:
    """The same content as HTML; every value is escaped, links only http(s)."""
    e = html.escape
    text = "<br>\n".join(e(line) for line in parts["text"].splitlines())
    rows = "".join(
        f"<tr><th align='left'>{e(name)}</th><td>{e(value)}</td></tr>"
        for name, value in parts["fields"]
    )
    links = [f'<a href="{e(parts["dashboard"])}">Open in Vigil</a>']
    if parts["runbook"]:
        links.append(f'<a href="{e(parts["runbook"])}">Runbook</a>')
    digest = ""
    if parts["digest"]:
        head, *items = parts["digest"]
        listed = "".join(f"<li>{e(item.removeprefix('• '))}</li>" for item in items)
        digest = f"<p>{e(head)}</p><ul>{listed}</ul>"
    return (
        "<!DOCTYPE html><html><body>"
        f"<p>{text}</p><table>{rows}</table><p>{' | '.join(links)}</p>{digest}"
        "</body></html>\n"
    )


def message_for(
    channel: EmailChannel, notification: Notification, now: datetime | None = None
) -> tuple[EmailMessage, str | None]:
    """The message and the thread root it belongs to (None: it belongs to no thread)."""
    parts = _sections(channel, notification)
    message = EmailMessage()
    message["Subject"] = subject_line(channel, notification)
    message["From"] = channel.from_address
    message["To"] = ", ".join(recipients(channel, notification))
    message["Date"] = format_datetime(now or datetime.now(UTC))
    own_id = message_id(channel.name, notification)
    message["Message-ID"] = own_id
    root = thread_root(channel.name, notification)
    if root is not None and root != own_id:
        message["In-Reply-To"] = root
        message["References"] = root
    message["X-Vigil-Event"] = notification.event_type
    message["X-Vigil-Delivery"] = notification.delivery_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    message.set_content(plain_body(parts))
    message.add_alternative(html_body(parts), subtype="html")
    return message, root


# --- sending ---------------------------------------------------------------------------

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


@lru_cache(maxsize=16)
def _tls_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file or None)


def tls_context(channel: EmailChannel) -> ssl.SSLContext:
    try:
        return _tls_context(channel.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PermanentDeliveryError(f"ca_file cannot be read: {exc.strerror or exc}") from None


async def _connect(guard: outbound.OutboundGuard, host: str, port: int) -> socket.socket:
    """A socket connected to the first address of ``host`` the guard allows."""
    loop = asyncio.get_running_loop()
    failure: OSError | None = None
    for address in await guard.addresses(host, port):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (address, port))
        except OSError as exc:
            sock.close()
            failure = exc
            continue
        except BaseException:  # cancelled: the deadline passed
            sock.close()
            raise
        return sock
    raise failure or OSError("the host name has no address")


def _reply_error(code: int, what: str) -> PermanentDeliveryError | TransientDeliveryError:
    """4xx: try again later; 5xx: the server will not take it (RFC 5321 4.2.1)."""
    text = f"SMTP {code}: {what}"
    if 400 <= code < 500:
        return TransientDeliveryError(text)
    return PermanentDeliveryError(text)


def _delivery_error(exc: BaseException, timeout_s: float) -> Exception:
    """A fixed description: never the server's own reply text, which may be anything."""
    if isinstance(exc, outbound.OutboundRefused):
        return PermanentDeliveryError(exc.description)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in exc.recipients]
        code = min(codes) if codes else 550
        return _reply_error(code, "the server refused the recipients")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return _reply_error(exc.code, "authentication failed")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return TransientDeliveryError("the server closed the connection")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 400:
        return _reply_error(exc.code, "the server refused the message")
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return TransientDeliveryError(f"timed out after {timeout_s:g}s")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentDeliveryError("the server does not support STARTTLS or AUTH as configured")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransientDeliveryError("TLS certificate not trusted")
    if isinstance(exc, ssl.SSLError):
        return TransientDeliveryError("TLS handshake failed")
    if isinstance(exc, socket.gaierror):
        return TransientDeliveryError("the host name does not resolve")
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return TransientDeliveryError("cannot connect")
    if isinstance(exc, OSError):
        reason = exc.strerror.lower() if exc.strerror else "connection failed"
        return TransientDeliveryError(f"cannot connect: {reason}")
    return TransientDeliveryError(f"SMTP failed: {type(exc).__name__}")


def recipients_of(message: EmailMessage) -> list[str]:
    return [address for _, address in getaddresses([str(message["To"] or "")])]


def _check_refused(channel: EmailChannel, refused: dict[str, Any], total: int) -> None:
    """Some recipients refused, the rest accepted. A deferral (4xx) is tried again for
    all: those who have it already see a duplicate with the same Message-ID, which beats
    a page that never reaches the one who is deferred. A refusal (5xx) of some will not
    mend by retrying: logged, and the delivery counts for those who got it."""
    if not refused:
        return
    codes = [int(getattr(reply, "code", 550)) for reply in refused.values()]
    deferred = [code for code in codes if 400 <= code < 500]
    if deferred:
        raise TransientDeliveryError(
            f"SMTP {deferred[0]}: the server deferred {len(deferred)} of {total} recipients"
        )
    log.warning(
        "the mail server refused some recipients",
        extra={"channel": channel.name, "refused": sorted(refused), "codes": codes},
    )


async def _send(
    session: aiohttp.ClientSession, channel: EmailChannel, message: EmailMessage
) -> None:
    port = channel.port or DEFAULT_PORTS[channel.tls]
    context = tls_context(channel) if channel.tls != "none" else None
    sock = await _connect(outbound.guard_of(session), channel.host, port)
    # from here the connection's transport owns the socket and closes it: closing it
    # here as well would free its descriptor while the transport still holds it
    client = aiosmtplib.SMTP(
        hostname=channel.host,  # what TLS verifies; the socket is connected already
        sock=sock,
        use_tls=channel.tls == "ssl",
        start_tls=channel.tls == "starttls",
        tls_context=context,
        local_hostname=socket.gethostname() or "vigil",
        timeout=channel.timeout_s,
    )
    try:
        await client.connect()
        if channel.username:
            await client.login(channel.username, channel.password)
        refused, _ = await client.send_message(message)
        _check_refused(channel, refused, len(recipients_of(message)))
        # delivered already: a server that hangs up at QUIT changes nothing
        with contextlib.suppress(aiosmtplib.SMTPException):
            await client.quit()
    finally:
        client.close()


async def deliver(
    session: aiohttp.ClientSession, channel: EmailChannel, notification: Notification
) -> Receipt:
    message, root = message_for(channel, notification)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(channel.timeout_s):
            await _send(session, channel, message)
    except (PermanentDeliveryError, TransientDeliveryError):
        raise
    except (TimeoutError, OSError, aiosmtplib.SMTPException) as exc:
        raise _delivery_error(exc, channel.timeout_s) from exc
    return Receipt(status_code=250, latency_ms=(time.perf_counter() - started) * 1000, thread=root)
