"""Centralized logs: ingest (``POST /api/monitoring/logs``) and search, served from the
metrics service's log store."""
