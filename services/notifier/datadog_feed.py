"""Forwards the metrics a DataDog channel lists (its ``metrics``) as DataDog series.

Series are a copy for DataDog's dashboards, not a page: points are buffered in memory
and sent every few seconds, the oldest dropped (and counted) while DataDog is away,
and a crash loses what was buffered. Alerts reach DataDog as events through the
channel itself, exactly once, like any channel. Only channels in the file or the
environment are read at start; one made through the API forwards series after a
restart of the notifier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from services.notifier.datadog_series import SeriesExporter
from shared import subjects
from shared.channelconfig import ChannelBase, DatadogChannel
from shared.consumer import ConsumerSpec, Delivery
from shared.events import Event, SampleBlock, SamplesIngested
from shared.streams import METRICS

SERIES_CONSUMER = ConsumerSpec(
    durable="notifier-datadog",
    stream=METRICS,
    filter_subject=f"{subjects.SAMPLES}.>",
    ordered=False,
    max_attempts=1,
)


class DatadogFeed:
    def __init__(
        self, channels: Sequence[ChannelBase], session: Callable[[], aiohttp.ClientSession]
    ):
        self.channels = [c for c in channels if isinstance(c, DatadogChannel) and c.metrics]
        self._session = session
        self.exporters: list[SeriesExporter] = []

    @property
    def wanted(self) -> bool:
        return bool(self.channels)

    async def start(self) -> None:
        self.exporters = [SeriesExporter(c, self._session()) for c in self.channels]

    async def on_samples(self, event: Event, delivery: Delivery) -> None:
        """Buffer the selected samples of one batch for every DataDog channel."""
        if isinstance(event, SamplesIngested | SampleBlock):
            samples = event.all_samples()
            for exporter in self.exporters:
                exporter.add_samples(samples, event.received_at)

    async def run_forever(self) -> None:
        await asyncio.gather(*(exporter.run_forever() for exporter in self.exporters))

    def status(self) -> dict[str, Any]:
        return {"datadog_series": {e.channel.name: e.status() for e in self.exporters}}
