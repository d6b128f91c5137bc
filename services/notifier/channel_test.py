"""A test message through one channel, on an admin's request: the channel's own transport,
sent once, now, outside the ledger and the retries, so the answer is the receiver's."""

from __future__ import annotations

import re
import time
from typing import Any

from services.notifier.domain import Notification
from services.notifier.handlers import NotificationDispatcher
from shared.channelconfig import ChannelBase
from shared.commands import ChannelTestResult, SendChannelTest, parse_command
from shared.errors import NotFound, VigilError
from shared.events import derived_id, new_id, utcnow

TEST_EVENT = "ChannelTest"
_STATUS = re.compile(r"\bHTTP (\d{3})\b")


def marked_test_message(channel: ChannelBase, by: str) -> Notification:
    """Shaped like an alert's notification (templates and transports render it as they
    would a page) and marked as a test in every place a reader looks: the summary, the
    rule, the labels and ``test: true``."""
    event_id = new_id()
    summary = f"Vigil test message from {by}"
    payload: dict[str, Any] = {
        "event": TEST_EVENT,
        "event_id": event_id,
        "time": utcnow().isoformat(),
        "summary": summary,
        "test": True,
        "alert": {
            "id": f"test-{channel.name}",
            "rule": "Vigil test message",
            "severity": "info",
            "metric": "vigil.test",
            "labels": {"vigil_test": "true", "requested_by": by},
            "labels_truncated": False,
            "fingerprint": derived_id("channel-test", channel.name),
            "value": None,
            "threshold": None,
            "status": "firing",
            "summary": summary,
        },
    }
    return Notification(
        delivery_id=derived_id("channel-test", channel.name, event_id),
        event_id=event_id,
        event_type=TEST_EVENT,
        payload=payload,
    )


def _status_in(message: str) -> int | None:
    found = _STATUS.search(message)
    return int(found.group(1)) if found else None


async def send_test(dispatcher: NotificationDispatcher, body: dict[str, Any]) -> dict[str, Any]:
    command = parse_command(SendChannelTest, body)
    channel = dispatcher.channels.get(command.name)
    if channel is None:
        raise NotFound(f"name: no channel {command.name!r}", field="name")
    transport = dispatcher.transports[channel.type]
    started = time.perf_counter()
    try:
        message = marked_test_message(channel, command.by)
        receipt = await transport(dispatcher.session, channel, message)
    except VigilError as exc:  # the transports' delivery errors, transient or permanent
        return ChannelTestResult(
            channel=channel.name,
            delivered=False,
            status_code=_status_in(exc.message),
            latency_ms=(time.perf_counter() - started) * 1000,
            error=exc.message,
        ).model_dump()
    return ChannelTestResult(
        channel=channel.name,
        delivered=True,
        status_code=receipt.status_code,
        latency_ms=receipt.latency_ms,
    ).model_dump()
