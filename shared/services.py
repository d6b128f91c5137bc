"""The six services, in the order a reader meets them on the path of a sample."""

SERVICES: tuple[str, ...] = ("gateway", "metrics", "alerts", "incidents", "synthetic", "notifier")
