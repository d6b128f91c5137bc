"""Notification channels: the file's and the API's, read from CONFIG, secrets only masked;
changes sent to the notifier, their owner. ``router`` and ``PROJECTIONS`` for the app."""

from services.gateway.channels.projector import PROJECTIONS
from services.gateway.channels.router import router

__all__ = ["PROJECTIONS", "router"]
