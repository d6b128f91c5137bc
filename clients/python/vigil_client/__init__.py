"""Request, error, latency, database and cache metrics, and log records, from Python web
apps, for Vigil."""

from vigil_client.asgi import VigilASGIMiddleware, set_route
from vigil_client.client import VigilClient, configure
from vigil_client.defaults import default_client
from vigil_client.instruments import DbQueryTimer, cache_hit, cache_miss, db_query
from vigil_client.logs import LogShipperStats, VigilLogHandler
from vigil_client.pusher import PusherStats
from vigil_client.wsgi import VigilWSGIMiddleware

__all__ = [
    "DbQueryTimer",
    "LogShipperStats",
    "PusherStats",
    "VigilASGIMiddleware",
    "VigilClient",
    "VigilLogHandler",
    "VigilWSGIMiddleware",
    "cache_hit",
    "cache_miss",
    "configure",
    "db_query",
    "default_client",
    "set_route",
]
