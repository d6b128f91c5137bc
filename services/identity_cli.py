"""``vigil user add|list|remove`` and ``vigil key create|list|revoke``.

They write to the log itself (IDENTITY), like the gateway does, so they work against the
data dir of a stopped system (its log is opened, as ``vigil rebuild`` does) or against a
running one (through its NATS: NATS_URL, or the embedded server of the data dir); a
running gateway applies the change within milliseconds. Passwords are read from a prompt
or from stdin, never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import re
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CLI_ACTOR = "cli"
DURATION = re.compile(r"^(\d+)([smhdw])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class CliError(Exception):
    """A problem to tell the user in one line (exit code 2)."""


def _nats_port(config_file: Path) -> int:
    text = config_file.read_text()
    found = re.search(r"^port:\s*(\d+)", text, re.MULTILINE)
    if found is None:
        raise CliError(f"{config_file} names no port")
    return int(found.group(1))


async def _connect(url: str, data_dir: Path) -> Any:
    """Log in as the CLI user when the system has NATS credentials."""
    from shared.bus import EventBus, connect
    from shared.natsauth import client_credentials

    nc = await connect(url, "vigil-cli", client_credentials(data_dir, "cli"))
    return EventBus(nc), nc


@contextlib.contextmanager
def located(data_dir: Path) -> Iterator[str]:
    """The NATS URL of this system's log: NATS_URL, the running system's embedded server,
    or (stopped) its store opened by a server of our own for the command's length."""
    from shared.datadir import DataDirError, DataDirInUse, DataDirLock
    from shared.natsserver import EmbeddedNats
    from shared.settings import Settings

    if Settings().nats_url:
        yield str(Settings().nats_url)
        return
    data_dir = data_dir.resolve()
    try:
        lock = DataDirLock(data_dir).acquire("vigil identity command")
    except DataDirInUse:  # running: use its server
        server = EmbeddedNats(data_dir / "nats")
        if not server.config_file.exists():
            raise CliError(f"data dir {data_dir} is in use but has no NATS config") from None
        yield f"nats://127.0.0.1:{_nats_port(server.config_file)}"
        return
    except DataDirError as exc:
        raise CliError(str(exc)) from None
    try:
        if not (data_dir / "nats").exists():
            raise CliError(f"{data_dir} holds no Vigil data (start it once with vigil up)")
        embedded = EmbeddedNats(data_dir / "nats").start()
        try:
            yield embedded.url
        finally:
            embedded.stop()
    finally:
        lock.release()


@contextlib.asynccontextmanager
async def open_log(args: argparse.Namespace) -> AsyncIterator[Any]:
    from shared.settings import Settings
    from shared.streams import ensure_streams

    bus, nc = await _connect(args.nats_url, args.data_dir)
    try:
        await ensure_streams(bus.js, Settings())
        yield bus
    finally:
        await nc.close()


async def _fold(bus: Any) -> Any:
    from services.gateway.identity.cache import IdentityCache
    from shared.streams import IDENTITY

    cache = IdentityCache()
    for subject in ("identity.users.>", "identity.keys.>"):
        async for recorded in bus.replay(IDENTITY.name, subject):
            cache.apply(recorded.event)
    return cache


def _read_password(from_stdin: bool) -> str:
    from services.gateway.identity.credentials import password_problem

    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the passwords differ")
    problem = password_problem(password)
    if problem:
        raise CliError(f"password: {problem}")
    return password


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    """``30d``, ``12h`` … from now, or an ISO time with a zone."""
    if text is None:
        return None
    found = DURATION.match(text.strip())
    if found:
        return now + timedelta(seconds=int(found.group(1)) * UNIT_S[found.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--expires: {text!r} is neither a duration (30d) nor an ISO time") from None
    if when.tzinfo is None:
        raise CliError("--expires: the time needs a zone (e.g. 2030-01-01T00:00:00Z)")
    return when


async def user_add(args: argparse.Namespace) -> str:
    from services.gateway.identity import ledger
    from services.gateway.identity.credentials import hash_password

    problem = ledger.user_name_problem(args.name)
    if problem:
        raise CliError(f"name: {problem}")
    password = _read_password(args.password_stdin)
    async with open_log(args) as bus:
        await ledger.create_user(bus, args.name, args.role, hash_password(password), CLI_ACTOR)
    return f"user {args.name} added ({args.role})"


async def user_list(args: argparse.Namespace) -> str:
    async with open_log(args) as bus:
        cache = await _fold(bus)
    rows = [
        f"{u.name}\t{u.role}\tcreated {u.created_at:%Y-%m-%d} by {u.created_by}"
        for u in sorted(cache.users.values(), key=lambda u: u.name)
    ]
    return "\n".join(rows) if rows else "no users"


async def user_remove(args: argparse.Namespace) -> str:
    from services.gateway.identity import ledger

    async with open_log(args) as bus:
        cache = await _fold(bus)
        user = cache.user_named(args.name)
        if user is None:
            raise CliError(f"name: no user {args.name!r}")
        now = datetime.now(UTC)
        if user.role == "admin" and cache.admins_left_without(now, user=user.name) == 0:
            raise CliError(f"{user.name} is the last administrator; make another one first")
        await ledger.remove_user(bus, user.name, CLI_ACTOR)
    return f"user {user.name} removed"


async def key_create(args: argparse.Namespace) -> str:
    from services.gateway.identity import ledger

    problem = ledger.key_name_problem(args.name)
    if problem:
        raise CliError(f"name: {problem}")
    expires_at = parse_expiry(args.expires, datetime.now(UTC))
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise CliError("--expires: must be in the future")
    async with open_log(args) as bus:
        created = await ledger.create_key(bus, args.name, args.role, CLI_ACTOR, expires_at)
    until = f", expires {expires_at.isoformat()}" if expires_at else ""
    print(
        f"key {created.event.key_id} ({args.name}, {args.role}{until}); it is shown only now:",
        file=sys.stderr,
    )
    return created.value


async def key_list(args: argparse.Namespace) -> str:
    async with open_log(args) as bus:
        cache = await _fold(bus)
    now = datetime.now(UTC)
    rows = []
    for key in sorted(cache.keys.values(), key=lambda k: k.created_at):
        state = "active" if key.active(now) else ("revoked" if key.revoked_at else "expired")
        expires = key.expires_at.isoformat() if key.expires_at else "never"
        rows.append(
            f"{key.key_id}\t{key.prefix}\t{key.name}\t{key.role}\t{state}\texpires {expires}"
        )
    return "\n".join(rows) if rows else "no keys"


async def key_revoke(args: argparse.Namespace) -> str:
    from services.gateway.identity import ledger

    async with open_log(args) as bus:
        await ledger.revoke_key(bus, args.key_id, CLI_ACTOR)
    return f"key {args.key_id} revoked"


def run(args: argparse.Namespace) -> int:
    from shared.errors import VigilError

    try:
        with located(args.data_dir) as url:
            args.nats_url = url
            print(asyncio.run(args.action(args)))
    except CliError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    except VigilError as exc:
        print(f"vigil: {exc.message}", file=sys.stderr)
        return 2
    return 0


def add_commands(sub: Any) -> None:
    """The ``user`` and ``key`` commands, added to the ``vigil`` parser."""
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", type=Path, default=Path(".vigil"))

    user = sub.add_parser("user", help="add, list or remove users")
    users = user.add_subparsers(dest="user_command", required=True)
    add = users.add_parser("add", parents=[data_dir], help="add a user (asks for the password)")
    add.add_argument("name")
    add.add_argument("--role", choices=("viewer", "responder", "admin"), default="viewer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.set_defaults(func=run, action=user_add)
    users.add_parser("list", parents=[data_dir]).set_defaults(func=run, action=user_list)
    remove = users.add_parser("remove", parents=[data_dir], help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(func=run, action=user_remove)

    key = sub.add_parser("key", help="create, list or revoke API keys")
    keys = key.add_subparsers(dest="key_command", required=True)
    create = keys.add_parser("create", parents=[data_dir], help="create a key (printed once)")
    create.add_argument("name")
    create.add_argument(
        "--role", choices=("viewer", "responder", "admin", "ingest"), default="viewer"
    )
    create.add_argument("--expires", help="30d, 12h … or an ISO time with a zone")
    create.set_defaults(func=run, action=key_create)
    keys.add_parser("list", parents=[data_dir]).set_defaults(func=run, action=key_list)
    revoke = keys.add_parser("revoke", parents=[data_dir], help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=run, action=key_revoke)
