"""The log store on SQLite and PostgreSQL: every line stored once, found by every filter,
paged without loss or repeat, counted per level, and deleted by its level's retention."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import text

from services.metrics.logs import codec, reads
from services.metrics.logs.store import LogStore
from services.metrics.logs.tables import ENTRIES, FTS
from shared.commands import LogHistogram, SearchLogs
from shared.db import create_engine
from shared.settings import Settings
from tests.logs.conftest import batch, lines


async def everything(store: LogStore, **filters: Any) -> list[dict[str, Any]]:
    return (await reads.search(store, SearchLogs(limit=1000, **filters)))["entries"]


async def test_a_line_comes_back_as_it_went_in(log_store: LogStore) -> None:
    now = time.time()
    stamp = round(now) - 10.123456
    long = "Traceback (most recent call last):\n" + '  File "app.py", line 1\n' * 200
    entry = {
        "message": long,
        "timestamp": stamp,
        "level": "error",
        "service": "checkout",
        "labels": {"host": "web-1", "region": "eu"},
        "fields": {"order": "o-1", "ms": 12.5, "retry": True, "attempt": 3, "none": None},
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }
    await log_store.store_sequenced([(1, batch([entry], now))])
    [line] = await everything(log_store)
    assert line == {**entry, "timestamp": line["timestamp"]}
    assert abs(line["timestamp"] - stamp) < 1e-6
    async with log_store.engine.connect() as conn:
        stored = (await conn.execute(text(f"SELECT message FROM {ENTRIES}"))).scalar_one()
    assert len(stored) < len(long) / 10  # the repetitive traceback compresses


async def test_a_redelivered_or_partly_redelivered_batch_is_stored_once(
    log_store: LogStore,
) -> None:
    first, second, third = (batch(lines(f"line {n}a", f"line {n}b")) for n in range(3))
    assert await log_store.store_sequenced([(1, first), (2, second)]) is True
    assert await log_store.store_sequenced([(1, first), (2, second)]) is False
    assert await log_store.store_sequenced([(2, second), (3, third)]) is True
    assert await log_store.last_seq() == 3
    assert await log_store.count() == 6
    found = sorted(e["message"] for e in await everything(log_store, q="line"))
    assert found == sorted(f"line {n}{x}" for n in range(3) for x in "ab")


async def test_pages_return_every_line_once_across_equal_timestamps(log_store: LogStore) -> None:
    now = time.time()
    same = round(now) - 100.0
    # 230 lines in one millisecond, in three batches, plus lines around them
    await log_store.store_sequenced(
        [
            (1, batch([{"message": f"same {n}", "timestamp": same} for n in range(100)], now)),
            (2, batch([{"message": f"before {n}", "timestamp": same - 1} for n in range(5)], now)),
        ]
    )
    await log_store.store_sequenced(
        [(3, batch([{"message": f"same {n}", "timestamp": same} for n in range(100, 230)], now))]
    )
    await log_store.store_sequenced(
        [(4, batch([{"message": f"after {n}", "timestamp": same + 1} for n in range(5)], now))]
    )
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page = await reads.search(log_store, SearchLogs(limit=7, cursor=cursor))
        seen += page["entries"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    messages = [e["message"] for e in seen]
    assert len(messages) == len(set(messages)) == 240
    assert pages == 35  # 240 lines, 7 a page: the last page says there is no more
    stamps = [e["timestamp"] for e in seen]
    assert stamps == sorted(stamps, reverse=True)
    assert messages[:5] == [f"after {n}" for n in range(4, -1, -1)]
    # paging with text walks the index the same way
    found: list[str] = []
    cursor = None
    while True:
        page = await reads.search(log_store, SearchLogs(q="same", limit=50, cursor=cursor))
        found += [e["message"] for e in page["entries"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert sorted(found) == sorted(f"same {n}" for n in range(230))


async def test_every_filter_narrows_the_lines(log_store: LogStore) -> None:
    now = time.time()
    t0 = round(now) - 600.0
    entries = [
        {"message": "db timeout", "level": "error", "service": "api", "timestamp": t0},
        {"message": "db slow", "level": "warn", "service": "api", "timestamp": t0 + 60},
        {
            "message": "cache miss",
            "level": "debug",
            "service": "web",
            "labels": {"host": "web-1"},
            "timestamp": t0 + 120,
        },
        {
            "message": "db timeout again",
            "level": "fatal",
            "service": "web",
            "labels": {"host": "web-2"},
            "timestamp": t0 + 180,
        },
    ]
    await log_store.store_sequenced([(1, batch(entries, now))])

    async def messages(**filters: Any) -> list[str]:
        return [e["message"] for e in await everything(log_store, **filters)]

    assert await messages() == ["db timeout again", "cache miss", "db slow", "db timeout"]
    assert await messages(levels=["error", "fatal"]) == ["db timeout again", "db timeout"]
    assert await messages(services=["api"]) == ["db slow", "db timeout"]
    assert await messages(services=["web"], labels={"host": "web-2"}) == ["db timeout again"]
    assert await messages(labels={"host": "web-9"}) == []
    assert await messages(services=["nobody"]) == []
    # start inclusive, end exclusive
    assert await messages(start=t0 + 60, end=t0 + 180) == ["cache miss", "db slow"]
    assert await messages(q="timeout", services=["web"]) == ["db timeout again"]
    assert await messages(q="db", levels=["warn"], start=t0 + 1) == ["db slow"]
    assert await messages(q="-db", start=t0) == ["cache miss"]

    # the label sets come back after a restart
    again = LogStore(create_engine(str(log_store.engine.url)), Settings())
    await again.open()
    try:
        page = await reads.search(again, SearchLogs(services=["web"], labels={"host": "web-1"}))
        assert [e["message"] for e in page["entries"]] == ["cache miss"]
    finally:
        await again.close()


async def test_the_histogram_counts_lines_per_level_per_step(log_store: LogStore) -> None:
    now = time.time()
    t0 = float(int(now) - 300)
    entries = [
        *({"message": "ok", "level": "info", "timestamp": t0 + n} for n in range(10)),
        *({"message": "bad", "level": "error", "timestamp": t0 + 60 + n} for n in range(3)),
        {"message": "bad again", "level": "error", "timestamp": t0 + 119.999},
        {"message": "outside", "level": "error", "timestamp": t0 + 180},
    ]
    await log_store.store_sequenced([(1, batch(entries, now))])
    shape = await reads.histogram(log_store, LogHistogram(start=t0, end=t0 + 180, step=60))
    assert [b["time"] for b in shape["buckets"]] == [t0, t0 + 60, t0 + 120]
    assert [b["total"] for b in shape["buckets"]] == [10, 4, 0]
    assert shape["buckets"][0]["counts"] == {
        "trace": 0,
        "debug": 0,
        "info": 10,
        "warn": 0,
        "error": 0,
        "fatal": 0,
    }
    assert shape["buckets"][1]["counts"]["error"] == 4
    only_bad = await reads.histogram(
        log_store, LogHistogram(start=t0, end=t0 + 180, step=60, q="bad")
    )
    assert [b["total"] for b in only_bad["buckets"]] == [0, 4, 0]


async def index_bytes(store: LogStore) -> int:
    if not store.sqlite:
        return 0
    async with store.engine.connect() as conn:
        query = text(f"SELECT sum(length(block)) FROM {FTS}_data")
        return int((await conn.execute(query)).scalar_one())


async def test_retention_deletes_by_level_and_gives_the_space_back(database_url: str) -> None:
    settings = Settings(logs_retention_s=7 * 86_400, logs_retention_by_level="debug=3600")
    store = LogStore(create_engine(database_url), settings)
    await store.open()
    try:
        now = time.time()
        old, recent = now - 2 * 3600, now - 60
        words = " ".join(f"word{n}" for n in range(40))
        entries = [
            *(
                {"message": f"debug old {n} {words}", "level": "debug", "timestamp": old}
                for n in range(3000)
            ),
            {"message": "debug recent", "level": "debug", "timestamp": recent},
            {"message": "error old", "level": "error", "timestamp": old},
            {"message": "info ancient", "level": "info", "timestamp": now - 6.9 * 86_400},
        ]
        kept = [
            {"message": f"kept {n} {words}", "level": "warn", "timestamp": old} for n in range(2000)
        ]
        # several writes: index segments holding lines that stay and lines that go
        for seq, start in enumerate(range(0, 3000, 600), start=1):
            mixed = entries[start : start + 600] + kept[start // 600 * 400 :][:400]
            await store.store_sequenced([(seq, batch(mixed, now))])
        await store.store_sequenced([(6, batch(entries[3000:], now))])
        full = await index_bytes(store)
        assert await store.apply_retention(now) == 3000
        assert await store.count() == 2003
        if store.sqlite:
            # the index entries are gone, not only marked deleted
            assert await index_bytes(store) < full / 2
        remaining = sorted(e["message"] for e in await everything(store, q="-kept"))
        assert remaining == ["debug recent", "error old", "info ancient"]
        assert [e["message"] for e in await everything(store, q="debug")] == ["debug recent"]
        assert len(await everything(store, q="word7")) == 1000  # a page of the kept
        # later, info's 7 days have passed (and debug's hour for the recent one)
        assert await store.apply_retention(now + 0.2 * 86_400) == 2
        assert [e["message"] for e in await everything(store, q="-kept")] == ["error old"]
        if store.sqlite:
            async with store.engine.connect() as conn:
                # the index forgot the deleted lines, and the file keeps no free pages
                assert (
                    await conn.execute(text(f"SELECT count(*) FROM {FTS} WHERE {FTS} MATCH 'old'"))
                ).scalar_one() == 1
                free = (await conn.execute(text("PRAGMA freelist_count"))).scalar_one()
                assert free == 0
    finally:
        await store.close()


async def test_late_lines_in_a_busy_millisecond_get_their_own_ids(log_store: LogStore) -> None:
    now = time.time()
    stamp = round(now) - 30.0
    await log_store.store_sequenced([(1, batch(lines("a", "b", timestamp=stamp), now))])
    await log_store.store_sequenced([(2, batch(lines("newer", timestamp=stamp + 5), now))])
    # below the newest id: the store looks up the millisecond's last number
    await log_store.store_sequenced([(3, batch(lines("c", timestamp=stamp), now))])
    page = await everything(log_store)
    assert [e["message"] for e in page] == ["newer", "c", "b", "a"]
    async with log_store.engine.connect() as conn:
        ids = (await conn.execute(text(f"SELECT id FROM {ENTRIES} ORDER BY id"))).scalars().all()
    assert {i >> codec.ID_SHIFT for i in ids[:3]} == {codec.split_time(stamp)[0]}
    assert [i & (codec.PER_MS - 1) for i in ids[:3]] == [0, 1, 2]


async def test_lines_coded_with_the_learned_dictionary_read_back_after_a_restart(
    log_store: LogStore,
) -> None:
    now = time.time()
    entries = [
        {
            "message": f"GET /api/v1/orders/{n} 200 {n % 97}ms",
            "fields": {"request_id": f"{n:032x}", "route": "/api/v1/orders"},
        }
        for n in range(2500)
    ]
    # 500 lines give 1,000 texts (messages and fields): too few to learn from; the next
    # write brings enough, and is coded with what they taught
    await log_store.store_sequenced([(1, batch(entries[:500], now))])
    assert log_store.coder.dictionaries.current is None
    await log_store.store_sequenced([(2, batch(entries[500:], now))])
    assert log_store.coder.dictionaries.current == 1
    async with log_store.engine.connect() as conn:
        stored = (
            await conn.execute(text(f"SELECT message, fields FROM {ENTRIES} ORDER BY id"))
        ).all()
    assert stored[0].message == entries[0]["message"].encode()  # before the dictionary
    coded = stored[-1]
    assert coded.message[:2] == b"\x02\x01"
    assert len(coded.message) < len(entries[-1]["message"]) * 0.6
    assert len(coded.fields) < len(orjson.dumps(entries[-1]["fields"])) * 0.6

    again = LogStore(create_engine(str(log_store.engine.url)), Settings())
    await again.open()
    try:
        lines = (await reads.search(again, SearchLogs(limit=1000, q="orders")))["entries"]
        everything_back = await everything(again)
    finally:
        await again.close()
    assert len(lines) == 1000
    back = {e["message"]: e["fields"] for e in everything_back}
    for entry in entries[-1000:]:
        assert back[entry["message"]] == entry["fields"]


async def test_a_label_filter_matching_many_sets_checks_each_line(log_store: LogStore) -> None:
    entries = [
        {"message": f"request {n}", "service": "api", "labels": {"pod": f"api-{n}"}}
        for n in range(reads.MAX_MATCHED_SETS + 50)
    ]
    entries.append({"message": "request elsewhere", "service": "web"})
    await log_store.store_sequenced([(1, batch(entries))])
    found = await everything(log_store, services=["api"], q="request")
    assert len(found) == reads.MAX_MATCHED_SETS + 50
    assert {e["service"] for e in found} == {"api"}
    assert len(await everything(log_store, services=["web", "api"])) == len(entries)


async def test_a_full_millisecond_spills_into_the_next_without_clashing(
    log_store: LogStore,
) -> None:
    now = time.time()
    stamp = round(now) - 30.0
    ms = codec.split_time(stamp)[0]
    # a line already in the next millisecond, stored first
    await log_store.store_sequenced([(1, batch(lines("next", timestamp=stamp + 0.001), now))])
    crowd = [{"message": f"crowd {n}", "timestamp": stamp} for n in range(codec.PER_MS + 5)]
    for start, seq in ((0, 2), (10_000, 3)):
        chunk = crowd[start : start + 10_000]
        if chunk:
            await log_store.store_sequenced([(seq, batch(chunk, now))])
    assert await log_store.count() == codec.PER_MS + 6
    async with log_store.engine.connect() as conn:
        ids = (await conn.execute(text(f"SELECT id FROM {ENTRIES} ORDER BY id"))).scalars().all()
    assert len(set(ids)) == len(ids)
    assert sum(1 for i in ids if i >> codec.ID_SHIFT == ms) == codec.PER_MS
    assert sum(1 for i in ids if i >> codec.ID_SHIFT == ms + 1) == 6


async def test_a_new_dictionary_is_learned_when_the_lines_change(log_store: LogStore) -> None:
    log_store.coder.dictionaries.relearn_after = 3000
    now = time.time()
    before = [{"message": f"GET /api/v1/orders/{n} 200 {n % 97}ms"} for n in range(2500)]
    after = [
        {"message": f"worker {n % 8} finished job {n} of queue invoices after {n % 13} retries"}
        for n in range(4000)
    ]
    await log_store.store_sequenced([(1, batch(before, now))])
    assert log_store.coder.dictionaries.current == 1
    await log_store.store_sequenced([(2, batch(after[:2000], now))])
    assert log_store.coder.dictionaries.current == 1  # 2,000 lines since: not yet
    await log_store.store_sequenced([(3, batch(after[2000:], now))])
    assert log_store.coder.dictionaries.current == 2
    async with log_store.engine.connect() as conn:
        newest = (
            await conn.execute(text(f"SELECT message FROM {ENTRIES} ORDER BY id DESC LIMIT 1"))
        ).scalar_one()
    assert newest[:2] == b"\x02\x02"
    assert len(newest) < 20
    # every line, coded with either dictionary, reads back after a restart
    again = LogStore(create_engine(str(log_store.engine.url)), Settings())
    await again.open()
    try:
        found = set()
        cursor = None
        while True:
            page = await reads.search(again, SearchLogs(limit=1000, cursor=cursor))
            found |= {e["message"] for e in page["entries"]}
            if (cursor := page["next_cursor"]) is None:
                break
    finally:
        await again.close()
    assert found == {e["message"] for e in before + after}


async def test_words_in_a_message_never_pass_for_its_level_or_labels(log_store: LogStore) -> None:
    await log_store.store_sequenced(
        [(1, batch([{"message": "l4 s1 meta l0", "level": "info", "service": "a"}]))]
    )
    await log_store.store_sequenced(
        [(2, batch([{"message": "plain", "level": "error", "service": "b"}]))]
    )
    assert [e["message"] for e in await everything(log_store, levels=["error"])] == ["plain"]
    assert [e["message"] for e in await everything(log_store, q="l4")] == ["l4 s1 meta l0"]
    assert [e["message"] for e in await everything(log_store, q="meta")] == ["l4 s1 meta l0"]
    assert await everything(log_store, q="l4", levels=["error"]) == []
