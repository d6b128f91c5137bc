"""Synthetic checks: their configuration and results, and the commands sent to the owner."""
