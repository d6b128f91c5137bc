"""Alerts: the read model of the ALERTS stream, and acknowledge/resolve sent to the owner."""
