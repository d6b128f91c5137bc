"""Centralized logs: the ``logs-store`` consumer, the SQL store with full-text search, its
queries and retention. Owned by the metrics service."""
