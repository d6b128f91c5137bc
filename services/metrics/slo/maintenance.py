"""The maintenance windows SLOs may leave out: the file's own, and those made through the
API (``config.maintenance.*`` on CONFIG, owned by the alerts service), read again before
each burn-rate evaluation so a window made a minute ago counts in the next figures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from shared.bus import EventBus
from shared.configbook import MAINTENANCE, ConfigBook
from shared.maintenanceconfig import MaintenanceWindowConfig
from shared.streams import CONFIG
from shared.subjects import CONFIG_MAINTENANCE

log = logging.getLogger(__name__)


class MaintenanceFollower:
    def __init__(
        self, file_windows: Sequence[MaintenanceWindowConfig], bus: Callable[[], EventBus]
    ):
        self.file_windows = list(file_windows)
        self.bus = bus

    async def windows(self) -> list[MaintenanceWindowConfig]:
        """The file's windows, then the API's (a file window's name wins)."""
        book: ConfigBook[MaintenanceWindowConfig] = ConfigBook(MAINTENANCE)
        async for recorded in self.bus().replay(CONFIG.name, f"{CONFIG_MAINTENANCE}.>"):
            book.apply(recorded.event, recorded.seq)
        names = {w.name for w in self.file_windows}
        return [*self.file_windows, *(w for w in book.api_items.values() if w.name not in names)]
