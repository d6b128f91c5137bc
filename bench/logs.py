"""Logs: ingest through the HTTP API into the log store, search latency over many stored
lines, and the bytes a stored line takes next to its raw JSON.

``ingest`` assumes a running Vigil (``vigil up``) at --url: N senders POST batches of
realistic lines for a while; the figures are lines accepted per second and lines stored
per second (until a marker line sent last is found by a search, the store consumer
being ordered).

``store`` fills a log store directly (the consumer's own write path, without the
network), then times searches of several kinds and reports p50/p99 and the size:

    python bench/logs.py ingest --url http://127.0.0.1:8080 --senders 4 --duration 20
    python bench/logs.py store --lines 1000000 --path /tmp/logs-bench.db
    python bench/logs.py store --lines 200000 --database-url postgresql://postgres@127.0.0.1/x
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from auth import add_key_argument, auth_headers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.metrics.logs import reads
from services.metrics.logs.store import LogStore
from shared.commands import LogHistogram, SearchLogs
from shared.db import create_engine
from shared.events import LogsIngested
from shared.settings import Settings

LOGS_PATH = "/api/monitoring/logs"
SERVICES = ("api", "web", "payments", "orders", "auth", "search", "mailer", "worker")
HOSTS = tuple(f"{kind}-{n}" for kind in ("web", "app", "db") for n in range(1, 7))
USERS = tuple(f"user{n}" for n in range(2000))
LEVELS = ("debug", "info", "info", "info", "info", "info", "info", "warn", "warn", "error")


def message(rng: random.Random) -> str:
    pick = rng.random()
    order = rng.randrange(10**6)
    ms = rng.randrange(1, 2000)
    if pick < 0.30:
        path = rng.choice(("orders", "users", "carts", "products", "invoices"))
        status = rng.choice((200, 200, 200, 201, 204, 304, 400, 404, 500))
        return f"GET /api/v1/{path}/{order} {status} {ms}ms"
    if pick < 0.45:
        return f"{rng.choice(USERS)} logged in from 10.{rng.randrange(256)}.{rng.randrange(256)}.7"
    if pick < 0.55:
        return (
            f"connection refused to db-{rng.randrange(1, 7)}:5432, retrying in "
            f"{rng.randrange(1, 30)}s (attempt {rng.randrange(1, 5)})"
        )
    if pick < 0.65:
        return f"worker {rng.randrange(32)} processed job {order} in {ms} ms"
    if pick < 0.73:
        return f"cache miss for key session:{rng.getrandbits(64):016x}"
    if pick < 0.80:
        reason = rng.choice(("card expired", "insufficient funds", "fraud suspected"))
        return f"payment {order} declined: {reason}"
    if pick < 0.90:
        return (
            f"slow query took {ms} ms: SELECT * FROM orders WHERE customer_id = {order} "
            "ORDER BY created_at DESC LIMIT 50"
        )
    if pick < 0.9995:
        return f"request timeout after {ms} ms calling {rng.choice(SERVICES)} upstream"
    return (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/handlers.py", line 214, in handle\n'
        "    total = int(form['quantity'])\n"
        f"ValueError: invalid literal for int() with base 10: 'x{order}'\n"
        "disk full on /var/lib/postgresql"
    )


def entry(rng: random.Random, stamp: float | None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "message": message(rng),
        "level": rng.choice(LEVELS),
        "service": rng.choice(SERVICES),
        "labels": {"host": rng.choice(HOSTS), "env": "prod"},
    }
    if stamp is not None:
        line["timestamp"] = stamp
    if rng.random() < 0.3:
        line["fields"] = {"request_id": uuid.UUID(int=rng.getrandbits(128)).hex, "ms": 12}
    if rng.random() < 0.2:
        line["trace_id"] = f"{rng.getrandbits(128):032x}"
        line["span_id"] = f"{rng.getrandbits(64):016x}"
    return line


# --- ingest through the API ---------------------------------------------------------


async def send_until(
    session: aiohttp.ClientSession, url: str, bodies: list[bytes], size: int, stop_at: float
) -> tuple[int, int, int]:
    accepted = failures = throttled = 0
    n = 0
    while time.monotonic() < stop_at:
        body = bodies[n % len(bodies)]
        n += 1
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            await response.read()
            if response.status == 202:
                accepted += size
            elif response.status == 429:  # the store is behind: wait as asked
                throttled += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            else:
                failures += 1
                if failures < 3:
                    print(f"POST answered {response.status}: {(await response.text())[:200]}")
    return accepted, failures, throttled


async def ingest(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    bodies = [
        orjson.dumps([entry(rng, None) for _ in range(args.batch)]) for _ in range(args.bodies)
    ]
    raw = sum(len(b) for b in bodies) / (len(bodies) * args.batch)
    marker = f"marker{uuid.uuid4().hex}"
    url = args.url.rstrip("/")
    headers = auth_headers(args.key)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        began = time.monotonic()
        stop_at = began + args.duration
        results = await asyncio.gather(
            *(
                send_until(session, url + LOGS_PATH, bodies, args.batch, stop_at)
                for _ in range(args.senders)
            )
        )
        sent_for = time.monotonic() - began
        async with session.post(url + LOGS_PATH, json={"message": marker}) as response:
            assert response.status == 202, await response.text()
        while True:
            async with session.get(url + LOGS_PATH, params={"q": marker}) as response:
                found = (await response.json()).get("entries", [])
            if found:
                break
            await asyncio.sleep(0.05)
        stored_after = time.monotonic() - began
    accepted = sum(a for a, _, _ in results)
    failures = sum(f for _, f, _ in results)
    throttled = sum(t for _, _, t in results)
    print(
        f"senders {args.senders}, {args.batch} lines a batch, {raw:.0f} bytes of JSON a line\n"
        f"accepted {accepted} lines in {sent_for:.1f} s: {accepted / sent_for:,.0f} lines/s "
        f"({failures} failed POSTs, {throttled} answered 429)\n"
        f"stored (found by search) after {stored_after:.1f} s: "
        f"{accepted / stored_after:,.0f} lines/s end to end"
    )


# --- the store: fill, search, size --------------------------------------------------


def batches(total: int, per_batch: int, span_s: float, now: float) -> Iterator[list[Any]]:
    """Validated entries in time order over ``span_s`` ending a minute before ``now``."""
    from services.gateway.logs.batch import LOG_BATCH

    rng = random.Random(11)
    start = now - 60 - span_s
    made = 0
    while made < total:
        size = min(per_batch, total - made)
        raw = [entry(rng, start + span_s * (made + k) / total) for k in range(size)]
        made += size
        yield LOG_BATCH.validate_python(raw)


def raw_bytes_per_line(sample: int = 20_000) -> float:
    rng = random.Random(11)
    start = time.time()
    return sum(len(orjson.dumps(entry(rng, start))) for _ in range(sample)) / sample


async def fill(store: LogStore, total: int, span_s: float) -> float:
    now = time.time()
    began = time.monotonic()
    seq = await store.last_seq()
    pending: list[tuple[int, LogsIngested]] = []
    done = 0
    for entries in batches(total, 10_000, span_s, now):
        seq += 1
        pending.append(
            (
                seq,
                LogsIngested.of_validated(
                    entries, aggregate_id="bench", received_at=now, id=str(seq)
                ),
            )
        )
        if len(pending) == 4:
            await store.store_sequenced(pending)
            done += sum(len(b.entries) for _, b in pending)
            pending = []
            if done % 500_000 < 40_000:
                rate = done / (time.monotonic() - began)
                print(f"  stored {done:,} lines ({rate:,.0f} lines/s)", flush=True)
    if pending:
        await store.store_sequenced(pending)
    return time.monotonic() - began


Query = Callable[[random.Random, float], SearchLogs]


def queries() -> dict[str, Query]:
    hour = 3600.0
    return {
        "rare word": lambda r, now: SearchLogs(q="disk"),
        "user (1 in 2000)": lambda r, now: SearchLogs(q=r.choice(USERS)),
        "common word": lambda r, now: SearchLogs(q="GET"),
        "phrase": lambda r, now: SearchLogs(q='"connection refused"'),
        "AND/OR/NOT": lambda r, now: SearchLogs(q="(timeout OR refused) -cache db"),
        "word + service + level": lambda r, now: SearchLogs(
            q="declined", services=[r.choice(SERVICES)], levels=["error", "warn"]
        ),
        "word in the last hour": lambda r, now: SearchLogs(q="refused", start=now - hour),
        "word, a day ago": lambda r, now: SearchLogs(
            q="timeout", start=now - 25 * hour, end=now - 24 * hour
        ),
        "no text, level error": lambda r, now: SearchLogs(levels=["error"]),
        "no text, host label": lambda r, now: SearchLogs(labels={"host": r.choice(HOSTS)}),
        "only NOT": lambda r, now: SearchLogs(q="-GET"),
        "page 5 of a word": lambda r, now: SearchLogs(q="payment"),
    }


async def timed_search(store: LogStore, query: SearchLogs, pages: int = 1) -> float:
    began = time.perf_counter()
    cursor = None
    for _ in range(pages):
        page = await reads.search(store, query.model_copy(update={"cursor": cursor}))
        cursor = page["next_cursor"]
    return (time.perf_counter() - began) * 1000


async def search_latency(store: LogStore, runs: int) -> list[float]:
    rng = random.Random(3)
    now = time.time()
    every: list[float] = []
    print(f"{'query':28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, make in queries().items():
        pages = 5 if name.startswith("page 5") else 1
        await timed_search(store, make(rng, now), pages)  # warm
        times = sorted([await timed_search(store, make(rng, now), pages) for _ in range(runs)])
        every += times
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{name:28} {statistics.median(times):8.1f} {p99:8.1f} {times[-1]:8.1f}")
    return every


async def histogram_latency(store: LogStore) -> None:
    now = time.time()
    for label, query in (
        ("histogram 1 h, all lines", LogHistogram(start=now - 3600, end=now, step=30)),
        (
            "histogram 24 h, q=refused",
            LogHistogram(start=now - 86_400, end=now, step=600, q="refused"),
        ),
    ):
        began = time.perf_counter()
        await reads.histogram(store, query)
        print(f"{label:28} {(time.perf_counter() - began) * 1000:8.1f} ms")


async def sqlite_size(store: LogStore, path: Path) -> tuple[int, dict[str, int]]:
    async with store.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        parts: dict[str, int] = {}
        try:
            cursor = await driver.execute(
                "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            )
            for name, size in await cursor.fetchall():
                parts[name] = int(size)
        except Exception as exc:  # dbstat is a compile-time option
            print(f"(no per-table sizes: {exc})")
    return file_size(path), parts


def file_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def sqlite_url(path: Path, fresh: bool) -> str:
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite+aiosqlite:///{path.resolve()}"


async def postgres_size(store: LogStore) -> int:
    async with store.engine.connect() as conn:
        result = await conn.exec_driver_sql(
            "SELECT sum(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relname LIKE 'metrics_logs%%' AND relkind = 'r'"
        )
        return int(result.scalar_one() or 0)


async def store_bench(args: argparse.Namespace) -> None:
    url = args.database_url or sqlite_url(Path(args.path), args.fresh)
    store = LogStore(create_engine(url), Settings())
    await store.open()
    try:
        have = await store.count()
        if have < args.lines:
            print(f"filling: {args.lines - have:,} lines over {args.span_days} days")
            took = await fill(store, args.lines - have, args.span_days * 86_400)
            print(
                f"stored {args.lines - have:,} lines in {took:.1f} s: "
                f"{(args.lines - have) / took:,.0f} lines/s (store write path only)"
            )
        total = await store.count()
        raw = raw_bytes_per_line()
        if args.database_url:
            size = await postgres_size(store)
            parts: dict[str, int] = {}
        else:
            size, parts = await sqlite_size(store, Path(args.path))
        print(f"lines stored: {total:,}")
        print(f"raw JSON as posted: {raw:.0f} bytes a line")
        print(f"stored: {size / total:.1f} bytes a line ({size / 2**20:,.0f} MiB in all)")
        for name, part in list(parts.items())[:8]:
            print(f"  {name:32} {part / total:6.1f} bytes a line")
        every = await search_latency(store, args.runs)
        every.sort()
        p99 = every[min(len(every) - 1, int(len(every) * 0.99))]
        print(
            f"all searches: p50 {statistics.median(every):.1f} ms, p99 {p99:.1f} ms "
            f"over {len(every)} searches of {total:,} lines"
        )
        await histogram_latency(store)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("ingest", help="POST lines to a running Vigil")
    send.add_argument("--url", default=os.environ.get("VIGIL_URL", "http://127.0.0.1:8080"))
    send.add_argument("--senders", type=int, default=4)
    send.add_argument("--duration", type=float, default=20.0)
    send.add_argument("--batch", type=int, default=1000)
    send.add_argument("--bodies", type=int, default=8, help="distinct batch bodies cycled")
    add_key_argument(send)
    fill_parser = sub.add_parser("store", help="fill a store, time searches, measure size")
    fill_parser.add_argument("--lines", type=int, default=1_000_000)
    fill_parser.add_argument("--span-days", type=float, default=6.0)
    fill_parser.add_argument("--path", default="/tmp/vigil-logs-bench.db")
    fill_parser.add_argument("--database-url", default="")
    fill_parser.add_argument("--fresh", action="store_true", help="start from an empty file")
    fill_parser.add_argument("--runs", type=int, default=100, help="timed runs per query")
    args = parser.parse_args()
    asyncio.run(ingest(args) if args.command == "ingest" else store_bench(args))


if __name__ == "__main__":
    main()
