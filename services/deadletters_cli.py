"""``vigil deadletters list`` and ``vigil deadletters retry``: what the consumers gave up on,
read from the log, and each handed to its consumer again in the running system.

The list works on a running system (``NATS_URL``) or a stopped one's data dir. A retry
asks the service that runs the dead letter's consumer (``vigil.cmd.deadletters.<service>
.retry``), like ``POST /api/monitoring/deadletters/{id}/retry`` does; the re-drive is
recorded in the log with who asked.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from dataclasses import dataclass
from pathlib import Path

from services.config_cli import CliError, open_log
from shared import subjects
from shared.bus import EventBus
from shared.commands import DeadLetterRetryResult, RetryDeadLetter
from shared.durables import owner_of
from shared.errors import VigilError
from shared.events import DeadLetterRetried, MessageDeadLettered
from shared.settings import Settings
from shared.streams import DEADLETTERS

RETRY_TIMEOUT_S = 90.0  # the handler may wait for a channel's answer


@dataclass
class Letter:
    record: MessageDeadLettered
    last: DeadLetterRetried | None = None


async def read_letters(bus: EventBus) -> dict[str, Letter]:
    """Every dead letter in the log, oldest first, with its latest re-drive."""
    letters: dict[str, Letter] = {}
    async for recorded in bus.replay(DEADLETTERS.name):
        event = recorded.event
        if isinstance(event, MessageDeadLettered):
            letters.setdefault(event.id, Letter(event))
        elif isinstance(event, DeadLetterRetried) and event.dead_letter_id in letters:
            letters[event.dead_letter_id].last = event
    return letters


def describe(letter: Letter) -> str:
    record = letter.record
    retried = "never re-driven"
    if letter.last is not None:
        last = letter.last
        retried = f"re-driven {last.attempt}x, last {last.outcome} by {last.by}"
    return (
        f"{record.id}  {record.time:%Y-%m-%d %H:%M:%S}  {record.consumer}  "
        f"{record.stream}#{record.stream_seq}  after {record.deliveries} deliveries  "
        f"{retried}\n    {record.error[:200]}"
    )


async def list_letters(settings: Settings, consumer: str | None) -> list[str]:
    async with open_log(settings, "deadletters-list") as (bus, _):
        letters = await read_letters(bus)
    shown = [describe(x) for x in letters.values() if consumer in (None, x.record.consumer)]
    return shown or ["no dead letters"]


def chosen(letters: dict[str, Letter], ids: list[str], consumer: str | None) -> list[Letter]:
    """The letters named, then every one of ``consumer`` not yet re-driven successfully."""
    missing = [i for i in ids if i not in letters]
    if missing:
        raise CliError(f"no dead letter {', '.join(missing)}")
    picked = [letters[i] for i in ids]
    if consumer is not None:
        picked += [
            x
            for x in letters.values()
            if x.record.consumer == consumer
            and (x.last is None or x.last.outcome != "succeeded")
            and x.record.id not in ids
        ]
    return picked


async def retry_one(bus: EventBus, letter: MessageDeadLettered, by: str) -> str:
    owner = owner_of(letter.consumer)
    if owner is None:
        return f"{letter.id}: no service of this version runs {letter.consumer!r}"
    command = RetryDeadLetter(
        dead_letter_id=letter.id,
        consumer=letter.consumer,
        stream=letter.stream,
        stream_seq=letter.stream_seq,
        subject=letter.subject,
        deliveries=letter.deliveries,
        payload=letter.payload,
        by=by,
    )
    try:
        reply = await bus.request(
            subjects.retry_dead_letter(owner), command.model_dump(), timeout=RETRY_TIMEOUT_S
        )
    except VigilError as exc:
        return f"{letter.id}: failed: {exc.message}"
    result = DeadLetterRetryResult.model_validate(reply)
    return f"{letter.id}: {result.outcome} (attempt {result.attempt}, from the {result.source})"


async def retry(settings: Settings, ids: list[str], consumer: str | None) -> tuple[list[str], bool]:
    if not settings.nats_url:
        raise CliError(
            "a re-drive runs in the service that owns the consumer: set NATS_URL to the "
            "running system's NATS (`vigil up` prints it as `vigil nats ready (...)`)"
        )
    by = f"cli:{getpass.getuser()}"
    async with open_log(settings, "deadletters-retry") as (bus, _):
        picked = chosen(await read_letters(bus), ids, consumer)
        lines = [await retry_one(bus, x.record, by) for x in picked]
    ok = all(": succeeded" in line for line in lines)
    return lines or ["nothing to re-drive"], ok


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings()
    return settings if data_dir is None else settings.model_copy(update={"data_dir": data_dir})


def cmd_list(args: argparse.Namespace) -> int:
    try:
        for line in asyncio.run(list_letters(_settings(args.data_dir), args.consumer)):
            print(line)
    except CliError as exc:
        print(f"vigil deadletters list: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if not args.ids and args.all_for_consumer is None:
        print(
            "vigil deadletters retry: give dead letter ids or --all-for-consumer", file=sys.stderr
        )
        return 2
    try:
        lines, ok = asyncio.run(retry(_settings(None), args.ids, args.all_for_consumer))
    except CliError as exc:
        print(f"vigil deadletters retry: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    letters = sub.add_parser("deadletters", help="messages the consumers gave up on")
    actions = letters.add_subparsers(dest="deadletters_command", required=True)
    listing = actions.add_parser("list", help="every dead letter, with its latest re-drive")
    listing.add_argument("--consumer", default=None, help="only this consumer's")
    listing.add_argument("--data-dir", type=Path, default=None, help="of a stopped system")
    listing.set_defaults(func=cmd_list)
    again = actions.add_parser(
        "retry", help="hand dead letters to their consumer again (needs NATS_URL)"
    )
    again.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids (see list)")
    again.add_argument(
        "--all-for-consumer",
        metavar="NAME",
        default=None,
        help="also every dead letter of this consumer not yet re-driven successfully",
    )
    again.set_defaults(func=cmd_retry)
