"""``vigil nats``: the NATS users' server config, their passwords, and the streams.

For deployments that run their own nats-server (compose): ``vigil nats config`` writes
the server config from the permission table, ``vigil nats passwords`` prints fresh
passwords for a ``.env`` file, and ``vigil nats streams`` creates the streams and
applies changed limits as the CLI user (services may create a missing stream, never
change one). ``vigil up`` does all of this by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def cmd_config(args: argparse.Namespace) -> int:
    from shared.natsauth import compose_server_config

    text = compose_server_config()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0


def cmd_passwords(args: argparse.Namespace) -> int:
    from shared.natsauth import env_file_lines

    print("\n".join(env_file_lines()))
    return 0


def cmd_streams(args: argparse.Namespace) -> int:
    from shared.bus import log_session
    from shared.natsauth import CLI_USER
    from shared.settings import Settings

    settings = Settings()
    if not settings.nats_url:
        print("vigil nats streams needs NATS_URL", file=sys.stderr)
        return 2
    if settings.nats_user is None:
        settings = settings.model_copy(update={"nats_user": CLI_USER})

    async def declare() -> None:
        async with log_session(settings, "streams"):
            pass

    asyncio.run(declare())
    print("streams declared")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    nats = sub.add_parser("nats", help="NATS users, their passwords, and the streams")
    actions = nats.add_subparsers(dest="nats_command", required=True)
    config = actions.add_parser("config", help="write the nats-server config of every user")
    config.add_argument("--output", type=Path, default=None, help="file (default: stdout)")
    config.set_defaults(func=cmd_config)
    passwords = actions.add_parser("passwords", help="print fresh passwords as .env lines")
    passwords.set_defaults(func=cmd_passwords)
    streams = actions.add_parser(
        "streams", help="create the streams and apply their limits (as the CLI user)"
    )
    streams.set_defaults(func=cmd_streams)
