"""Re-driving dead letters: the service that runs a consumer hands a message it gave up
on to that consumer's handler once more, when an operator asks.

The handler gets the message as the stream still holds it (the dead letter's copy only
when the stream has let it go), with a ``Delivery`` marked ``redrive``: handlers are
idempotent, so one that already applied the message applies it again harmlessly, and
one that settled it for good (a notification marked failed) can reopen it. Every
re-drive, successful or not, is recorded as a ``DeadLetterRetried`` on the dead letter's
own subject, whose length is the retry counter; two concurrent re-drives of one dead
letter cannot both record the same attempt.

Checkpointed read models (batched consumers) are not re-driven: their checkpoint is past
the message, so the handler would skip it. They are rebuilt from the log instead.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import Any, Literal

from nats.js.errors import NotFoundError

from shared import subjects
from shared.bus import EventBus
from shared.commands import DeadLetterRetryResult, RetryDeadLetter, parse_command
from shared.consumer import ConsumerSpec, Delivery, Handler, dead_letter_id
from shared.errors import Conflict, InvalidInput, NotFound, Unavailable, VigilError
from shared.events import DeadLetterRetried, UndecodableEvent, decode_event, derived_id
from shared.faults import environmental_cause
from shared.streams import DEADLETTERS

log = logging.getLogger(__name__)

Source = Literal["stream", "payload"]


class RedriveFailed(VigilError):
    """The handler failed again: the dead letter stays, the reason is the answer (502)."""

    kind = "redrive_failed"
    http_status = 502


class Redriver:
    """Answers ``vigil.cmd.deadletters.<service>.retry`` for the consumers of one service."""

    def __init__(self, service: str, bus: Callable[[], EventBus]):
        self.service = service
        self._bus = bus
        self._handlers: dict[str, tuple[ConsumerSpec, Handler]] = {}
        self._read_models: set[str] = set()

    @property
    def subject(self) -> str:
        return subjects.retry_dead_letter(self.service)

    @property
    def consumers(self) -> list[str]:
        return sorted([*self._handlers, *self._read_models])

    def add(self, spec: ConsumerSpec, handler: Handler) -> None:
        self._handlers[spec.durable] = (spec, handler)

    def add_read_model(self, spec: ConsumerSpec) -> None:
        self._read_models.add(spec.durable)

    async def retry(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(RetryDeadLetter, body)
        spec, handler = self._handler_for(command)
        bus = self._bus()
        data, source = await self._original(bus, command)
        attempt, last_seq = await self._attempts(bus, command)
        delivery = Delivery(
            stream=command.stream,
            subject=command.subject,
            stream_seq=command.stream_seq,
            # past the first delivery: handlers consult what they recorded before
            deliveries=command.deliveries + 1,
            consumer=spec.durable,
            redrive=True,
        )
        failure: VigilError | None = None
        try:
            await handler(decode_event(data), delivery)
        except UndecodableEvent as exc:
            failure = Conflict(f"dead letter {command.dead_letter_id}: not an event ({exc})")
        except Exception as exc:
            cause = environmental_cause(exc)
            if cause is not None:  # not the message's fault: nothing to record
                raise Unavailable(f"{spec.durable} cannot work now: {cause}") from exc
            failure = RedriveFailed(
                f"{spec.durable} failed again on dead letter {command.dead_letter_id}: "
                f"{type(exc).__name__}: {exc}"[:1000]
            )
        record = DeadLetterRetried(
            id=derived_id("dead-letter-retry", command.dead_letter_id, attempt),
            aggregate_id=command.dead_letter_id,
            version=attempt,
            dead_letter_id=command.dead_letter_id,
            consumer=spec.durable,
            attempt=attempt,
            by=command.by,
            outcome="failed" if failure is not None else "succeeded",
            error="" if failure is None else failure.message[:2000],
            source=source,
        )
        seq = await bus.publish(
            subjects.dead_letter_retries(spec.durable, command.dead_letter_id),
            record,
            expected_last_subject_seq=last_seq,
        )
        log.info(
            "dead letter re-driven",
            extra={
                "consumer": spec.durable,
                "dead_letter": command.dead_letter_id,
                "attempt": attempt,
                "outcome": record.outcome,
                "by": command.by,
            },
        )
        if failure is not None:
            raise failure
        return DeadLetterRetryResult(
            dead_letter_id=command.dead_letter_id,
            consumer=spec.durable,
            attempt=attempt,
            outcome=record.outcome,
            source=source,
            seq=seq,
            stream=DEADLETTERS.name,
        ).model_dump()

    def _handler_for(self, command: RetryDeadLetter) -> tuple[ConsumerSpec, Handler]:
        if command.consumer in self._read_models:
            raise Conflict(
                f"consumer: {command.consumer} is a read model with a checkpoint past the "
                f"message; rebuild it (`vigil rebuild {self.service}`) instead",
                field="consumer",
            )
        found = self._handlers.get(command.consumer)
        if found is None:
            raise NotFound(
                f"consumer: {self.service} runs no consumer {command.consumer!r}", field="consumer"
            )
        spec = found[0]
        expected = dead_letter_id(spec, command.stream, command.stream_seq)
        if command.stream != spec.stream.name or command.dead_letter_id != expected:
            raise InvalidInput(
                "dead_letter_id: does not match the consumer, stream and sequence given",
                field="dead_letter_id",
            )
        return found

    async def _original(self, bus: EventBus, command: RetryDeadLetter) -> tuple[bytes, Source]:
        """The message as the stream holds it; the dead letter's copy once it is gone."""
        try:
            raw = await bus.js.get_msg(command.stream, seq=command.stream_seq, direct=True)
        except NotFoundError:
            raw = None
        if raw is not None and raw.data is not None:
            return raw.data, "stream"
        payload = command.payload
        if payload.startswith("base64:"):
            try:
                return base64.b64decode(payload.removeprefix("base64:"), validate=True), "payload"
            except binascii.Error as exc:
                raise InvalidInput("payload: not valid base64", field="payload") from exc
        return payload.encode(), "payload"

    async def _attempts(self, bus: EventBus, command: RetryDeadLetter) -> tuple[int, int]:
        """This re-drive's number, and the last sequence of the dead letter's retries."""
        subject = subjects.dead_letter_retries(command.consumer, command.dead_letter_id)
        earlier = await bus.read_subject(subject)
        return len(earlier) + 1, earlier[-1].seq if earlier else 0
