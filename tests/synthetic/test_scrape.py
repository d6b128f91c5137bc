"""Scraping Prometheus/OpenMetrics targets: a target whose body the test writes, and a
real node_exporter, against a real nats-server."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from services.metrics.app import build as metrics_build
from services.synthetic.app import build
from services.synthetic.scraper import Scraper, Target
from shared import subjects
from shared.bus import EventBus
from shared.commands import QUERY_SAMPLES
from shared.config import OutboundConfig, VigilConfig
from shared.events import Sample, SamplesIngested
from shared.natsserver import free_port
from shared.outbound import OutboundGuard
from shared.scrapeconfig import ScrapeConfig
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

STAMP = int(time.time()) - 60  # within retention; older stamps are skipped

TEXT_0_0_4 = """\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="get",path="C:\\\\dir",msg="say \\"hi\\"\\nbye"} 1027 @STAMP@000
http_requests_total{method="post",job="theirs"} 3
# TYPE temperature gauge
temperature 21.5
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 2
latency_seconds_bucket{le="+Inf"} 5
latency_seconds_sum 1.25
latency_seconds_count 5
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds{quantile="0.99"} NaN
rpc_seconds_sum 3
rpc_seconds_count 9
mystery 7
go_goroutines 12
go_threads 4
""".replace("@STAMP@", str(STAMP))

OPENMETRICS = """\
# TYPE jobs counter
jobs_total{kind="a"} 4 @STAMP@.5
# TYPE queue gauge
queue 2
# TYPE size histogram
size_bucket{le="1.0"} 1
size_bucket{le="+Inf"} 2
size_count 2
size_sum 1.5
# EOF
""".replace("@STAMP@", str(STAMP))


@dataclass
class Exposition:
    """Serves ``body`` as ``content_type`` at /metrics, after ``delay_s``."""

    url: str
    body: str = TEXT_0_0_4
    content_type: str = "text/plain; version=0.0.4"
    delay_s: float = 0.0
    endless: bool = False
    authorization: str | None = None
    hits: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.authorization = request.headers.get("Authorization")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if not self.endless:
            return web.Response(
                body=self.body.encode(), headers={"Content-Type": self.content_type}
            )
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        line = b"x" * 65536  # one endless line
        while True:
            await response.write(line)


@pytest.fixture
async def exposition() -> AsyncIterator[Exposition]:
    port = free_port()
    served = Exposition(url=f"http://127.0.0.1:{port}/metrics")
    app = web.Application()
    app.router.add_get("/metrics", served.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield served
    await runner.cleanup()


def job(url: str, **overrides: object) -> ScrapeConfig:
    fields: dict[str, object] = {
        "job_name": "app",
        "targets": [url],
        "interval": 1.0,
        "timeout": 0.5,
    }
    return ScrapeConfig.model_validate(fields | overrides)


MakeScraper = Callable[[list[ScrapeConfig]], Scraper]


@pytest.fixture
async def scraper(settings: Settings, bus: EventBus) -> AsyncIterator[MakeScraper]:
    guard = OutboundGuard.from_settings(settings)
    made: list[Scraper] = []

    def make(jobs: list[ScrapeConfig]) -> Scraper:
        created = Scraper(jobs, lambda: bus, guard, settings.metrics_retention_s)
        made.append(created)
        return created

    yield make
    for created in made:
        await created.close()


async def scrape_once(make: MakeScraper, config: ScrapeConfig) -> SamplesIngested:
    scraper = make([config])
    await scraper.open()
    return await scraper.scrape(Target(config, config.targets[0]))


def by_name(batch: SamplesIngested) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = {}
    for sample in batch.samples:
        found.setdefault(sample["name"], []).append(sample)
    return found


def value_of(batch: SamplesIngested, name: str) -> float:
    (sample,) = by_name(batch)[name]
    return sample["value"]


async def published(bus: EventBus) -> list[SamplesIngested]:
    found = [r.event async for r in bus.replay("METRICS", subjects.samples("synthetic"))]
    return [e for e in found if isinstance(e, SamplesIngested)]


async def test_every_metric_type_with_escapes_and_target_labels(
    scraper: MakeScraper, bus: EventBus, exposition: Exposition
) -> None:
    config = job(exposition.url, labels={"env": "prod"}, bearer_token="s3cret")
    batch = await scrape_once(scraper, config)
    names = by_name(batch)
    port = exposition.url.split(":")[2].split("/")[0]
    target = {"job": "app", "instance": f"127.0.0.1:{port}", "env": "prod"}
    first, second = names["http_requests_total"]
    assert first["labels"] == {
        "method": "get",
        "path": "C:\\dir",
        "msg": 'say "hi"\ufffdbye',  # the escaped newline made printable
        **target,
    }
    assert first["value"] == 1027 and first["timestamp"] == STAMP
    # the target's own job label is kept apart, as Prometheus does
    assert second["labels"] == {"method": "post", "exported_job": "theirs", **target}
    assert second["timestamp"] == batch.received_at
    assert value_of(batch, "temperature") == 21.5
    buckets = {s["labels"]["le"]: s["value"] for s in names["latency_seconds_bucket"]}
    assert buckets == {"0.1": 2, "+Inf": 5}
    assert value_of(batch, "latency_seconds_sum") == 1.25
    assert value_of(batch, "latency_seconds_count") == 5
    assert [s["labels"]["quantile"] for s in names["rpc_seconds"]] == ["0.5"]  # NaN left out
    assert value_of(batch, "rpc_seconds_count") == 9
    assert value_of(batch, "mystery") == 7
    assert value_of(batch, "up") == 1
    assert 0 < value_of(batch, "scrape_duration_seconds") < 0.5
    assert names["up"][0]["labels"] == target
    assert exposition.authorization == "Bearer s3cret"
    assert [b.id for b in await published(bus)] == [batch.id]


async def test_openmetrics_counter_histogram_timestamp_and_eof(
    scraper: MakeScraper, exposition: Exposition
) -> None:
    exposition.body = OPENMETRICS
    exposition.content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    batch = await scrape_once(scraper, job(exposition.url))
    (jobs,) = by_name(batch)["jobs_total"]
    assert jobs["value"] == 4 and jobs["timestamp"] == STAMP + 0.5
    assert value_of(batch, "queue") == 2
    assert len(by_name(batch)["size_bucket"]) == 2
    assert value_of(batch, "up") == 1
    # an OpenMetrics body without # EOF is truncated: the scrape fails
    exposition.body = OPENMETRICS.replace("# EOF\n", "")
    assert value_of(await scrape_once(scraper, job(exposition.url)), "up") == 0


async def test_metric_relabel_drops_and_keeps_by_name(
    scraper: MakeScraper, exposition: Exposition
) -> None:
    dropped = await scrape_once(
        scraper, job(exposition.url, metric_relabel=[{"action": "drop", "regex": "go_.*"}])
    )
    assert "go_goroutines" not in by_name(dropped) and "temperature" in by_name(dropped)
    kept = await scrape_once(
        scraper,
        job(exposition.url, metric_relabel=[{"action": "keep", "regex": "go_.*|temperature"}]),
    )
    own = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
    assert set(by_name(kept)) - own == {"go_goroutines", "go_threads", "temperature"}
    assert value_of(kept, "scrape_samples_scraped") == 3


async def test_a_target_slower_than_the_timeout_is_down(
    scraper: MakeScraper, exposition: Exposition
) -> None:
    exposition.delay_s = 5
    started = time.monotonic()
    batch = await scrape_once(scraper, job(exposition.url, timeout=0.3))
    assert time.monotonic() - started < 2
    assert {s["name"] for s in batch.samples} == {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
    }
    assert value_of(batch, "up") == 0


async def test_an_endless_body_is_cut_at_the_size_limit(
    scraper: MakeScraper, exposition: Exposition
) -> None:
    exposition.endless = True
    started = time.monotonic()
    batch = await scrape_once(scraper, job(exposition.url, timeout=0.9, body_size_limit=100_000))
    assert time.monotonic() - started < 0.8  # the cap, not the timeout, ended it
    assert value_of(batch, "up") == 0


async def test_a_body_over_the_limit_is_down(scraper: MakeScraper, exposition: Exposition) -> None:
    exposition.body = TEXT_0_0_4 + "".join(f"filler_{i} {i}\n" for i in range(2000))
    batch = await scrape_once(scraper, job(exposition.url, body_size_limit=4096))
    assert value_of(batch, "up") == 0


async def test_a_scrape_over_the_batch_limit_is_refused_whole(
    scraper: MakeScraper, exposition: Exposition
) -> None:
    exposition.body = "".join(f'series{{i="{i}"}} {i}\n' for i in range(10_000))
    batch = await scrape_once(scraper, job(exposition.url))
    assert len(batch.samples) == 3, len(batch.samples)
    assert value_of(batch, "up") == 0


async def test_the_outbound_policy_applies_to_targets(
    settings: Settings, bus: EventBus, exposition: Exposition
) -> None:
    guard = OutboundGuard.from_settings(settings, OutboundConfig(deny=["127.0.0.0/8"]))
    config = job(exposition.url)
    scraper = Scraper([config], lambda: bus, guard, settings.metrics_retention_s)
    await scraper.open()
    try:
        batch = await scraper.scrape(Target(config, exposition.url))
    finally:
        await scraper.close()
    assert value_of(batch, "up") == 0 and exposition.hits == 0  # never reached


def test_config_validation_names_the_field() -> None:
    def error(**fields: object) -> str:
        base: dict[str, object] = {"job_name": "a", "targets": ["http://h:1/metrics"]}
        with pytest.raises(ValidationError) as caught:
            VigilConfig.model_validate({"scrape_configs": [base | fields]})
        return str(caught.value)

    assert "must be shorter than the interval" in error(interval="10s", timeout="10s")
    assert "targets[0]" in error(targets=["ftp://h/metrics"])
    assert "not a valid regular expression" in error(
        metric_relabel=[{"action": "drop", "regex": "("}]
    )
    assert "labels['job']" in error(labels={"job": "x"})
    with pytest.raises(ValidationError, match=r"scrape_configs\[1\].job_name"):
        VigilConfig.model_validate(
            {
                "scrape_configs": [
                    {"job_name": "a", "targets": ["http://h:1/"]},
                    {"job_name": "a", "targets": ["http://h:2/"]},
                ]
            }
        )
    defaults = ScrapeConfig.model_validate({"job_name": "a", "targets": ["http://h:1/"]})
    assert (defaults.interval_s, defaults.timeout_s) == (30.0, 10.0)


async def test_the_service_scrapes_on_its_interval(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, exposition: Exposition
) -> None:
    config = VigilConfig(scrape_configs=[job(exposition.url, interval="1s", timeout="0.5s")])
    await start_service(build(settings, config))

    async def two_scrapes() -> bool:
        return len([b for b in await published(bus) if b.aggregate_id == "scrape:app"]) >= 2

    await eventually(two_scrapes, within_s=6, every_s=0.1)
    stamps = sorted(b.received_at for b in await published(bus))
    assert stamps[1] - stamps[0] >= 0.9


NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


@pytest.fixture
def node_exporter() -> Iterator[str]:
    if NODE_EXPORTER is None:
        pytest.skip(
            "prometheus-node-exporter is not installed (test.sh installs the Debian package "
            "when it runs as root with apt-get)"
        )
    port = free_port()
    process = subprocess.Popen(
        [
            NODE_EXPORTER,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.cpu",
            "--collector.meminfo",
            "--collector.loadavg",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    yield f"http://127.0.0.1:{port}/metrics"
    process.terminate()
    process.wait(timeout=10)


async def test_node_exporter_is_scraped_into_the_store(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, node_exporter: str
) -> None:
    async def listening() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(node_exporter) as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(listening, within_s=10, every_s=0.1)
    config = VigilConfig(
        scrape_configs=[
            job(
                node_exporter,
                job_name="node",
                interval="1s",
                timeout="0.9s",
                metric_relabel=[{"action": "drop", "regex": "go_.*"}],
            )
        ]
    )
    await start_service(metrics_build(settings))
    await start_service(build(settings, config))

    async def node_batch() -> SamplesIngested | None:
        return next((b for b in await published(bus) if b.aggregate_id == "scrape:node"), None)

    batch = await eventually(node_batch, within_s=8, every_s=0.1)
    assert batch is not None
    names = by_name(batch)
    assert value_of(batch, "up") == 1
    cpu = names["node_cpu_seconds_total"]
    assert {s["labels"]["mode"] for s in cpu} >= {"idle", "user", "system"}
    assert all(s["labels"]["job"] == "node" for s in cpu)
    assert "node_memory_MemTotal_bytes" in names and "node_load1" in names
    assert not any(name.startswith("go_") for name in names)

    async def stored() -> list[dict[str, object]]:
        query = {"name": "node_cpu_seconds_total", "labels": {"job": "node", "mode": "idle"}}
        reply: dict[str, list[dict[str, object]]] = await bus.request(QUERY_SAMPLES, query)
        return reply["samples"]

    samples = await eventually(stored, within_s=8, every_s=0.1)
    assert all(s["labels"]["instance"] == node_exporter.split("/")[2] for s in samples)
