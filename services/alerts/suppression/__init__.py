"""Suppression: why an alert pages nobody (silences, maintenance windows, inhibition,
flapping), decided in the alerts service and stamped on every alert event."""

from services.alerts.suppression.engine import Suppressor, canonical, without_flapping
from services.alerts.suppression.sources import SuppressionSource, matching_labels

__all__ = ["SuppressionSource", "Suppressor", "canonical", "matching_labels", "without_flapping"]
