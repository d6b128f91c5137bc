"""Metrics: sample ingest (validated, with backpressure) and queries to the metrics store."""
