"""Container health check: healthy once this container's service has sent a heartbeat.

    python deploy/heartbeat_check.py <service> [--within SECONDS]

Listens on ``vigil.heartbeat.<service>`` (core NATS, ``NATS_URL``, as the container's
NATS user) for a beat from
this host name — in compose, the container's own — so a replica is judged by its
own beats, not a sibling's. Exit status 0 when one arrives in time, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from shared import subjects
from shared.natsauth import env_credentials


async def heard(nats_url: str, service: str, within_s: float) -> bool:
    nc = Client()
    # the container's own NATS user (VIGIL_NATS_USER/PASSWORD) may hear its own beats
    credentials = env_credentials(os.environ, service)
    auth = credentials.connect_options() if credentials is not None else {}
    try:
        await asyncio.wait_for(
            nc.connect(nats_url, allow_reconnect=False, connect_timeout=2, **auth), within_s
        )
    except Exception:  # refused, unresolvable, timed out: not healthy (yet)
        await nc.close()
        return False
    beat: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    host = socket.gethostname()

    async def on_beat(msg: Msg) -> None:
        if orjson.loads(msg.data).get("host") == host and not beat.done():
            beat.set_result(True)

    try:
        await nc.subscribe(subjects.heartbeat(service), cb=on_beat)
        return await asyncio.wait_for(beat, within_s)
    except TimeoutError:
        return False
    finally:
        await nc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("service")
    parser.add_argument("--within", type=float, default=6.0, help="seconds to wait for a beat")
    args = parser.parse_args()
    nats_url = os.environ.get("NATS_URL") or os.environ.get("VIGIL_NATS_URL")
    if not nats_url:
        print("NATS_URL is not set", file=sys.stderr)
        return 1
    return 0 if asyncio.run(heard(nats_url, args.service, args.within)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
