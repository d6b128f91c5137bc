"""The identity section of one gateway process: the cache, its read model and consumer,
the limits, the one-time setup token, and the keys that must exist at start."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from services.gateway.common.state import GatewayState
from services.gateway.identity.authenticator import KeyAndSessionAuthenticator
from services.gateway.identity.cache import IdentityCache
from services.gateway.identity.catchup import last_seq, read_from
from services.gateway.identity.credentials import MIN_KEY_CHARS
from services.gateway.identity.ledger import Appended, ensure_key
from services.gateway.identity.projection import SectionProjection
from services.gateway.identity.projector import load_cache, project_identity
from services.gateway.identity.ratelimit import IdentityLimits, LoginThrottle
from services.gateway.identity.tables import PROJECTION, SECTION, metadata
from shared.bus import EventBus
from shared.events import Event
from shared.settings import Settings
from shared.streams import IDENTITY

log = logging.getLogger(__name__)

AGENT_KEY_NAME = "vigil-agent"
BOOTSTRAP_KEY_NAME = "bootstrap"
SYSTEM_ACTOR = "vigil"
CATCH_UP_EVERY_S = 2.0  # other gateways' and the CLI's writes, should a delivery be missed
BOOTSTRAP_VARIABLE = "VIGIL_BOOTSTRAP_ADMIN_KEY"
AGENT_KEY_VARIABLE = "VIGIL_AGENT_KEY_FILE"


class IdentitySettingsError(SystemExit):
    """A setting the gateway cannot start with; the message is one line naming it."""


def bootstrap_key(settings: Settings) -> str | None:
    configured: SecretStr | str | None = settings.bootstrap_admin_key
    if configured is None:
        return None
    raw = configured.get_secret_value() if isinstance(configured, SecretStr) else configured
    value = str(raw).strip()
    if len(value) < MIN_KEY_CHARS:
        raise IdentitySettingsError(
            f"vigil gateway: {BOOTSTRAP_VARIABLE} must be at least {MIN_KEY_CHARS} characters "
            f"(it has {len(value)})"
        )
    return value


def agent_key(settings: Settings) -> str | None:
    path: Path | None = settings.agent_key_file
    if path is None:
        return None
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise IdentitySettingsError(
            f"vigil gateway: {AGENT_KEY_VARIABLE}: cannot read {path}: {exc.strerror}"
        ) from None
    if len(value) < MIN_KEY_CHARS:
        raise IdentitySettingsError(
            f"vigil gateway: {AGENT_KEY_VARIABLE}: {path} must hold a key of at least "
            f"{MIN_KEY_CHARS} characters"
        )
    return value


class IdentitySection:
    def __init__(self, state: GatewayState):
        self.state = state
        self.settings = state.settings
        self.bootstrap_key = bootstrap_key(self.settings)
        self.agent_key = agent_key(self.settings)
        self.cache = IdentityCache()
        self.projection = SectionProjection.of(
            PROJECTION,
            IDENTITY,
            "identity.>",
            project_identity,
            state.store.engine,
            metadata,
            SECTION,
        )
        self.limits = IdentityLimits(
            self.settings.api_rate_per_s, self.settings.api_burst, self.settings.ingest_rate_per_s
        )
        self.logins = LoginThrottle()
        self.authenticator = KeyAndSessionAuthenticator(
            self.cache, self.limits, allowed_origins=self.allowed_origins
        )
        self.setup_token: str | None = None
        self._catching_up = asyncio.Lock()

    def allowed_origins(self) -> Iterable[str]:
        origins = getattr(self.settings, "cors_origins", None) or ()
        if isinstance(origins, str):
            return [o.strip() for o in origins.split(",") if o.strip()]
        return list(origins)

    @property
    def secure_cookies(self) -> bool:
        return bool(getattr(self.settings, "tls_enabled", False))

    # --- start ------------------------------------------------------------------

    async def prepare(self, bus: EventBus) -> None:
        """Load what is known, catch up with the log, then make sure the configured keys
        exist; with no administrator at all, print a one-time setup link."""
        await self.projection.prepare()
        checkpoint = await self.projection.store.last_seq(PROJECTION)
        self.cache.replace_with(await load_cache(self.projection.store.engine, checkpoint))
        await self.catch_up(bus)
        if self.bootstrap_key is not None and not self.cache.users:
            made = await ensure_key(
                bus, self.bootstrap_key, BOOTSTRAP_KEY_NAME, "admin", SYSTEM_ACTOR
            )
            if made is not None:
                log.warning(
                    "created the bootstrap admin key", extra={"key_id": made.event.aggregate_id}
                )
        if self.agent_key is not None:
            await ensure_key(bus, self.agent_key, AGENT_KEY_NAME, "ingest", SYSTEM_ACTOR)
        await self.catch_up(bus)
        if not self.cache.has_admin(datetime.now(UTC)):
            self.offer_setup()

    def offer_setup(self) -> None:
        self.setup_token = secrets.token_urlsafe(32)
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.secure_cookies else "http"
        link = f"{scheme}://{host}:{self.settings.port}/monitoring/setup#token={self.setup_token}"
        print(
            f"vigil setup: no administrator exists yet; create the first one at {link} "
            "(or POST /api/monitoring/auth/setup with this token)",
            flush=True,
        )

    # --- keeping the cache current ------------------------------------------------

    def delivered(self, applied: list[tuple[Event, int]]) -> None:
        """After the projection committed: fold the events into the cache, in order; when
        some are missing (another gateway took them), read them from the log."""
        for event, seq in applied:
            if not self.cache.fold(seq, event):
                self.state_catch_up()
                return

    def state_catch_up(self) -> None:
        try:
            bus = self.state.bus()
        except Exception:
            return
        task = asyncio.get_running_loop().create_task(self.catch_up(bus))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def catch_up(self, bus: EventBus, through: int | None = None) -> None:
        """Fold what the log holds beyond the cache (up to ``through``, or its end)."""
        async with self._catching_up:
            end = through if through is not None else await last_seq(bus, IDENTITY.name)
            if end <= self.cache.applied_seq:
                return
            async for seq, event in read_from(bus, IDENTITY.name, self.cache.applied_seq + 1, end):
                self.cache.fold(seq, event, contiguous=False)

    async def catch_up_forever(self) -> None:
        while True:
            await asyncio.sleep(CATCH_UP_EVERY_S)
            try:
                await self.catch_up(self.state.bus())
            except Exception as exc:
                log.debug("identity catch-up skipped", extra={"error": str(exc)})

    async def written(self, appended: Appended) -> bool:
        """After this gateway appended an identity event: the cache has it before the answer
        (a revoked key is refused on the very next request), and the read model shows it
        (False when it has not within the consistency wait)."""
        await self.catch_up(self.state.bus(), appended.seq)
        return await self.projection.progress.wait_for(
            PROJECTION, appended.seq, self.state.consistency_wait_s
        )
