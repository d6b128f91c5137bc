"""The on-call end: a webhook receiver that checks every signature and notes arrivals."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from aiohttp import web

from shared.natsserver import free_port
from tests.system.chaos.scenario import SECRET


@dataclass
class Page:
    event: str
    subject_id: str  # alert id for alert events, incident id for incident events
    alert_id: str
    rule: str  # alert events only
    series: str | None  # the "series" label of an alert event
    delivery: str
    arrived: float
    lag_s: float  # from the event's own time to its arrival here: the notifier's share


@dataclass
class PageRecorder:
    """The on-call end: checks each signature, keeps what arrived and when."""

    secret: str = SECRET
    pages: list[Page] = field(default_factory=list)
    bad_signatures: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        body = await request.read()
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Vigil-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        payload = orjson.loads(body)
        alert = payload.get("alert") or {}
        incident = payload.get("incident") or {}
        self.pages.append(
            Page(
                event=payload["event"],
                subject_id=alert.get("id") or incident.get("id", ""),
                alert_id=alert.get("id") or incident.get("alert_id", ""),
                rule=alert.get("rule", ""),
                series=(alert.get("labels") or {}).get("series"),
                delivery=request.headers.get("X-Vigil-Delivery", ""),
                arrived=arrived,
                lag_s=time.time() - datetime.fromisoformat(payload["time"]).timestamp(),
            )
        )
        return web.Response(status=204)

    async def start(self) -> PageRecorder:
        self.port = free_port()
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def of(self, event: str) -> list[Page]:
        return [p for p in self.pages if p.event == event]
